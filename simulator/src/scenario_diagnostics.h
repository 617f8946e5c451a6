// scenario_diagnostics.h — collecting the diagnostics of one scenario file.
//
// Scenario diagnostics use the policy compiler's Diagnostic type and its
// renderer (tlsp/compiler.h), so both tools print `file:line:col: error:
// message [code]` with the source line and a caret in the same way. Codes
// are S01xx for syntax and S02xx for scenario contents (docs/scenarios.md).
// Header-only: the parse module and the checker both use it, and the parse
// module must not depend on the rest of the simulator library.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "tlsp/compiler.h"
#include "tlsp/diagnostic_text.h"

namespace tlsp::sim {

class ScenarioSink {
 public:
  Diagnostic& error(std::string code, SourceLocation where, std::string message) {
    items_.push_back(Diagnostic{Severity::error, std::move(code), where, std::move(message), {}, {}});
    return items_.back();
  }
  std::vector<Diagnostic>& items() { return items_; }
  size_t count() const { return items_.size(); }

 private:
  std::vector<Diagnostic> items_;
};

// Quotes user text for a message: `text`.
inline std::string ticked(std::string_view s) { return "`" + std::string(s) + "`"; }


// "did you mean `x`?" for the closest candidate within two edits, else "".
inline std::string did_you_mean(std::string_view word, const std::vector<std::string_view>& candidates) {
  std::string_view best;
  size_t best_distance = 3;
  for (std::string_view c : candidates) {
    size_t d = edit_distance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best.empty() ? std::string() : "did you mean " + ticked(best) + "?";
}

}  // namespace tlsp::sim
