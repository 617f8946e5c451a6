// tlsp/base/header_fields.h — the `key: value` header lines that tlsp's own
// small files start with (the MTA-STS cache entry, the TLSRPT outbox file):
// each field in a fixed order, one per LF-ended line, then the body. One
// reader for them, so that both refuse the same malformed input.
//
// Contract:
// - take_header_field(text, key, value, max_line) takes the next line off
//   `text` when it is exactly `key: value` and at most `max_line` bytes,
//   setting `value` (a view into `text`); otherwise false and `text` is
//   unchanged. Linear in the line's length.
// - parse_decimal_i64(s, v): 1 to 18 decimal digits, nothing else (no
//   sign, no spaces), so the value always fits in an int64_t.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace tlsp::base {

bool take_header_field(std::string_view& text, std::string_view key, std::string_view& value,
                       size_t max_line = std::string_view::npos);

bool parse_decimal_i64(std::string_view s, int64_t& v);

}  // namespace tlsp::base
