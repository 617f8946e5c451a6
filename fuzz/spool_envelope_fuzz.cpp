// spool_envelope_fuzz.cpp — libFuzzer target for the spool's envelope
// parser (tlsp/spool.h): whatever a torn or tampered file holds, parsing
// gives an entry or a problem, and an accepted envelope serialises back to
// one that parses to the same entry.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "tlsp/spool.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  tlsp::ParsedEnvelope env;
  std::string problem;
  if (!tlsp::parse_envelope(in, env, problem)) return 0;
  std::string text = tlsp::serialize_envelope(env.entry, env.data_bytes, env.data_checksum);
  tlsp::ParsedEnvelope again;
  if (!tlsp::parse_envelope(text, again, problem)) std::abort();
  if (again.data_bytes != env.data_bytes || again.entry.recipients != env.entry.recipients ||
      again.entry.mail_from != env.entry.mail_from)
    std::abort();
  return 0;
}
