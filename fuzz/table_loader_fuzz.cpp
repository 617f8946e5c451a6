// table_loader_fuzz.cpp — libFuzzer target for the decision table loader:
// any bytes are refused with TableError or load, and a loaded table answers
// lookups and decodes without reading out of bounds. Start it from a real
// table as the seed corpus (checksums make blind mutation shallow; the
// unit tests reseal damaged tables for the structural checks).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tlsp/decision_table.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto table = tlsp::DecisionTable::from_bytes(std::string_view(reinterpret_cast<const char*>(data), size));
    for (auto dir : {tlsp::Direction::outbound, tlsp::Direction::inbound})
      for (const char* peer : {"partner.example", "a.b.example", "203.0.113.9", "2001:db8::1", ""})
        (void)table.lookup(dir, "acme.example", peer);
    (void)table.decode();
  } catch (const tlsp::TableError&) {
  }
  return 0;
}
