// parse.cpp — runs the ANTLR-generated parser over one policy file and
// turns its parse tree into the project's AST (ast.h).
//
// Speed: the grammar is LL(1), so the fast SLL prediction mode with a
// bail-out error strategy parses every correct file; only a file with a
// syntax error is parsed a second time, in full LL mode with the reporting
// error strategy, to produce good messages. The parse tree and the tokens
// are freed when this function returns, file by file.
//
// Messages: ANTLR's own ("mismatched input 'x' expecting STRING") name
// grammar tokens; FriendlyErrorStrategy says the same in words.
#include "parse.h"

#include <antlr4-runtime.h>

#include "TlsPolicyParser.h"
#include "policy_lexer_source.h"

namespace tlsp {
namespace {

using gen::TlsPolicyParser;

// Maps ANTLR tokens (whose indexes count code points) back to byte offsets
// in the source text, so AST text can be a view into the source.
class SourceIndex {
 public:
  SourceIndex(const LoadedSource& src, uint32_t file) : src_(src), file_(file) {
    ascii_ = true;
    for (unsigned char c : src.text)
      if (c >= 0x80) {
        ascii_ = false;
        break;
      }
  }

  SourceLocation where(const antlr4::Token* t) const {
    SourceLocation loc;
    loc.file = file_;
    loc.line = static_cast<uint32_t>(t->getLine());
    loc.column = static_cast<uint32_t>(t->getCharPositionInLine()) + 1;
    if (t->getType() == antlr4::Token::EOF) {
      loc.length = 1;
    } else if (t->getStartIndex() != INVALID_INDEX && t->getStopIndex() != INVALID_INDEX) {
      loc.length = static_cast<uint32_t>(t->getStopIndex() - t->getStartIndex() + 1);
    } else {
      loc.length = 1;
    }
    return loc;
  }

  // The token's text as a view into the source (stripping `strip` characters
  // from each end, for the quotes of a string).
  std::string_view text(const antlr4::Token* t, size_t strip = 0) const {
    size_t begin = byte_offset(t);
    size_t cps = t->getStopIndex() - t->getStartIndex() + 1;
    size_t end = begin;
    if (ascii_) {
      end = begin + cps;
    } else {
      for (size_t n = 0; n < cps && end < src_.text.size(); ++n) {
        ++end;
        while (end < src_.text.size() && (static_cast<unsigned char>(src_.text[end]) & 0xC0) == 0x80)
          ++end;
      }
    }
    std::string_view all(src_.text);
    all = all.substr(begin, end - begin);
    if (all.size() >= 2 * strip) all = all.substr(strip, all.size() - 2 * strip);
    return all;
  }

 private:
  size_t byte_offset(const antlr4::Token* t) const {
    if (ascii_) return t->getStartIndex();
    size_t line = t->getLine();
    size_t pos = line >= 1 && line <= src_.line_starts.size() ? src_.line_starts[line - 1] : 0;
    for (size_t col = t->getCharPositionInLine(); col > 0 && pos < src_.text.size(); --col) {
      ++pos;
      while (pos < src_.text.size() && (static_cast<unsigned char>(src_.text[pos]) & 0xC0) == 0x80)
        ++pos;
    }
    return pos;
  }

