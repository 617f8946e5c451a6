// parse.cpp — runs the ANTLR-generated parser over one policy file and
// turns its parse tree into the project's AST (ast.h).
//
// Speed: the grammar is LL(1), so the fast SLL prediction mode with a
// bail-out error strategy parses every correct file; only a file with a
// syntax error is parsed a second time, in full LL mode with the reporting
// error strategy, to produce good messages. The parse tree and the tokens
// are freed when this function returns, file by file.
//
// Messages: the shared syntax-error strategy (syntax_errors.h) in this
// grammar's words, with this language's caps on errors per file.
#include "parse.h"

#include <antlr4-runtime.h>

#include "TlsPolicyParser.h"
#include "policy_lexer_source.h"
#include "syntax_errors.h"

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

  SourceLocation where(const antlr4::Token* t) const { return parse::token_location(t, file_); }

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

using parse::is_real;

// ------------------------------------------------------------ messages

// The policy grammar's words for the shared strategy, and its caps: a file
// that looks like no policy stops after kNotAPolicyErrors errors, any file
// after kMaxSyntaxErrorsPerFile.
class PolicySyntaxErrors : public parse::SyntaxErrorStrategy {
 public:
  PolicySyntaxErrors(DiagnosticSink& sink, uint32_t file)
      : SyntaxErrorStrategy(terms(file)), sink_(sink), file_(file) {}

 protected:
  std::optional<std::string> describe_class(size_t type, antlr4::Parser* parser) override {
    switch (type) {
      case TlsPolicyParser::STRING: return "a quoted string";
      case TlsPolicyParser::IDENT: {
        auto* setting = dynamic_cast<TlsPolicyParser::SettingContext*>(parser->getContext());
        if (setting != nullptr && setting->key != nullptr) return "a value";
        return "a setting such as `level` or `min_tls`";
      }
      default: return std::nullopt;
    }
  }

  // Watches for a statement that parses without a syntax error, which is
  // what makes a file look like a policy: its first token and its last
  // (`;` or the block's `}`) matched with no error event in between.
  void reportMatch(antlr4::Parser* p) override {
    SyntaxErrorStrategy::reportMatch(p);
    antlr4::ParserRuleContext* ctx = p->getContext();
    const size_t rule = ctx->getRuleIndex();
    if (rule != TlsPolicyParser::RulePolicyHeader && rule != TlsPolicyParser::RuleIncludeDirective &&
        rule != TlsPolicyParser::RuleDefaultDomainBlock && rule != TlsPolicyParser::RuleDomainBlock)
      return;
    antlr4::Token* t = p->getCurrentToken();
    if (t == ctx->getStart()) {
      errors_at_statement_ = errors_seen();
    } else if ((t->getType() == TlsPolicyParser::SEMI || t->getType() == TlsPolicyParser::RBRACE) &&
               errors_seen() == errors_at_statement_) {
      ++clean_statements_;
    }
  }

  // Every syntax error goes through here. A file whose first errors come
  // before any statement parses cleanly is most likely not a policy at all
  // (`include "/etc/*"`): after kNotAPolicyErrors its errors stop; any
  // file's stop after kMaxSyntaxErrorsPerFile, so memory stays bounded
  // however many lines a file of garbage has.
  Diagnostic& report(std::string code, SourceLocation at, std::string message) override {
    Diagnostic& d = sink_.error(std::move(code), at, std::move(message));
    ++reported_;
    const SourceLocation file_start{file_, 1, 1, 0};  // no excerpt for a note about the file
    if (reported_ == kNotAPolicyErrors && clean_statements_ == 0) {
      d.notes.push_back(
          {file_start, "this does not look like a tlsp policy file; further errors in it are not reported"});
      silence();
    } else if (reported_ == kMaxSyntaxErrorsPerFile) {
      d.notes.push_back({file_start, "further syntax errors in this file are not reported (at most " +
                                         std::to_string(kMaxSyntaxErrorsPerFile) + " are)"});
      silence();
    }
    return d;
  }

 private:
  static parse::GrammarTerms terms(uint32_t file) {
    parse::GrammarTerms t;
    t.file = file;
    t.unexpected_code = "E0100";
    t.missing_code = "E0101";
    t.unterminated_code = "E0102";
    t.unterminated_help = "add the closing `\"` on the same line";
    t.quoted_chars = kMaxQuotedChars;
    t.bad_char = TlsPolicyParser::BAD_CHAR;
    t.unterminated_string = TlsPolicyParser::UNTERMINATED_STRING;
    t.ident = TlsPolicyParser::IDENT;
    return t;
  }

  DiagnosticSink& sink_;
  uint32_t file_;
  size_t errors_at_statement_ = 0;
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

bool parse_policy(const LoadedSource& source, uint32_t file_index, ast::File& out, DiagnosticSink& sink) {
  out.file = file_index;
  if (size_t bad = find_invalid_utf8(source.text); bad != std::string_view::npos) {
    sink.error("E0103", location_of_byte(source.text, bad, file_index), "the file is not valid UTF-8");
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
  auto strategy = std::make_shared<PolicySyntaxErrors>(sink, file_index);
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
