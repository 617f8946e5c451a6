// policy_lexer.cpp — see policy_lexer.h. The rules mirror
// grammar/TlsPolicy.g4 in its order: longest match wins, and on a tie the
// earlier rule (so `policy` is POLICY, `policyx` is IDENT).
#include "policy_lexer.h"

#include <antlr4-runtime.h>

#include "TlsPolicyLexer.h"
#include "policy_lexer_source.h"

namespace tlsp {

using gen::TlsPolicyLexer;

namespace {

bool ident_start(unsigned char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool ident_part(unsigned char c) {
  return ident_start(c) || (c >= '0' && c <= '9') || c == '.' || c == '-';
}

size_t keyword_type(std::string_view w) {
  switch (w.size()) {
    case 4: return w == "peer" ? TlsPolicyLexer::PEER : TlsPolicyLexer::IDENT;
    case 6:
      if (w == "policy") return TlsPolicyLexer::POLICY;
      if (w == "domain") return TlsPolicyLexer::DOMAIN;
      return TlsPolicyLexer::IDENT;
    case 7:
      if (w == "version") return TlsPolicyLexer::VERSION;
      if (w == "include") return TlsPolicyLexer::INCLUDE;
      if (w == "default") return TlsPolicyLexer::DEFAULT;
      if (w == "inbound") return TlsPolicyLexer::INBOUND;
      if (w == "enabled") return TlsPolicyLexer::ENABLED;
      return TlsPolicyLexer::IDENT;
    case 8:
      if (w == "outbound") return TlsPolicyLexer::OUTBOUND;
      if (w == "disabled") return TlsPolicyLexer::DISABLED;
      return TlsPolicyLexer::IDENT;
    default: return TlsPolicyLexer::IDENT;
  }
}

}  // namespace

PolicyTokenSource::PolicyTokenSource(std::string_view text, bool keep_text) : text_(text), keep_text_(keep_text) {}

// Advances over one code point, keeping ANTLR's line/column counting
// (a new line after '\n' only; columns count code points).
void PolicyTokenSource::advance() {
  unsigned char c = static_cast<unsigned char>(text_[pos_]);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : 4;
  pos_ = std::min(text_.size(), pos_ + n);
  ++cp_;
  if (c == '\n') {
    ++line_;
    column_ = 0;
  } else {
    ++column_;
  }
}

std::unique_ptr<antlr4::Token> PolicyTokenSource::nextToken() {
  while (true) {
    if (pos_ >= text_.size()) {
      auto eof = std::make_unique<antlr4::CommonToken>(std::make_pair(this, nullptr), antlr4::Token::EOF,
                                                       antlr4::Token::DEFAULT_CHANNEL, cp_, cp_ - 1);
      eof->setLine(line_);
      eof->setCharPositionInLine(column_);
      return eof;
    }
    const size_t start_cp = cp_, start_line = line_, start_col = column_, start_pos = pos_;
    const unsigned char c = static_cast<unsigned char>(text_[pos_]);
    size_t type;
    bool skip = false;
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f') {
      while (pos_ < text_.size()) {
        unsigned char w = static_cast<unsigned char>(text_[pos_]);
        if (w != ' ' && w != '\t' && w != '\r' && w != '\n' && w != '\f') break;
        advance();
      }
      skip = true;
      type = TlsPolicyLexer::WS;
    } else if (c == '#' || (c == '/' && pos_ + 1 < text_.size() && text_[pos_ + 1] == '/')) {
      while (pos_ < text_.size() && text_[pos_] != '\r' && text_[pos_] != '\n') advance();
      skip = true;
      type = TlsPolicyLexer::LINE_COMMENT;
    } else if (c == '/' && pos_ + 1 < text_.size() && text_[pos_ + 1] == '*' && block_comment_end() != 0) {
      const size_t end = block_comment_end();
      while (pos_ < end) advance();
      skip = true;
      type = TlsPolicyLexer::BLOCK_COMMENT;
    } else if (ident_start(c)) {
      const size_t begin = pos_;
      while (pos_ < text_.size() && ident_part(static_cast<unsigned char>(text_[pos_]))) advance();
      type = keyword_type(text_.substr(begin, pos_ - begin));
    } else if (c == '"') {
      advance();
      while (pos_ < text_.size() && text_[pos_] != '"' && text_[pos_] != '\r' && text_[pos_] != '\n') advance();
      if (pos_ < text_.size() && text_[pos_] == '"') {
        advance();
        type = TlsPolicyLexer::STRING;
      } else {
        type = TlsPolicyLexer::UNTERMINATED_STRING;
      }
    } else {
      advance();
      switch (c) {
        case '{': type = TlsPolicyLexer::LBRACE; break;
        case '}': type = TlsPolicyLexer::RBRACE; break;
        case ';': type = TlsPolicyLexer::SEMI; break;
        case ',': type = TlsPolicyLexer::COMMA; break;
        default: type = TlsPolicyLexer::BAD_CHAR; break;
      }
    }
    if (skip) continue;
    auto t = std::make_unique<antlr4::CommonToken>(std::make_pair(this, nullptr), type,
                                                   antlr4::Token::DEFAULT_CHANNEL, start_cp, cp_ - 1);
    t->setLine(start_line);
    t->setCharPositionInLine(start_col);
    if (keep_text_) t->setText(std::string(text_.substr(start_pos, pos_ - start_pos)));
    return t;
  }
}

// The byte offset just past the `*/` closing a comment opened at pos_, or 0
// if none follows. A search's result stays valid until pos_ passes it, and a
// failed search stays failed, so the text is scanned about once in all.
size_t PolicyTokenSource::block_comment_end() {
  const size_t from = pos_ + 2;
  const bool known =
      searched_ && close_search_from_ <= from && (close_at_ == std::string_view::npos || close_at_ >= from);
  if (!known) {
    searched_ = true;
    close_search_from_ = from;
    close_at_ = text_.find("*/", from);
  }
  return close_at_ == std::string_view::npos ? 0 : close_at_ + 2;
}

antlr4::TokenFactory<antlr4::CommonToken>* PolicyTokenSource::getTokenFactory() {
  return antlr4::CommonTokenFactory::DEFAULT.get();
}

namespace {
std::vector<LexedToken> drain(antlr4::TokenSource& source) {
  std::vector<LexedToken> out;
  while (true) {
    std::unique_ptr<antlr4::Token> t = source.nextToken();
    out.push_back({t->getType(), t->getStartIndex(), t->getStopIndex(), t->getLine(), t->getCharPositionInLine()});
    if (t->getType() == antlr4::Token::EOF) return out;
  }
}
}  // namespace

std::vector<LexedToken> lex_with_generated_lexer(std::string_view text) {
  antlr4::ANTLRInputStream input(text.data(), text.size());
  TlsPolicyLexer lexer(&input);
  lexer.removeErrorListeners();
  return drain(lexer);
}

std::vector<LexedToken> lex_with_policy_lexer(std::string_view text) {
  PolicyTokenSource source(text);
  return drain(source);
}

}  // namespace tlsp
