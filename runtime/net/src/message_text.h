// message_text.h — a forwarding name, not a second rule: quoting untrusted
// text is tlsp/base/quote.h's (base::ticked), and runtime/net includes that
// directly. Only runtime/relay (spool.cpp, retry.cpp) still reaches this
// header, through the net/src include path in runtime/relay/CMakeLists.txt;
// once they include "tlsp/base/quote.h" this file and that path go.
#pragma once

#include "tlsp/base/quote.h"

namespace tlsp::runtime_detail {

using base::ticked;

}  // namespace tlsp::runtime_detail
