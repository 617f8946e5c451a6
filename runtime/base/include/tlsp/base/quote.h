// tlsp/base/quote.h — showing untrusted text (a policy file, a DNS record,
// an MTA-STS body, a client's command) in a message: the one way tlsp
// quotes it, in the compiler's diagnostics, the runtime's errors, the
// scenario checker and the CLI. Header-only (the parse modules use it
// without linking the rest).
//
// Every character that a terminal would not show as itself is written as an
// escape: `\x00`..`\x1f`, `\x7f` and each byte of invalid UTF-8 as `\xNN`;
// C1 controls and the invisible or reordering format characters
// (U+200B-U+200F, U+2028-U+202E, U+2060-U+2069, U+FEFF) as `\u{NNNN}`.
// Other UTF-8 stays as it is, readable. Text is cut into "units" the way
// columns are counted (a lead byte and the continuation bytes after it), so
// a caret placed by column stays under its character, and a cut never
// splits a character.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace tlsp::base {

// At most this many characters of user text are quoted in a message (a
// domain name has at most 253); longer text ends in `...`.
inline constexpr size_t kMaxQuotedChars = 256;

inline bool is_utf8_continuation(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

// The length of the unit starting at s[i]: the byte and the continuation
// bytes that follow it.
inline size_t display_unit_length(std::string_view s, size_t i) {
  size_t j = i + 1;
  while (j < s.size() && is_utf8_continuation(s[j])) ++j;
  return j - i;
}

// Appends one unit to `out` as a terminal may show it, and returns how many
// columns it takes there (a tab counts as one; with keep_tab it stays a
// tab, else it is escaped).
inline size_t append_display_unit(std::string& out, std::string_view unit, bool keep_tab) {
  auto hex_byte = [&out](unsigned char b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "\\x%02x", b);
    out += buf;
    return size_t{4};
  };
  const unsigned char c = static_cast<unsigned char>(unit[0]);
  if (unit.size() == 1 && c < 0x80) {
    if (c == '\t' && keep_tab) {
      out += '\t';
      return 1;
    }
    if (c < 0x20 || c == 0x7F) return hex_byte(c);
    out += static_cast<char>(c);
    return 1;
  }
  // Decode exactly one well-formed code point, or escape byte by byte.
  const size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  uint32_t cp = n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
  for (size_t k = 1; k < unit.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(unit[k]) & 0x3F);
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  const bool valid = n >= 2 && n == unit.size() && cp >= kMin[n] && cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF);
  if (!valid) {
    size_t width = 0;
    for (char b : unit) {
      const unsigned char u = static_cast<unsigned char>(b);
      if (u >= 0x20 && u < 0x7F) {
        out += b;
        ++width;
      } else {
        width += hex_byte(u);
      }
    }
    return width;
  }
  const bool invisible = (cp >= 0x80 && cp <= 0x9F) || (cp >= 0x200B && cp <= 0x200F) ||
                         (cp >= 0x2028 && cp <= 0x202E) || (cp >= 0x2060 && cp <= 0x2069) || cp == 0xFEFF;
  if (!invisible) {
    out += unit;
    return 1;
  }
  char buf[16];
  const int len = std::snprintf(buf, sizeof buf, "\\u{%04x}", static_cast<unsigned>(cp));
  out += buf;
  return static_cast<size_t>(len);
}

// User text for a message: escaped, and cut after max_chars units.
inline std::string display_text(std::string_view s, size_t max_chars = kMaxQuotedChars) {
  std::string out;
  out.reserve(std::min(s.size(), max_chars) + 2);
  size_t units = 0;
  for (size_t i = 0; i < s.size();) {
    if (units == max_chars) {
      out += "...";
      break;
    }
    const size_t n = display_unit_length(s, i);
    append_display_unit(out, s.substr(i, n), /*keep_tab=*/false);
    i += n;
    ++units;
  }
  return out;
}

// User text quoted for a message: `text`, escaped as display_text() does
// and cut after max_chars units (then ending in `...` inside the ticks), so
// a message stays one printable, bounded line whatever the input.
inline std::string ticked(std::string_view s, size_t max_chars = kMaxQuotedChars) {
  return '`' + display_text(s, max_chars) + '`';
}

}  // namespace tlsp::base
