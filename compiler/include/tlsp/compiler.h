// tlsp/compiler.h — the policy compiler's public interface.
//
// Contract: compile() reads the root policy files and everything they
// include, checks them, and resolves every rule (inheritance, disabled
// entries, defaults) into a TableContent ready for encode_table(). It never
// throws for anything a user can cause: problems in the policy are
// diagnostics (all of them in one run, capped and de-duplicated); an input
// that cannot be read is a diagnostic too and sets `input_error` (the CLI's
// exit code 2). The parser (ANTLR) is an implementation detail: nothing in
// this header or in the AST exposes it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tlsp/decision_table.h"

namespace tlsp {

enum class Severity : uint8_t { error, warning, note };

// A position in a source file: 1-based line and column (column counted in
// characters), and the length of the offending text for the underline.
struct SourceLocation {
  uint32_t file = kBuiltinFile;  // index into CompileResult::sources
  uint32_t line = 0;
  uint32_t column = 0;
  uint32_t length = 0;
  bool valid() const { return file != kBuiltinFile; }
};

struct Diagnostic {
  Severity severity = Severity::error;
  std::string code;     // stable, e.g. "E0201"
  SourceLocation where;
  std::string message;  // lower case, user text quoted in `backticks`
  struct Note {
    SourceLocation where;
    std::string message;
  };
  std::vector<Note> notes;
  std::string help;     // optional advice, printed as a `help:` line
};

// One source file as read: the path shown in diagnostics and its text.
struct LoadedSource {
  std::string display_path;  // as the user would type it from the cwd
  std::string table_path;    // as stored in the table (relative to the first root)
  std::string text;
  std::vector<uint32_t> line_starts;  // byte offset of each line
};

// The stages compile() runs, in order (compiler.cpp): parse (text to AST,
// following includes), lower (each file to IR, its own checks), check (the
// checks across files), resolve (inheritance, to TableContent), write (the
// table's bytes). A dump point stops after its stage and shows the program
// as it is there (`tlsp compile --dump=ast|ir|table`).
enum class DumpPoint : uint8_t { ast, ir, table };

// "ast", "ir" or "table"; nullopt for anything else.
std::optional<DumpPoint> parse_dump_point(std::string_view name);

struct CompileOptions {
  std::vector<std::string> inputs;  // root policy files, in order
  bool werror = false;              // warnings count as errors
  unsigned threads = 0;             // parse workers; 0 = one per core
  size_t max_errors = 100;          // stop reporting after this many errors
  // The text of the root named `-` (standard input, read by the caller):
  // shown as `<stdin>`, its includes resolved relative to the cwd, and held
  // to the same per-file size limit as a file. Without it, `-` is a path.
  std::optional<std::string> stdin_text;
  // Stop after this stage and set CompileResult::dump (when the stages so
  // far had no errors) instead of the table.
  std::optional<DumpPoint> dump;
};

// The largest policy file read (E0306): a caller reading standard input
// for CompileOptions::stdin_text needs read no more than one byte past it.
size_t max_policy_file_bytes();

struct CompileResult {
  std::optional<TableContent> table;  // set when there were no errors
  std::vector<Diagnostic> diagnostics;  // sorted by file order and position
  std::vector<LoadedSource> sources;    // indexed by SourceLocation::file
  size_t error_count = 0;
  size_t warning_count = 0;
  bool input_error = false;  // some input could not be read (exit code 2)
  bool truncated = false;    // max_errors was reached
  std::optional<std::string> dump;  // CompileOptions::dump's text, when asked and error-free
};

CompileResult compile(const CompileOptions& options);

// Renders diagnostics like a compiler: `file:line:col: error: message [code]`,
// the source line, a caret under the offending text, then note:/help: lines.
std::string render_diagnostics(const CompileResult& result);
std::string render_diagnostic(const Diagnostic& d, const std::vector<LoadedSource>& sources);

}  // namespace tlsp
