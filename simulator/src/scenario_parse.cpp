// scenario_parse.cpp — runs the ANTLR-generated parser over one scenario file
// and turns its parse tree into the simulator's syntax tree (scenario_ast.h).
//
// Scenario files are small and written by hand, so there is one parse with
// an error strategy that reports every syntax error in words: ANTLR's own
// messages ("mismatched input 'x' expecting STRING") name grammar tokens;
// FriendlyErrorStrategy says what was expected in the language's own terms,
// like the policy compiler's parse module does.
//
// Hostile input (docs/scenarios.md "Limits"): the grammar is LL(1) and has
// no recursion (its nesting depth is fixed: scenario > mx > host > tlsa), so
// SLL prediction never looks more than one token ahead and the parse is
// linear in the file. A file over kMaxScenarioFileBytes is not parsed
// (S0105); the parse stops once the sink holds kMaxScenarioDiagnostics
// errors, and at an unterminated string, after which every message would be
// noise. Adjacent strings are joined here, in one pass per run.
#include "scenario_parse.h"

#include <antlr4-runtime.h>

#include "tlsp/simulator.h"

#include "ScenarioLexer.h"
#include "ScenarioParser.h"

namespace tlsp::sim {
namespace {

using gen::ScenarioLexer;
using gen::ScenarioParser;

SourceLocation where(const antlr4::Token* t) {
  SourceLocation loc;
  loc.file = 0;
  loc.line = static_cast<uint32_t>(t->getLine());
  loc.column = static_cast<uint32_t>(t->getCharPositionInLine()) + 1;
  loc.length = 1;
  if (t->getType() != antlr4::Token::EOF && t->getStartIndex() != INVALID_INDEX &&
      t->getStopIndex() != INVALID_INDEX && t->getStopIndex() >= t->getStartIndex())
    loc.length = static_cast<uint32_t>(t->getStopIndex() - t->getStartIndex() + 1);
  return loc;
}

bool is_real(const antlr4::Token* t) { return t != nullptr && t->getStartIndex() != INVALID_INDEX; }

// The byte offset of the first invalid UTF-8 sequence, or npos. ANTLR's
// input stream would throw on one; the user gets a located error instead.
size_t first_invalid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size()) return i;
    uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t k = 1; k < n; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += n;
  }
  return std::string_view::npos;
}

// ------------------------------------------------------------ messages

// What an IDENT is called depends on where the parser wanted it.
std::string describe_word(antlr4::Parser* parser) {
  antlr4::ParserRuleContext* ctx = parser->getContext();
  const size_t rule = ctx == nullptr ? static_cast<size_t>(ScenarioParser::RuleScenarioFile) : ctx->getRuleIndex();
  switch (rule) {
    case ScenarioParser::RuleScenario:
    case ScenarioParser::RuleScenarioItem: return "a setting such as `direction`";
    case ScenarioParser::RuleHostBlock:
    case ScenarioParser::RuleClientBlock:
    case ScenarioParser::RuleHostFact: return "a fact such as `starttls`";
    case ScenarioParser::RuleTlsaBlock: return "a record such as `dane-ee match`";
    case ScenarioParser::RuleMtaStsBlock: return "a fact such as `txt`";
    case ScenarioParser::RuleExpectation: return "a field such as `channel`";
    default: return "a word";
  }
}

std::string describe_token_type(size_t type, antlr4::Parser* parser) {
  switch (type) {
    case antlr4::Token::EOF: return "end of file";
    case ScenarioParser::STRING: return "a quoted string";
    case ScenarioParser::NUMBER: return "a number";
    case ScenarioParser::IDENT: return describe_word(parser);
    default: break;
  }
  std::string literal = parser->getVocabulary().getLiteralName(type);
  if (literal.size() >= 2 && literal.front() == '\'') literal = literal.substr(1, literal.size() - 2);
  if (literal.empty()) literal = parser->getVocabulary().getDisplayName(type);
  return ticked(literal);
}

