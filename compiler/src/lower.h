// lower.h — AST of one file to its IR, with the file-local checks
// (lower.cpp has the list).
#pragma once

#include "ast.h"
#include "diagnostics.h"
#include "ir.h"

namespace tlsp {

ir::File lower_file(const ast::File& file, DiagnosticSink& sink);

// The lower stage: every file that parsed, on `threads` workers, each
// reporting to its own sink (sinks[i] for files[i]); a file that did not
// parse gets an empty IR. Each AST is released as soon as it is lowered
// (nothing after this stage reads them): at a million entries the ASTs of
// every file alive beside their IR cost 220 MiB of peak memory.
std::vector<ir::File> lower_files(std::vector<ast::File>& files, const std::vector<bool>& parsed,
                                  std::vector<DiagnosticSink>& sinks, unsigned threads);

}  // namespace tlsp
