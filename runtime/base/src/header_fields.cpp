// The `key: value` header lines of tlsp's own files (tlsp/base/header_fields.h).
#include "tlsp/base/header_fields.h"

namespace tlsp::base {

bool take_header_field(std::string_view& text, std::string_view key, std::string_view& value, size_t max_line) {
  const size_t lf = text.find('\n');
  if (lf == std::string_view::npos || lf > max_line) return false;
  const std::string_view line = text.substr(0, lf);
  if (line.substr(0, key.size()) != key || line.substr(key.size(), 2) != ": ") return false;
  value = line.substr(key.size() + 2);
  text.remove_prefix(lf + 1);
  return true;
}

bool parse_decimal_i64(std::string_view s, int64_t& v) {
  if (s.empty() || s.size() > 18) return false;
  v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  return true;
}

}  // namespace tlsp::base
