// tlsp/engine.h — the enforcement engine: what happens to one delivery
// attempt (SPEC §3–5). The single source of truth: the relay and the
// simulator both call decide(); nothing else decides.
//
// Contract: decide() is a pure function of the rule and the observed facts
// (no I/O, no clock, no allocation) and always returns exactly one outcome:
//  * deliver    sent at the configured level;
//  * downgrade  sent, but at a weaker level than configured (applied names it);
//  * refuse     not sent to this host (the message stays queued).
// Whatever the facts, an active attacker cannot push a delivery below the
// configured floor: tests/engine/engine_test.cpp enumerates the fact space and
// checks the invariants listed there.
//
// One call is one attempt to one MX host (outbound) or one SMTP session
// (inbound). Walking MX hosts in preference order is the caller's job, with
// one rule from here: an outcome with `last_resort` set (the plaintext retry
// of an opportunistic host whose TLS handshake failed) may be used only
// when no other host delivers.
//
// Two decisions callers would otherwise make around decide() live here too,
// so the relay and the simulator cannot differ on them: which inbound rule
// applies when the client's address and the sender's domain both have one
// (combine_inbound_rules(), SPEC §5), and which MTA-STS policy is in force
// (sts_policy_in_force(), SPEC §4).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>
#include <string_view>

#include "tlsp/policy_model.h"

