// policy_lexer.h — a hand-written lexer for the policy language that feeds
// the ANTLR-generated parser (part of the parse module: only parse.cpp and
// policy_lexer.cpp see ANTLR).
//
// Why: the generated lexer of ANTLR's 4.9 C++ runtime takes a shared
// reader lock for every character it reads, so lexing was most of the
// compile time and two threads ran no faster than one. The grammar's lexer
// rules stay the definition of the tokens; this lexer produces exactly the
// same tokens (type, code-point start/stop, line, column) and a test checks
// that on every shipped policy and on mangled input. The error path uses it
// too (keeping token text): the generated lexer is quadratic on a file of
// unclosed `/*`, and this one is linear on any input.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

namespace tlsp {

// A token as the parser sees it, for the differential test.
struct LexedToken {
  size_t type;
  size_t start, stop;  // code-point indexes, as ANTLR counts
  size_t line, column;
  friend bool operator==(const LexedToken&, const LexedToken&) = default;
};

// Both lexers over the same valid UTF-8 text, ending with the EOF token.
std::vector<LexedToken> lex_with_generated_lexer(std::string_view text);
std::vector<LexedToken> lex_with_policy_lexer(std::string_view text);

}  // namespace tlsp
