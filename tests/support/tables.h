// tables.h — small decision tables built in code, for tests and fuzz
// targets that need a real table without compiling a policy. Header-only,
// so the fuzz targets (which do not link GoogleTest) can include it too.
#pragma once

#include <memory>
#include <string>

#include "tlsp/decision_table.h"

namespace tlsp::testing_support {

// A table with one managed domain, acme.example, whose only listed inbound
// peer, partner.example, is `mandatory` (a sender from there without TLS is
// refused); everything else gets the built-in defaults.
inline std::shared_ptr<const DecisionTable> acme_inbound_mandatory_table(const std::string& policy_name) {
  TableContent t;
  t.policy_name = policy_name;
  t.policy_version = "1";
  DomainRules d;
  d.name = "acme.example";
  PeerEntry mandatory;
  mandatory.kind = SelectorKind::exact;
  mandatory.name = "partner.example";
  mandatory.rule.level = Level::mandatory;
  d.dir(Direction::inbound).peers.push_back(mandatory);
  t.domains.push_back(d);
  return std::make_shared<const DecisionTable>(DecisionTable::from_bytes(encode_table(t)));
}

}  // namespace tlsp::testing_support