  const LoadedSource& src_;
  uint32_t file_;
  bool ascii_;
};

bool is_real(const antlr4::Token* t) {
  return t != nullptr && t->getStartIndex() != INVALID_INDEX;
}

// ------------------------------------------------------------ messages

std::string describe_token_type(size_t type, antlr4::Parser* parser) {
  switch (type) {
    case antlr4::Token::EOF: return "end of file";
    case TlsPolicyParser::STRING: return "a quoted string";
    case TlsPolicyParser::IDENT: {
      auto* setting = dynamic_cast<TlsPolicyParser::SettingContext*>(parser->getContext());
      if (setting != nullptr && setting->key != nullptr) return "a value";
      return "a setting such as `level` or `min_tls`";
    }
    default: break;
  }
  std::string literal = parser->getVocabulary().getLiteralName(type);
  if (literal.size() >= 2 && literal.front() == '\'') literal = literal.substr(1, literal.size() - 2);
  if (literal.empty()) literal = parser->getVocabulary().getDisplayName(type);
  return ticked(literal);
}

std::string describe_expected(const antlr4::misc::IntervalSet& set, antlr4::Parser* parser) {
  std::vector<std::string> words;
  for (size_t type : set.toList()) {
    if (type == antlr4::Token::EPSILON) continue;
    std::string w = describe_token_type(type, parser);
    if (std::find(words.begin(), words.end(), w) == words.end()) words.push_back(w);
  }
  // Quoted strings and settings read better last: "`disabled`, `{` or a quoted string".
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
    case TlsPolicyParser::BAD_CHAR: return "character " + ticked(t->getText());
    default: return ticked(t->getText());
  }
}

class FriendlyErrorStrategy : public antlr4::DefaultErrorStrategy {
 public:
  FriendlyErrorStrategy(const SourceIndex& index, DiagnosticSink& sink, uint32_t file)
      : index_(index), sink_(sink), file_(file) {}

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
  // Watches for a statement that parses without a syntax error, which is
  // what makes a file look like a policy: its first token and its last
  // (`;` or the block's `}`) matched with no error event in between.
  void reportMatch(antlr4::Parser* p) override {
    DefaultErrorStrategy::reportMatch(p);
    antlr4::ParserRuleContext* ctx = p->getContext();
    const size_t rule = ctx->getRuleIndex();
    if (rule != TlsPolicyParser::RulePolicyHeader && rule != TlsPolicyParser::RuleIncludeDirective &&
        rule != TlsPolicyParser::RuleDefaultDomainBlock && rule != TlsPolicyParser::RuleDomainBlock)
      return;
    antlr4::Token* t = p->getCurrentToken();
    if (t == ctx->getStart()) {
      events_at_statement_ = events_;
    } else if ((t->getType() == TlsPolicyParser::SEMI || t->getType() == TlsPolicyParser::RBRACE) &&
               events_ == events_at_statement_) {
      ++clean_statements_;
    }
  }
  void reportMissingToken(antlr4::Parser* p) override {
    if (inErrorRecoveryMode(p)) return;
    beginErrorCondition(p);
    ++events_;
    antlr4::Token* current = p->getCurrentToken();
    if (cascade(current) || special(current)) return;
    antlr4::Token* previous = p->getTokenStream()->LT(-1);
    std::string expected = describe_expected(getExpectedTokens(p), p);
    if (previous != nullptr && is_real(previous)) {
      // Point just past the previous token: that is where the `;` belongs,
      // not at the next line's first word.
      SourceLocation at = index_.where(previous);
      at.column += at.length;
      at.length = 1;
      report("E0101", at, "expected " + expected + " after " + ticked(previous->getText()));
    } else {
      report("E0101", index_.where(current), "expected " + expected + " before " + describe_found(current));
    }
  }

 private:
  // Unterminated strings and stray characters are named as such, whatever
  // the parser expected there.
  bool special(antlr4::Token* t) {
    if (t->getType() == TlsPolicyParser::UNTERMINATED_STRING) {
      // The string swallowed the rest of its line, braces included, so
      // whatever the parser says next is noise.
      silenced_ = true;
      Diagnostic& d = report("E0102", index_.where(t), "unterminated string");
      d.help = "add the closing `\"` on the same line";
      return true;
    }
    return false;
  }

  void report_unexpected(antlr4::Parser* p, antlr4::Token* t, const antlr4::misc::IntervalSet& expected) {
    ++events_;
    if (cascade(t) || special(t)) return;
    std::string what = describe_expected(expected, p);
    SourceLocation at = index_.where(t);
    if (t->getType() == antlr4::Token::EOF) {
      // "found end of file" reads best just after the last thing written.
      antlr4::Token* previous = p->getTokenStream()->LT(-1);
      if (previous != nullptr && is_real(previous)) {
        at = index_.where(previous);
        at.column += at.length;
        at.length = 1;
      }
    }
    Diagnostic& d = report("E0100", at, "expected " + what + ", found " + describe_found(t));
    // A misspelt keyword: `outbond` for `outbound`.
    if (t->getType() == TlsPolicyParser::IDENT) {
      for (size_t type : expected.toList()) {
        std::string literal = p->getVocabulary().getLiteralName(type);
        if (literal.size() < 3 || literal.front() != '\'') continue;
        literal = literal.substr(1, literal.size() - 2);
        if (edit_distance(t->getText(), literal) <= 2) {
          d.help = "did you mean `" + literal + "`?";
          break;
        }
      }
    }
  }

