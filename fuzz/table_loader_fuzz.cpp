// table_loader_fuzz.cpp — libFuzzer target for the decision table loader:
// any bytes are refused with TableError or load, and a loaded table answers
// lookups and decodes without reading out of bounds. Start it from a real
// table as the seed corpus. Each input is tried as it is and resealed
// (its checksum recomputed): the checksum would otherwise stop almost every
// mutation before the structural checks, which are what must hold against
// a table built wrong or on purpose.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tlsp/decision_table.h"

namespace {

void load_and_use(std::string_view bytes) {
  try {
    auto table = tlsp::DecisionTable::from_bytes(bytes);
    for (auto dir : {tlsp::Direction::outbound, tlsp::Direction::inbound})
      for (const char* peer : {"partner.example", "a.b.example", "203.0.113.9", "2001:db8::1", ""})
        (void)table.lookup(dir, "acme.example", peer);
    (void)table.decode();
  } catch (const tlsp::TableError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  load_and_use(in);
  load_and_use(tlsp::reseal_table_for_testing(std::string(in)));
  return 0;
}
