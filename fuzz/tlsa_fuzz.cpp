// tlsa_fuzz.cpp — libFuzzer target for TLSA records in presentation form
// (they come from DNS answers and scenario files): parse, classify, format
// and parse again; a parsed record must survive the round trip.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "tlsp/dane.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto rec = tlsp::parse_tlsa_record(in);
  if (!rec) return 0;
  (void)tlsp::classify_tlsa_record(*rec.value);
  auto again = tlsp::parse_tlsa_record(tlsp::format_tlsa_record(*rec.value));
  if (!again || !(*again.value == *rec.value)) std::abort();  // the round trip must hold
  return 0;
}
