// lower.h — AST of one file to its IR, with the file-local checks
// (lower.cpp has the list).
#pragma once

#include "ast.h"
#include "diagnostics.h"
#include "ir.h"

namespace tlsp {

ir::File lower_file(const ast::File& file, DiagnosticSink& sink);

}  // namespace tlsp
