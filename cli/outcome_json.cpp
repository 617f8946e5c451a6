// outcome_json.cpp — see outcome_json.h.
#include "outcome_json.h"

namespace tlsp::cli {

nlohmann::ordered_json outcome_json(const Outcome& o) {
  nlohmann::ordered_json j;
  j["outcome"] = to_string(o.kind);
  j["channel"] = to_string(o.channel);
  j["applied"] = to_string(o.applied);
  j["tls"] = to_string(o.tls);
  j["reason"] = to_string(o.reason);
  j["last_resort"] = o.last_resort;
  return j;
}

}  // namespace tlsp::cli
