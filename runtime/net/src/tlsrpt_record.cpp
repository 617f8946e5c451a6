// tlsrpt_record.cpp — the RFC 8460 §3 TXT record (tlsp/tlsrpt_record.h).
//
// Walked byte by byte against the ABNF, as the MTA-STS record is
// (mta_sts.cpp): the record decides where our reports go, so one we accept
// must be one the domain really published, and a URI is taken apart here,
// once, into what the sender uses (an address, a host, a port, a path).
#include "tlsp/tlsrpt_record.h"

#include "tlsp/base/address.h"
#include "tlsp/base/domain_name.h"
#include "tlsp/base/quote.h"

namespace tlsp {
namespace {

using base::ticked;

bool is_wsp(char c) { return c == ' ' || c == '\t'; }
bool is_alpha(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alnum(char c) { return is_alpha(c) || is_digit(c); }
char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// tlsrpt-ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
bool is_field_name(std::string_view s) {
  if (s.empty() || s.size() > 32 || !is_alnum(s[0])) return false;
  for (char c : s)
    if (!is_alnum(c) && c != '_' && c != '-' && c != '.') return false;
  return true;
}

// RFC 3986 characters (unreserved, gen-delims, sub-delims, `%`) minus the
// three RFC 8460 wants encoded or that end a URI in the record: `,` `;` `!`.
bool is_uri_char(char c) {
  if (is_alnum(c)) return true;
  switch (c) {
    case '-': case '.': case '_': case '~': case ':': case '/': case '?': case '#': case '[': case ']':
    case '@': case '$': case '&': case '\'': case '(': case ')': case '*': case '+': case '=': case '%':
      return true;
    default:
      return false;
  }
}

int hex_value(char c) {
  if (is_digit(c)) return c - '0';
  c = lower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

// A local part we can put in an SMTP path without quoting: printable ASCII
// without specials (RFC 5322 atext and `.`), at most 64 octets (RFC 5321).
bool is_plain_local_part(std::string_view s) {
  if (s.empty() || s.size() > 64 || s.front() == '.' || s.back() == '.') return false;
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7F) return false;
    if (std::string_view("()<>[]:;@\\,\"").find(c) != std::string_view::npos) return false;
  }
  return s.find("..") == std::string_view::npos;
}

bool has_prefix_ci(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i)
    if (lower(s[i]) != prefix[i]) return false;
  return true;
}

std::optional<TlsrptUri> fail(std::string* problem, std::string why) {
  if (problem) *problem = std::move(why);
  return std::nullopt;
}

std::optional<TlsrptUri> parse_mailto(std::string_view uri, std::string* problem) {
  // mailto:addr[?hfields] (RFC 6068); header fields are the sender's to
  // choose, never the record's.
  std::string_view rest = uri.substr(7);
  rest = rest.substr(0, rest.find('?'));
  if (rest.find('#') != std::string_view::npos) return fail(problem, "a fragment in " + ticked(uri));
  auto decoded = percent_decode(rest);
  if (!decoded) return fail(problem, "a bad percent escape in " + ticked(uri));
  size_t at = decoded->rfind('@');
  if (at == std::string::npos) return fail(problem, ticked(uri) + " names no address `local@domain`");
  std::string_view local = std::string_view(*decoded).substr(0, at);
  if (!is_plain_local_part(local)) return fail(problem, ticked(uri) + ": unusable local part " + ticked(local));
  NameCheck d = check_host_name(std::string_view(*decoded).substr(at + 1));
  if (!d.ok()) return fail(problem, ticked(uri) + ": " + d.problem);
  TlsrptUri u;
  u.scheme = TlsrptScheme::mailto;
  u.uri = std::string(uri);
  u.address = std::string(local) + "@" + d.name;
  return u;
}

std::optional<TlsrptUri> parse_https(std::string_view uri, std::string* problem) {
  std::string_view rest = uri.substr(8);  // after "https://"
  if (rest.find('#') != std::string_view::npos) return fail(problem, "a fragment in " + ticked(uri));
  size_t end = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, end);
  std::string_view path = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  if (authority.find('@') != std::string_view::npos) return fail(problem, "user information in " + ticked(uri));
  if (!authority.empty() && authority.front() == '[') return fail(problem, "an IP literal in " + ticked(uri));
  std::string_view host = authority;
  uint16_t port = 443;
  if (size_t colon = authority.find(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    std::string_view p = authority.substr(colon + 1);
    if (p.empty() || p.size() > 5) return fail(problem, "a bad port in " + ticked(uri));
    uint32_t n = 0;
    for (char c : p) {
      if (!is_digit(c)) return fail(problem, "a bad port in " + ticked(uri));
      n = n * 10 + static_cast<uint32_t>(c - '0');
    }
    if (n == 0 || n > 65535) return fail(problem, "a bad port in " + ticked(uri));
    port = static_cast<uint16_t>(n);
  }
  if (base::parse_ip_address(host).has_value()) return fail(problem, "an IP literal in " + ticked(uri));
  NameCheck h = check_host_name(host);
  if (!h.ok()) return fail(problem, ticked(uri) + ": " + h.problem);
  if (h.name.find('.') == std::string::npos) return fail(problem, ticked(uri) + ": not a fully qualified host name");
  for (size_t i = 0; i < path.size(); ++i)
    if (path[i] == '%' && (i + 2 >= path.size() || hex_value(path[i + 1]) < 0 || hex_value(path[i + 2]) < 0))
      return fail(problem, "a bad percent escape in " + ticked(uri));
  TlsrptUri u;
  u.scheme = TlsrptScheme::https;
  u.uri = std::string(uri);
  u.host = h.name;
  u.port = port;
  u.path = path.empty() ? "/" : path.front() == '?' ? "/" + std::string(path) : std::string(path);
  return u;
}

}  // namespace

