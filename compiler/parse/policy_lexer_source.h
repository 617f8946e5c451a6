// policy_lexer_source.h — the hand-written lexer as an ANTLR TokenSource
// (policy_lexer.h says why it exists). Included by parse-module files only.
#pragma once

#include <antlr4-runtime.h>

#include <string_view>

namespace tlsp {

class PolicyTokenSource : public antlr4::TokenSource {
 public:
  // `text` must be valid UTF-8. With keep_text, every token carries its
  // text (the error path's messages quote it); without, tokens are only
  // positions, which is all the AST builder needs.
  explicit PolicyTokenSource(std::string_view text, bool keep_text = false);

  std::unique_ptr<antlr4::Token> nextToken() override;
  size_t getLine() const override { return line_; }
  size_t getCharPositionInLine() override { return column_; }
  antlr4::CharStream* getInputStream() override { return nullptr; }
  std::string getSourceName() override { return "policy"; }
  antlr4::TokenFactory<antlr4::CommonToken>* getTokenFactory() override;

 private:
  void advance();
  size_t block_comment_end();

  std::string_view text_;
  bool keep_text_;
  // Where the next `*/` is, searched for at most once per stretch of text
  // (else every unclosed `/*` would scan to the end: quadratic).
  bool searched_ = false;
  size_t close_search_from_ = 0;
  size_t close_at_ = 0;
  size_t pos_ = 0;  // byte offset
  size_t cp_ = 0;   // code-point index (ANTLR's token indexes)
  size_t line_ = 1;
  size_t column_ = 0;  // code points since the line began
};

}  // namespace tlsp
