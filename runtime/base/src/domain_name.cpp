// domain_name.cpp — the checks of tlsp/base/domain_name.h. The label syntax
// is walked here byte by byte (it is ASCII and small); libidn2 is asked only
// about what needs Unicode tables: whether an `xn--` label decodes to a
// valid IDNA2008 label, and the A-label form of a U-label name.
#include "tlsp/base/domain_name.h"

#include <idn2.h>

#include <cstdlib>
#include <memory>

namespace tlsp {
namespace {

enum class Variant { host, policy, question, mx_pattern };

constexpr std::string_view kAcePrefix = "xn--";

bool is_letter_or_digit(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// Text for a message: in backticks, bytes that a terminal or a log would
// act on (controls, DEL, the backtick itself) written as \xHH.
std::string shown(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "`";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == '`') {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 0xF];
    } else {
      out += c;
    }
  }
  return out + "`";
}

struct IdnString {
  void operator()(char* p) const { std::free(p); }
};
using IdnOut = std::unique_ptr<char, IdnString>;

// libidn2's lookup (IDNA2008, RFC 5891 §5) of a NUL-terminated copy of s.
int idn_lookup(std::string_view s, int flags, std::string& out) {
  const std::string in(s);
  char* raw = nullptr;
  const int rc = idn2_lookup_u8(reinterpret_cast<const uint8_t*>(in.c_str()), reinterpret_cast<uint8_t**>(&raw), flags);
  IdnOut owned(raw);
  if (rc == IDN2_OK && raw != nullptr) out = raw;
  return rc;
}

// Why an `xn--` label (lower case) is not an A-label, or "" when it is one:
// it must decode (punycode, RFC 3492) to a valid IDNA2008 U-label whose
// encoding is the label itself (RFC 5891 §5.4). No UTS #46 mapping here: an
// A-label is checked as written.
std::string a_label_problem(std::string_view label) {
  std::string encoded;
  const int rc = idn_lookup(label, IDN2_NO_TR46, encoded);
  if (rc == IDN2_PUNYCODE_BAD_INPUT || rc == IDN2_PUNYCODE_BIG_OUTPUT || rc == IDN2_PUNYCODE_OVERFLOW)
    return "it is not valid punycode";
  if (rc != IDN2_OK) {
    // libidn2's text ("string contains a disallowed character"), about the
    // decoded label.
    std::string why = idn2_strerror(rc);
    if (why.rfind("string ", 0) == 0) why.erase(0, 7);
    return "its decoded form " + why;
  }
  if (encoded != label) return "it is not the canonical encoding of its label";
  return "";
}

NameCheck fail(NameFault fault, std::string problem, std::string_view label = {}) {
  NameCheck r;
  r.fault = fault;
  r.problem = std::move(problem);
  r.label.assign(label);
  return r;
}

// One label of a host name (lower case), or the problem.
NameCheck check_label(std::string_view label, std::string_view whole, Variant v) {
  if (label.empty()) return fail(NameFault::empty_label, "empty label in domain name " + shown(whole));
  if (label.size() > kMaxLabelLength)
    return fail(NameFault::label_too_long,
                "label " + shown(label) + " is longer than " + std::to_string(kMaxLabelLength) + " characters", label);
  for (char c : label)
    if (!is_letter_or_digit(c) && c != '-') {
      NameCheck r = fail(NameFault::bad_character,
                         "invalid character " + shown(std::string_view(&c, 1)) + " in label " + shown(label), label);
      return r;
    }
  if (label.front() == '-' || label.back() == '-')
    return fail(NameFault::hyphen_at_label_end, "label " + shown(label) + " begins or ends with `-`", label);
  const bool ace = label.substr(0, kAcePrefix.size()) == kAcePrefix;
  if (ace) {
    if (std::string why = a_label_problem(label); !why.empty())
      return fail(NameFault::bad_a_label, "label " + shown(label) + " is not a valid IDNA A-label: " + why, label);
  } else if (v == Variant::policy && label.size() >= 4 && label[2] == '-' && label[3] == '-') {
    return fail(NameFault::reserved_label,
                "label " + shown(label) +
                    " has `--` in the third and fourth places, which only IDNA A-labels (`xn--`) may",
                label);
  }
  return {};
}