std::optional<TlsrptUri> parse_tlsrpt_uri(std::string_view uri, std::string* problem) {
  if (uri.empty()) return fail(problem, "an empty URI");
  if (uri.size() > kMaxTlsrptUriBytes)
    return fail(problem, "a URI longer than " + std::to_string(kMaxTlsrptUriBytes) + " bytes");
  for (char c : uri)
    if (!is_uri_char(c)) return fail(problem, "a character that must be encoded in " + ticked(uri));
  if (has_prefix_ci(uri, "mailto:")) return parse_mailto(uri, problem);
  if (has_prefix_ci(uri, "https://")) return parse_https(uri, problem);
  return fail(problem, ticked(uri) + " is neither a `mailto:` nor an `https:` URI");
}

TlsrptParse parse_tlsrpt_txt(std::string_view s) {
  TlsrptParse r;
  auto invalid = [&](std::string why) {
    r.value.reset();
    r.problem = std::move(why);
    return r;
  };
  if (s.size() > kMaxTlsrptRecordBytes)
    return invalid("the record is longer than " + std::to_string(kMaxTlsrptRecordBytes) + " bytes");
  while (!s.empty() && is_wsp(s.back())) s.remove_suffix(1);
  constexpr std::string_view kVersion = "v=TLSRPTv1";
  if (s.substr(0, kVersion.size()) != kVersion) return invalid("the record does not begin with `v=TLSRPTv1`");
  TlsrptRecord rec;
  bool have_rua = false;
  size_t i = kVersion.size();
  while (true) {
    // field-delim = *WSP ";" *WSP
    while (i < s.size() && is_wsp(s[i])) ++i;
    if (i == s.size()) break;
    if (s[i] != ';') return invalid("expected `;` before " + ticked(s.substr(i)));
    ++i;
    while (i < s.size() && is_wsp(s[i])) ++i;
    if (i == s.size()) break;  // a final delimiter is allowed
    size_t eq = i;
    while (eq < s.size() && s[eq] != '=' && s[eq] != ';' && !is_wsp(s[eq])) ++eq;
    if (eq == s.size() || s[eq] != '=') return invalid("field " + ticked(s.substr(i, eq - i)) + " has no `=`");
    std::string_view name = s.substr(i, eq - i);
    if (!is_field_name(name)) return invalid("invalid field name " + ticked(name));
    i = eq + 1;
    if (name == "rua") {
      if (have_rua) return invalid("`rua` given twice");
      have_rua = true;
      size_t count = 0;
      while (true) {
        size_t start = i;
        while (i < s.size() && s[i] != ',' && s[i] != ';' && !is_wsp(s[i])) ++i;
        std::string_view uri = s.substr(start, i - start);
        if (uri.empty()) return invalid("an empty URI in `rua`");
        if (++count > kMaxTlsrptUris)
          return invalid("`rua` lists more than " + std::to_string(kMaxTlsrptUris) + " URIs");
        std::string problem;
        if (auto u = parse_tlsrpt_uri(uri, &problem)) {
          rec.rua.push_back(std::move(*u));
        } else if (has_prefix_ci(uri, "mailto:") || has_prefix_ci(uri, "https:")) {
          return invalid("invalid `rua` URI: " + problem);
        } else {
          // Another scheme (http:, ftp:, ...): RFC 8460 defines only two.
          for (char c : uri)
            if (!is_uri_char(c)) return invalid("a character that must be encoded in " + ticked(uri));
          rec.ignored.emplace_back(uri);
        }
        size_t j = i;
        while (j < s.size() && is_wsp(s[j])) ++j;
        if (j < s.size() && s[j] == ',') {
          ++j;
          while (j < s.size() && is_wsp(s[j])) ++j;
          i = j;
          continue;
        }
        break;
      }
    } else {
      // tlsrpt-ext-value = 1*(%x21-3A / %x3C / %x3E-7E)
      size_t start = i;
      while (i < s.size() && s[i] != ';' && !is_wsp(s[i])) {
        unsigned char u = static_cast<unsigned char>(s[i]);
        if (u < 0x21 || u > 0x7E || s[i] == '=') return invalid("invalid value for field " + ticked(name));
        ++i;
      }
      if (i == start) return invalid("field " + ticked(name) + " has an empty value");
    }
  }
  if (!have_rua) return invalid("the record has no `rua` field");
  if (rec.rua.empty()) return invalid("`rua` has no `mailto:` or `https:` URI");
  r.value = std::move(rec);
  return r;
}

TlsrptParse select_tlsrpt_record(const std::vector<std::string>& records) {
  constexpr std::string_view kVersion = "v=TLSRPTv1";
  const std::string* chosen = nullptr;
  size_t candidates = 0;
  for (const auto& rec : records) {
    if (std::string_view(rec).substr(0, kVersion.size()) != kVersion) continue;
    if (rec.size() > kVersion.size() && rec[kVersion.size()] != ';' && !is_wsp(rec[kVersion.size()])) continue;
    ++candidates;
    chosen = &rec;
  }
  if (candidates != 1) {
    TlsrptParse r;
    r.problem = std::to_string(candidates) + " records begin with `v=TLSRPTv1` (exactly one is needed)";
    return r;
  }
  return parse_tlsrpt_txt(*chosen);
}

}  // namespace tlsp
