// message_text.h — quoting untrusted text (DNS records, policy bodies) in
// the runtime's error messages. The rule is tlsp/base/quote.h's, the same as
// the compiler's and the simulator's: escaped, one line, bounded. (It wrote
// control bytes as `?` and cut at 40 bytes here before.)
// Internal to the runtime library.
#pragma once

#include "tlsp/base/quote.h"

namespace tlsp::runtime_detail {

using base::ticked;

}  // namespace tlsp::runtime_detail