NameCheck check(std::string_view text, Variant v);

// A name with a byte >= 0x80: refused, with its A-label form when libidn2
// can map it and that form passes the same check.
NameCheck not_ascii(std::string_view text, std::string_view name, Variant v) {
  NameCheck r = fail(NameFault::not_ascii, shown(text) + " is not an IDNA A-label domain name");
  std::string prefix;
  if (v == Variant::mx_pattern && name.substr(0, 2) == "*.") {
    prefix = "*.";
    name.remove_prefix(2);
  }
  std::string encoded;
  if (idn_lookup(name, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT, encoded) == IDN2_OK) {
    NameCheck again = check(prefix + encoded, v);
    if (again.ok()) r.suggestion = again.name;
  }
  return r;
}

NameCheck check(std::string_view text, Variant v) {
  std::string_view s = text;
  if (v != Variant::mx_pattern && !s.empty() && s.back() == '.') s.remove_suffix(1);
  if (s.empty()) return fail(NameFault::empty, "empty domain name");
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return not_ascii(text, s, v);
  NameCheck r;
  r.name.reserve(s.size());
  for (char c : s) r.name += lower(c);
  if (r.name.size() > kMaxDomainNameLength)
    return fail(NameFault::too_long,
                "domain name " + shown(text) + " is longer than " + std::to_string(kMaxDomainNameLength) + " characters");

  std::string_view rest(r.name);
  if (v == Variant::mx_pattern && rest.substr(0, 2) == "*.") rest.remove_prefix(2);
  bool host_part = v != Variant::question;  // question names may begin with underscore labels
  std::string_view last;
  while (true) {
    const size_t dot = rest.find('.');
    std::string_view label = rest.substr(0, dot);
    if (!host_part && !label.empty() && label.front() == '_') {
      // RFC 8552: `_` then an ordinary label (`_25`, `_tcp`, `_mta-sts`).
      if (label.size() == 1) return fail(NameFault::empty_label, "label `_` has nothing after the `_`", label);
      if (NameCheck l = check_label(label.substr(1), text, v); !l.ok()) return l;
    } else {
      host_part = true;
      if (NameCheck l = check_label(label, text, v); !l.ok()) return l;
      last = label;
    }
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
  }
  if (!host_part) return fail(NameFault::empty, shown(text) + " has no host name after its `_` labels");
  bool numeric = true;
  for (char c : last) numeric = numeric && c >= '0' && c <= '9';
  if (numeric) return fail(NameFault::numeric_last_label, shown(text) + " is not a domain name: its last label is numeric");
  return r;
}

}  // namespace

NameCheck check_host_name(std::string_view text) { return check(text, Variant::host); }
NameCheck check_policy_name(std::string_view text) { return check(text, Variant::policy); }
NameCheck check_dns_question_name(std::string_view text) { return check(text, Variant::question); }
NameCheck check_mx_pattern(std::string_view text) { return check(text, Variant::mx_pattern); }

std::optional<std::string> lookup_form(std::string_view text) {
  if (!text.empty() && text.back() == '.') text.remove_suffix(1);
  bool ascii = true;
  for (char c : text) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
  std::string out;
  if (ascii) {
    out.reserve(text.size());
    for (char c : text) out += lower(c);
    return out;
  }
  if (idn_lookup(text, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT, out) != IDN2_OK) return std::nullopt;
  for (char& c : out) c = lower(c);
  return out;
}

std::string domain_of_address(std::string_view address) {
  const size_t at = address.rfind('@');
  if (at == std::string_view::npos || at == 0) return "";
  NameCheck c = check_host_name(address.substr(at + 1));
  return c.ok() ? std::move(c.name) : std::string();
}

}  // namespace tlsp
