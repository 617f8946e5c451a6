// diagnostics.h — collecting diagnostics inside the compiler.
//
// Each pass reports through a DiagnosticSink; a parse worker owns its own
// sink, so no locking is needed, and the compiler merges the sinks in file
// order at the end (sorted, de-duplicated, capped).
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "tlsp/compiler.h"

namespace tlsp {

class DiagnosticSink {
 public:
  Diagnostic& error(std::string code, SourceLocation where, std::string message) {
    return add(Severity::error, std::move(code), where, std::move(message));
  }
  Diagnostic& warning(std::string code, SourceLocation where, std::string message) {
    return add(Severity::warning, std::move(code), where, std::move(message));
  }
  bool has_errors() const { return errors_ > 0; }
  std::vector<Diagnostic>& items() { return items_; }

 private:
  Diagnostic& add(Severity s, std::string code, SourceLocation where, std::string message) {
    if (s == Severity::error) ++errors_;
    items_.push_back(Diagnostic{s, std::move(code), where, std::move(message), {}, {}});
    return items_.back();
  }
  std::vector<Diagnostic> items_;
  size_t errors_ = 0;
};

// Quotes user text for a message: `text`.
inline std::string ticked(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '`';
  out += s;
  out += '`';
  return out;
}

// Levenshtein distance, for "did you mean" advice.
inline size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

}  // namespace tlsp
