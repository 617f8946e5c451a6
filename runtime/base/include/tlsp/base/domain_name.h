// domain_name.h — the one rule for domain names in tlsp. Every place that
// takes a name from a policy, a scenario, the command line, an SMTP client,
// a DNS answer or an MTA-STS policy checks it here, so that a name one part
// accepts is never one another part refuses.
//
// The variants, and the RFC that decides each:
//  * check_host_name(): a host or mail domain name (RFC 1123 §2.1, RFC 5321
//    §4.1.2 `Domain`): labels of letters, digits and `-`, 1..63 characters,
//    never beginning or ending with `-`, no `_`; 253 characters in all
//    (255 octets on the wire, RFC 1035 §2.3.4); the last label is not all
//    digits (RFC 3696 §2: that is an address, not a name); a label that
//    begins `xn--` must be a valid IDNA2008 A-label (RFC 5890 §2.3.2.1,
//    checked with libidn2). MX hosts, SMTP address domains, peers,
//    MTA-STS policy domains and scenario hosts are host names.
//  * check_policy_name(): a name an operator writes in a tlsp policy (a
//    managed domain, an exact or wildcard peer): a host name whose labels
//    are also not reserved LDH labels (RFC 5890 §2.3.1: `--` in the third
//    and fourth places belongs to IDNA; outside `xn--` it is a typo or an
//    ACE prefix nobody can decode). Names met on the wire may hold such
//    labels (`r4---sn-x.example` exists), so only this variant refuses them.
//  * check_dns_question_name(): a name the resolver asks for: leading
//    underscore labels (RFC 8552: `_25._tcp.`, `_mta-sts.`, each `_` and a
//    host-name label) before a host name.
//  * check_mx_pattern(): an RFC 8461 §3.2 `mx` value: `*.` (a wildcard for
//    exactly one label) or nothing, then a host name, with no trailing dot
//    (the ABNF's `Domain` has none). RFC 8461 §3.2 asks for A-labels.
//
// Common to all: case does not matter (the normal form is lower case); one
// trailing dot is ignored except where said; any byte >= 0x80 makes the
// name a U-label name, refused with the A-label form as a suggestion
// (UTS #46 non-transitional mapping, as a resolver would look it up).
//
// Contract: each check returns a NameCheck; ok() and `name` holds the
// normal form, or !ok() and `fault` says which rule failed and `problem`
// says it in one line (lower case, user text in backticks). No check
// throws, allocates beyond its result, or depends on the locale.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tlsp {

// RFC 1035 §2.3.4: 63 octets a label, 255 a name on the wire, which is 253
// characters of text without the trailing dot.
inline constexpr size_t kMaxLabelLength = 63;
inline constexpr size_t kMaxDomainNameLength = 253;

enum class NameFault : uint8_t {
  none,
  empty,                // no name at all (also a lone ".")
  too_long,             // more than kMaxDomainNameLength characters
  empty_label,          // "a..b", ".a"
  label_too_long,       // a label of more than kMaxLabelLength characters
  not_ascii,            // a byte >= 0x80: a U-label name (see suggestion)
  bad_character,        // a byte other than a letter, a digit or `-` (`_` too)
  hyphen_at_label_end,  // "-a", "a-"
  reserved_label,       // check_policy_name: `--` at 3-4 outside `xn--`
  bad_a_label,          // `xn--...` that is not a valid IDNA2008 A-label
  numeric_last_label,   // "example.123"
};

struct NameCheck {
  std::string name;  // when ok(): the normal form (lower case, no trailing dot)
  NameFault fault = NameFault::none;
  std::string problem;     // when !ok(): one line, user text in backticks
  std::string label;       // when !ok(): the offending label, if one is to blame
  std::string suggestion;  // not_ascii: the A-label form, when the name has one
  bool ok() const { return fault == NameFault::none; }
  explicit operator bool() const { return ok(); }
};

NameCheck check_host_name(std::string_view text);
NameCheck check_policy_name(std::string_view text);
NameCheck check_dns_question_name(std::string_view text);
NameCheck check_mx_pattern(std::string_view text);

// The name in the A-label form a resolver looks it up by: ASCII names are
// lower-cased, U-labels mapped (UTS #46 non-transitional) and encoded. For
// comparing names (RFC 8461 §4.1 MX matching), not for checking them:
// nothing when libidn2 cannot map the name.
std::optional<std::string> lookup_form(std::string_view text);

// The domain of an address `local@domain` (the last `@`): the host name's
// normal form, or "" when there is no `@`, the local part is empty (`@x`),
// or the domain is not a host name (an address literal `[192.0.2.1]`
// included).
std::string domain_of_address(std::string_view address);

}  // namespace tlsp
