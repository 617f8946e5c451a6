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
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tlsp/compiler.h"
#include "tlsp/diagnostic_text.h"
#include "tlsp/simulator.h"

namespace tlsp::sim {

// Keeps the first `limit` errors (kMaxScenarioDiagnostics): a hostile file
// can have an error per word, and each rendered error repeats its source
// line. count() still counts every error, so the parser and the checker can
// tell whether a step added any; full() says the parse may as well stop.
class ScenarioSink {
 public:
  explicit ScenarioSink(size_t limit = kMaxScenarioDiagnostics) : limit_(limit) {}
  Diagnostic& error(std::string code, SourceLocation where, std::string message) {
    ++count_;
    if (items_.size() >= limit_) {
      if (!first_dropped_) first_dropped_ = where;
      dropped_ = Diagnostic{};  // a scratch target for the caller's notes and help
      return dropped_;
    }
    items_.push_back(Diagnostic{Severity::error, std::move(code), where, std::move(message), {}, {}});
    return items_.back();
  }
  std::vector<Diagnostic>& items() { return items_; }
  size_t count() const { return count_; }
  bool full() const { return items_.size() >= limit_; }
  // Where the first error that was not kept is, if one was not.
  std::optional<SourceLocation> first_dropped() const { return first_dropped_; }

 private:
  size_t limit_;
  size_t count_ = 0;
  std::vector<Diagnostic> items_;
  Diagnostic dropped_;
  std::optional<SourceLocation> first_dropped_;
};

// Quotes user text for a message: `text`, escaped and capped as the
// compiler's messages are (tlsp/diagnostic_text.h: control bytes, invalid
// UTF-8 and invisible characters as escapes). Text longer than kMaxQuoted
// characters is cut and marked with `...`: a message names the offending
// word, and a megabyte-long word would only bury it.
inline constexpr size_t kMaxQuoted = 80;
inline std::string ticked(std::string_view s) { return base::ticked(s, kMaxQuoted); }

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
