// scenario_fuzz.cpp — libFuzzer target for the scenario language
// (docs/scenarios.md): the ANTLR parser and its error strategy, the
// checks, diagnostics rendering, and then every scenario that parsed is
// run through the model against the shipped scenario policy
// (policies/scenarios/policy.tlsp) and checked against its expectation.
// Any input must end in diagnostics or results; never a crash, a hang or
// an exception.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "tlsp/compiler.h"
#include "tlsp/decision_table.h"
#include "tlsp/simulator.h"

namespace {

const tlsp::DecisionTable& scenario_table() {
  static const tlsp::DecisionTable table = [] {
    tlsp::CompileOptions options;
    options.inputs = {std::string(TLSP_SOURCE_DIR) + "/policies/scenarios/policy.tlsp"};
    tlsp::CompileResult r = tlsp::compile(options);
    if (!r.table) abort();
    return tlsp::DecisionTable::from_bytes(tlsp::encode_table(*r.table));
  }();
  return table;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const tlsp::DecisionTable& table = scenario_table();
  tlsp::sim::ScenarioFile file =
      tlsp::sim::parse_scenarios("fuzz.scenario", std::string(reinterpret_cast<const char*>(data), size));
  (void)tlsp::sim::render_diagnostics(file);
  for (const tlsp::sim::Scenario& s : file.scenarios) {
    tlsp::sim::ScenarioResult result = tlsp::sim::run_scenario(table, s);
    (void)tlsp::sim::passed(tlsp::sim::check_expectation(s.expect, result));
  }
  return 0;
}