std::string describe_expected(const antlr4::misc::IntervalSet& set, antlr4::Parser* parser) {
  // `channel` with nothing after it: whatever the kind of word, it is a value.
  if (parser->getContext() != nullptr && (parser->getContext()->getRuleIndex() == ScenarioParser::RuleAttribute ||
                                          parser->getContext()->getRuleIndex() == ScenarioParser::RuleAttributeValue ||
                                          parser->getContext()->getRuleIndex() == ScenarioParser::RuleArgument))
    return "a value";
  // Where any word would do, the keywords that double as values are noise.
  const bool words_expected = set.contains(static_cast<size_t>(ScenarioParser::IDENT)) &&
                              parser->getContext() != nullptr &&
                              (parser->getContext()->getRuleIndex() == ScenarioParser::RuleStatement ||
                               parser->getContext()->getRuleIndex() == ScenarioParser::RuleArgument ||
                               parser->getContext()->getRuleIndex() == ScenarioParser::RuleAttributeValue ||
                               parser->getContext()->getRuleIndex() == ScenarioParser::RuleAttribute);
  std::vector<std::string> words;
  for (size_t type : set.toList()) {
    // `no` can start any fact; listing it everywhere is noise.
    if (type == antlr4::Token::EPSILON || type == ScenarioParser::NO) continue;
    if (words_expected && (type == ScenarioParser::MX || type == ScenarioParser::MTA_STS)) continue;
    std::string w = describe_token_type(type, parser);
    if (std::find(words.begin(), words.end(), w) == words.end()) words.push_back(w);
  }
  // Keywords first, then "a quoted string", "a fact such as ...".
  std::stable_partition(words.begin(), words.end(), [](const std::string& w) { return w[0] == '`'; });
  std::string out;
  for (size_t i = 0; i < words.size(); ++i) {
    if (i > 0) out += (i + 1 == words.size()) ? " or " : ", ";
    out += words[i];
  }
  return out.empty() ? "something else" : out;
}

std::string describe_found(const antlr4::Token* t) {
  switch (t->getType()) {
    case antlr4::Token::EOF: return "end of file";
    case ScenarioParser::BAD_CHAR: return "character " + ticked(t->getText());
    default: return ticked(t->getText());
  }
}

class FriendlyErrorStrategy : public antlr4::DefaultErrorStrategy {
 public:
  explicit FriendlyErrorStrategy(ScenarioSink& sink) : sink_(sink) {}
  // Also true when every report was a suppressed follow-on error: the tree
  // has holes either way.
  bool saw_error() const { return saw_error_; }

 protected:
  void reportNoViableAlternative(antlr4::Parser* p, const antlr4::NoViableAltException& e) override {
    report_unexpected(p, e.getOffendingToken(), p->getExpectedTokens());
  }
  void reportInputMismatch(antlr4::Parser* p, const antlr4::InputMismatchException& e) override {
    report_unexpected(p, e.getOffendingToken(), e.getExpectedTokens());
  }
  void reportFailedPredicate(antlr4::Parser* p, const antlr4::FailedPredicateException& e) override {
    report_unexpected(p, e.getOffendingToken(), p->getExpectedTokens());
  }
  void reportUnwantedToken(antlr4::Parser* p) override {
    if (inErrorRecoveryMode(p)) return;
    beginErrorCondition(p);
    report_unexpected(p, p->getCurrentToken(), getExpectedTokens(p));
  }
  void reportMissingToken(antlr4::Parser* p) override {
    if (inErrorRecoveryMode(p)) return;
    beginErrorCondition(p);
    antlr4::Token* current = p->getCurrentToken();
    if (cascade(current) || special(current)) return;
    reported_ = true;
    antlr4::Token* previous = p->getTokenStream()->LT(-1);
    std::string expected = describe_expected(getExpectedTokens(p), p);
    if (is_real(previous)) {
      // Just past the previous token: where the `;` or `}` belongs.
      SourceLocation at = where(previous);
      at.column += at.length;
      at.length = 1;
      report("S0101", at, "expected " + expected + " after " + ticked(previous->getText()));
    } else {
      report("S0101", where(current), "expected " + expected + " before " + describe_found(current));
    }
  }

