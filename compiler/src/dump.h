// dump.h — the program between stages as text, for `tlsp compile --dump`
// (debugging, and golden tests of each stage). The forms are stable: one
// line per node, indented by nesting, positions as LINE:COL, user text
// escaped as diagnostics escape it (tlsp/diagnostic_text.h), nothing that
// depends on threads or addresses.
#pragma once

#include <string>
#include <vector>

#include "ir.h"
#include "load.h"

namespace tlsp {

// After the parse stage: each file's AST, as written (text unchecked).
std::string dump_ast(const ParsedPolicy& parsed);

// After the lower stage: each file's IR (names normalised, selectors
// parsed, settings as values, disabled peers dropped; nothing inherited).
std::string dump_ir(const std::vector<ir::File>& files, const ParsedPolicy& parsed);

// After the write stage: the table's bytes read back and shown as
// `tlsp inspect --json` shows a table file.
std::string dump_table(const std::string& image);

}  // namespace tlsp
