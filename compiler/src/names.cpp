// names.cpp — validation and normal form of domain names, wildcards,
// addresses and CIDRs in policies.
#include "names.h"

#include <arpa/inet.h>

#include "tlsp/base/address.h"

#include <algorithm>

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

// The reading of an address or CIDR is tlsp/base/address.h's (the relay's
// submit networks and the simulator use the same); the messages are ours.
bool parse_address_or_cidr(std::string_view text, PeerEntry& out, NameProblem& problem) {
  problem.code = "E0207";
  const base::CidrParse parsed = base::parse_cidr(text);
  if (parsed.problem == base::CidrProblem::not_an_address) {
    problem.message = "`" + std::string(text) + "` is not a valid IP address or CIDR";
    problem.help = "write an address (`192.0.2.1`, `2001:db8::1`) or a network (`192.0.2.0/24`, `2001:db8::/32`)";
    return false;
  }
  if (parsed.problem == base::CidrProblem::bad_prefix) {
    const std::string_view len = text.substr(text.find('/') + 1);
    problem.message = "invalid prefix length `/" + std::string(len) + "` in `" + std::string(text) + "`";
    problem.help = "the prefix length is a number from 0 to " + std::to_string(parsed.max_prefix);
    return false;
  }
  out.kind = parsed.cidr.network.v6 ? SelectorKind::cidr_v6 : SelectorKind::cidr_v4;
  out.address = {};
  std::copy(parsed.cidr.network.bytes.begin(), parsed.cidr.network.bytes.end(), out.address.begin());
  out.prefix_len = parsed.cidr.prefix_len;
  out.name.clear();
  if (parsed.problem == base::CidrProblem::host_bits) {
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