 private:
  bool special(antlr4::Token* t) {
    if (t->getType() == ScenarioParser::UNTERMINATED_STRING) {
      // The string swallowed the rest of its line, braces included, so
      // whatever the parser says next is noise: stop here.
      Diagnostic& d = report("S0102", where(t), "unterminated string");
      d.help = "add the closing `\"` on the same line (write a line break inside a string as `\\n`)";
      throw antlr4::ParseCancellationException("unterminated string");
    }
    return false;
  }

  void report_unexpected(antlr4::Parser* p, antlr4::Token* t, const antlr4::misc::IntervalSet& expected) {
    if (cascade(t) || special(t)) return;
    // After an error inside a scenario, the recovery may close the
    // scenario early and then trip over its remaining `}` at the top
    // level: that is the first error again, not a new one.
    const bool top_level = p->getContext() == nullptr || p->getContext()->getRuleIndex() == ScenarioParser::RuleScenarioFile;
    const bool first = !reported_;
    reported_ = true;
    if (!first && top_level) return;
    antlr4::Token* previous = p->getTokenStream()->LT(-1);
    // A statement that ends at the end of its line without `;`: say so at
    // the end of that line, not at the next line's first word.
    if (expected.contains(static_cast<size_t>(ScenarioParser::SEMI)) && is_real(previous) &&
        t->getLine() > previous->getLine()) {
      SourceLocation at = where(previous);
      at.column += at.length;
      at.length = 1;
      report("S0101", at, "expected `;` after " + ticked(previous->getText()));
      return;
    }
    SourceLocation at = where(t);
    if (t->getType() == antlr4::Token::EOF) {
      if (is_real(previous)) {
        at = where(previous);
        at.column += at.length;
        at.length = 1;
      }
    }
    Diagnostic& d = report("S0100", at, "expected " + describe_expected(expected, p) + ", found " + describe_found(t));
    // A misspelt keyword: `scenaro` for `scenario`, `hots` for `host`.
    if (t->getType() == ScenarioParser::IDENT) {
      std::vector<std::string> keywords;
      for (size_t type : expected.toList()) {
        std::string literal = p->getVocabulary().getLiteralName(type);
        if (literal.size() >= 4 && literal.front() == '\'') keywords.push_back(literal.substr(1, literal.size() - 2));
      }
      std::vector<std::string_view> views(keywords.begin(), keywords.end());
      d.help = did_you_mean(t->getText(), views);
    }
  }

  // Every syntax error goes through here. Once the sink is full nothing
  // more would be kept, so the parse stops; parse_scenario_syntax() says so.
  Diagnostic& report(std::string code, SourceLocation at, std::string message) {
    const bool full = sink_.full();
    Diagnostic& d = sink_.error(std::move(code), at, std::move(message));  // counted, and dropped when full
    if (full) throw antlr4::ParseCancellationException("too many errors");
    return d;
  }

  // After an error, recovery often trips again on the same line; those
  // follow-on errors only repeat the first one.
  bool cascade(antlr4::Token* t) {
    saw_error_ = true;
    const size_t line = t->getLine();
    const bool same = line == last_error_line_;
    last_error_line_ = line;
    return same;
  }

  ScenarioSink& sink_;
  size_t last_error_line_ = 0;
  bool saw_error_ = false;
  bool reported_ = false;
};

// ----------------------------------------------------------- transform

class TreeBuilder {
 public:
  explicit TreeBuilder(ScenarioSink& sink) : sink_(sink) {}

  void file(ScenarioParser::ScenarioFileContext* ctx, ast::File& out) {
    for (auto* s : ctx->scenarios) out.scenarios.push_back(scenario(s));
  }

