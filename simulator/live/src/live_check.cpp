// live_check.cpp — the two pure pieces of live simulation (tlsp/sim/live.h):
// the client-address mapping of an inbound world's decision table, and the
// three-way comparison of expected, model and live outcomes.
//
// Why the mapping: a loopback world cannot send from 203.0.113.9, so the
// client sends from a loopback address L and the table is rewritten so that
// L is in exactly the CIDR selectors that hold the scripted address A, with
// their nesting kept (n selectors holding A become n nested loopback
// prefixes around L, longest last), and every other CIDR selector becomes a
// /32 far from L. Exact and wildcard selectors, rules and source
// references are untouched, so the relay logs the same rule and file:line.
// The rewrite is checked: the mapped lookup must equal the original one.
#include <algorithm>
#include <stdexcept>

#include "tlsp/base/address.h"
#include "tlsp/decision_table.h"
#include "tlsp/sim/live.h"

namespace tlsp::sim {
namespace {

// Where the selectors that do not hold the client go: 127.254.0.0/16, away
// from every world's block (127.20.0.0/16).
constexpr uint8_t kFarSecondOctet = 254;

// Same family only, as the table's lookup: it does not read an
// IPv4-mapped client (::ffff:a.b.c.d) as IPv4, so neither may the mapping
// (base::contains() would).
bool holds(const PeerEntry& e, const base::IpAddress& a) {
  if ((e.kind == SelectorKind::cidr_v6) != a.v6) return false;
  base::Cidr network;
  network.network.v6 = a.v6;
  network.network.bytes = e.address;
  network.prefix_len = e.prefix_len;
  return base::contains(network, a);
}

void set_v4(PeerEntry& e, const std::array<uint8_t, 16>& addr, uint8_t prefix) {
  e.kind = SelectorKind::cidr_v4;
  e.address = {};
  e.prefix_len = prefix;
  for (int bit = 0; bit < prefix; ++bit) {
    const uint8_t mask = static_cast<uint8_t>(0x80 >> (bit % 8));
    e.address[bit / 8] |= addr[bit / 8] & mask;
  }
}

void map_rules(DirectionRules& rules, const base::IpAddress& client, const base::IpAddress& loopback) {
  std::vector<PeerEntry*> holding;
  uint32_t far = 0;
  for (PeerEntry& e : rules.peers) {
    if (e.kind != SelectorKind::cidr_v4 && e.kind != SelectorKind::cidr_v6) continue;
    if (holds(e, client)) {
      holding.push_back(&e);
      continue;
    }
    std::array<uint8_t, 16> a{127, kFarSecondOctet, static_cast<uint8_t>(far >> 8), static_cast<uint8_t>(far & 0xff)};
    ++far;
    set_v4(e, a, 32);
  }
  // Nested around the loopback address: shortest original prefix gets the
  // shortest new one; the most specific becomes /32.
  std::sort(holding.begin(), holding.end(), [](auto* x, auto* y) { return x->prefix_len < y->prefix_len; });
  const size_t n = holding.size();
  if (n > 8) throw std::runtime_error("more than 8 nested CIDR selectors hold the client address");
  for (size_t k = 0; k < n; ++k) set_v4(*holding[k], loopback.bytes, static_cast<uint8_t>(32 - (n - 1 - k)));
}

bool same_rule(const Decision& a, const Decision& b) {
  return a.level == b.level && a.min_tls == b.min_tls && a.origin == b.origin && a.match == b.match;
}

}  // namespace

TableContent map_client_table(const TableContent& content, const std::string& client, const std::string& loopback,
                              const std::string& managed_domain) {
  const auto c = base::parse_ip_address(client);
  const auto l = base::parse_ip_address(loopback);
  if (!c) throw std::runtime_error("the client address `" + client + "` is not an IP address");
  if (!l || l->v6) throw std::runtime_error("the loopback address `" + loopback + "` is not IPv4");
  TableContent out = content;
  map_rules(out.default_domain.dir(Direction::inbound), *c, *l);
  for (DomainRules& d : out.domains) map_rules(d.dir(Direction::inbound), *c, *l);
  canonicalize(out);
  const DecisionTable before = DecisionTable::from_bytes(encode_table(content));
  const DecisionTable after = DecisionTable::from_bytes(encode_table(out));
  if (!same_rule(before.lookup(Direction::inbound, managed_domain, client),
                 after.lookup(Direction::inbound, managed_domain, loopback)))
    throw std::runtime_error("mapping `" + client + "` to `" + loopback + "` changes its rule");
  return out;
}

std::vector<LiveCheck> check_live(const Scenario& s, const ScenarioResult& model, const LiveResult& live) {
  std::vector<LiveCheck> out;
  const Expectation& e = s.expect;
  const Outcome& m = model.outcome;
  auto add = [&](std::string field, std::string expected, std::string model_value, std::string live_value) {
    LiveCheck c{std::move(field), std::move(expected), std::move(model_value), std::move(live_value), true};
    c.ok = (c.expected.empty() || c.expected == c.model) && c.model == c.live;
    out.push_back(std::move(c));
  };
  auto opt = [](const auto& o) { return o ? std::string(to_string(*o)) : std::string(); };
  add("outcome", std::string(to_string(e.outcome)), std::string(to_string(m.kind)), live.outcome);
  add("channel",
      e.channel                          ? std::string(to_string(*e.channel))
      : e.outcome == OutcomeKind::refuse ? "none"
                                         : "",
      std::string(to_string(m.channel)), live.channel);
  add("applied", std::string(to_string(e.applied)), std::string(to_string(m.applied)), live.applied);
  add("tls", opt(e.tls), std::string(to_string(m.tls)), live.tls);
  add("reason", opt(e.reason), std::string(to_string(m.reason)), live.reason);
  if (s.direction == Direction::outbound) add("via", e.via.value_or(""), model.via, live.via);
  for (const std::string& p : live.problems) out.push_back({"wire", "", "", p, false});
  if (!live.ran || !live.error.empty())
    out.push_back({"live", "", "", live.error.empty() ? "did not run" : live.error, false});
  return out;
}

}  // namespace tlsp::sim
