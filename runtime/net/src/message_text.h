// message_text.h — quoting untrusted text (DNS records, policy bodies) in
// error messages: in backticks, one line, bounded, whatever the input.
// Internal to the runtime library.
#pragma once

#include <string>
#include <string_view>

namespace tlsp::runtime_detail {

inline std::string ticked(std::string_view s) {
  constexpr size_t kShown = 40;
  std::string out = "`";
  for (size_t i = 0; i < s.size() && i < kShown; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    out += (c < 0x20 || c == 0x7F) ? '?' : s[i];
  }
  if (s.size() > kShown) out += "...";
  return out + "`";
}

}  // namespace tlsp::runtime_detail
