// syntax_errors.h — syntax errors in words, for both ANTLR grammars: the
// policy parser (parse.cpp) and the scenario parser
// (simulator/model/src/scenario_parse.cpp) share this one error strategy. Parse
// modules only: it includes ANTLR.
//
// ANTLR's own messages ("mismatched input 'x' expecting STRING") name
// grammar tokens. SyntaxErrorStrategy catches every error event of the
// parser and says the same in the language's terms: "expected `;` after
// `mandatory`", "expected a quoted string, found `{`", "unterminated
// string", with the misspelt keyword as a `help:` line. Contract:
//   - each error is reported once, at the offending text (or just past the
//     previous token, where a missing `;` or a premature end of file is);
//   - follow-on errors of the parser's recovery on the same line are
//     dropped, and so is everything after an unterminated string, which
//     swallowed the rest of its line (braces included);
//   - a grammar subclass provides the words for its token classes, the
//     sink (report(), which may stop the parse by throwing
//     antlr4::ParseCancellationException) and, optionally, which expected
//     tokens are worth naming where.
#pragma once

#include <antlr4-runtime.h>

#include <optional>
#include <string>
#include <string_view>

#include "tlsp/compiler.h"

namespace tlsp::parse {

// Where a token is: its 1-based line and column (columns in code points), and
// its length in code points (1 for end of file or a token that has no text).
SourceLocation token_location(const antlr4::Token* t, uint32_t file);

// A token that is in the text, not one conjured by the parser's recovery.
bool is_real(const antlr4::Token* t);

// What differs between the grammars, as data.
struct GrammarTerms {
  uint32_t file = 0;                 // SourceLocation::file of every report
  std::string unexpected_code;       // "expected X, found Y"
  std::string missing_code;          // "expected X after Y" (a token is missing)
  std::string unterminated_code;     // "unterminated string"
  std::string unterminated_help;
  bool stop_at_unterminated = false;  // stop the parse there (else only the reports stop)
  size_t quoted_chars = 0;           // at most this many characters of user text are quoted
  size_t bad_char = 0;               // token types
  size_t unterminated_string = 0;
  size_t ident = 0;
  // When set, a statement missing this token at the end of its line is
  // reported there ("expected `;` after ..."), not at the next line's first word.
  std::optional<size_t> line_end_token;
};

class SyntaxErrorStrategy : public antlr4::DefaultErrorStrategy {
 public:
  explicit SyntaxErrorStrategy(GrammarTerms terms) : terms_(std::move(terms)) {}

  // Syntax errors met, reported or not (a parse with any has holes).
  size_t errors_seen() const { return errors_seen_; }

 protected:
  // Every error event of the parser ends in unexpected() or missing().
  void reportNoViableAlternative(antlr4::Parser* p, const antlr4::NoViableAltException& e) override;
  void reportInputMismatch(antlr4::Parser* p, const antlr4::InputMismatchException& e) override;
  void reportFailedPredicate(antlr4::Parser* p, const antlr4::FailedPredicateException& e) override;
  void reportUnwantedToken(antlr4::Parser* p) override;
  void reportMissingToken(antlr4::Parser* p) override;

  // --- what the grammar provides
  // Records one syntax error; may throw antlr4::ParseCancellationException
  // to stop the parse.
  virtual Diagnostic& report(std::string code, SourceLocation at, std::string message) = 0;
  // The words for a class of token ("a quoted string"), or nullopt for a
  // keyword or punctuation, which is named by its literal text.
  virtual std::optional<std::string> describe_class(size_t type, antlr4::Parser* p) = 0;
  // Whether an expected token is worth naming here (some can start anything).
  virtual bool worth_naming(size_t /*type*/, const antlr4::misc::IntervalSet& /*expected*/, antlr4::Parser* /*p*/) {
    return true;
  }
  // Words for everything expected here, when a list of tokens would mislead.
  virtual std::optional<std::string> expected_here(antlr4::Parser* /*p*/) { return std::nullopt; }
  // Whether an unexpected token after an earlier error only repeats it.
  virtual bool is_follow_on(antlr4::Parser* /*p*/) { return false; }

  // --- shared wording
  std::string quote(std::string_view text) const;
  std::string describe_token_type(size_t type, antlr4::Parser* p);
  std::string describe_expected(const antlr4::misc::IntervalSet& expected, antlr4::Parser* p);
  std::string describe_found(const antlr4::Token* t) const;
  SourceLocation where(const antlr4::Token* t) const { return token_location(t, terms_.file); }
  // No more reports from this parse (the subclass's caps use it).
  void silence() { silenced_ = true; }

 private:
  void unexpected(antlr4::Parser* p, antlr4::Token* t, const antlr4::misc::IntervalSet& expected);
  void missing(antlr4::Parser* p);
  bool unterminated(antlr4::Token* t);
  bool cascade(const antlr4::Token* t);
  std::string misspelt_keyword(const antlr4::Token* t, const antlr4::misc::IntervalSet& expected,
                               antlr4::Parser* p) const;

  GrammarTerms terms_;
  size_t errors_seen_ = 0;
  size_t reports_ = 0;  // errors reported (not follow-ons)
  size_t last_error_line_ = 0;
  bool silenced_ = false;
};

}  // namespace tlsp::parse
