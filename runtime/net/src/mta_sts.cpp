// mta_sts.cpp — the RFC 8461 text formats (tlsp/mta_sts.h): the `_mta-sts`
// TXT record, the policy file and MX pattern matching.
//
// Both parsers walk the ABNF of RFC 8461 §3.1 / §3.2 directly, byte by
// byte, rather than splitting and trimming: the texts come from the network
// and from people, and a lenient parser would accept records that other
// senders reject, so one sender would enforce a policy the domain never
// validly published. Each rejection says which rule was broken.
#include "tlsp/mta_sts.h"

#include "tlsp/base/quote.h"
#include "tlsp/base/domain_name.h"

namespace tlsp {
namespace {

bool is_wsp(char c) { return c == ' ' || c == '\t'; }
bool is_alpha(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alnum(char c) { return is_alpha(c) || is_digit(c); }

bool is_ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

using base::ticked;

// sts-ext-name / sts-policy-ext-name: (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
bool is_field_name(std::string_view s) {
  if (s.empty() || s.size() > 32 || !is_alnum(s[0])) return false;
  for (char c : s)
    if (!is_alnum(c) && c != '_' && c != '-' && c != '.') return false;
  return true;
}

template <typename T>
MtaStsParse<T> invalid(std::string problem) {
  MtaStsParse<T> r;
  r.problem = std::move(problem);
  return r;
}

}  // namespace

// ------------------------------------------------------------ TXT record

MtaStsParse<MtaStsTxt> parse_mta_sts_txt(std::string_view s) {
  using R = MtaStsTxt;
  // Trailing spaces are not in the ABNF but harm nothing and are common.
  while (!s.empty() && is_wsp(s.back())) s.remove_suffix(1);
  constexpr std::string_view kVersion = "v=STSv1";
  if (s.substr(0, kVersion.size()) != kVersion) return invalid<R>("the record does not begin with `v=STSv1`");
  size_t i = kVersion.size();
  std::optional<std::string> id;
  while (true) {
    // sts-field-delim = *WSP ";" *WSP
    while (i < s.size() && is_wsp(s[i])) ++i;
    if (i == s.size()) break;
    if (s[i] != ';') return invalid<R>("expected `;` before " + ticked(s.substr(i)));
    ++i;
    while (i < s.size() && is_wsp(s[i])) ++i;
    if (i == s.size()) break;  // a final delimiter is allowed
    size_t eq = s.find('=', i);
    size_t end = i;
    while (end < s.size() && s[end] != ';' && !is_wsp(s[end])) ++end;
    if (eq == std::string_view::npos || eq >= end) return invalid<R>("field " + ticked(s.substr(i, end - i)) + " has no `=`");
    std::string_view name = s.substr(i, eq - i);
    std::string_view value = s.substr(eq + 1, end - eq - 1);
    if (!is_field_name(name)) return invalid<R>("invalid field name " + ticked(name));
    if (value.empty()) return invalid<R>("field " + ticked(name) + " has an empty value");
    if (name == "id") {
      if (id) return invalid<R>("`id` given twice");
      if (value.size() > 32) return invalid<R>("`id` is longer than 32 characters");
      for (char c : value)
        if (!is_alnum(c)) return invalid<R>("`id` may hold only letters and digits, not " + ticked(value));
      id = std::string(value);
    } else {
      // sts-ext-value = 1*(%x21-3A / %x3C / %x3E-7E): no `=`, `;`, space or control.
      for (char c : value) {
        unsigned char u = static_cast<unsigned char>(c);
        if (u < 0x21 || u > 0x7E || c == '=') return invalid<R>("invalid value for field " + ticked(name));
      }
    }
    i = end;
  }
  if (!id) return invalid<R>("the record has no `id` field");
  MtaStsParse<R> r;
  r.value = MtaStsTxt{*id};
  return r;
}

std::vector<std::pair<std::string, std::string>> split_mta_sts_txt(std::string_view s) {
  std::vector<std::pair<std::string, std::string>> out;
  auto trim = [](std::string_view v) {
    while (!v.empty() && is_wsp(v.front())) v.remove_prefix(1);
    while (!v.empty() && is_wsp(v.back())) v.remove_suffix(1);
    return v;
  };
  size_t start = 0;
  while (start <= s.size()) {
    size_t semi = s.find(';', start);
    std::string_view part = trim(s.substr(start, semi == std::string_view::npos ? std::string_view::npos : semi - start));
    if (!part.empty()) {
      size_t eq = part.find('=');
      if (eq == std::string_view::npos)
        out.emplace_back(std::string(part), std::string());
      else
        out.emplace_back(std::string(trim(part.substr(0, eq))), std::string(trim(part.substr(eq + 1))));
    }
    if (semi == std::string_view::npos) break;
    start = semi + 1;
  }
  return out;
}

// ----------------------------------------------------------- policy file

MtaStsParse<MtaStsPolicy> parse_mta_sts_policy(std::string_view body) {
  using R = MtaStsPolicy;
  if (body.size() > kMaxStsPolicyBytes) return invalid<R>("the policy is larger than 64 KiB");
  if (body.empty()) return invalid<R>("the policy is empty");

  MtaStsPolicy policy;
  bool has_version = false, has_mode = false, has_max_age = false;
  size_t pos = 0;
  size_t line_no = 0;
  while (pos < body.size()) {
    ++line_no;
    // sts-policy-term = LF / CRLF; one terminator may end the file.
    size_t lf = body.find('\n', pos);
    std::string_view line = body.substr(pos, lf == std::string_view::npos ? std::string_view::npos : lf - pos);
    pos = lf == std::string_view::npos ? body.size() : lf + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const std::string where = "line " + std::to_string(line_no) + ": ";
    if (line.empty()) return invalid<R>(where + "empty line");

    // sts-policy-field = name ":" *WSP value *WSP
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return invalid<R>(where + ticked(line) + " is not a `key: value` field");
    std::string_view name = line.substr(0, colon);
    if (!is_field_name(name)) return invalid<R>(where + "invalid field name " + ticked(name));
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && is_wsp(value.front())) value.remove_prefix(1);
    while (!value.empty() && is_wsp(value.back())) value.remove_suffix(1);
    for (char c : value) {
      unsigned char u = static_cast<unsigned char>(c);
      if ((u < 0x20 && c != '\t') || u == 0x7F) return invalid<R>(where + "control character in field " + ticked(name));
    }
    if (value.empty()) return invalid<R>(where + "field " + ticked(name) + " has no value");

    if (name == "version") {
      if (has_version) return invalid<R>(where + "`version` given twice");
      if (value != "STSv1") return invalid<R>(where + "unsupported version " + ticked(value) + " (only `STSv1`)");
      has_version = true;
    } else if (name == "mode") {
      if (has_mode) return invalid<R>(where + "`mode` given twice");
      if (value == "enforce") policy.mode = StsMode::enforce;
      else if (value == "testing") policy.mode = StsMode::testing;
      else if (value == "none") policy.mode = StsMode::none;
      else return invalid<R>(where + "unknown mode " + ticked(value) + " (`enforce`, `testing` or `none`)");
      has_mode = true;
    } else if (name == "max_age") {
      if (has_max_age) return invalid<R>(where + "`max_age` given twice");
      // sts-policy-max-age-value = 1*10(DIGIT)
      if (value.size() > 10) return invalid<R>(where + "`max_age` has more than 10 digits");
      uint64_t n = 0;
      for (char c : value) {
        if (!is_digit(c)) return invalid<R>(where + "`max_age` must be a number of seconds, not " + ticked(value));
        n = n * 10 + static_cast<uint64_t>(c - '0');
      }
      if (n > kMaxStsMaxAge) return invalid<R>(where + "`max_age` " + ticked(value) + " is above 31557600");
      policy.max_age = static_cast<uint32_t>(n);
      has_max_age = true;
    } else if (name == "mx") {
      // sts-policy-mx-value = ["*."] Domain
      if (NameCheck c = check_mx_pattern(value); !c.ok())
        return invalid<R>(where + "invalid `mx` pattern " + ticked(value) + ": " + c.problem);
      policy.mx.emplace_back(value);
    }
    // Any other well-formed field is an extension: ignored (RFC 8461 §3.2).
  }
  if (!has_version) return invalid<R>("`version` is missing");
  if (!has_mode) return invalid<R>("`mode` is missing");
  if (!has_max_age) return invalid<R>("`max_age` is missing");
  if (policy.mx.empty() && policy.mode != StsMode::none)
    return invalid<R>("no `mx` field (required unless the mode is `none`)");
  MtaStsParse<R> r;
  r.value = std::move(policy);
  return r;
}

// ------------------------------------------------------------- matching

std::vector<std::string> mta_sts_policy_lines(const MtaStsPolicy& policy) {
  std::vector<std::string> lines;
  lines.reserve(policy.mx.size() + 3);
  lines.emplace_back("version: STSv1");
  lines.push_back("mode: " + std::string(to_string(policy.mode)));
  for (const std::string& p : policy.mx) lines.push_back("mx: " + p);
  lines.push_back("max_age: " + std::to_string(policy.max_age));
  return lines;
}

bool mta_sts_mx_matches(std::string_view host, std::string_view pattern) {
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  if (!pattern.empty() && pattern.back() == '.') pattern.remove_suffix(1);
  if (!is_ascii(host) || !is_ascii(pattern)) {
    // IDNA: names compare in their A-label form (RFC 8461 §3.2, §4.1), so
    // a U-label on either side is mapped first; one that cannot be mapped
    // matches nothing.
    const bool wildcard = pattern.substr(0, 2) == "*.";
    auto h = lookup_form(host);
    auto p = lookup_form(wildcard ? pattern.substr(2) : pattern);
    if (!h || !p || !is_ascii(*h) || !is_ascii(*p)) return false;
    return mta_sts_mx_matches(*h, wildcard ? "*." + *p : *p);
  }
  auto equal = [](std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (lower(a[i]) != lower(b[i])) return false;
    return true;
  };
  if (pattern.substr(0, 2) == "*.") {
    std::string_view suffix = pattern.substr(1);  // ".example.org"
    if (host.size() <= suffix.size()) return false;
    std::string_view label = host.substr(0, host.size() - suffix.size());
    // Exactly one label: `*.example.org` covers mx.example.org, not a.mx.example.org.
    return label.find('.') == std::string_view::npos && equal(host.substr(label.size()), suffix);
  }
  return equal(host, pattern);
}

bool mta_sts_mx_matches(std::string_view host, const std::vector<std::string>& patterns) {
  for (const auto& p : patterns)
    if (mta_sts_mx_matches(host, p)) return true;
  return false;
}

bool is_text_plain_content_type(std::string_view ct) {
  std::string_view type = ct.substr(0, ct.find(';'));
  while (!type.empty() && is_wsp(type.front())) type.remove_prefix(1);
  while (!type.empty() && is_wsp(type.back())) type.remove_suffix(1);
  constexpr std::string_view kTextPlain = "text/plain";
  if (type.size() != kTextPlain.size()) return false;
  for (size_t i = 0; i < type.size(); ++i)
    if (lower(type[i]) != kTextPlain[i]) return false;
  return true;
}

}  // namespace tlsp
