// scenario_parser_fuzz.cpp — libFuzzer target for the scenario language
// parser and checks: any bytes give scenarios or diagnostics, never a crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "tlsp/simulator.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = tlsp::sim::parse_scenarios("fuzz.scenario", std::string(reinterpret_cast<const char*>(data), size));
  (void)tlsp::sim::render_diagnostics(file);
  return 0;
}