 private:
  ast::Scenario scenario(ScenarioParser::ScenarioContext* ctx) {
    ast::Scenario s;
    s.where = where(ctx->getStart());
    s.name = string_word(ctx->name);
    for (auto* item : ctx->items) {
      if (item->mx != nullptr) {
        s.mx.push_back(mx(item->mx));
      } else if (item->client != nullptr) {
        auto* c = item->client;
        ast::Host h;
        h.where = where(c->getStart());
        h.name = string_word(c->address);
        host_facts(c->facts, h);
        s.clients.push_back(std::move(h));
      } else if (item->sts != nullptr) {
        ast::MtaSts m;
        m.where = where(item->sts->getStart());
        for (auto* f : item->sts->facts) m.facts.push_back(statement(f));
        s.sts.push_back(std::move(m));
      } else if (item->expect != nullptr) {
        ast::Expect e;
        e.where = where(item->expect->getStart());
        e.outcome = value(item->expect->outcome);
        e.fields = attributes(item->expect->fields);
        s.expects.push_back(std::move(e));
      } else if (item->setting != nullptr) {
        s.settings.push_back(statement(item->setting));
      }
    }
    return s;
  }

  ast::Mx mx(ScenarioParser::MxBlockContext* ctx) {
    ast::Mx m;
    m.where = where(ctx->getStart());
    m.domain = string_word(ctx->domain);
    m.attrs = attributes(ctx->attrs);
    for (auto* hb : ctx->hosts) {
      ast::Host h;
      h.where = where(hb->getStart());
      h.name = string_word(hb->name);
      h.attrs = attributes(hb->attrs);
      host_facts(hb->facts, h);
      m.hosts.push_back(std::move(h));
    }
    return m;
  }

  void host_facts(const std::vector<ScenarioParser::HostFactContext*>& facts, ast::Host& h) {
    for (auto* f : facts) {
      if (f->tlsa != nullptr) {
        ast::Tlsa t;
        t.where = where(f->tlsa->getStart());
        t.attrs = attributes(f->tlsa->attrs);
        for (auto* r : f->tlsa->records) t.records.push_back(statement(r));
        h.tlsa.push_back(std::move(t));
      } else if (f->fact != nullptr) {
        h.facts.push_back(statement(f->fact));
      }
    }
  }

  ast::Statement statement(ScenarioParser::StatementContext* ctx) {
    ast::Statement st;
    st.where = where(ctx->getStart());
    st.negated = ctx->negated != nullptr;
    st.key = ident_word(ctx->key);
    // The grammar gives one argument per token; a run of adjacent strings
    // is one argument, joined as in C.
    const auto& args = ctx->args;
    for (size_t i = 0; i < args.size();) {
      if (args[i]->string == nullptr) {
        st.args.push_back(single(args[i]->word, args[i]->number, args[i]->keyword));
        ++i;
        continue;
      }
      std::vector<antlr4::Token*> run;
      for (; i < args.size() && args[i]->string != nullptr; ++i) run.push_back(args[i]->string);
      st.args.push_back(joined_strings(run));
    }
    return st;
  }

  std::vector<ast::Attribute> attributes(const std::vector<ScenarioParser::AttributeContext*>& list) {
    std::vector<ast::Attribute> out;
    for (auto* a : list) out.push_back({ident_word(a->key), value(a->value)});
    return out;
  }

  ast::Word value(ScenarioParser::AttributeValueContext* ctx) {
    if (!ctx->strings.empty()) return joined_strings(ctx->strings);
    return single(ctx->word, ctx->number, ctx->keyword);
  }

  // A one-token argument: exactly one of the three is set.
  static ast::Word single(antlr4::Token* word, antlr4::Token* number, antlr4::Token* keyword) {
    if (number != nullptr) {
      ast::Word w = ident_word(number);
      w.kind = ast::Word::number;
      return w;
    }
    return ident_word(word != nullptr ? word : keyword);
  }

  static ast::Word ident_word(antlr4::Token* t) { return ast::Word{ast::Word::ident, t->getText(), where(t)}; }

  ast::Word string_word(antlr4::Token* t) { return joined_strings({t}); }

