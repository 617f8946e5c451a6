// engine.cpp — the decision rules of SPEC §3–5, one function per level.
//
// Reading guide: decide() first refuses what no level may deliver (a failed
// MX or address lookup), then hands over to the level's function. The
// building blocks are try_tls() (what a STARTTLS handshake with a version
// floor gives), and three ways of sending: opportunistic(), mandatory() and
// authenticate_dane(); dane, dane-only and mta-sts are compositions of them.
// When a level falls back to a weaker one, the weaker function is called
// with the configured level, so the outcome says `downgrade` and keeps the
// reason for the fallback.
#include "tlsp/engine.h"

#include <algorithm>

namespace tlsp {
namespace {

enum class TlsResult : uint8_t { no_starttls, handshake_failed, version_too_low, ok };

struct TlsAttempt {
  TlsResult result;
  TlsVersion version = TlsVersion::none;
};

// The client offers only versions at or above `floor` (SPEC §4), so a peer
// whose versions are all lower fails for the version, never silently
// succeeds lower.
TlsAttempt try_tls(const PeerFacts& f, TlsVersion floor) {
  if (!f.starttls) return {TlsResult::no_starttls};
  if ((f.peer_tls & kAllTlsVersions) == 0) return {TlsResult::handshake_failed};
  for (int v = static_cast<int>(TlsVersion::tls1_3); v >= static_cast<int>(floor); --v)
    if (f.peer_tls & version_bit(static_cast<TlsVersion>(v))) return {TlsResult::ok, static_cast<TlsVersion>(v)};
  return {TlsResult::version_too_low};
}

constexpr TlsVersion auth_floor(TlsVersion floor) { return std::max(floor, TlsVersion::tls1_2); }

Outcome refuse(Level applied, Reason why) {
  return Outcome{OutcomeKind::refuse, Channel::none, applied, TlsVersion::none, why, false};
}

Outcome sent(Level configured, Level applied, Channel channel, TlsVersion v, Reason why, bool last_resort = false) {
  OutcomeKind kind = applied == configured ? OutcomeKind::deliver : OutcomeKind::downgrade;
  return Outcome{kind, channel, applied, v, why, last_resort};
}

// `because`: the reason reported when this is a fallback from `configured`.
Outcome opportunistic(const PeerFacts& f, TlsVersion floor, Level configured, Reason because) {
  const bool fallback = configured != Level::opportunistic;
  TlsAttempt a = try_tls(f, floor);
  switch (a.result) {
    case TlsResult::no_starttls:
      // RFC 8460's type for it, even though opportunistic then sends.
      return sent(configured, Level::opportunistic, Channel::plaintext, TlsVersion::none,
                  fallback ? because : Reason::starttls_not_supported);
    case TlsResult::ok:
      return sent(configured, Level::opportunistic, Channel::encrypted, a.version, fallback ? because : Reason::ok);
    case TlsResult::version_too_low:
      // Never plaintext instead: "TLS 1.0 is too weak" must not become "no TLS".
      return refuse(Level::opportunistic, Reason::tls_version_too_low);
    case TlsResult::handshake_failed:
      // Plaintext, but only once every other MX host has failed (SPEC §4).
      return sent(configured, Level::opportunistic, Channel::plaintext, TlsVersion::none, Reason::tls_handshake_failure,
                  /*last_resort=*/true);
  }
  return refuse(Level::opportunistic, Reason::tls_handshake_failure);
}

Outcome mandatory(const PeerFacts& f, TlsVersion floor, Level configured, Reason because) {
  TlsAttempt a = try_tls(f, floor);
  switch (a.result) {
    case TlsResult::no_starttls: return refuse(Level::mandatory, Reason::starttls_not_supported);
    case TlsResult::handshake_failed: return refuse(Level::mandatory, Reason::tls_handshake_failure);
    case TlsResult::version_too_low: return refuse(Level::mandatory, Reason::tls_version_too_low);
    case TlsResult::ok:
      return sent(configured, Level::mandatory, Channel::encrypted, a.version,
                  configured == Level::mandatory ? Reason::ok : because);
  }
  return refuse(Level::mandatory, Reason::tls_handshake_failure);
}

// DANE authentication against secure, usable TLSA records (RFC 7672): TLS
// is required and there is no fallback of any kind.
Outcome authenticate_dane(const PeerFacts& f, TlsVersion floor, Level applied) {
  TlsAttempt a = try_tls(f, auth_floor(floor));
  switch (a.result) {
    case TlsResult::no_starttls: return refuse(applied, Reason::starttls_not_supported);
    case TlsResult::handshake_failed: return refuse(applied, Reason::tls_handshake_failure);
    case TlsResult::version_too_low: return refuse(applied, Reason::tls_version_too_low);
    case TlsResult::ok: break;
  }
  // DANE-EE: the key or certificate itself; names and dates are ignored.
  if (f.tlsa & tlsa_bit(TlsaKind::dane_ee_match))
    return Outcome{OutcomeKind::deliver, Channel::authenticated, applied, a.version, Reason::ok, false};
  // DANE-TA: the chain leads to the anchor; the leaf must be in date and
  // name the host.
  if (f.tlsa & tlsa_bit(TlsaKind::dane_ta_match)) {
    if (f.cert == CertStatus::expired) return refuse(applied, Reason::certificate_expired);
    if (f.cert == CertStatus::wrong_name) return refuse(applied, Reason::certificate_host_mismatch);
    return Outcome{OutcomeKind::deliver, Channel::authenticated, applied, a.version, Reason::ok, false};
  }
  return refuse(applied, Reason::validation_failure);
}

enum class TlsaState : uint8_t { usable, all_unusable, none_secure, insecure, bogus, failed };

// What the TLSA answer means for DANE. TLSA records count only when the
// host's address answer was secure too (RFC 7672 §2.2.2).
TlsaState tlsa_state(const PeerFacts& f) {
  if (f.addr_dnssec != DnsStatus::secure) return TlsaState::insecure;
  switch (f.tlsa_dnssec) {
    case DnsStatus::bogus: return TlsaState::bogus;
    case DnsStatus::servfail:
    case DnsStatus::timeout: return TlsaState::failed;
    case DnsStatus::insecure: return TlsaState::insecure;
    case DnsStatus::nxdomain: return TlsaState::none_secure;
    case DnsStatus::secure:
      if (f.tlsa == 0) return TlsaState::none_secure;
      return (f.tlsa & kUsableTlsaKinds) ? TlsaState::usable : TlsaState::all_unusable;
  }
  return TlsaState::failed;
}

Outcome dane(const PeerFacts& f, TlsVersion floor) {
  switch (tlsa_state(f)) {
    case TlsaState::usable: return authenticate_dane(f, floor, Level::dane);
    case TlsaState::all_unusable: return mandatory(f, floor, Level::dane, Reason::tlsa_invalid);
    case TlsaState::none_secure: return opportunistic(f, floor, Level::dane, Reason::tlsa_not_found);
    case TlsaState::insecure: return opportunistic(f, floor, Level::dane, Reason::tlsa_insecure);
    case TlsaState::bogus: return refuse(Level::dane, Reason::dnssec_invalid);
    case TlsaState::failed: return refuse(Level::dane, Reason::tlsa_lookup_failed);
  }
  return refuse(Level::dane, Reason::tlsa_lookup_failed);
}

Outcome dane_only(const PeerFacts& f, TlsVersion floor) {
  // An insecure MX answer lets an attacker name any host, including one
  // with DANE of its own: mandatory DANE refuses it.
  if (f.mx_dnssec != DnsStatus::secure) return refuse(Level::dane_only, Reason::dane_required);
  switch (tlsa_state(f)) {
    case TlsaState::usable: return authenticate_dane(f, floor, Level::dane_only);
    case TlsaState::all_unusable: return refuse(Level::dane_only, Reason::tlsa_invalid);
    case TlsaState::none_secure:
    case TlsaState::insecure: return refuse(Level::dane_only, Reason::dane_required);
    case TlsaState::bogus: return refuse(Level::dane_only, Reason::dnssec_invalid);
    case TlsaState::failed: return refuse(Level::dane_only, Reason::tlsa_lookup_failed);
  }
  return refuse(Level::dane_only, Reason::dane_required);
}

// RFC 8461 §4 validation of one MX host: listed in the policy, STARTTLS, a
// handshake at >= the minimum (and >= 1.2, as for any authentication), and
// a WebPKI-valid certificate naming the host. Returns Reason::ok on success.
Reason sts_validate(const PeerFacts& f, TlsVersion floor, TlsVersion& version) {
  if (!f.sts.mx_match) return Reason::validation_failure;
  TlsAttempt a = try_tls(f, auth_floor(floor));
  switch (a.result) {
    case TlsResult::no_starttls: return Reason::starttls_not_supported;
    case TlsResult::handshake_failed: return Reason::tls_handshake_failure;
    case TlsResult::version_too_low: return Reason::tls_version_too_low;
    case TlsResult::ok: break;
  }
  version = a.version;
  switch (f.cert) {
    case CertStatus::valid: return Reason::ok;
    case CertStatus::expired: return Reason::certificate_expired;
    case CertStatus::wrong_name: return Reason::certificate_host_mismatch;
    case CertStatus::self_signed:
    case CertStatus::untrusted: return Reason::certificate_not_trusted;
  }
  return Reason::certificate_not_trusted;
}

Outcome mta_sts(const PeerFacts& f, TlsVersion floor) {
  // MTA-STS never overrides DANE (RFC 8461 §2): secure usable TLSA decides,
  // and a TLSA lookup that fails is a failure, not an absence.
  switch (tlsa_state(f)) {
    case TlsaState::usable: return authenticate_dane(f, floor, Level::dane);
    case TlsaState::bogus: return refuse(Level::mta_sts, Reason::dnssec_invalid);
    case TlsaState::failed: return refuse(Level::mta_sts, Reason::tlsa_lookup_failed);
    default: break;
  }

  std::optional<StsMode> mode;
  Reason no_policy = Reason::sts_no_policy;
  switch (sts_policy_in_force(f.sts)) {
    case StsPolicySource::fresh: mode = f.sts.mode; break;
    case StsPolicySource::cached: mode = f.sts.cached; break;
    case StsPolicySource::none:
      if (f.sts.txt)
        no_policy = f.sts.fetch == StsFetch::invalid    ? Reason::sts_policy_invalid
                    : f.sts.fetch == StsFetch::bad_cert ? Reason::sts_webpki_invalid
                                                        : Reason::sts_policy_fetch_error;
      break;
  }
  if (!mode) return opportunistic(f, floor, Level::mta_sts, no_policy);
  if (*mode == StsMode::none) return opportunistic(f, floor, Level::mta_sts, Reason::sts_mode_none);

  TlsVersion version = TlsVersion::none;
  Reason why = sts_validate(f, floor, version);
  if (why == Reason::ok)
    return Outcome{OutcomeKind::deliver, Channel::authenticated, Level::mta_sts, version, Reason::ok, false};
  if (*mode == StsMode::enforce) return refuse(Level::mta_sts, why);
  return opportunistic(f, floor, Level::mta_sts, why);  // testing: deliver anyway, report the failure
}

Outcome inbound(RuleInput rule, const PeerFacts& f) {
  // Inbound levels are opportunistic and mandatory; anything stricter (the
  // compiler refuses it) is held to mandatory.
  const Level level = rule.level == Level::opportunistic ? Level::opportunistic : Level::mandatory;
  if (!f.starttls) {
    if (level == Level::opportunistic)
      return Outcome{OutcomeKind::deliver, Channel::plaintext, level, TlsVersion::none, Reason::plaintext_allowed, false};
    return refuse(level, Reason::starttls_required);
  }
  // The server accepts every version in the handshake, so a sender below the
  // minimum is told why (530 naming the version) rather than pushed into a
  // plaintext retry; then the version is checked.
  TlsAttempt a = try_tls(f, TlsVersion::tls1_0);
  if (a.result == TlsResult::handshake_failed) return refuse(level, Reason::tls_handshake_failure);
  if (a.version < floor_of(rule.min_tls)) return refuse(level, Reason::tls_version_too_low);
  return Outcome{OutcomeKind::deliver, Channel::encrypted, level, a.version, Reason::ok, false};
}

}  // namespace

StsPolicySource sts_policy_in_force(bool txt, StsFetch fetch, bool have_cached) {
  if (txt && fetch == StsFetch::ok) return StsPolicySource::fresh;
  return have_cached ? StsPolicySource::cached : StsPolicySource::none;
}

size_t choose_delivery(const std::vector<Outcome>& outcomes) {
  for (size_t i = 0; i < outcomes.size(); ++i)
    if (walk_step(outcomes[i]) == WalkStep::take) return i;
  for (size_t i = 0; i < outcomes.size(); ++i)
    if (walk_step(outcomes[i]) == WalkStep::set_aside) return i;
  return 0;
}

CombinedInboundRule combine_inbound_rules(const Decision& by_client_address, const Decision& by_sender_domain) {
  CombinedInboundRule r;
  r.rule = {by_client_address.level, by_client_address.min_tls};
  if (!sender_rule_counts(by_sender_domain.match)) return r;
  if (by_sender_domain.level > r.rule.level) {
    r.rule.level = by_sender_domain.level;
    r.level_from = InboundLookup::sender_domain;
  }
  if (by_sender_domain.min_tls > r.rule.min_tls) {
    r.rule.min_tls = by_sender_domain.min_tls;
    r.min_tls_from = InboundLookup::sender_domain;
  }
  return r;
}

Outcome decide(Direction direction, RuleInput rule, const PeerFacts& f) {
  if (direction == Direction::inbound) return inbound(rule, f);

  // For every level: a host that cannot be found safely is not used.
  for (DnsStatus s : {f.mx_dnssec, f.addr_dnssec}) {
    if (s == DnsStatus::bogus) return refuse(rule.level, Reason::dnssec_invalid);
    if (s == DnsStatus::servfail || s == DnsStatus::timeout || s == DnsStatus::nxdomain)
      return refuse(rule.level, Reason::mx_lookup_failed);
  }
  const TlsVersion floor = floor_of(rule.min_tls);
  switch (rule.level) {
    case Level::opportunistic: return opportunistic(f, floor, Level::opportunistic, Reason::ok);
    case Level::mandatory: return mandatory(f, floor, Level::mandatory, Reason::ok);
    case Level::dane: return dane(f, floor);
    case Level::dane_only: return dane_only(f, floor);
    case Level::mta_sts: return mta_sts(f, floor);
  }
  return refuse(rule.level, Reason::validation_failure);
}

}  // namespace tlsp
