// names.cpp — validation and normal form of domain names, wildcards,
// addresses and CIDRs in policies.
#include "names.h"

#include "tlsp/base/address.h"

#include <algorithm>

#include "tlsp/base/domain_name.h"

namespace tlsp {
namespace {

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

}  // namespace tlsp
