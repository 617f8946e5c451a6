// rollout.cpp — the behaviour catalogue, the decision matrix and the policy
// diff (tlsp/rollout.h).
#include "tlsp/rollout.h"

#include "tlsp/base/address.h"

#include <algorithm>
#include <map>
#include <set>

namespace tlsp {
namespace {

constexpr TlsVersionSet kModern = version_bit(TlsVersion::tls1_2) | version_bit(TlsVersion::tls1_3);

// A well-run peer: STARTTLS, TLS 1.2 and 1.3, a valid certificate, signed
// DNS, no TLSA, no MTA-STS. Each behaviour changes what it is about.
PeerFacts healthy() {
  PeerFacts f;
  f.starttls = true;
  f.peer_tls = kModern;
  f.cert = CertStatus::valid;
  f.mx_dnssec = DnsStatus::secure;
  f.addr_dnssec = DnsStatus::secure;
  f.tlsa_dnssec = DnsStatus::nxdomain;
  return f;
}

PeerFacts with_tlsa(PeerFacts f, DnsStatus dnssec, TlsaKindSet records) {
  f.tlsa_dnssec = dnssec;
  f.tlsa = records;
  return f;
}

PeerFacts with_sts(PeerFacts f, bool txt, StsFetch fetch, StsMode mode, bool mx_match,
                   std::optional<StsMode> cached = std::nullopt) {
  f.sts = {txt, fetch, mode, mx_match, cached};
  return f;
}

template <typename F>
PeerFacts changed(F&& change) {
  PeerFacts f = healthy();
  change(f);
  return f;
}

std::vector<PeerBehaviour> build_catalogue() {
  const auto ee = tlsa_bit(TlsaKind::dane_ee_match);
  const auto ta = tlsa_bit(TlsaKind::dane_ta_match);
  const auto S = DnsStatus::secure;
  using SF = StsFetch;
  using SM = StsMode;
  const auto out = Direction::outbound;
  const auto in = Direction::inbound;
  return {
      {"modern", "STARTTLS, TLS 1.2 and 1.3, valid certificate, signed DNS, no TLSA, no MTA-STS", out, healthy()},
      {"tls1.2-only", "speaks TLS 1.2 only", out, changed([](PeerFacts& f) { f.peer_tls = version_bit(TlsVersion::tls1_2); })},
      {"tls1.1-only", "a legacy stack: TLS 1.1 only", out, changed([](PeerFacts& f) { f.peer_tls = version_bit(TlsVersion::tls1_1); })},
      {"tls1.0-only", "a legacy stack: TLS 1.0 only", out, changed([](PeerFacts& f) { f.peer_tls = version_bit(TlsVersion::tls1_0); })},
      {"no-starttls", "does not offer STARTTLS", out, changed([](PeerFacts& f) { f.starttls = false; })},
      {"handshake-failure", "offers STARTTLS, but every handshake fails", out, changed([](PeerFacts& f) { f.peer_tls = 0; })},
      {"cert-expired", "expired certificate", out, changed([](PeerFacts& f) { f.cert = CertStatus::expired; })},
      {"cert-wrong-name", "certificate for another name", out, changed([](PeerFacts& f) { f.cert = CertStatus::wrong_name; })},
      {"cert-self-signed", "self-signed certificate", out, changed([](PeerFacts& f) { f.cert = CertStatus::self_signed; })},
      {"cert-untrusted", "certificate from a CA outside the trust store", out, changed([](PeerFacts& f) { f.cert = CertStatus::untrusted; })},
      {"mx-insecure", "unsigned MX answer, no TLSA", out, changed([](PeerFacts& f) { f.mx_dnssec = DnsStatus::insecure; })},
      {"mx-bogus", "MX answer fails DNSSEC validation", out, changed([](PeerFacts& f) { f.mx_dnssec = DnsStatus::bogus; })},
      {"mx-servfail", "MX lookup SERVFAIL", out, changed([](PeerFacts& f) { f.mx_dnssec = DnsStatus::servfail; })},
      {"mx-timeout", "MX lookup times out", out, changed([](PeerFacts& f) { f.mx_dnssec = DnsStatus::timeout; })},
      {"dane-ee-match", "secure DANE-EE record matching the certificate", out, with_tlsa(healthy(), S, ee)},
      {"dane-ee-mismatch", "secure DANE-EE record not matching", out, with_tlsa(healthy(), S, tlsa_bit(TlsaKind::dane_ee_mismatch))},
      {"dane-ta-match", "secure DANE-TA record matching the issuing CA", out, with_tlsa(healthy(), S, ta)},
      {"dane-ta-mismatch", "secure DANE-TA record matching nothing in the chain", out, with_tlsa(healthy(), S, tlsa_bit(TlsaKind::dane_ta_mismatch))},
      {"dane-ta-match-expired", "DANE-TA matches, the leaf is expired", out,
       with_tlsa(changed([](PeerFacts& f) { f.cert = CertStatus::expired; }), S, ta)},
      {"dane-ta-match-wrong-name", "DANE-TA matches, the leaf names another host", out,
       with_tlsa(changed([](PeerFacts& f) { f.cert = CertStatus::wrong_name; }), S, ta)},
      {"dane-ee-match-self-signed", "DANE-EE matches a self-signed certificate", out,
       with_tlsa(changed([](PeerFacts& f) { f.cert = CertStatus::self_signed; }), S, ee)},
      {"tlsa-all-unusable", "secure TLSA, only PKIX usages (0/1)", out,
       with_tlsa(healthy(), S, tlsa_bit(TlsaKind::pkix_ee) | tlsa_bit(TlsaKind::pkix_ta))},
      {"tlsa-malformed", "secure TLSA, digest of the wrong length", out, with_tlsa(healthy(), S, tlsa_bit(TlsaKind::bad_length))},
      {"tlsa-bad-params", "secure TLSA, unsupported selector and matching type", out,
       with_tlsa(healthy(), S, tlsa_bit(TlsaKind::bad_selector) | tlsa_bit(TlsaKind::bad_mtype))},
      {"tlsa-insecure", "TLSA matching, but in an unsigned zone", out, with_tlsa(healthy(), DnsStatus::insecure, ee)},
      {"tlsa-servfail", "TLSA lookup SERVFAIL", out, with_tlsa(healthy(), DnsStatus::servfail, 0)},
      {"tlsa-timeout", "TLSA lookup times out", out, with_tlsa(healthy(), DnsStatus::timeout, 0)},
      {"tlsa-bogus", "TLSA answer fails DNSSEC validation", out, with_tlsa(healthy(), DnsStatus::bogus, 0)},
      {"dane-starttls-stripped", "DANE-EE published, STARTTLS stripped by an attacker", out,
       with_tlsa(changed([](PeerFacts& f) { f.starttls = false; }), S, ee)},
      {"dane-tls1.1-only", "DANE-EE published, the host speaks TLS 1.1 only", out,
       with_tlsa(changed([](PeerFacts& f) { f.peer_tls = version_bit(TlsVersion::tls1_1); }), S, ee)},
      {"dane-mx-insecure", "unsigned MX answer, the host's TLSA is secure and matches", out,
       with_tlsa(changed([](PeerFacts& f) { f.mx_dnssec = DnsStatus::insecure; }), S, ee)},
      {"dane-addr-insecure", "TLSA secure and matching, the host's address unsigned", out,
       with_tlsa(changed([](PeerFacts& f) { f.addr_dnssec = DnsStatus::insecure; }), S, ee)},
      {"sts-enforce-pass", "MTA-STS enforce, MX listed, valid certificate", out, with_sts(healthy(), true, SF::ok, SM::enforce, true)},
      {"sts-enforce-mx-mismatch", "MTA-STS enforce, MX host not in the policy", out, with_sts(healthy(), true, SF::ok, SM::enforce, false)},
      {"sts-enforce-bad-cert", "MTA-STS enforce, self-signed certificate", out,
       with_sts(changed([](PeerFacts& f) { f.cert = CertStatus::self_signed; }), true, SF::ok, SM::enforce, true)},
      {"sts-enforce-expired", "MTA-STS enforce, expired certificate", out,
       with_sts(changed([](PeerFacts& f) { f.cert = CertStatus::expired; }), true, SF::ok, SM::enforce, true)},
      {"sts-enforce-tls1.1", "MTA-STS enforce, the host speaks TLS 1.1 only", out,
       with_sts(changed([](PeerFacts& f) { f.peer_tls = version_bit(TlsVersion::tls1_1); }), true, SF::ok, SM::enforce, true)},
      {"sts-enforce-starttls-stripped", "MTA-STS enforce, STARTTLS stripped", out,
       with_sts(changed([](PeerFacts& f) { f.starttls = false; }), true, SF::ok, SM::enforce, true)},
      {"sts-testing-pass", "MTA-STS testing, validation passes", out, with_sts(healthy(), true, SF::ok, SM::testing, true)},
      {"sts-testing-fail", "MTA-STS testing, certificate for another name", out,
       with_sts(changed([](PeerFacts& f) { f.cert = CertStatus::wrong_name; }), true, SF::ok, SM::testing, true)},
      {"sts-mode-none", "MTA-STS policy in mode none", out, with_sts(healthy(), true, SF::ok, SM::none, true)},
      {"sts-no-txt", "no _mta-sts TXT record, nothing cached", out, with_sts(healthy(), false, SF::ok, SM::none, true)},
      {"sts-fetch-404", "TXT present, policy fetch returns 404, nothing cached", out, with_sts(healthy(), true, SF::http_error, SM::none, true)},
      {"sts-fetch-timeout", "TXT present, policy fetch times out, nothing cached", out, with_sts(healthy(), true, SF::timeout, SM::none, true)},
      {"sts-fetch-404-cached-enforce", "fetch 404, cached enforce policy, self-signed certificate", out,
       with_sts(changed([](PeerFacts& f) { f.cert = CertStatus::self_signed; }), true, SF::http_error, SM::none, true, SM::enforce)},
      {"sts-fetch-timeout-cached-enforce", "fetch times out, cached enforce policy, valid certificate", out,
       with_sts(healthy(), true, SF::timeout, SM::none, true, SM::enforce)},
      {"sts-txt-stripped-cached-enforce", "TXT record suppressed, cached enforce policy, STARTTLS stripped", out,
       with_sts(changed([](PeerFacts& f) { f.starttls = false; }), false, SF::ok, SM::none, true, SM::enforce)},
      {"sts-invalid-policy", "the policy body is invalid, nothing cached", out, with_sts(healthy(), true, SF::invalid, SM::none, true)},
      {"sts-policy-host-bad-cert", "the policy host's certificate is invalid, nothing cached", out,
       with_sts(healthy(), true, SF::bad_cert, SM::none, true)},
      {"sts-enforce-with-dane-mismatch", "MTA-STS enforce passes, but secure DANE-EE does not match", out,
       with_tlsa(with_sts(healthy(), true, SF::ok, SM::enforce, true), S, tlsa_bit(TlsaKind::dane_ee_mismatch))},

      {"in-plaintext", "the client sends without STARTTLS", in, changed([](PeerFacts& f) { f.starttls = false; })},
      {"in-tls1.3", "the client uses STARTTLS, TLS 1.3", in, changed([](PeerFacts& f) { f.peer_tls = version_bit(TlsVersion::tls1_3); })},
      {"in-tls1.2", "the client uses STARTTLS, TLS 1.2", in, changed([](PeerFacts& f) { f.peer_tls = version_bit(TlsVersion::tls1_2); })},
      {"in-tls1.1", "the client uses STARTTLS, TLS 1.1", in, changed([](PeerFacts& f) { f.peer_tls = version_bit(TlsVersion::tls1_1); })},
      {"in-tls1.0", "the client uses STARTTLS, TLS 1.0", in, changed([](PeerFacts& f) { f.peer_tls = version_bit(TlsVersion::tls1_0); })},
      {"in-handshake-failure", "the client's handshake fails", in, changed([](PeerFacts& f) { f.peer_tls = 0; })},
  };
}

// A query that reaches exactly this selector: the name itself, a name just
// below a wildcard, a CIDR's network address.
std::string query_for(const PeerEntry& e) {
  switch (e.kind) {
    case SelectorKind::exact: return e.name;
    case SelectorKind::wildcard: return "any." + e.name;
    case SelectorKind::cidr_v4:
    case SelectorKind::cidr_v6: {
      base::IpAddress network;
      network.v6 = e.kind == SelectorKind::cidr_v6;
      network.bytes = e.address;
      return base::address_text(network);
    }
  }
  return e.name;
}

constexpr std::string_view kDefaultDomain = "(default domain)";
constexpr std::string_view kDefaultPeer = "(default peer)";
// Names that no policy can list (.invalid is reserved, RFC 2606).
constexpr std::string_view kUnlistedDomain = "unlisted-domain.invalid";
constexpr std::string_view kUnlistedPeer = "unlisted-peer.invalid";

void add_points(std::vector<PolicyPoint>& out, const DomainRules& d, bool is_default) {
  const std::string domain = is_default ? std::string(kDefaultDomain) : d.name;
  const std::string query_domain = is_default ? std::string(kUnlistedDomain) : d.name;
  for (Direction dir : {Direction::outbound, Direction::inbound}) {
    out.push_back({dir, domain, std::string(kDefaultPeer), query_domain, std::string(kUnlistedPeer)});
    for (const PeerEntry& p : d.dir(dir).peers) out.push_back({dir, domain, selector_text(p), query_domain, query_for(p)});
  }
}

Outcome evaluate(const Decision& rule, const PeerBehaviour& b) {
  return decide(b.direction, {rule.level, rule.min_tls}, b.facts);
}

}  // namespace

const std::vector<PeerBehaviour>& behaviour_catalogue() {
  static const std::vector<PeerBehaviour> catalogue = build_catalogue();
  return catalogue;
}

std::vector<PolicyPoint> policy_points(const TableContent& content) {
  std::vector<PolicyPoint> out;
  std::vector<const DomainRules*> domains;
  for (const auto& d : content.domains) domains.push_back(&d);
  std::sort(domains.begin(), domains.end(), [](auto* a, auto* b) { return a->name < b->name; });
  for (const auto* d : domains) add_points(out, *d, false);
  add_points(out, content.default_domain, true);
  return out;
}

std::vector<MatrixRow> decision_matrix(const DecisionTable& table) {
  std::vector<MatrixRow> rows;
  for (PolicyPoint& p : policy_points(table.decode())) {
    MatrixRow row;
    row.rule = table.lookup(p.direction, p.query_domain, p.query_peer);
    for (const PeerBehaviour& b : behaviour_catalogue())
      if (b.direction == p.direction) row.cells.push_back({&b, evaluate(row.rule, b)});
    row.point = std::move(p);
    rows.push_back(std::move(row));
  }
  return rows;
}

PolicyDiff diff_policies(const DecisionTable& old_table, const DecisionTable& new_table) {
  // The union of both policies' points, each once, in a stable order.
  std::map<std::tuple<int, std::string, std::string>, PolicyPoint> points;
  for (const DecisionTable* t : {&old_table, &new_table})
    for (PolicyPoint& p : policy_points(t->decode()))
      points.emplace(std::tuple(static_cast<int>(p.direction), p.domain, p.peer), std::move(p));

  PolicyDiff diff;
  diff.points = points.size();
  for (const auto& [key, p] : points) {
    Decision old_rule = old_table.lookup(p.direction, p.query_domain, p.query_peer);
    Decision new_rule = new_table.lookup(p.direction, p.query_domain, p.query_peer);
    for (const PeerBehaviour& b : behaviour_catalogue()) {
      if (b.direction != p.direction) continue;
      ++diff.evaluated;
      Outcome before = evaluate(old_rule, b);
      Outcome after = evaluate(new_rule, b);
      if (before == after) continue;
      diff.changes.push_back({p, &b, old_rule, new_rule, before, after});
    }
  }
  return diff;
}

std::string describe(const Outcome& o) {
  std::string s(to_string(o.kind));
  if (o.kind != OutcomeKind::refuse) {
    s += " ";
    s += to_string(o.channel);
    if (o.tls != TlsVersion::none) {
      s += " ";
      s += to_string(o.tls);
    }
  }
  s += " (";
  s += to_string(o.applied);
  if (o.reason != Reason::ok) {
    s += ", ";
    s += to_string(o.reason);
  }
  s += ")";
  return s;
}

}  // namespace tlsp
