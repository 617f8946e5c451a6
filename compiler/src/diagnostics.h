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
#include "tlsp/diagnostic_text.h"

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

// Quotes user text for a message: `text`, escaped and capped
// (tlsp/base/quote.h), so no file's content can reach the terminal raw
// through a message.
using base::ticked;

}  // namespace tlsp
