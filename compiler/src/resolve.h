// resolve.h — the whole-policy pass: checks that need every file (one
// policy header, one default domain, no domain listed twice), then
// inheritance, disabled entries and defaults resolved into a TableContent
// (SPEC §2), and the warnings that need resolved rules.
#pragma once

#include "diagnostics.h"
#include "load.h"

namespace tlsp {

// Consumes the IR in `policy`. `warn` is false when earlier errors would
// make warnings misleading (a file that did not parse has no domains).
TableContent resolve_policy(LoadedPolicy& policy, DiagnosticSink& sink, bool warn);

}  // namespace tlsp
