// inbound_rule.h — the rule an inbound peer is held to, as the relay asks
// the table for it: enforced by the SMTP server side, logged again when
// the message goes on to its next hop. Not a public header.
#pragma once

#include <string_view>

#include "tlsp/decision_table.h"
#include "tlsp/engine.h"

namespace tlsp::relay {

// The inbound rule for one (managed domain, client, sender domain): the
// table's two lookups combined by the engine (combine_inbound_rules(),
// SPEC §5), as one Decision whose parts and sources come from the lookup
// that set them.
struct InboundRule {
  Decision decision;
};
InboundRule stricter_inbound_rule(const DecisionTable& table, std::string_view domain, std::string_view client,
                                  std::string_view sender_domain);

}  // namespace tlsp::relay
