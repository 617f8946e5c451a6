// names.h — what a valid domain name, wildcard, address or CIDR is in a
// policy (SPEC §2), and their normal form.
//
// Contract: each function either fills `out` with the normal form (lower
// case, no trailing dot, CIDR without host bits) and returns true, or
// returns false with `problem` set to a one-line message (lower case,
// user text in backticks) and `help` to advice (maybe empty).
#pragma once

#include <string>
#include <string_view>

#include "tlsp/decision_table.h"

namespace tlsp {

struct NameProblem {
  std::string message;
  std::string help;
  std::string code = "E0206";
};

// A managed domain or an exact peer: LDH labels (IDNA A-labels), 1..63
// characters each, 253 in all.
bool normalize_domain_name(std::string_view text, std::string& out, NameProblem& problem);

// A peer selector: an exact domain, `*.` + domain, an IPv4/IPv6 address or a
// CIDR. Address forms are recognised by their characters (digits and dots
// only, or any `:` or `/`). Its spelling is the table's selector_text()
// (tlsp/decision_table.h).
bool parse_peer_selector(std::string_view text, PeerEntry& out, NameProblem& problem);

}  // namespace tlsp
