// scenario_parse.h — scenario text to the simulator's syntax tree. The
// only part of the simulator that uses ANTLR (scenario_parse.cpp).
//
// Contract: parse_scenario_syntax() never throws for any input. A file that
// is not valid UTF-8, or has syntax errors, gets diagnostics in words
// (never grammar rule or token names), each at the offending text, and the
// function returns false with `out` empty. On success every node is present
// and every string's escapes are resolved. Locations use file index 0.
// Linear time and memory in the text: a text over kMaxScenarioFileBytes is
// refused (S0105), and the parse stops once the sink is full (S0106 is
// added by parse_scenarios()) or at an unterminated string.
#pragma once

#include "scenario_ast.h"
#include "scenario_diagnostics.h"

namespace tlsp::sim {

bool parse_scenario_syntax(const LoadedSource& source, ast::File& out, ScenarioSink& sink);

}  // namespace tlsp::sim
