// load.h — the parse stage: reading the root policy files and everything
// they include, parsing each file to its AST on a pool of worker threads
// (an include is found by parsing the file that has it).
//
// Contract: every file is read and parsed exactly once (files are
// identified by their canonical path); include patterns are resolved
// relative to the including file and may be globs (`*`, `?`, `[...]`), whose
// matches are taken in byte order; a glob never matches the file that
// contains it. Files get their final order (the table's source order and
// the diagnostics' order) only after all are loaded: roots in command-line
// order, each followed depth-first by its includes in directive order. So
// the result never depends on which worker finished first. Only regular
// files are read, within the limits of source_files.h; a leading UTF-8 byte
// order mark is dropped from a file's text (not from its digest).
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "ast.h"
#include "diagnostics.h"

namespace tlsp {

struct ParsedPolicy {
  // All indexed by the file's final index (SourceLocation::file). Each
  // source is held by pointer: the ASTs' text views point into it, so it
  // must not move while they live.
  std::vector<std::unique_ptr<LoadedSource>> sources;
  std::vector<ast::File> files;  // a file with a syntax error: its includes only
  std::vector<bool> parsed;      // the file parsed without a syntax error
  std::vector<std::array<uint8_t, 32>> sha256;
  std::vector<DiagnosticSink> sinks;  // one per file, plus the last for no file
  bool input_error = false;
  bool syntax_error = false;
};

// `stdin_text`, when given, is the text of a root named `-` (see
// CompileOptions::stdin_text); it is never read from a file.
ParsedPolicy load_policy(const std::vector<std::string>& roots, unsigned threads,
                         const std::string* stdin_text = nullptr);

}  // namespace tlsp
