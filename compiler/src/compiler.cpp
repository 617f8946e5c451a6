// compiler.cpp — compile() as the pipeline of stages, and diagnostic
// rendering. compile() lists the stages in order; each is one file:
//   parse    read the roots and their includes, each file's text to its AST,
//            on the worker pool (load.cpp, parse/)
//   lower    each file's AST to its IR, with the checks of one file
//            (lower.cpp), on the worker pool
//   check    the checks across files (check.cpp)
//   resolve  inheritance, disabled entries, defaults: the TableContent
//            (resolve.cpp)
//   write    the table's bytes (encode_table, the runtime's table writer):
//            run here for --dump=table; `tlsp compile` writes the file
// then the diagnostics of every stage are merged, sorted, de-duplicated and
// capped. A dump point (CompileOptions::dump) stops after its stage.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "check.h"
#include "diagnostics.h"
#include "dump.h"
#include "internal_error.h"
#include "load.h"
#include "lower.h"
#include "resolve.h"
#include "source_files.h"
#include "tlsp/compiler.h"

namespace tlsp {
namespace {

void collect(CompileResult& r, std::vector<DiagnosticSink>& sinks, DiagnosticSink& policy_sink,
             const CompileOptions& opts) {
  std::vector<Diagnostic> all;
  for (auto& s : sinks)
    for (auto& d : s.items()) all.push_back(std::move(d));
  for (auto& d : policy_sink.items()) all.push_back(std::move(d));
  // Diagnostics without a file (unreadable inputs) first, then by position.
  std::stable_sort(all.begin(), all.end(), [](const Diagnostic& a, const Diagnostic& b) {
    auto key = [](const Diagnostic& d) {
      return std::tuple(d.where.valid() ? 1 : 0, d.where.file, d.where.line, d.where.column);
    };
    return key(a) < key(b);
  });
  for (auto& d : all) {
    if (opts.werror && d.severity == Severity::warning) {
      d.severity = Severity::error;
      d.message += " (warnings are errors: --werror)";
    }
    if (!r.diagnostics.empty()) {
      const Diagnostic& prev = r.diagnostics.back();
      if (prev.where.file == d.where.file && prev.where.line == d.where.line &&
          prev.where.column == d.where.column && prev.message == d.message)
        continue;
    }
    if (d.severity == Severity::error) {
      if (r.error_count == opts.max_errors) {
        r.truncated = true;
        continue;
      }
      ++r.error_count;
    } else if (d.severity == Severity::warning) {
      ++r.warning_count;
    }
    r.diagnostics.push_back(std::move(d));
  }
}

// The source line, with a caret under `where` (tabs kept so it lines up).
// The line is escaped as tlsp/diagnostic_text.h says, and at most
// kMaxExcerptChars characters of it are shown, starting up to
// kExcerptContext characters before the caret: a 16 MiB line of garbage is
// not echoed whole, once per error.
constexpr uint32_t kMaxExcerptChars = 160;
constexpr uint32_t kExcerptContext = 60;

void render_excerpt(std::string& out, const SourceLocation& where, const std::vector<LoadedSource>& sources) {
  if (!where.valid() || where.file >= sources.size() || where.length == 0) return;
  const LoadedSource& src = sources[where.file];
  if (where.line == 0 || where.line > src.line_starts.size()) return;
  size_t begin = src.line_starts[where.line - 1];
  size_t end = src.text.find('\n', begin);
  if (end == std::string::npos) end = src.text.size();
  std::string_view line(src.text.data() + begin, end - begin);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);

  const uint32_t caret = std::max<uint32_t>(1, where.column);
  const uint32_t first = caret > kExcerptContext ? caret - kExcerptContext : 1;  // first column shown
  const uint32_t last = first + kMaxExcerptChars - 1;
  const uint64_t underline_end = uint64_t{caret} + std::max<uint32_t>(1, where.length);  // one past
  std::string text, marks;
  if (first > 1) {
    text += "...";
    marks += "   ";
  }
  bool caret_placed = false;
  uint32_t col = 1;
  size_t i = 0;
  while (i < line.size() && col <= last) {
    const size_t n = display_unit_length(line, i);
    std::string_view unit = line.substr(i, n);
    // Columns count lead bytes; only a line starting with a stray
    // continuation byte has a unit that takes no column of its own.
    const bool counts = !is_utf8_continuation(line[i]);
    if (col >= first) {
      const size_t width = append_display_unit(text, unit, /*keep_tab=*/true);
      if (!counts || col < caret || col >= underline_end) {
        if (col < caret || !counts) marks.append(width, unit == "\t" ? '\t' : ' ');
      } else {
        marks += caret_placed ? '~' : '^';
        marks.append(width - 1, '~');
        caret_placed = true;
      }
    }
    i += n;
    if (counts) ++col;
  }
  if (i < line.size()) text += "...";
  if (!caret_placed) marks += '^';  // just past the end of the line

  std::string num = std::to_string(where.line);
  std::string gutter(std::max<size_t>(num.size(), 4), ' ');
  out += std::string(gutter.size() - num.size(), ' ') + num + " | " + text + "\n";
  out += gutter + " | " + marks + "\n";
}

std::string location_prefix(const SourceLocation& where, const std::vector<LoadedSource>& sources) {
  if (!where.valid() || where.file >= sources.size()) return "tlsp: ";
  return display_text(sources[where.file].display_path, std::string::npos) + ":" + std::to_string(where.line) + ":" +
         std::to_string(where.column) + ": ";
}

}  // namespace

