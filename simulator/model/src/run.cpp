// run.cpp — run_scenario(): one scenario replayed against a decision table.
//
// The order of work, as a delivery would do it:
//   rule      look the rule up in the table (two lookups inbound,
//             combined by inbound_rule(): SPEC §5);
//   facts     turn the scripted DNS answers, MTA-STS discovery and host
//             behaviour into the engine's PeerFacts, per MX host;
//   decide    call the engine once per host (or for the one client);
//   walk      pick the outcome that stands, in MX order (choose_delivery).
// Nothing here judges TLS: every outcome comes from decide().
#include <algorithm>

#include "tlsp/mta_sts.h"
#include "tlsp/simulator.h"

namespace tlsp::sim {
namespace {

// An omitted DNSSEC status follows its parent answer: the MX host's address
// usually sits in the zone of the MX answer, and `_25._tcp.<host>` in the
// host's zone. Only secure and insecure are inherited; a parent that failed
// already refuses the host, whatever the child says.
DnsStatus inherited(DnsStatus parent) { return parent == DnsStatus::secure ? DnsStatus::secure : DnsStatus::insecure; }

// The recipient domain's MTA-STS as a sender would discover it: the facts
// common to every MX host, and the mx patterns of the policy in force
// (nullopt: a cached policy whose patterns the scenario did not give, taken
// to list every MX host).
struct StsDiscovery {
  MtaStsFacts facts;
  std::optional<std::vector<std::string>> patterns;
};

StsDiscovery discover_sts(const MtaStsScript& sts, std::vector<std::string>* notes) {
  auto note = [&](std::string s) {
    if (notes) notes->push_back(std::move(s));
  };
  StsDiscovery d;
  std::optional<MtaStsPolicy> served;
  if (sts.policy) {
    auto p = parse_mta_sts_policy(*sts.policy);
    if (p) served = *p.value;
    else note("mta-sts: the policy served is invalid: " + p.problem);
  }
  if (sts.txt) {
    auto t = parse_mta_sts_txt(*sts.txt);
    // RFC 8461 §3.1: an invalid record is as if there were none.
    d.facts.txt = t.value.has_value();
    if (!t) note("mta-sts: the TXT record is invalid (" + t.problem + "): no MTA-STS announced");
  }
  if (d.facts.txt) {
    d.facts.fetch = sts.policy ? (served ? StsFetch::ok : StsFetch::invalid) : sts.fetch.value_or(StsFetch::timeout);
    if (served) d.facts.mode = served->mode;
  } else if (sts.fetch) {
    d.facts.fetch = *sts.fetch;  // never fetched; kept for the report only
  }
  d.facts.cached = sts.cached;
  // The patterns of the policy in force (the engine's choice).
  switch (sts_policy_in_force(d.facts)) {
    case StsPolicySource::fresh:
      if (served) d.patterns = served->mx;
      break;
    case StsPolicySource::cached:
      if (sts.cached_mx) d.patterns = *sts.cached_mx;
      else if (served) d.patterns = served->mx;
      break;
    case StsPolicySource::none: break;
  }
  return d;
}

PeerFacts host_facts(const Scenario& s, const HostScript& h, const StsDiscovery& sts, std::vector<std::string>* notes) {
  PeerFacts f;
  f.starttls = h.starttls;
  f.peer_tls = h.tls;
  f.cert = h.cert;
  f.mx_dnssec = s.mx_dnssec;
  f.addr_dnssec = h.addr_dnssec.value_or(inherited(s.mx_dnssec));
  if (h.tlsa) {
    f.tlsa_dnssec = h.tlsa->dnssec.value_or(inherited(f.addr_dnssec));
    for (const auto& r : h.tlsa->records) {
      TlsaKind k = classify_tlsa_record(h.name, r);
      f.tlsa |= tlsa_bit(k);
      if (!r.kind && notes) notes->push_back("tlsa record `" + r.text + "` is " + std::string(to_string(k)));
    }
  } else {
    // No TLSA records: a secure denial in a signed zone, else unsigned.
    f.tlsa_dnssec = f.addr_dnssec == DnsStatus::secure ? DnsStatus::nxdomain : DnsStatus::insecure;
  }
  f.sts = sts.facts;
  f.sts.mx_match = !sts.patterns || mta_sts_mx_matches(h.name, *sts.patterns);
  return f;
}

// An MX answer without hosts: the domain is its own MX (RFC 5321 §5.1).
HostScript implicit_mx(const Scenario& s) {
  HostScript h;
  h.name = s.mx_domain;
  h.pref = 0;
  h.where = s.where;
  return h;
}

RuleLookup lookup(const DecisionTable& table, Direction d, std::string managed, std::string peer) {
  RuleLookup l;
  l.direction = d;
  l.decision = table.lookup(d, managed, peer);
  l.managed_domain = std::move(managed);
  l.peer = std::move(peer);
  return l;
}

}  // namespace

AppliedRule inbound_rule(const RuleLookup& by_address, const RuleLookup& by_sender) {
  const CombinedInboundRule c = combine_inbound_rules(by_address.decision, by_sender.decision);
  AppliedRule r;
  r.lookups = {by_address, by_sender};
  r.rule = c.rule;
  // The lookups are in InboundLookup's order.
  r.level_from = static_cast<size_t>(c.level_from);
  r.min_tls_from = static_cast<size_t>(c.min_tls_from);
  return r;
}

PeerFacts outbound_facts(const Scenario& s, const HostScript& h, std::vector<std::string>* notes) {
  return host_facts(s, h, discover_sts(s.sts, nullptr), notes);
}

ScenarioResult run_scenario(const DecisionTable& table, const Scenario& s) {
  ScenarioResult r;
  if (s.direction == Direction::inbound) {
    const std::string managed = domain_of_address(s.to);
    r.rule = inbound_rule(lookup(table, Direction::inbound, managed, s.client.name),
                          lookup(table, Direction::inbound, managed, domain_of_address(s.from)));
    HostAttempt a;
    a.name = s.client.name;
    a.facts.starttls = s.client.starttls;
    a.facts.peer_tls = s.client.tls;
    a.outcome = decide(Direction::inbound, r.rule.rule, a.facts);
    r.attempts.push_back(std::move(a));
  } else {
    RuleLookup l = lookup(table, Direction::outbound, domain_of_address(s.from), domain_of_address(s.to));
    r.rule.rule = {l.decision.level, l.decision.min_tls};
    r.rule.lookups.push_back(std::move(l));

    StsDiscovery sts = discover_sts(s.sts, &r.notes);
    std::vector<HostScript> hosts = s.hosts;
    if (hosts.empty()) {
      hosts.push_back(implicit_mx(s));
      r.notes.push_back("no MX hosts listed: `" + s.mx_domain + "` is its own MX (RFC 5321 §5.1)");
    }
    // Equal preferences keep the written order, so runs are repeatable.
    std::stable_sort(hosts.begin(), hosts.end(), [](const HostScript& a, const HostScript& b) { return a.pref < b.pref; });
    for (const HostScript& h : hosts) {
      HostAttempt a;
      a.name = h.name;
      a.pref = h.pref;
      a.facts = host_facts(s, h, sts, &a.notes);
      a.outcome = decide(Direction::outbound, r.rule.rule, a.facts);
      r.attempts.push_back(std::move(a));
    }
  }
  std::vector<Outcome> outcomes;
  for (const auto& a : r.attempts) outcomes.push_back(a.outcome);
  r.chosen = choose_delivery(outcomes);
  r.outcome = r.attempts[r.chosen].outcome;
  if (s.direction == Direction::outbound) r.via = r.attempts[r.chosen].name;
  return r;
}

std::vector<FieldCheck> check_expectation(const Expectation& e, const ScenarioResult& r) {
  std::vector<FieldCheck> out;
  auto add = [&](std::string field, std::string_view expected, std::string_view actual) {
    out.push_back({std::move(field), std::string(expected), std::string(actual), expected == actual});
  };
  add("outcome", to_string(e.outcome), to_string(r.outcome.kind));
  if (e.channel) add("channel", to_string(*e.channel), to_string(r.outcome.channel));
  add("applied", to_string(e.applied), to_string(r.outcome.applied));
  if (e.tls) add("tls", to_string(*e.tls), to_string(r.outcome.tls));
  if (e.reason) add("reason", to_string(*e.reason), to_string(r.outcome.reason));
  if (e.via) add("via", *e.via, r.via);
  return out;
}

bool passed(const std::vector<FieldCheck>& checks) {
  return std::all_of(checks.begin(), checks.end(), [](const FieldCheck& c) { return c.ok; });
}

}  // namespace tlsp::sim
