// outcome_json.h — the one JSON form of an engine outcome, written by every
// command that prints outcomes as JSON: `tlsp decide`, `simulate --json`,
// `diff --json` and `matrix --json` (docs/engine.md, "Output").
//
// The object holds the Outcome field by field, in this order:
//   {"outcome","channel","applied","tls","reason","last_resort"}
// `last_resort` is always there: a plaintext outcome with it set (an
// opportunistic host whose handshake failed) may be used only when no
// other MX host delivers (SPEC §4), so a reader that dropped it would
// take a last resort for an ordinary delivery.
#pragma once

#include <nlohmann/json.hpp>

#include "tlsp/engine.h"

namespace tlsp::cli {

nlohmann::ordered_json outcome_json(const Outcome& o);

}  // namespace tlsp::cli