  // After an error, the parser's recovery often trips again on the same
  // line; those follow-on errors only repeat the first one.
  bool cascade(antlr4::Token* t) {
    if (silenced_) return true;
    const size_t line = t->getLine();
    const bool same = line == last_error_line_;
    last_error_line_ = line;
    return same;
  }

  // Every syntax error goes through here. A file whose first errors come
  // before any statement parses cleanly is most likely not a policy at all
  // (`include "/etc/*"`): after kNotAPolicyErrors its errors stop; any
  // file's stop after kMaxSyntaxErrorsPerFile, so memory stays bounded
  // however many lines a file of garbage has.
  Diagnostic& report(std::string code, SourceLocation at, std::string message) {
    Diagnostic& d = sink_.error(std::move(code), at, std::move(message));
    ++reported_;
    const SourceLocation file_start{file_, 1, 1, 0};  // no excerpt for a note about the file
    if (reported_ == kNotAPolicyErrors && clean_statements_ == 0) {
      d.notes.push_back(
          {file_start, "this does not look like a tlsp policy file; further errors in it are not reported"});
      silenced_ = true;
    } else if (reported_ == kMaxSyntaxErrorsPerFile) {
      d.notes.push_back({file_start, "further syntax errors in this file are not reported (at most " +
                                         std::to_string(kMaxSyntaxErrorsPerFile) + " are)"});
      silenced_ = true;
    }
    return d;
  }

  const SourceIndex& index_;
  DiagnosticSink& sink_;
  uint32_t file_;
  size_t last_error_line_ = 0;
  bool silenced_ = false;
  size_t events_ = 0;  // syntax errors met, reported or not
  size_t events_at_statement_ = 0;
  size_t reported_ = 0;
  size_t clean_statements_ = 0;
};

// ----------------------------------------------------------- transform

class AstBuilder {
 public:
  AstBuilder(const SourceIndex& index, ast::File& out) : ix_(index), out_(out) {}

  // After a syntax error the tree has holes; only includes are taken, and
  // only those whose pattern token is real.
  void includes_only(TlsPolicyParser::PolicyFileContext* file) {
    for (auto* st : file->stmts)
      if (st != nullptr && st->include != nullptr) include(st->include);
  }

  void file(TlsPolicyParser::PolicyFileContext* file) {
    for (auto* st : file->stmts) {
      if (auto* h = st->header) {
        out_.headers.push_back({text(h->name, 1), text(h->label, 1), ix_.where(h->getStart())});
      } else if (auto* inc = st->include) {
        include(inc);
      } else if (auto* d = st->defaultDomain) {
        ast::Domain dom;
        dom.where = ix_.where(d->getStart());
        dom.is_default = true;
        dom.directions = directions(d->dirs);
        out_.domains.push_back(dom);
      } else if (auto* d = st->domain) {
        ast::Domain dom;
        dom.where = ix_.where(d->getStart());
        dom.names = strings(d->names);
        dom.disabled = d->st != nullptr && d->st->disabled != nullptr;
        dom.directions = directions(d->dirs);
        out_.domains.push_back(dom);
      }
    }
  }

 private:
  void include(TlsPolicyParser::IncludeDirectiveContext* inc) {
    if (!is_real(inc->pattern)) return;
    out_.includes.push_back({text(inc->pattern, 1), ix_.where(inc->getStart())});
  }

  ast::Text text(antlr4::Token* t, size_t strip = 0) { return {ix_.text(t, strip), ix_.where(t)}; }

  ast::Range strings(TlsPolicyParser::StringListContext* list) {
    ast::Range r{static_cast<uint32_t>(out_.strings.size()), static_cast<uint32_t>(list->items.size())};
    for (auto* s : list->items) out_.strings.push_back(text(s, 1));
    return r;
  }

  // Children are built before the parent's range is taken, so each kind of
  // node stays contiguous per parent.
  ast::Range directions(const std::vector<TlsPolicyParser::DirectionBlockContext*>& blocks) {
    std::vector<ast::DirectionBlock> local;
    local.reserve(blocks.size());
    for (auto* b : blocks) {
      ast::DirectionBlock db;
      db.direction = b->dir->getType() == TlsPolicyParser::INBOUND ? Direction::inbound : Direction::outbound;
      db.where = ix_.where(b->dir);
      db.peers = peers(b->peers);
      local.push_back(db);
    }
    ast::Range r{static_cast<uint32_t>(out_.directions.size()), static_cast<uint32_t>(local.size())};
    out_.directions.insert(out_.directions.end(), local.begin(), local.end());
    return r;
  }

