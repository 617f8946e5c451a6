// tlsp/diagnostic_text.h — small text helpers shared by the policy
// compiler's and the scenario parser's diagnostics. Header-only, so each
// parse module can use it without depending on the other libraries.
//
// Showing user text safely is tlsp/base/quote.h's (display_text(),
// ticked()); this header names those here and adds edit_distance() for
// "did you mean" advice.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "tlsp/base/quote.h"

namespace tlsp {

using base::append_display_unit;
using base::display_text;
using base::display_unit_length;
using base::is_utf8_continuation;
using base::kMaxQuotedChars;

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
