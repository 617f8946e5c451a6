// engine_test.cpp — the enforcement engine (SPEC §3–5).
//
// Two kinds of test: the whole fact space enumerated against the security
// invariants (no attacker-controlled fact may push a delivery below the
// configured floor), and hand-written cases pinning each rule of SPEC §4–5.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <random>

#include "tlsp/engine.h"

using namespace tlsp;

namespace {

constexpr Level kLevels[] = {Level::opportunistic, Level::mandatory, Level::dane, Level::dane_only, Level::mta_sts};
constexpr MinTls kMins[] = {MinTls::any, MinTls::tls1_2, MinTls::tls1_3};
constexpr CertStatus kCerts[] = {CertStatus::valid, CertStatus::expired, CertStatus::wrong_name,
                                 CertStatus::self_signed, CertStatus::untrusted};
constexpr DnsStatus kLookup[] = {DnsStatus::secure, DnsStatus::insecure, DnsStatus::bogus, DnsStatus::servfail,
                                 DnsStatus::timeout};
constexpr DnsStatus kTlsaDns[] = {DnsStatus::secure,   DnsStatus::insecure, DnsStatus::bogus,
                                  DnsStatus::servfail, DnsStatus::timeout,  DnsStatus::nxdomain};
constexpr StsFetch kFetch[] = {StsFetch::ok, StsFetch::http_error, StsFetch::bad_cert, StsFetch::timeout,
                               StsFetch::invalid};
constexpr StsMode kModes[] = {StsMode::enforce, StsMode::testing, StsMode::none};

constexpr TlsaKindSet kUsable = tlsa_bit(TlsaKind::dane_ee_match) | tlsa_bit(TlsaKind::dane_ee_mismatch) |
                                tlsa_bit(TlsaKind::dane_ta_match) | tlsa_bit(TlsaKind::dane_ta_mismatch);
// The test's own reading of RFC 7672 §3.1, held against the engine's one mask.
static_assert(kUsable == kUsableTlsaKinds);

TlsVersion highest(TlsVersionSet s) {
  for (int v = 4; v >= 1; --v)
    if (s & version_bit(static_cast<TlsVersion>(v))) return static_cast<TlsVersion>(v);
  return TlsVersion::none;
}

bool delivered(const Outcome& o) { return o.kind != OutcomeKind::refuse; }

// The invariants every outcome must keep. Returns "" or what was broken.
std::string check_invariants(Level level, MinTls min, const PeerFacts& f, const Outcome& o) {
  // Exactly one outcome, and its fields agree with each other.
  if ((o.kind == OutcomeKind::refuse) != (o.channel == Channel::none)) return "refuse <=> channel none";
  if (o.kind == OutcomeKind::refuse && o.tls != TlsVersion::none) return "a refuse carries no TLS version";
  if ((o.channel == Channel::plaintext) && o.tls != TlsVersion::none) return "plaintext with a TLS version";
  if ((o.channel == Channel::encrypted || o.channel == Channel::authenticated) && o.tls == TlsVersion::none)
    return "TLS channel without a version";
  if (o.kind == OutcomeKind::deliver && !(o.applied == level || (level == Level::mta_sts && o.applied == Level::dane)))
    return "deliver must apply the configured level (or DANE for mta-sts)";
  if (o.kind == OutcomeKind::downgrade && static_cast<int>(o.applied) >= static_cast<int>(level))
    return "a downgrade applies a weaker level";
  if (!delivered(o)) return "";

  // Nothing is sent over TLS below the minimum version.
  if (o.channel != Channel::plaintext && o.tls < floor_of(min)) return "TLS below the minimum version";
  // Authentication needs TLS 1.2 or later.
  if (o.channel == Channel::authenticated && o.tls < TlsVersion::tls1_2) return "authenticated below TLS 1.2";
  // A peer that offers STARTTLS but speaks only versions below the minimum
  // is refused, never sent plaintext instead. Plaintext while STARTTLS was
  // offered happens only as the last resort after a broken handshake.
  if (f.starttls && o.channel == Channel::plaintext) {
    if (f.peer_tls != 0) return "plaintext although the peer offered STARTTLS and can do TLS";
    if (!o.last_resort) return "plaintext after a handshake failure must be last-resort";
  }
  // A host that cannot be found safely is never used.
  for (DnsStatus s : {f.mx_dnssec, f.addr_dnssec})
    if (s == DnsStatus::bogus || s == DnsStatus::servfail || s == DnsStatus::timeout) return "host lookup failed";

  const bool secure_usable_tlsa =
      f.addr_dnssec == DnsStatus::secure && f.tlsa_dnssec == DnsStatus::secure && (f.tlsa & kUsable);
  switch (level) {
    case Level::opportunistic: break;
    case Level::mandatory:
      if (o.channel == Channel::plaintext) return "mandatory in plaintext";
      break;
    case Level::dane_only:
      if (o.channel != Channel::authenticated) return "dane-only without DANE authentication";
      if (!secure_usable_tlsa || f.mx_dnssec != DnsStatus::secure) return "dane-only without secure MX and TLSA";
      break;
    case Level::dane:
      if (secure_usable_tlsa && o.channel != Channel::authenticated) return "dane with usable TLSA, unauthenticated";
      if (f.addr_dnssec == DnsStatus::secure &&
          (f.tlsa_dnssec == DnsStatus::bogus || f.tlsa_dnssec == DnsStatus::servfail ||
           f.tlsa_dnssec == DnsStatus::timeout))
        return "dane delivered although the TLSA lookup failed";
      if (f.addr_dnssec == DnsStatus::secure && f.tlsa_dnssec == DnsStatus::secure && f.tlsa != 0 &&
          !(f.tlsa & kUsable) && o.channel == Channel::plaintext)
        return "dane with all-unusable TLSA in plaintext (must be mandatory)";
      break;
    case Level::mta_sts: {
      if (secure_usable_tlsa && o.channel != Channel::authenticated) return "mta-sts host with usable DANE, unauthenticated";
      const bool fresh = f.sts.txt && f.sts.fetch == StsFetch::ok;
      const std::optional<StsMode> mode = fresh ? std::optional<StsMode>(f.sts.mode) : f.sts.cached;
      if (mode == StsMode::enforce && o.channel != Channel::authenticated)
        return "mta-sts enforce (fresh or cached) delivered without validation";
      if (o.channel == Channel::authenticated && !secure_usable_tlsa &&
          (!f.sts.mx_match || f.cert != CertStatus::valid || !f.starttls))
        return "mta-sts authenticated although validation fails";
      break;
    }
  }
  return "";
}

// Every level x minimum x fact combination the level consults; the facts a
// level does not consult are covered by IrrelevantFactsDoNotMatter below.
TEST(EngineFactSpace, InvariantsHoldEverywhere) {
  uint64_t checked = 0;
  std::string first_failure;
  uint64_t failures = 0;
  auto check = [&](Level level, MinTls min, const PeerFacts& f) {
    Outcome o = decide(Direction::outbound, {level, min}, f);
    ++checked;
    std::string broken = check_invariants(level, min, f, o);
    if (!broken.empty() && failures++ == 0) {
      char buf[512];
      std::snprintf(buf, sizeof buf,
                    "%s: level %s min %s starttls %d peer_tls %x cert %s mx %s addr %s tlsa %s/%x sts txt %d fetch %s "
                    "mode %s mx_match %d cached %s -> %s %s %s %s %s",
                    broken.c_str(), std::string(to_string(level)).c_str(), std::string(to_string(min)).c_str(),
                    f.starttls, f.peer_tls, std::string(to_string(f.cert)).c_str(),
                    std::string(to_string(f.mx_dnssec)).c_str(), std::string(to_string(f.addr_dnssec)).c_str(),
                    std::string(to_string(f.tlsa_dnssec)).c_str(), f.tlsa, f.sts.txt,
                    std::string(to_string(f.sts.fetch)).c_str(), std::string(to_string(f.sts.mode)).c_str(),
                    f.sts.mx_match, f.sts.cached ? std::string(to_string(*f.sts.cached)).c_str() : "null",
                    std::string(to_string(o.kind)).c_str(), std::string(to_string(o.channel)).c_str(),
                    std::string(to_string(o.applied)).c_str(), std::string(to_string(o.tls)).c_str(),
                    std::string(to_string(o.reason)).c_str());
      first_failure = buf;
    }
  };

  for (Level level : kLevels)
    for (MinTls min : kMins)
      for (bool starttls : {false, true})
        for (TlsVersionSet peer = 0; peer <= kAllTlsVersions; peer = static_cast<TlsVersionSet>(peer + 2))
          for (CertStatus cert : kCerts)
            for (DnsStatus mx : kLookup)
              for (DnsStatus addr : kLookup) {
                PeerFacts f;
                f.starttls = starttls;
                f.peer_tls = peer;
                f.cert = cert;
                f.mx_dnssec = mx;
                f.addr_dnssec = addr;
                if (level == Level::opportunistic || level == Level::mandatory) {
                  check(level, min, f);
                  continue;
                }
                for (DnsStatus tdns : kTlsaDns) {
                  f.tlsa_dnssec = tdns;
                  // dane and dane-only: every subset of the nine record kinds.
                  if (level != Level::mta_sts) {
                    for (TlsaKindSet recs = 0; recs < (1u << kTlsaKindCount); ++recs) {
                      f.tlsa = recs;
                      check(level, min, f);
                    }
                    continue;
                  }
                  // mta-sts: record sets that differ in what DANE makes of
                  // them, times the whole MTA-STS fact space.
                  const TlsaKindSet kRecordClasses[] = {
                      0,
                      tlsa_bit(TlsaKind::dane_ee_match),
                      tlsa_bit(TlsaKind::dane_ta_match),
                      tlsa_bit(TlsaKind::dane_ee_mismatch) | tlsa_bit(TlsaKind::dane_ta_mismatch),
                      tlsa_bit(TlsaKind::pkix_ee) | tlsa_bit(TlsaKind::bad_length),
                      tlsa_bit(TlsaKind::dane_ee_mismatch) | tlsa_bit(TlsaKind::dane_ta_match) |
                          tlsa_bit(TlsaKind::bad_mtype)};
                  for (TlsaKindSet recs : kRecordClasses) {
                    f.tlsa = recs;
                    for (bool txt : {false, true})
                      for (StsFetch fetch : kFetch)
                        for (StsMode mode : kModes)
                          for (bool mx_match : {false, true})
                            for (int cached = -1; cached < 3; ++cached) {
                              f.sts.txt = txt;
                              f.sts.fetch = fetch;
                              f.sts.mode = mode;
                              f.sts.mx_match = mx_match;
                              f.sts.cached = cached < 0 ? std::nullopt : std::optional(static_cast<StsMode>(cached));
                              check(level, min, f);
                            }
                  }
                }
              }
  std::printf("engine fact space: %llu combinations checked, %llu broke an invariant\n",
              static_cast<unsigned long long>(checked), static_cast<unsigned long long>(failures));
  EXPECT_EQ(failures, 0u) << first_failure;
  EXPECT_GT(checked, 50'000'000u);
}

// peer_tls above steps by 2: bit 0 is TlsVersion::none, never a peer version.
static_assert(version_bit(TlsVersion::tls1_0) == 2);

// Facts a level does not consult must not change its outcome, so the
// enumeration above may leave them out: random facts, each irrelevant
// dimension re-drawn.
TEST(EngineFactSpace, IrrelevantFactsDoNotMatter) {
  std::mt19937 rng(7);
  auto random_facts = [&] {
    PeerFacts f;
    f.starttls = rng() % 2;
    f.peer_tls = static_cast<TlsVersionSet>((rng() % 16) << 1);
    f.cert = kCerts[rng() % 5];
    f.mx_dnssec = kLookup[rng() % 5];
    f.addr_dnssec = kLookup[rng() % 5];
    f.tlsa_dnssec = kTlsaDns[rng() % 6];
    f.tlsa = static_cast<TlsaKindSet>(rng() % 512);
    f.sts.txt = rng() % 2;
    f.sts.fetch = kFetch[rng() % 5];
    f.sts.mode = kModes[rng() % 3];
    f.sts.mx_match = rng() % 2;
    if (rng() % 2) f.sts.cached = kModes[rng() % 3];
    return f;
  };
  for (int i = 0; i < 200000; ++i) {
    PeerFacts f = random_facts();
    PeerFacts g = random_facts();
    // opportunistic and mandatory: no TLSA, no MTA-STS, no certificate.
    for (Level level : {Level::opportunistic, Level::mandatory}) {
      PeerFacts h = f;
      h.tlsa = g.tlsa;
      h.tlsa_dnssec = g.tlsa_dnssec;
      h.sts = g.sts;
      h.cert = g.cert;
      EXPECT_EQ(decide(Direction::outbound, {level, MinTls::any}, f), decide(Direction::outbound, {level, MinTls::any}, h));
    }
    // dane and dane-only: no MTA-STS.
    for (Level level : {Level::dane, Level::dane_only}) {
      PeerFacts h = f;
      h.sts = g.sts;
      EXPECT_EQ(decide(Direction::outbound, {level, MinTls::tls1_2}, f),
                decide(Direction::outbound, {level, MinTls::tls1_2}, h));
    }
    // mta-sts: which unusable kinds and which mismatching kinds are present
    // does not matter, only whether any usable record matches.
    {
      PeerFacts h = f;
      const TlsaKindSet unusable = static_cast<TlsaKindSet>(((1u << kTlsaKindCount) - 1) & ~kUsable);
      if ((f.tlsa & unusable) && (g.tlsa & unusable) && !(f.tlsa & kUsable)) {
        h.tlsa = static_cast<TlsaKindSet>(g.tlsa & unusable);
        EXPECT_EQ(decide(Direction::outbound, {Level::mta_sts, MinTls::any}, f),
                  decide(Direction::outbound, {Level::mta_sts, MinTls::any}, h));
      }
    }
  }
}

TEST(EngineFactSpace, InboundEveryCombination) {
  uint64_t checked = 0;
  for (Level level : {Level::opportunistic, Level::mandatory})
    for (MinTls min : kMins)
      for (bool starttls : {false, true})
        for (TlsVersionSet peer = 0; peer <= kAllTlsVersions; peer = static_cast<TlsVersionSet>(peer + 2)) {
          PeerFacts f;
          f.starttls = starttls;
          f.peer_tls = peer;
          Outcome o = decide(Direction::inbound, {level, min}, f);
          ++checked;
          if (level == Level::mandatory) {
            EXPECT_NE(o.channel, Channel::plaintext);
          }
          if (o.channel == Channel::encrypted) {
            EXPECT_GE(o.tls, floor_of(min));
          }
          if (starttls && peer != 0 && highest(peer) < floor_of(min)) {
            EXPECT_EQ(o.kind, OutcomeKind::refuse);
            EXPECT_EQ(o.reason, Reason::tls_version_too_low);
          }
          EXPECT_NE(o.kind, OutcomeKind::downgrade);
        }
  EXPECT_EQ(checked, 2u * 3 * 2 * 16);
}

// ------------------------------------------------------ pinned rules

PeerFacts modern_peer() {
  PeerFacts f;
  f.starttls = true;
  f.peer_tls = version_bit(TlsVersion::tls1_2) | version_bit(TlsVersion::tls1_3);
  return f;
}

Outcome out(Level level, MinTls min, const PeerFacts& f) { return decide(Direction::outbound, {level, min}, f); }

void expect_outcome(const Outcome& o, OutcomeKind kind, Channel channel, Level applied, TlsVersion tls, Reason reason) {
  EXPECT_EQ(to_string(o.kind), to_string(kind));
  EXPECT_EQ(to_string(o.channel), to_string(channel));
  EXPECT_EQ(to_string(o.applied), to_string(applied));
  EXPECT_EQ(to_string(o.tls), to_string(tls));
  EXPECT_EQ(to_string(o.reason), to_string(reason));
}

TEST(EngineRules, Opportunistic) {
  PeerFacts f = modern_peer();
  expect_outcome(out(Level::opportunistic, MinTls::any, f), OutcomeKind::deliver, Channel::encrypted,
                 Level::opportunistic, TlsVersion::tls1_3, Reason::ok);
  f.starttls = false;
  expect_outcome(out(Level::opportunistic, MinTls::tls1_3, f), OutcomeKind::deliver, Channel::plaintext,
                 Level::opportunistic, TlsVersion::none, Reason::starttls_not_supported);
  f = modern_peer();
  f.peer_tls = version_bit(TlsVersion::tls1_0);
  expect_outcome(out(Level::opportunistic, MinTls::any, f), OutcomeKind::deliver, Channel::encrypted,
                 Level::opportunistic, TlsVersion::tls1_0, Reason::ok);
  expect_outcome(out(Level::opportunistic, MinTls::tls1_2, f), OutcomeKind::refuse, Channel::none,
                 Level::opportunistic, TlsVersion::none, Reason::tls_version_too_low);
  f.peer_tls = 0;
  Outcome o = out(Level::opportunistic, MinTls::tls1_2, f);
  expect_outcome(o, OutcomeKind::deliver, Channel::plaintext, Level::opportunistic, TlsVersion::none,
                 Reason::tls_handshake_failure);
  EXPECT_TRUE(o.last_resort);
}

TEST(EngineRules, Mandatory) {
  PeerFacts f = modern_peer();
  f.cert = CertStatus::self_signed;  // not checked
  expect_outcome(out(Level::mandatory, MinTls::tls1_2, f), OutcomeKind::deliver, Channel::encrypted, Level::mandatory,
                 TlsVersion::tls1_3, Reason::ok);
  f.starttls = false;
  expect_outcome(out(Level::mandatory, MinTls::any, f), OutcomeKind::refuse, Channel::none, Level::mandatory,
                 TlsVersion::none, Reason::starttls_not_supported);
  f = modern_peer();
  f.peer_tls = version_bit(TlsVersion::tls1_2);
  expect_outcome(out(Level::mandatory, MinTls::tls1_3, f), OutcomeKind::refuse, Channel::none, Level::mandatory,
                 TlsVersion::none, Reason::tls_version_too_low);
}

TEST(EngineRules, Dane) {
  PeerFacts f = modern_peer();
  f.tlsa_dnssec = DnsStatus::secure;
  f.tlsa = tlsa_bit(TlsaKind::dane_ee_match);
  f.cert = CertStatus::expired;  // DANE-EE ignores dates and names
  expect_outcome(out(Level::dane, MinTls::any, f), OutcomeKind::deliver, Channel::authenticated, Level::dane,
                 TlsVersion::tls1_3, Reason::ok);
  f.tlsa = tlsa_bit(TlsaKind::dane_ta_match);
  expect_outcome(out(Level::dane, MinTls::any, f), OutcomeKind::refuse, Channel::none, Level::dane, TlsVersion::none,
                 Reason::certificate_expired);
  f.cert = CertStatus::wrong_name;
  expect_outcome(out(Level::dane, MinTls::any, f), OutcomeKind::refuse, Channel::none, Level::dane, TlsVersion::none,
                 Reason::certificate_host_mismatch);
  f.cert = CertStatus::untrusted;  // the TLSA record is the trust anchor
  expect_outcome(out(Level::dane, MinTls::any, f), OutcomeKind::deliver, Channel::authenticated, Level::dane,
                 TlsVersion::tls1_3, Reason::ok);
  f.tlsa = tlsa_bit(TlsaKind::dane_ee_mismatch);
  expect_outcome(out(Level::dane, MinTls::any, f), OutcomeKind::refuse, Channel::none, Level::dane, TlsVersion::none,
                 Reason::validation_failure);
  f.starttls = false;  // STARTTLS stripped: no fallback
  expect_outcome(out(Level::dane, MinTls::any, f), OutcomeKind::refuse, Channel::none, Level::dane, TlsVersion::none,
                 Reason::starttls_not_supported);
  f = modern_peer();
  f.tlsa_dnssec = DnsStatus::secure;
  f.tlsa = tlsa_bit(TlsaKind::pkix_ee) | tlsa_bit(TlsaKind::bad_length);
  expect_outcome(out(Level::dane, MinTls::any, f), OutcomeKind::downgrade, Channel::encrypted, Level::mandatory,
                 TlsVersion::tls1_3, Reason::tlsa_invalid);
  f.tlsa = 0;
  expect_outcome(out(Level::dane, MinTls::any, f), OutcomeKind::downgrade, Channel::encrypted, Level::opportunistic,
                 TlsVersion::tls1_3, Reason::tlsa_not_found);
  f.tlsa_dnssec = DnsStatus::insecure;
  f.tlsa = tlsa_bit(TlsaKind::dane_ee_match);
  expect_outcome(out(Level::dane, MinTls::any, f), OutcomeKind::downgrade, Channel::encrypted, Level::opportunistic,
                 TlsVersion::tls1_3, Reason::tlsa_insecure);
  f.tlsa_dnssec = DnsStatus::servfail;
  expect_outcome(out(Level::dane, MinTls::any, f), OutcomeKind::refuse, Channel::none, Level::dane, TlsVersion::none,
                 Reason::tlsa_lookup_failed);
  f.tlsa_dnssec = DnsStatus::bogus;
  expect_outcome(out(Level::dane, MinTls::any, f), OutcomeKind::refuse, Channel::none, Level::dane, TlsVersion::none,
                 Reason::dnssec_invalid);
  // Insecure MX, secure TLSA for the host: DANE still applies (RFC 7672 §2.2.1).
  f = modern_peer();
  f.mx_dnssec = DnsStatus::insecure;
  f.tlsa_dnssec = DnsStatus::secure;
  f.tlsa = tlsa_bit(TlsaKind::dane_ee_match);
  expect_outcome(out(Level::dane, MinTls::any, f), OutcomeKind::deliver, Channel::authenticated, Level::dane,
                 TlsVersion::tls1_3, Reason::ok);
  // Insecure address answer: the TLSA records do not count.
  f.addr_dnssec = DnsStatus::insecure;
  expect_outcome(out(Level::dane, MinTls::any, f), OutcomeKind::downgrade, Channel::encrypted, Level::opportunistic,
                 TlsVersion::tls1_3, Reason::tlsa_insecure);
  // Authentication needs TLS 1.2 whatever the minimum says.
  f = modern_peer();
  f.peer_tls = version_bit(TlsVersion::tls1_1);
  f.tlsa_dnssec = DnsStatus::secure;
  f.tlsa = tlsa_bit(TlsaKind::dane_ee_match);
  expect_outcome(out(Level::dane, MinTls::any, f), OutcomeKind::refuse, Channel::none, Level::dane, TlsVersion::none,
                 Reason::tls_version_too_low);
}

TEST(EngineRules, DaneOnly) {
  PeerFacts f = modern_peer();
  f.tlsa_dnssec = DnsStatus::secure;
  f.tlsa = tlsa_bit(TlsaKind::dane_ta_match);
  expect_outcome(out(Level::dane_only, MinTls::tls1_2, f), OutcomeKind::deliver, Channel::authenticated,
                 Level::dane_only, TlsVersion::tls1_3, Reason::ok);
  f.mx_dnssec = DnsStatus::insecure;
  expect_outcome(out(Level::dane_only, MinTls::tls1_2, f), OutcomeKind::refuse, Channel::none, Level::dane_only,
                 TlsVersion::none, Reason::dane_required);
  f.mx_dnssec = DnsStatus::secure;
  f.tlsa = tlsa_bit(TlsaKind::pkix_ta);
  expect_outcome(out(Level::dane_only, MinTls::tls1_2, f), OutcomeKind::refuse, Channel::none, Level::dane_only,
                 TlsVersion::none, Reason::tlsa_invalid);
  f.tlsa_dnssec = DnsStatus::nxdomain;
  expect_outcome(out(Level::dane_only, MinTls::tls1_2, f), OutcomeKind::refuse, Channel::none, Level::dane_only,
                 TlsVersion::none, Reason::dane_required);
}

TEST(EngineRules, MtaSts) {
  PeerFacts f = modern_peer();
  f.sts = {true, StsFetch::ok, StsMode::enforce, true, std::nullopt};
  expect_outcome(out(Level::mta_sts, MinTls::tls1_2, f), OutcomeKind::deliver, Channel::authenticated, Level::mta_sts,
                 TlsVersion::tls1_3, Reason::ok);
  f.sts.mx_match = false;
  expect_outcome(out(Level::mta_sts, MinTls::tls1_2, f), OutcomeKind::refuse, Channel::none, Level::mta_sts,
                 TlsVersion::none, Reason::validation_failure);
  f.sts.mx_match = true;
  f.cert = CertStatus::self_signed;
  expect_outcome(out(Level::mta_sts, MinTls::tls1_2, f), OutcomeKind::refuse, Channel::none, Level::mta_sts,
                 TlsVersion::none, Reason::certificate_not_trusted);
  f.sts.mode = StsMode::testing;
  expect_outcome(out(Level::mta_sts, MinTls::tls1_2, f), OutcomeKind::downgrade, Channel::encrypted,
                 Level::opportunistic, TlsVersion::tls1_3, Reason::certificate_not_trusted);
  f.cert = CertStatus::valid;
  f.peer_tls = version_bit(TlsVersion::tls1_1);  // enforce needs 1.2 for authentication
  f.sts.mode = StsMode::enforce;
  expect_outcome(out(Level::mta_sts, MinTls::any, f), OutcomeKind::refuse, Channel::none, Level::mta_sts,
                 TlsVersion::none, Reason::tls_version_too_low);
  // A fetch that fails falls back to the cached policy: enforce stays enforce.
  f = modern_peer();
  f.cert = CertStatus::expired;
  f.sts = {true, StsFetch::timeout, StsMode::none, true, StsMode::enforce};
  expect_outcome(out(Level::mta_sts, MinTls::any, f), OutcomeKind::refuse, Channel::none, Level::mta_sts,
                 TlsVersion::none, Reason::certificate_expired);
  f.sts.cached = std::nullopt;
  expect_outcome(out(Level::mta_sts, MinTls::any, f), OutcomeKind::downgrade, Channel::encrypted,
                 Level::opportunistic, TlsVersion::tls1_3, Reason::sts_policy_fetch_error);
  f.sts.fetch = StsFetch::invalid;
  EXPECT_EQ(out(Level::mta_sts, MinTls::any, f).reason, Reason::sts_policy_invalid);
  f.sts.txt = false;
  EXPECT_EQ(out(Level::mta_sts, MinTls::any, f).reason, Reason::sts_no_policy);
  f.sts = {true, StsFetch::ok, StsMode::none, false, std::nullopt};
  EXPECT_EQ(out(Level::mta_sts, MinTls::any, f).reason, Reason::sts_mode_none);
  // DANE decides when the host has secure usable TLSA (RFC 8461 §2).
  f = modern_peer();
  f.sts = {true, StsFetch::ok, StsMode::testing, true, std::nullopt};
  f.tlsa_dnssec = DnsStatus::secure;
  f.tlsa = tlsa_bit(TlsaKind::dane_ee_mismatch);
  expect_outcome(out(Level::mta_sts, MinTls::any, f), OutcomeKind::refuse, Channel::none, Level::dane,
                 TlsVersion::none, Reason::validation_failure);
}

TEST(EngineRules, FailedLookupsRefuseAtEveryLevel) {
  for (Level level : kLevels)
    for (DnsStatus s : {DnsStatus::bogus, DnsStatus::servfail, DnsStatus::timeout}) {
      PeerFacts f = modern_peer();
      f.mx_dnssec = s;
      EXPECT_EQ(out(level, MinTls::any, f).kind, OutcomeKind::refuse);
      f.mx_dnssec = DnsStatus::insecure;
      f.addr_dnssec = s;
      EXPECT_EQ(out(level, MinTls::any, f).kind, OutcomeKind::refuse);
    }
}

TEST(EngineRules, Inbound) {
  PeerFacts f;
  EXPECT_EQ(decide(Direction::inbound, {Level::opportunistic, MinTls::tls1_2}, f).channel, Channel::plaintext);
  expect_outcome(decide(Direction::inbound, {Level::mandatory, MinTls::any}, f), OutcomeKind::refuse, Channel::none,
                 Level::mandatory, TlsVersion::none, Reason::starttls_required);
  f.starttls = true;
  f.peer_tls = version_bit(TlsVersion::tls1_0) | version_bit(TlsVersion::tls1_1);
  expect_outcome(decide(Direction::inbound, {Level::opportunistic, MinTls::tls1_2}, f), OutcomeKind::refuse,
                 Channel::none, Level::opportunistic, TlsVersion::none, Reason::tls_version_too_low);
  expect_outcome(decide(Direction::inbound, {Level::mandatory, MinTls::any}, f), OutcomeKind::deliver,
                 Channel::encrypted, Level::mandatory, TlsVersion::tls1_1, Reason::ok);
}

// ------------------------------------------- the inbound rule (SPEC §5)

constexpr MatchKind kMatches[] = {MatchKind::exact, MatchKind::wildcard, MatchKind::cidr, MatchKind::default_peer,
                                  MatchKind::default_domain};

Decision decision(Level l, MinTls m, MatchKind k) {
  Decision d;
  d.level = l;
  d.min_tls = m;
  d.match = k;
  return d;
}

// Every pair of rules, every way each lookup can have matched: the sender's
// rule counts only when a domain selector matched it, each part is the
// stricter one, a tie keeps the client address's part, and the result is
// never looser than the address rule.
TEST(InboundRuleCombination, EveryPairOfRulesAndEveryMatch) {
  for (MatchKind am : kMatches)
    for (MatchKind sm : kMatches)
      for (Level al : kLevels)
        for (Level sl : kLevels)
          for (MinTls amin : kMins)
            for (MinTls smin : kMins) {
              const CombinedInboundRule c =
                  combine_inbound_rules(decision(al, amin, am), decision(sl, smin, sm));
              const bool counts = sm == MatchKind::exact || sm == MatchKind::wildcard;
              SCOPED_TRACE(std::string(to_string(am)) + "/" + std::string(to_string(sm)) + " " +
                           std::string(to_string(al)) + "/" + std::string(to_string(sl)) + " " +
                           std::string(to_string(amin)) + "/" + std::string(to_string(smin)));
              EXPECT_EQ(sender_rule_counts(sm), counts);
              EXPECT_EQ(c.rule.level, counts ? std::max(al, sl) : al);
              EXPECT_EQ(c.rule.min_tls, counts ? std::max(amin, smin) : amin);
              EXPECT_EQ(c.level_from, counts && sl > al ? InboundLookup::sender_domain : InboundLookup::client_address);
              EXPECT_EQ(c.min_tls_from,
                        counts && smin > amin ? InboundLookup::sender_domain : InboundLookup::client_address);
              EXPECT_GE(c.rule.level, al);
              EXPECT_GE(c.rule.min_tls, amin);
            }
}

TEST(InboundRuleCombination, TwoMatchedRulesGiveTheSameRuleEitherWayRound) {
  const Decision a = decision(Level::opportunistic, MinTls::tls1_3, MatchKind::exact);
  const Decision b = decision(Level::mandatory, MinTls::any, MatchKind::wildcard);
  EXPECT_EQ(combine_inbound_rules(a, b).rule.level, Level::mandatory);
  EXPECT_EQ(combine_inbound_rules(a, b).rule.min_tls, MinTls::tls1_3);
  EXPECT_EQ(combine_inbound_rules(b, a).rule.level, Level::mandatory);
  EXPECT_EQ(combine_inbound_rules(b, a).rule.min_tls, MinTls::tls1_3);
}

// ------------------------------------- the MTA-STS policy in force (SPEC §4)

TEST(StsPolicyInForce, FreshWhenFetchedElseTheCacheElseNone) {
  for (bool txt : {false, true})
    for (StsFetch fetch : kFetch)
      for (bool cached : {false, true}) {
        const StsPolicySource want = txt && fetch == StsFetch::ok ? StsPolicySource::fresh
                                     : cached                     ? StsPolicySource::cached
                                                                  : StsPolicySource::none;
        EXPECT_EQ(sts_policy_in_force(txt, fetch, cached), want) << txt << " " << to_string(fetch) << " " << cached;
        MtaStsFacts f;
        f.txt = txt;
        f.fetch = fetch;
        if (cached) f.cached = StsMode::enforce;
        EXPECT_EQ(sts_policy_in_force(f), want);
      }
}

// decide() takes the mode from the policy sts_policy_in_force() names.
TEST(StsPolicyInForce, DecideUsesTheModeOfThePolicyInForce) {
  PeerFacts f;
  f.starttls = true;
  f.peer_tls = version_bit(TlsVersion::tls1_3);
  f.cert = CertStatus::self_signed;  // fails MTA-STS validation
  f.sts = {true, StsFetch::ok, StsMode::testing, true, StsMode::enforce};
  EXPECT_EQ(decide(Direction::outbound, {Level::mta_sts, MinTls::any}, f).kind, OutcomeKind::downgrade)
      << "the fresh testing policy, not the cached enforce one";
  f.sts.fetch = StsFetch::timeout;
  EXPECT_EQ(decide(Direction::outbound, {Level::mta_sts, MinTls::any}, f).kind, OutcomeKind::refuse)
      << "the cached enforce policy";
  f.sts.cached.reset();
  EXPECT_EQ(decide(Direction::outbound, {Level::mta_sts, MinTls::any}, f).reason, Reason::sts_policy_fetch_error);
}

TEST(EngineNames, RoundTrip) {
  for (int r = 0; r < kReasonCount; ++r) {
    auto reason = static_cast<Reason>(r);
    EXPECT_EQ(parse_reason(to_string(reason)), reason);
  }
  for (int k = 0; k < kTlsaKindCount; ++k) EXPECT_EQ(parse_tlsa_kind(to_string(static_cast<TlsaKind>(k))), static_cast<TlsaKind>(k));
  EXPECT_FALSE(parse_reason("nonsense"));
}

}  // namespace