  ast::Range peers(const std::vector<TlsPolicyParser::PeerBlockContext*>& blocks) {
    const size_t first = out_.peers.size();
    out_.peers.resize(first + blocks.size());
    for (size_t i = 0; i < blocks.size(); ++i) {
      auto* b = blocks[i];
      ast::Peer p;
      p.where = ix_.where(b->getStart());
      p.is_default = b->isDefault != nullptr;
      if (!p.is_default) {
        p.selectors = strings(b->names);
        p.disabled = b->st != nullptr && b->st->disabled != nullptr;
      }
      p.settings = settings(b->settings);
      out_.peers[first + i] = p;
    }
    return {static_cast<uint32_t>(first), static_cast<uint32_t>(blocks.size())};
  }

  ast::Range settings(const std::vector<TlsPolicyParser::SettingContext*>& list) {
    ast::Range r{static_cast<uint32_t>(out_.settings.size()), static_cast<uint32_t>(list.size())};
    for (auto* s : list) out_.settings.push_back({text(s->key), text(s->value)});
    return r;
  }

  const SourceIndex& ix_;
  ast::File& out_;
};

}  // namespace

size_t find_invalid_utf8(std::string_view s) {
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

bool parse_policy(const LoadedSource& source, uint32_t file_index, ast::File& out, DiagnosticSink& sink) {
  out.file = file_index;
  if (size_t bad = find_invalid_utf8(source.text); bad != std::string_view::npos) {
    SourceLocation at{file_index, 1, 1, 1};
    for (size_t i = 0; i < bad; ++i) {
      if (source.text[i] == '\n') {
        ++at.line;
        at.column = 1;
      } else if ((static_cast<unsigned char>(source.text[i]) & 0xC0) != 0x80) {
        ++at.column;
      }
    }
    sink.error("E0103", at, "the file is not valid UTF-8");
    return false;
  }

  SourceIndex index(source, file_index);
  AstBuilder builder(index, out);
  {
    // Fast path: the hand-written lexer and a parser that gives up at the
    // first error. Every correct file takes only this path.
    PolicyTokenSource lexer(source.text);
    antlr4::CommonTokenStream tokens(&lexer);
    TlsPolicyParser parser(&tokens);
    parser.removeErrorListeners();
    parser.getInterpreter<antlr4::atn::ParserATNSimulator>()->setPredictionMode(
        antlr4::atn::PredictionMode::SLL);
    parser.setErrorHandler(std::make_shared<antlr4::BailErrorStrategy>());
    TlsPolicyParser::PolicyFileContext* tree = nullptr;
    try {
      tree = parser.policyFile();
    } catch (const antlr4::ParseCancellationException&) {
      tree = nullptr;
    }
    if (tree != nullptr) {
      builder.file(tree);
      return true;
    }
  }

  // A syntax error: parse again in full LL mode, recovering and reporting
  // every error in words. The same hand-written lexer, now keeping each
  // token's text for the messages: the generated one is quadratic on
  // unclosed `/*` (each scans to the end of the file, then backs off).
  PolicyTokenSource lexer(source.text, /*keep_text=*/true);
  antlr4::CommonTokenStream tokens(&lexer);
  TlsPolicyParser parser(&tokens);
  parser.removeErrorListeners();
  parser.getInterpreter<antlr4::atn::ParserATNSimulator>()->setPredictionMode(antlr4::atn::PredictionMode::LL);
  const size_t before = sink.items().size();
  auto strategy = std::make_shared<FriendlyErrorStrategy>(index, sink, file_index);
  parser.setErrorHandler(strategy);
  // No parse tree: includes_only() reads the rule contexts' labels, which
  // are set without it, and the tree's node per token (an error node for
  // each token skipped in recovery) was 40% of this path's memory.
  parser.setBuildParseTree(false);
  TlsPolicyParser::PolicyFileContext* tree = parser.policyFile();
  if (sink.items().size() == before)  // cannot happen, but never report success silently
    sink.error("E0100", SourceLocation{file_index, 1, 1, 1}, "syntax error");
  builder.includes_only(tree);
  return false;
}

}  // namespace tlsp
