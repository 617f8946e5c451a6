// check.h — the check stage: the checks that need every file at once (one
// policy header, one default domain, no domain listed twice), after each
// file's own checks in the lower stage.
#pragma once

#include <vector>

#include "diagnostics.h"
#include "ir.h"

namespace tlsp {

// What the later stages take from the whole policy: the first of each
// (later ones are errors). Pointers into the files given to check_policy().
struct CheckedPolicy {
  const ir::Header* header = nullptr;
  const ir::Domain* default_domain = nullptr;
};

CheckedPolicy check_policy(const std::vector<ir::File>& files, DiagnosticSink& sink);

}  // namespace tlsp
