// load.h — reading the root policy files and everything they include,
// parsing and lowering each file on a pool of worker threads.
//
// Contract: every file is read, parsed and lowered exactly once (files are
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

#include <string>
#include <vector>

#include "diagnostics.h"
#include "ir.h"

namespace tlsp {

struct LoadedPolicy {
  // All three indexed by the file's final index (SourceLocation::file).
  std::vector<LoadedSource> sources;
  std::vector<ir::File> files;
  std::vector<std::array<uint8_t, 32>> sha256;
  std::vector<DiagnosticSink> sinks;  // one per file, plus the last for no file
  bool input_error = false;
  bool syntax_error = false;
};

// `stdin_text`, when given, is the text of a root named `-` (see
// CompileOptions::stdin_text); it is never read from a file.
LoadedPolicy load_policy(const std::vector<std::string>& roots, unsigned threads,
                         const std::string* stdin_text = nullptr);

}  // namespace tlsp
