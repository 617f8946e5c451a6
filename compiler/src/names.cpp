// names.cpp — validation and normal form of domain names, wildcards,
// addresses and CIDRs in policies.
#include "names.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

namespace tlsp {
namespace {

bool is_ldh(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

bool check_label(std::string_view label, std::string_view whole, NameProblem& problem) {
  if (label.empty()) {
    problem.message = "empty label in domain name " + std::string("`") + std::string(whole) + "`";
    return false;
  }
  if (label.size() > 63) {
    problem.message = "label `" + std::string(label) + "` is longer than 63 characters";
    return false;
  }
  for (char c : label) {
    if (static_cast<unsigned char>(c) >= 0x80) {
      problem.message = "`" + std::string(whole) + "` is not an IDNA A-label domain name";
      problem.help = "write internationalised names in their A-label form (`xn--...`)";
      return false;
    }
    if (c == '*') {
      problem.message = "`*` may only stand alone as the leftmost label of a peer selector, as in `*.example.com`";
      return false;
    }
    if (!is_ldh(c)) {
      problem.message = "invalid character `" + std::string(1, c) + "` in label `" + std::string(label) + "`";
      problem.help = "domain name labels use letters, digits and `-` only";
      return false;
    }
  }
  if (label.front() == '-' || label.back() == '-') {
    problem.message = "label `" + std::string(label) + "` begins or ends with `-`";
    return false;
  }
  if (label.size() >= 4 && label[2] == '-' && label[3] == '-' && label.substr(0, 2) != "xn") {
    problem.message = "label `" + std::string(label) + "` has `--` in the third and fourth places, which only IDNA A-labels (`xn--`) may";
    return false;
  }
  if (label.substr(0, 4) == "xn--" && label.size() == 4) {
    problem.message = "label `" + std::string(label) + "` is an empty A-label";
    return false;
  }
  return true;
}

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

bool normalize_domain_name(std::string_view text, std::string& out, NameProblem& problem) {
  problem.code = "E0206";
  std::string_view s = text;
  if (!s.empty() && s.back() == '.') s.remove_suffix(1);
  if (s.empty()) {
    problem.message = "empty domain name";
    return false;
  }
  out.assign(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  if (out.size() > 253) {
    problem.message = "domain name `" + std::string(text) + "` is longer than 253 characters";
    return false;
  }
  std::string_view all(out);
  size_t start = 0;
  std::string_view last;
  while (true) {
    size_t dot = all.find('.', start);
    std::string_view label = all.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (!check_label(label, text, problem)) return false;
    last = label;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  bool numeric = true;
  for (char c : last) numeric = numeric && c >= '0' && c <= '9';
  if (numeric) {
    problem.message = "`" + std::string(text) + "` is not a domain name: its last label is numeric";
    return false;
  }
  return true;
}

bool parse_peer_selector(std::string_view text, PeerEntry& out, NameProblem& problem) {
  if (looks_like_address(text)) return parse_address_or_cidr(text, out, problem);
  out.address = {};
  out.prefix_len = 0;
  if (text.size() >= 2 && text[0] == '*' && text[1] == '.') {
    out.kind = SelectorKind::wildcard;
    return normalize_domain_name(text.substr(2), out.name, problem);
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