// SPEC §4, the MX walk, owned here for the relay (walk_step, host by host)
// and the model (choose_delivery, over every host's outcome at once).
TEST(MxWalk, EachOutcomeSaysWhatHappensToItsHost) {
  using tlsp::Outcome;
  using tlsp::OutcomeKind;
  using tlsp::WalkStep;
  auto o = [](OutcomeKind k, bool last_resort = false) {
    Outcome x;
    x.kind = k;
    x.last_resort = last_resort;
    return x;
  };
  EXPECT_EQ(tlsp::walk_step(o(OutcomeKind::deliver)), WalkStep::take);
  EXPECT_EQ(tlsp::walk_step(o(OutcomeKind::downgrade)), WalkStep::take);
  EXPECT_EQ(tlsp::walk_step(o(OutcomeKind::deliver, true)), WalkStep::set_aside);
  EXPECT_EQ(tlsp::walk_step(o(OutcomeKind::downgrade, true)), WalkStep::set_aside);
  EXPECT_EQ(tlsp::walk_step(o(OutcomeKind::refuse)), WalkStep::next_host);
  EXPECT_EQ(tlsp::walk_step(o(OutcomeKind::refuse, true)), WalkStep::next_host);
  // The walk the relay does, step by step, ends where choose_delivery says.
  const std::vector<std::vector<Outcome>> walks = {
      {},
      {o(OutcomeKind::refuse), o(OutcomeKind::refuse)},
      {o(OutcomeKind::deliver, true), o(OutcomeKind::refuse), o(OutcomeKind::downgrade)},
      {o(OutcomeKind::refuse), o(OutcomeKind::downgrade, true), o(OutcomeKind::deliver, true)},
      {o(OutcomeKind::refuse), o(OutcomeKind::deliver), o(OutcomeKind::deliver)}};
  for (const auto& walk : walks) {
    size_t taken = walk.size(), first_aside = walk.size();
    for (size_t i = 0; i < walk.size() && taken == walk.size(); ++i) {
      if (tlsp::walk_step(walk[i]) == WalkStep::take) taken = i;
      if (tlsp::walk_step(walk[i]) == WalkStep::set_aside && first_aside == walk.size()) first_aside = i;
    }
    const size_t relay = taken != walk.size() ? taken : first_aside != walk.size() ? first_aside : 0;
    EXPECT_EQ(tlsp::choose_delivery(walk), relay) << walk.size();
  }
}
