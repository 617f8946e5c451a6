// source_text.h — checks on a source text before any parser sees it, shared
// by both front ends (policy and scenario). No ANTLR here: the tests and the
// compiler use it too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tlsp/compiler.h"

namespace tlsp {

// The byte offset of the first invalid UTF-8 sequence (overlong forms,
// surrogates and code points past U+10FFFF included), or npos. ANTLR's input
// stream would throw on one; the user gets a located error instead.
size_t find_invalid_utf8(std::string_view text);

// Where byte `offset` of `text` is, as diagnostics count: 1-based line, and
// the column in code points. Length 1, for the caret.
SourceLocation location_of_byte(std::string_view text, size_t offset, uint32_t file);

}  // namespace tlsp
