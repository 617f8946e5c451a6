// sts_cache_entry_fuzz.cpp — libFuzzer target for a stored MTA-STS cache
// entry (tlsp/mta_sts_cache.h), the bytes a cache file or a Redis value
// holds: anyone who can write to the cache directory or the Redis server
// controls them. decode_sts_cache_entry() gives an entry or a reason for
// any input, and an entry that decodes is exactly what
// encode_sts_cache_entry() writes for it (nothing in the input is ignored).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "tlsp/mta_sts_cache.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  constexpr std::string_view kDomain = "example.test";
  tlsp::CachedStsPolicy entry;
  if (!tlsp::decode_sts_cache_entry(in, kDomain, entry).empty()) return 0;
  if (entry.expires_at != entry.fetched_at + static_cast<int64_t>(entry.policy.max_age)) std::abort();
  if (tlsp::encode_sts_cache_entry(kDomain, entry.id, entry.body, entry.fetched_at, entry.expires_at) != in)
    std::abort();
  return 0;
}
