// names.cpp — validation and normal form of domain names, wildcards,
// addresses and CIDRs in policies.
#include "names.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

#include "tlsp/base/domain_name.h"

namespace tlsp {
namespace {

bool looks_like_address(std::string_view s) {
  if (s.find(':') != std::string_view::npos || s.find('/') != std::string_view::npos) return true;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || c == '.')) return false;
  return !s.empty();
}

bool parse_address_or_cidr(std::string_view text, PeerEntry& out, NameProblem& problem) {
  problem.code = "E0207";
  std::string_view addr = text;
  std::string_view len;
  bool has_prefix = false;
  if (size_t slash = text.find('/'); slash != std::string_view::npos) {
    addr = text.substr(0, slash);
    len = text.substr(slash + 1);
    has_prefix = true;
  }
  std::string a(addr);
  unsigned char buf[16] = {};
  int max_len;
  if (inet_pton(AF_INET, a.c_str(), buf) == 1) {
    out.kind = SelectorKind::cidr_v4;
    max_len = 32;
  } else if (inet_pton(AF_INET6, a.c_str(), buf) == 1) {
    out.kind = SelectorKind::cidr_v6;
    max_len = 128;
  } else {
    problem.message = "`" + std::string(text) + "` is not a valid IP address or CIDR";
    problem.help = "write an address (`192.0.2.1`, `2001:db8::1`) or a network (`192.0.2.0/24`, `2001:db8::/32`)";
    return false;
  }
  int prefix = max_len;
  if (has_prefix) {
    auto [p, ec] = std::from_chars(len.data(), len.data() + len.size(), prefix);
    if (len.empty() || ec != std::errc() || p != len.data() + len.size() || prefix < 0 || prefix > max_len ||
        (len.size() > 1 && len[0] == '0')) {
      problem.message = "invalid prefix length `/" + std::string(len) + "` in `" + std::string(text) + "`";
      problem.help = "the prefix length is a number from 0 to " + std::to_string(max_len);
      return false;
    }
  }
  const int bytes = max_len / 8;
  bool host_bits = false;
  unsigned char net[16] = {};
  for (int i = 0; i < bytes; ++i) {
    int keep = std::clamp(prefix - 8 * i, 0, 8);
    unsigned char mask = keep == 0 ? 0 : static_cast<unsigned char>(0xFF << (8 - keep));
    net[i] = buf[i] & mask;
    if (net[i] != buf[i]) host_bits = true;
  }
  out.address = {};
  for (int i = 0; i < bytes; ++i) out.address[i] = net[i];
  out.prefix_len = static_cast<uint8_t>(prefix);
  out.name.clear();
  if (host_bits) {
    problem.code = "E0208";
    problem.message = "`" + std::string(text) + "` has host bits set";
    problem.help = "did you mean `" + selector_text(out) + "`?";
    return false;
  }
  return true;
}

}  // namespace

namespace {

// `prefix` is what the selector has before the name (`*.`), for the advice.
bool normalize_name(std::string_view text, std::string_view prefix, std::string& out, NameProblem& problem) {
  problem.code = "E0206";
  NameCheck c = check_policy_name(text);
  if (c.ok()) {
    out = std::move(c.name);
    return true;
  }
  problem.message = std::move(c.problem);
  if (c.fault == NameFault::bad_character && c.label.find('*') != std::string::npos) {
    problem.message = "`*` may only stand alone as the leftmost label of a peer selector, as in `*.example.com`";
  } else if (c.fault == NameFault::bad_character) {
    problem.help = "domain name labels use letters, digits and `-` only";
  } else if (c.fault == NameFault::not_ascii) {
    problem.help = c.suggestion.empty() ? "write internationalised names in their A-label form (`xn--...`)"
                                        : "did you mean `" + std::string(prefix) + c.suggestion + "`?";
  }
  return false;
}

}  // namespace

bool normalize_domain_name(std::string_view text, std::string& out, NameProblem& problem) {
  return normalize_name(text, "", out, problem);
}

bool parse_peer_selector(std::string_view text, PeerEntry& out, NameProblem& problem) {
  if (looks_like_address(text)) return parse_address_or_cidr(text, out, problem);
  out.address = {};
  out.prefix_len = 0;
  if (text.size() >= 2 && text[0] == '*' && text[1] == '.') {
    out.kind = SelectorKind::wildcard;
    return normalize_name(text.substr(2), "*.", out.name, problem);
  }
  out.kind = SelectorKind::exact;
  return normalize_domain_name(text, out.name, problem);
}

std::string selector_text(const PeerEntry& e) {
  switch (e.kind) {
    case SelectorKind::exact: return e.name;
    case SelectorKind::wildcard: return "*." + e.name;
    case SelectorKind::cidr_v4:
    case SelectorKind::cidr_v6: {
      char buf[INET6_ADDRSTRLEN] = {};
      inet_ntop(e.kind == SelectorKind::cidr_v4 ? AF_INET : AF_INET6, e.address.data(), buf, sizeof buf);
      return std::string(buf) + "/" + std::to_string(e.prefix_len);
    }
  }
  return {};
}

}  // namespace tlsp
