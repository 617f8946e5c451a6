// delivery.h — one delivery run for one queue entry, all its recipients:
// the SMTP client side of the relay (SPEC §4; delivery.cpp). The queue
// (delivery_queue.h) acts on the report. Not a public header.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "relay_context.h"

namespace tlsp::relay {

// The result of one delivery run for a queue entry (all its recipients).
struct DeliveryReport {
  std::vector<std::string> delivered;
  std::vector<std::pair<std::string, std::string>> failed;     // permanent: address, reply
  std::vector<std::pair<std::string, std::string>> deferred;   // temporary: address, reason
  std::string summary;  // the last refusal, for the queue and the bounce
};

// Tries every MX host (or the next hop) once, as SPEC §4 orders, logging one
// line per attempt. Never throws.
DeliveryReport deliver_entry(RelayContext& ctx, const QueueEntry& entry, const std::string& data);

}  // namespace tlsp::relay
