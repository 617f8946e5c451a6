// resolve.h — the resolve stage: inheritance, disabled entries and
// defaults resolved into a TableContent (SPEC §2), with the table's name and
// sources, and the warnings that need resolved rules.
#pragma once

#include "check.h"
#include "diagnostics.h"
#include "load.h"

namespace tlsp {

// Consumes the IR in `files` (checked by check_policy()). `warn` is false
// when earlier errors would make warnings misleading (a file that did not
// parse has no domains).
TableContent resolve_policy(std::vector<ir::File>& files, const CheckedPolicy& checked, const ParsedPolicy& parsed,
                            DiagnosticSink& sink, bool warn);

}  // namespace tlsp