namespace tlsp {

enum class TlsVersion : uint8_t { none = 0, tls1_0 = 1, tls1_1 = 2, tls1_2 = 3, tls1_3 = 4 };

// A set of TLS versions, bit (1 << TlsVersion) for each.
using TlsVersionSet = uint8_t;
constexpr TlsVersionSet version_bit(TlsVersion v) { return static_cast<TlsVersionSet>(1u << static_cast<int>(v)); }
constexpr TlsVersionSet kAllTlsVersions = version_bit(TlsVersion::tls1_0) | version_bit(TlsVersion::tls1_1) |
                                          version_bit(TlsVersion::tls1_2) | version_bit(TlsVersion::tls1_3);

// The certificate the peer presents, as the WebPKI sees it.
enum class CertStatus : uint8_t { valid, expired, wrong_name, self_signed, untrusted };

// The result of one DNS lookup: validated (secure), unsigned (insecure),
// failed validation (bogus), or failed (servfail, timeout). nxdomain: the
// name or the record type does not exist (for TLSA: no records).
enum class DnsStatus : uint8_t { secure, insecure, bogus, servfail, timeout, nxdomain };

// The kinds of TLSA record a host can publish, as far as the decision is
// concerned (the relay classifies real records into these).
enum class TlsaKind : uint8_t {
  dane_ee_match,     // usage 3, matches the leaf
  dane_ee_mismatch,  // usage 3, does not
  dane_ta_match,     // usage 2, matches a CA certificate in the chain
  dane_ta_mismatch,  // usage 2, matches nothing in the chain
  pkix_ee,           // usage 1: not used for SMTP (RFC 7672 §3.1.3)
  pkix_ta,           // usage 0: likewise
  bad_selector,      // unsupported selector
  bad_mtype,         // unsupported matching type
  bad_length,        // digest of the wrong length, malformed data
};
inline constexpr int kTlsaKindCount = 9;
using TlsaKindSet = uint16_t;
constexpr TlsaKindSet tlsa_bit(TlsaKind k) { return static_cast<TlsaKindSet>(1u << static_cast<int>(k)); }

// The kinds that are usable for SMTP DANE (RFC 7672 §3.1: usage 2 or 3, a
// supported selector and matching type), matched or not; every other kind
// is unusable. The one definition: decide() and the relay's pre-handshake
// view of the records both use it.
inline constexpr TlsaKindSet kUsableTlsaKinds = tlsa_bit(TlsaKind::dane_ee_match) | tlsa_bit(TlsaKind::dane_ee_mismatch) |
                                                tlsa_bit(TlsaKind::dane_ta_match) | tlsa_bit(TlsaKind::dane_ta_mismatch);

enum class StsFetch : uint8_t { ok, http_error, bad_cert, timeout, invalid };
enum class StsMode : uint8_t { enforce, testing, none };

struct MtaStsFacts {
  bool txt = false;                   // `_mta-sts` TXT record present (v=STSv1)
  StsFetch fetch = StsFetch::timeout; // the policy fetch (when txt)
  StsMode mode = StsMode::none;       // the fetched policy's mode (fetch == ok)
  bool mx_match = false;              // this MX host matches the policy in force
  std::optional<StsMode> cached;      // an unexpired cached policy's mode
};

// SPEC §4: the policy in force is the fresh one when the TXT record is
// there and the fetch succeeded, else the unexpired cached one, else none.
// (A TXT id naming the cached policy counts as a successful fetch: the
// cached policy is then the fresh one.) Whoever turns a discovery into
// facts (the relay, the simulator) picks the MX patterns of the policy
// this names, and decide() takes the mode from it.
enum class StsPolicySource : uint8_t { fresh, cached, none };
StsPolicySource sts_policy_in_force(bool txt, StsFetch fetch, bool have_cached);
inline StsPolicySource sts_policy_in_force(const MtaStsFacts& f) {
  return sts_policy_in_force(f.txt, f.fetch, f.cached.has_value());
}

struct PeerFacts {
  // The peer offers STARTTLS (outbound), or the client used it (inbound).
  bool starttls = false;
  // The versions the peer can negotiate; empty: its handshake fails
  // whatever the version (broken stack, cipher mismatch, reset).
  TlsVersionSet peer_tls = 0;
  CertStatus cert = CertStatus::valid;
  DnsStatus mx_dnssec = DnsStatus::secure;    // the MX answer (or implicit MX)
  DnsStatus addr_dnssec = DnsStatus::secure;  // the MX host's A/AAAA answer
  DnsStatus tlsa_dnssec = DnsStatus::nxdomain;
  TlsaKindSet tlsa = 0;                       // the TLSA records (secure answers only count)
  MtaStsFacts sts;
};

enum class OutcomeKind : uint8_t { deliver, downgrade, refuse };
enum class Channel : uint8_t { plaintext, encrypted, authenticated, none };

// Why. Where RFC 8460 (TLSRPT) has a result type, the code is that type;
// the others are tlsp's own (docs/engine.md lists them all).
enum class Reason : uint8_t {
  ok,                        // delivered as configured over TLS
  starttls_not_supported,    // RFC 8460: the peer does not offer STARTTLS
  certificate_host_mismatch, // RFC 8460
  certificate_expired,       // RFC 8460
  certificate_not_trusted,   // RFC 8460
  validation_failure,        // RFC 8460: DANE or MTA-STS validation failed (no match, MX not in policy)
  tlsa_invalid,              // RFC 8460: every TLSA record unusable
  dnssec_invalid,            // RFC 8460: a bogus DNSSEC answer
  dane_required,             // RFC 8460: dane-only without secure TLSA (or with an insecure MX)
  sts_policy_fetch_error,    // RFC 8460
  sts_policy_invalid,        // RFC 8460
  sts_webpki_invalid,        // RFC 8460: the policy host's certificate
  mx_lookup_failed,          // the MX or address lookup failed (SERVFAIL, timeout)
  tlsa_lookup_failed,        // the TLSA lookup failed (SERVFAIL, timeout)
  tls_handshake_failure,     // the handshake failed for a reason other than the version
  tls_version_too_low,       // the peer only speaks versions below the minimum
  starttls_required,         // inbound: a mandatory peer sent mail without STARTTLS
  tlsa_not_found,            // dane: no TLSA records (secure NXDOMAIN/NODATA)
  tlsa_insecure,             // dane: the TLSA or address answer is unsigned
  sts_no_policy,             // mta-sts: no TXT record and nothing cached
  sts_mode_none,             // mta-sts: the policy's mode is none
  plaintext_allowed,         // inbound opportunistic: the client sent without STARTTLS
};
inline constexpr int kReasonCount = 22;

struct Outcome {
  OutcomeKind kind = OutcomeKind::refuse;
  Channel channel = Channel::none;
  Level applied = Level::opportunistic;  // the level actually applied
  TlsVersion tls = TlsVersion::none;     // negotiated version (none: plaintext or refused)
  Reason reason = Reason::ok;
  bool last_resort = false;              // see the file comment
  friend bool operator==(const Outcome&, const Outcome&) = default;
};

struct RuleInput {
  Level level = Level::opportunistic;
  MinTls min_tls = MinTls::any;
  friend bool operator==(const RuleInput&, const RuleInput&) = default;
};

Outcome decide(Direction direction, RuleInput rule, const PeerFacts& facts);

// SPEC §5, the inbound rule. An inbound session is looked up twice in the
// table: with the client's address and with the sender's envelope domain.
// The address rule always counts (its list's default peer included). The
// envelope domain is only the client's claim, so its rule counts only when
// a domain selector (exact or wildcard) matched it, and then only to
// tighten: each part is the stricter of the two (higher level, higher
// minimum), a tie keeping the address rule's part. A sender that matches
// nothing adds nothing, and neither does an address literal in MAIL FROM
// (`c@[192.0.2.7]`) that falls in a CIDR selector: CIDR selectors name the
// connecting client (SPEC §2), which the envelope cannot claim to be. So a
// forged MAIL FROM can tighten, never loosen, and an address exception can
// loosen the default peer.
enum class InboundLookup : uint8_t { client_address = 0, sender_domain = 1 };
struct CombinedInboundRule {
  RuleInput rule;
  InboundLookup level_from = InboundLookup::client_address;
  InboundLookup min_tls_from = InboundLookup::client_address;
  friend bool operator==(const CombinedInboundRule&, const CombinedInboundRule&) = default;
};
// Whether a sender-domain lookup that matched this way has a rule that counts.
constexpr bool sender_rule_counts(MatchKind m) { return m == MatchKind::exact || m == MatchKind::wildcard; }
CombinedInboundRule combine_inbound_rules(const Decision& by_client_address, const Decision& by_sender_domain);

// SPEC §4, the MX walk: the hosts of a destination are tried in MX
// preference order and each outcome says what happens to that host. One
// that sends (deliver or downgrade) and is not a last resort takes the
// mail; a last-resort outcome (`last_resort`: plaintext after a broken
// handshake) sets its host aside, to be used only after every other host
// failed, in the order they were set aside; a refusal moves on to the next
// host. The relay walks with walk_step() as it connects; the model, which
// knows every host's outcome at once, asks choose_delivery(), the same rule.
enum class WalkStep : uint8_t { take, set_aside, next_host };
constexpr WalkStep walk_step(const Outcome& o) {
  if (o.kind == OutcomeKind::refuse) return WalkStep::next_host;
  return o.last_resort ? WalkStep::set_aside : WalkStep::take;
}
// The outcome that stands among every host's, in MX order: the first that
// takes the mail; else the first set aside; else, when every host refuses,
// the first host's refusal (the most preferred host's reason is the one
// worth reading). 0 for no outcomes.
size_t choose_delivery(const std::vector<Outcome>& outcomes_in_mx_order);

// The spellings of the enums above, in their order: the only place they
// are written (to_string and parse_* below, and the scenario checker's help
// texts, read them here).
inline constexpr std::array<std::string_view, 5> kTlsVersionNames = {"none", "tls1.0", "tls1.1", "tls1.2", "tls1.3"};
inline constexpr std::array<std::string_view, 5> kCertStatusNames = {"valid", "expired", "wrong-name", "self-signed",
                                                                     "untrusted"};
inline constexpr std::array<std::string_view, 6> kDnsStatusNames = {"secure",   "insecure", "bogus",
                                                                    "servfail", "timeout",  "nxdomain"};
inline constexpr std::array<std::string_view, 5> kStsFetchNames = {"ok", "http-error", "bad-cert", "timeout", "invalid"};
inline constexpr std::array<std::string_view, 3> kStsModeNames = {"enforce", "testing", "none"};
inline constexpr std::array<std::string_view, 3> kOutcomeNames = {"deliver", "downgrade", "refuse"};
inline constexpr std::array<std::string_view, 4> kChannelNames = {"plaintext", "encrypted", "authenticated", "none"};

std::string_view to_string(TlsVersion v);
std::string_view to_string(CertStatus c);
std::string_view to_string(DnsStatus s);
std::string_view to_string(TlsaKind k);
std::string_view to_string(StsFetch f);
std::string_view to_string(StsMode m);
std::string_view to_string(OutcomeKind o);
std::string_view to_string(Channel c);
std::string_view to_string(Reason r);

std::optional<TlsVersion> parse_tls_version(std::string_view s);
std::optional<CertStatus> parse_cert_status(std::string_view s);
std::optional<DnsStatus> parse_dns_status(std::string_view s);
std::optional<TlsaKind> parse_tlsa_kind(std::string_view s);
std::optional<StsFetch> parse_sts_fetch(std::string_view s);
std::optional<StsMode> parse_sts_mode(std::string_view s);
std::optional<OutcomeKind> parse_outcome(std::string_view s);
std::optional<Channel> parse_channel(std::string_view s);
std::optional<Reason> parse_reason(std::string_view s);

// The lowest version a rule's minimum allows.
constexpr TlsVersion floor_of(MinTls m) {
  return m == MinTls::tls1_3 ? TlsVersion::tls1_3 : m == MinTls::tls1_2 ? TlsVersion::tls1_2 : TlsVersion::tls1_0;
}

}  // namespace tlsp
