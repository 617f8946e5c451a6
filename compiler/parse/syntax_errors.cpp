// syntax_errors.cpp — see syntax_errors.h.
#include "syntax_errors.h"

#include <algorithm>
#include <vector>

#include "tlsp/diagnostic_text.h"

namespace tlsp::parse {

SourceLocation token_location(const antlr4::Token* t, uint32_t file) {
  SourceLocation loc;
  loc.file = file;
  loc.line = static_cast<uint32_t>(t->getLine());
  loc.column = static_cast<uint32_t>(t->getCharPositionInLine()) + 1;
  loc.length = 1;
  if (t->getType() != antlr4::Token::EOF && t->getStartIndex() != INVALID_INDEX &&
      t->getStopIndex() != INVALID_INDEX && t->getStopIndex() >= t->getStartIndex())
    loc.length = static_cast<uint32_t>(t->getStopIndex() - t->getStartIndex() + 1);
  return loc;
}

bool is_real(const antlr4::Token* t) { return t != nullptr && t->getStartIndex() != INVALID_INDEX; }

namespace {

// Just past `t`: where a missing `;` belongs, or "found end of file" reads best.
SourceLocation just_after(const SourceLocation& t) {
  SourceLocation at = t;
  at.column += at.length;
  at.length = 1;
  return at;
}

}  // namespace

// ------------------------------------------------------ ANTLR's events

void SyntaxErrorStrategy::reportNoViableAlternative(antlr4::Parser* p, const antlr4::NoViableAltException& e) {
  unexpected(p, e.getOffendingToken(), p->getExpectedTokens());
}
void SyntaxErrorStrategy::reportInputMismatch(antlr4::Parser* p, const antlr4::InputMismatchException& e) {
  unexpected(p, e.getOffendingToken(), e.getExpectedTokens());
}
void SyntaxErrorStrategy::reportFailedPredicate(antlr4::Parser* p, const antlr4::FailedPredicateException& e) {
  unexpected(p, e.getOffendingToken(), p->getExpectedTokens());
}
void SyntaxErrorStrategy::reportUnwantedToken(antlr4::Parser* p) {
  if (inErrorRecoveryMode(p)) return;
  beginErrorCondition(p);
  unexpected(p, p->getCurrentToken(), getExpectedTokens(p));
}
void SyntaxErrorStrategy::reportMissingToken(antlr4::Parser* p) {
  if (inErrorRecoveryMode(p)) return;
  beginErrorCondition(p);
  missing(p);
}

// ------------------------------------------------------------ reports

void SyntaxErrorStrategy::unexpected(antlr4::Parser* p, antlr4::Token* t, const antlr4::misc::IntervalSet& expected) {
  ++errors_seen_;
  if (cascade(t) || unterminated(t)) return;
  const bool first = reports_++ == 0;
  if (!first && is_follow_on(p)) return;
  antlr4::Token* previous = p->getTokenStream()->LT(-1);
  if (terms_.line_end_token && expected.contains(*terms_.line_end_token) && is_real(previous) &&
      t->getLine() > previous->getLine()) {
    report(terms_.missing_code, just_after(where(previous)),
           "expected " + describe_token_type(*terms_.line_end_token, p) + " after " + quote(previous->getText()));
    return;
  }
  SourceLocation at = where(t);
  if (t->getType() == antlr4::Token::EOF && is_real(previous)) at = just_after(where(previous));
  Diagnostic& d =
      report(terms_.unexpected_code, at, "expected " + describe_expected(expected, p) + ", found " + describe_found(t));
  if (t->getType() == terms_.ident) d.help = misspelt_keyword(t, expected, p);
}

void SyntaxErrorStrategy::missing(antlr4::Parser* p) {
  ++errors_seen_;
  antlr4::Token* current = p->getCurrentToken();
  if (cascade(current) || unterminated(current)) return;
  ++reports_;
  antlr4::Token* previous = p->getTokenStream()->LT(-1);
  std::string expected = describe_expected(getExpectedTokens(p), p);
  if (is_real(previous)) {
    // Just past the previous token: that is where the `;` belongs, not at
    // the next line's first word.
    report(terms_.missing_code, just_after(where(previous)),
           "expected " + expected + " after " + quote(previous->getText()));
  } else {
    report(terms_.missing_code, where(current), "expected " + expected + " before " + describe_found(current));
  }
}

// Unterminated strings are named as such, whatever the parser expected
// there. The string swallowed the rest of its line, braces included, so
// whatever the parser says next is noise.
bool SyntaxErrorStrategy::unterminated(antlr4::Token* t) {
  if (t->getType() != terms_.unterminated_string) return false;
  silenced_ = true;
  Diagnostic& d = report(terms_.unterminated_code, where(t), "unterminated string");
  d.help = terms_.unterminated_help;
  if (terms_.stop_at_unterminated) throw antlr4::ParseCancellationException("unterminated string");
  return true;
}

// After an error, the parser's recovery often trips again on the same
// line; those follow-on errors only repeat the first one.
bool SyntaxErrorStrategy::cascade(const antlr4::Token* t) {
  if (silenced_) return true;
  const size_t line = t->getLine();
  const bool same = line == last_error_line_;
  last_error_line_ = line;
  return same;
}

// A misspelt keyword (`outbond` for `outbound`): the closest expected
// keyword within two edits. Punctuation is no keyword.
std::string SyntaxErrorStrategy::misspelt_keyword(const antlr4::Token* t, const antlr4::misc::IntervalSet& expected,
                                                  antlr4::Parser* p) const {
  std::string best;
  size_t best_distance = 3;
  for (size_t type : expected.toList()) {
    std::string literal = p->getVocabulary().getLiteralName(type);
    if (literal.size() < 4 || literal.front() != '\'') continue;
    literal = literal.substr(1, literal.size() - 2);
    const size_t d = edit_distance(t->getText(), literal);
    if (d < best_distance) {
      best_distance = d;
      best = literal;
    }
  }
  return best.empty() ? std::string() : "did you mean " + quote(best) + "?";
}

// ------------------------------------------------------------- wording

std::string SyntaxErrorStrategy::quote(std::string_view text) const {
  return '`' + display_text(text, terms_.quoted_chars) + '`';
}

std::string SyntaxErrorStrategy::describe_token_type(size_t type, antlr4::Parser* p) {
  if (type == antlr4::Token::EOF) return "end of file";
  if (std::optional<std::string> words = describe_class(type, p)) return *words;
  std::string literal = p->getVocabulary().getLiteralName(type);
  if (literal.size() >= 2 && literal.front() == '\'') literal = literal.substr(1, literal.size() - 2);
  if (literal.empty()) literal = p->getVocabulary().getDisplayName(type);
  return quote(literal);
}

std::string SyntaxErrorStrategy::describe_expected(const antlr4::misc::IntervalSet& expected, antlr4::Parser* p) {
  if (std::optional<std::string> words = expected_here(p)) return *words;
  std::vector<std::string> words;
  for (size_t type : expected.toList()) {
    if (type == antlr4::Token::EPSILON || !worth_naming(type, expected, p)) continue;
    std::string w = describe_token_type(type, p);
    if (std::find(words.begin(), words.end(), w) == words.end()) words.push_back(w);
  }
  // Keywords first; quoted strings and words read better last:
  // "`disabled`, `{` or a quoted string".
  std::stable_partition(words.begin(), words.end(), [](const std::string& w) { return w[0] == '`'; });
  std::string out;
  for (size_t i = 0; i < words.size(); ++i) {
    if (i > 0) out += (i + 1 == words.size()) ? " or " : ", ";
    out += words[i];
  }
  return out.empty() ? "something else" : out;
}

std::string SyntaxErrorStrategy::describe_found(const antlr4::Token* t) const {
  if (t->getType() == antlr4::Token::EOF) return "end of file";
  if (t->getType() == terms_.bad_char) return "character " + quote(t->getText());
  return quote(t->getText());
}

}  // namespace tlsp::parse
