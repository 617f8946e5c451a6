// scenario_parse.cpp — runs the ANTLR-generated parser over one scenario file
// and turns its parse tree into the simulator's syntax tree (scenario_ast.h).
//
// Scenario files are small and written by hand, so there is one parse with
// an error strategy that reports every syntax error in words: the policy
// compiler's (compiler/parse/syntax_errors.h), in this grammar's words.
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
#include "source_text.h"
#include "syntax_errors.h"

namespace tlsp::sim {
namespace {

using gen::ScenarioLexer;
using gen::ScenarioParser;

SourceLocation where(const antlr4::Token* t) { return parse::token_location(t, 0); }

// ------------------------------------------------------------ messages

// The scenario grammar's words for the shared strategy. The parse stops
// once the sink is full, and at an unterminated string.
class ScenarioSyntaxErrors : public parse::SyntaxErrorStrategy {
 public:
  explicit ScenarioSyntaxErrors(ScenarioSink& sink) : SyntaxErrorStrategy(terms()), sink_(sink) {}

 protected:
  std::optional<std::string> describe_class(size_t type, antlr4::Parser* parser) override {
    switch (type) {
      case ScenarioParser::STRING: return "a quoted string";
      case ScenarioParser::NUMBER: return "a number";
      case ScenarioParser::IDENT: return describe_word(parser);
      default: return std::nullopt;
    }
  }

  // `channel` with nothing after it: whatever the kind of word, it is a value.
  std::optional<std::string> expected_here(antlr4::Parser* parser) override {
    const size_t rule = rule_of(parser);
    if (rule == ScenarioParser::RuleAttribute || rule == ScenarioParser::RuleAttributeValue ||
        rule == ScenarioParser::RuleArgument)
      return "a value";
    return std::nullopt;
  }

  bool worth_naming(size_t type, const antlr4::misc::IntervalSet& expected, antlr4::Parser* parser) override {
    // `no` can start any fact; listing it everywhere is noise.
    if (type == ScenarioParser::NO) return false;
    // Where any word would do, the keywords that double as values are noise.
    const size_t rule = rule_of(parser);
    const bool words_expected =
        expected.contains(static_cast<size_t>(ScenarioParser::IDENT)) &&
        (rule == ScenarioParser::RuleStatement || rule == ScenarioParser::RuleArgument ||
         rule == ScenarioParser::RuleAttributeValue || rule == ScenarioParser::RuleAttribute);
    return !(words_expected && (type == ScenarioParser::MX || type == ScenarioParser::MTA_STS));
  }

  // After an error inside a scenario, the recovery may close the scenario
  // early and then trip over its remaining `}` at the top level: that is
  // the first error again, not a new one.
  bool is_follow_on(antlr4::Parser* parser) override {
    return parser->getContext() == nullptr || parser->getContext()->getRuleIndex() == ScenarioParser::RuleScenarioFile;
  }

  // Once the sink is full nothing more would be kept, so the parse stops;
  // parse_scenarios() says so.
  Diagnostic& report(std::string code, SourceLocation at, std::string message) override {
    const bool full = sink_.full();
    Diagnostic& d = sink_.error(std::move(code), at, std::move(message));  // counted, and dropped when full
    if (full) throw antlr4::ParseCancellationException("too many errors");
    return d;
  }

 private:
  static parse::GrammarTerms terms() {
    parse::GrammarTerms t;
    t.file = 0;
    t.unexpected_code = "S0100";
    t.missing_code = "S0101";
    t.unterminated_code = "S0102";
    t.unterminated_help = "add the closing `\"` on the same line (write a line break inside a string as `\\n`)";
    t.stop_at_unterminated = true;
    t.quoted_chars = kMaxQuoted;
    t.bad_char = ScenarioParser::BAD_CHAR;
    t.unterminated_string = ScenarioParser::UNTERMINATED_STRING;
    t.ident = ScenarioParser::IDENT;
    t.line_end_token = ScenarioParser::SEMI;
    return t;
  }

  static size_t rule_of(antlr4::Parser* parser) {
    return parser->getContext() == nullptr ? static_cast<size_t>(ScenarioParser::RuleScenarioFile)
                                           : parser->getContext()->getRuleIndex();
  }

  // What an IDENT is called depends on where the parser wanted it.
  static std::string describe_word(antlr4::Parser* parser) {
    switch (rule_of(parser)) {
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

  ScenarioSink& sink_;
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
  if (size_t bad = find_invalid_utf8(source.text); bad != std::string_view::npos) {
    sink.error("S0103", location_of_byte(source.text, bad, 0), "the file is not valid UTF-8");
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
  auto strategy = std::make_shared<ScenarioSyntaxErrors>(sink);
  parser.setErrorHandler(strategy);
  ScenarioParser::ScenarioFileContext* tree = nullptr;
  try {
    tree = parser.scenarioFile();
  } catch (const antlr4::ParseCancellationException&) {
    return false;  // the strategy stopped the parse after reporting why
  }
  if (strategy->errors_seen() > 0 || parser.getNumberOfSyntaxErrors() > 0) {
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
