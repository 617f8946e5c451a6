// compiler.cpp — compile() as a pipeline, and diagnostic rendering.
//
//   load     read the roots and their includes; parse and lower each file
//            on the worker pool (load.cpp, parse.cpp, lower.cpp)
//   resolve  whole-policy checks and inheritance (resolve.cpp)
//   report   merge, sort, de-duplicate and cap the diagnostics
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "diagnostics.h"
#include "load.h"
#include "resolve.h"
#include "source_files.h"
#include "tlsp/compiler.h"

namespace tlsp {
namespace {

void collect(CompileResult& r, std::vector<DiagnosticSink>& sinks, DiagnosticSink& resolve_sink,
             const CompileOptions& opts) {
  std::vector<Diagnostic> all;
  for (auto& s : sinks)
    for (auto& d : s.items()) all.push_back(std::move(d));
  for (auto& d : resolve_sink.items()) all.push_back(std::move(d));
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

CompileResult compile(const CompileOptions& opts) {
  unsigned threads = opts.threads != 0 ? opts.threads : std::max(1u, std::thread::hardware_concurrency());

  using Clock = std::chrono::steady_clock;
  const bool timings = std::getenv("TLSP_TIMINGS") != nullptr;
  auto t0 = Clock::now();
  LoadedPolicy policy = load_policy(opts.inputs, threads, opts.stdin_text ? &*opts.stdin_text : nullptr);
  auto t1 = Clock::now();

  bool earlier_errors = false;
  for (auto& s : policy.sinks) earlier_errors = earlier_errors || s.has_errors();
  DiagnosticSink resolve_sink;
  std::optional<TableContent> table;
  if (!policy.input_error && !policy.sources.empty())
    table = resolve_policy(policy, resolve_sink, /*warn=*/!policy.syntax_error);

  auto t2 = Clock::now();
  if (timings) {
    auto ms = [](auto d) { return std::chrono::duration<double, std::milli>(d).count(); };
    std::fprintf(stderr, "tlsp: timing: load+parse+lower %.0f ms, resolve %.0f ms\n", ms(t1 - t0), ms(t2 - t1));
  }
  CompileResult result;
  result.input_error = policy.input_error || opts.inputs.empty();
  collect(result, policy.sinks, resolve_sink, opts);
  result.sources = std::move(policy.sources);
  if (result.error_count == 0 && !result.input_error && !earlier_errors) result.table = std::move(table);
  return result;
}

std::string render_diagnostic(const Diagnostic& d, const std::vector<LoadedSource>& sources) {
  static constexpr const char* kSeverity[] = {"error", "warning", "note"};
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