size_t max_policy_file_bytes() {
  return kMaxPolicyFileBytes;
}

std::optional<DumpPoint> parse_dump_point(std::string_view name) {
  if (name == "ast") return DumpPoint::ast;
  if (name == "ir") return DumpPoint::ir;
  if (name == "table") return DumpPoint::table;
  return std::nullopt;
}

namespace {

// TLSP_TIMINGS=1: how long each stage took, on stderr.
class StageTimer {
 public:
  void lap(const char* stage) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    std::fprintf(stderr, "tlsp: timing: %s %.0f ms\n", stage,
                 std::chrono::duration<double, std::milli>(now - last_).count());
    last_ = now;
  }

 private:
  bool enabled_ = std::getenv("TLSP_TIMINGS") != nullptr;
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

bool any_errors(const std::vector<DiagnosticSink>& sinks) {
  return std::any_of(sinks.begin(), sinks.end(), [](const DiagnosticSink& s) { return s.has_errors(); });
}

// The result of the stages run so far: their diagnostics and sources, and
// the dump of the last one when it is asked for and nothing failed.
CompileResult finish(const CompileOptions& opts, ParsedPolicy& parsed, DiagnosticSink& policy_sink,
                     std::optional<std::string> dump = std::nullopt,
                     std::optional<TableContent> table = std::nullopt) {
  CompileResult result;
  result.input_error = parsed.input_error || opts.inputs.empty();
  const bool failed = any_errors(parsed.sinks) || policy_sink.has_errors();
  collect(result, parsed.sinks, policy_sink, opts);
  for (auto& source : parsed.sources) result.sources.push_back(std::move(*source));
  if (result.error_count == 0 && !result.input_error && !failed) {
    result.dump = std::move(dump);
    result.table = std::move(table);
  }
  return result;
}

}  // namespace

CompileResult compile(const CompileOptions& opts) {
  const unsigned threads = opts.threads != 0 ? opts.threads : std::max(1u, std::thread::hardware_concurrency());
  const auto dump_after = [&](DumpPoint p) { return opts.dump == p; };
  StageTimer timer;
  DiagnosticSink policy_sink;  // the check and resolve stages' diagnostics

  // parse: the roots and every file they include, each to its AST.
  ParsedPolicy parsed = load_policy(opts.inputs, threads, opts.stdin_text ? &*opts.stdin_text : nullptr);
  timer.lap("parse");
  if (dump_after(DumpPoint::ast)) return finish(opts, parsed, policy_sink, dump_ast(parsed));

  // lower: each file that parsed to its IR, with the checks of one file
  // (also when another file could not be read: its problems are reported).
  std::vector<ir::File> files = lower_files(parsed.files, parsed.parsed, parsed.sinks, threads);
  timer.lap("lower");
  if (dump_after(DumpPoint::ir)) return finish(opts, parsed, policy_sink, dump_ir(files, parsed));
  // The stages across files need them all.
  if (parsed.input_error || parsed.sources.empty()) return finish(opts, parsed, policy_sink);

  // check: what needs every file (one header, one default domain, each
  // domain once).
  const CheckedPolicy checked = check_policy(files, policy_sink);
  timer.lap("check");

  // resolve: inheritance and defaults, to the table's content. Warnings
  // would mislead after a syntax error (that file has no domains).
  TableContent table = resolve_policy(files, checked, parsed, policy_sink, /*warn=*/!parsed.syntax_error);
  timer.lap("resolve");
  TLSP_ASSERT(table.sources.size() == parsed.sources.size(), "the table must name every source file read");

  // write: the table's bytes. `tlsp compile` writes them to the file; here
  // only for the dump, which shows them read back as `tlsp inspect` does.
  if (dump_after(DumpPoint::table)) {
    const bool failed = any_errors(parsed.sinks) || policy_sink.has_errors();
    std::string dump = failed ? std::string() : dump_table(encode_table(table));
    timer.lap("write");
    return finish(opts, parsed, policy_sink, std::move(dump));
  }
  return finish(opts, parsed, policy_sink, std::nullopt, std::move(table));
}

std::string render_diagnostic(const Diagnostic& d, const std::vector<LoadedSource>& sources) {
  static constexpr const char* kSeverity[] = {"error", "warning", "note"};
  TLSP_ASSERT(static_cast<size_t>(d.severity) < std::size(kSeverity), "a diagnostic has an unknown severity");
  std::string out = location_prefix(d.where, sources);
  out += kSeverity[static_cast<int>(d.severity)];
  out += ": " + d.message;
  if (!d.code.empty()) out += " [" + d.code + "]";
  out += '\n';
  render_excerpt(out, d.where, sources);
  for (const auto& n : d.notes) {
    out += location_prefix(n.where, sources) + "note: " + n.message + "\n";
    render_excerpt(out, n.where, sources);
  }
  if (!d.help.empty()) out += "help: " + d.help + "\n";
  return out;
}

std::string render_diagnostics(const CompileResult& r) {
  std::string out;
  for (const auto& d : r.diagnostics) out += render_diagnostic(d, r.sources);
  if (r.truncated) out += "tlsp: error: too many errors; stopped after " + std::to_string(r.error_count) + "\n";
  if (r.error_count > 0 || r.warning_count > 0) {
    out += std::to_string(r.error_count) + " error" + (r.error_count == 1 ? "" : "s") + ", " +
           std::to_string(r.warning_count) + " warning" + (r.warning_count == 1 ? "" : "s") + "\n";
  }
  return out;
}

}  // namespace tlsp