  // Adjacent strings as one word, in one pass: the text is reserved once
  // and each string's contents appended (repeated concatenation of the
  // joined text would copy it once per string). The location spans all of
  // them when they share a line, else it is the first one's.
  ast::Word joined_strings(const std::vector<antlr4::Token*>& run) {
    ast::Word w{ast::Word::string, {}, where(run.front())};
    size_t size = 0;
    for (const antlr4::Token* t : run)
      size += t->getStopIndex() - t->getStartIndex() + 1;  // code points, a lower bound
    w.text.reserve(size);
    for (antlr4::Token* t : run) {
      const SourceLocation at = where(t);
      append_unescaped(t->getText(), at, w.text);
      if (t != run.front() && at.line == w.where.line) w.where.length = at.column + at.length - w.where.column;
    }
    return w;
  }

  // A string token's contents, escapes resolved, appended to `out`. The
  // lexer guarantees the quotes, and that a backslash is followed by a
  // character on the same line.
  void append_unescaped(const std::string& raw, const SourceLocation& at, std::string& out) {
    for (size_t i = 1; i + 1 < raw.size(); ++i) {
      if (raw[i] != '\\') {
        out += raw[i];
        continue;
      }
      char e = raw[++i];
      switch (e) {
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        default: {
          Diagnostic& d = sink_.error("S0104", at, std::string("unknown escape `\\") + e + "` in a string");
          d.help = "the escapes are `\\n`, `\\r`, `\\t`, `\\\"` and `\\\\`";
          out += e;
        }
      }
    }
  }

  ScenarioSink& sink_;
};

}  // namespace

bool parse_scenario_syntax(const LoadedSource& source, ast::File& out, ScenarioSink& sink) {
  out = {};
  if (source.text.size() > kMaxScenarioFileBytes) {
    Diagnostic& d = sink.error("S0105", SourceLocation{0, 1, 1, 1},
                               "the file is larger than " + std::to_string(kMaxScenarioFileBytes >> 20) +
                                   " MiB; it is not read as a scenario file");
    d.help = "a scenario file is written by hand; split a generated one into several files";
    return false;
  }
  if (size_t bad = first_invalid_utf8(source.text); bad != std::string_view::npos) {
    SourceLocation at{0, 1, 1, 1};
    for (size_t i = 0; i < bad; ++i) {
      if (source.text[i] == '\n') {
        ++at.line;
        at.column = 1;
      } else if ((static_cast<unsigned char>(source.text[i]) & 0xC0) != 0x80) {
        ++at.column;
      }
    }
    sink.error("S0103", at, "the file is not valid UTF-8");
    return false;
  }

  antlr4::ANTLRInputStream input(source.text.data(), source.text.size());
  ScenarioLexer lexer(&input);
  lexer.removeErrorListeners();  // BAD_CHAR makes every character a token
  antlr4::CommonTokenStream tokens(&lexer);
  ScenarioParser parser(&tokens);
  parser.removeErrorListeners();
  // The grammar is LL(1), so SLL predicts exactly what full LL would, and it
  // never falls back to full-context lookahead (which is not cached).
  parser.getInterpreter<antlr4::atn::ParserATNSimulator>()->setPredictionMode(antlr4::atn::PredictionMode::SLL);
  const size_t before = sink.count();
  auto strategy = std::make_shared<FriendlyErrorStrategy>(sink);
  parser.setErrorHandler(strategy);
  ScenarioParser::ScenarioFileContext* tree = nullptr;
  try {
    tree = parser.scenarioFile();
  } catch (const antlr4::ParseCancellationException&) {
    return false;  // the strategy stopped the parse after reporting why
  }
  if (strategy->saw_error() || parser.getNumberOfSyntaxErrors() > 0) {
    if (sink.count() == before) sink.error("S0100", SourceLocation{0, 1, 1, 1}, "syntax error");  // never silently
    return false;
  }

  TreeBuilder builder(sink);
  builder.file(tree, out);
  if (sink.count() != before) {  // bad escapes
    out = {};
    return false;
  }
  return true;
}

}  // namespace tlsp::sim
