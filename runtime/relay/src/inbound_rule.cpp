// inbound_rule.cpp — the inbound rule from the table's two lookups, the
// client's and the sender domain's, combined by the engine (inbound_rule.h).
#include "inbound_rule.h"

namespace tlsp::relay {

InboundRule stricter_inbound_rule(const DecisionTable& table, std::string_view domain, std::string_view client,
                                  std::string_view sender_domain) {
  InboundRule r{table.lookup(Direction::inbound, domain, client)};
  if (sender_domain.empty()) return r;
  const Decision s = table.lookup(Direction::inbound, domain, sender_domain);
  const CombinedInboundRule c = combine_inbound_rules(r.decision, s);
  if (c.level_from == InboundLookup::sender_domain) {
    r.decision.level = s.level;
    r.decision.level_from = s.level_from;
    r.decision.origin = s.origin;
    r.decision.selector = s.selector;
  }
  if (c.min_tls_from == InboundLookup::sender_domain) {
    r.decision.min_tls = s.min_tls;
    r.decision.min_tls_from = s.min_tls_from;
    if (r.decision.selector.empty()) r.decision.selector = s.selector;
  }
  return r;
}

}  // namespace tlsp::relay
