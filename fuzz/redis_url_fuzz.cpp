// redis_url_fuzz.cpp — libFuzzer target for the redis:// URL reader
// (tlsp/redis_client.h; `tlsrpt-store`, `mta-sts-cache`): any bytes are a
// URL or a one-line problem; a URL without a password, written again by
// redacted_url(), reads back to the same URL, and a password never shows.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "tlsp/redis_client.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const tlsp::redis::RedisUrlParse p = tlsp::redis::parse_redis_url(in);
  if (!p.url) {
    if (p.problem.empty() || p.problem.find('\n') != std::string::npos) std::abort();
    return 0;
  }
  const std::string text = tlsp::redis::redacted_url(*p.url);
  if (p.url->has_password) {
    if (text.find(":***@") == std::string::npos) std::abort();
    return 0;
  }
  const tlsp::redis::RedisUrlParse again = tlsp::redis::parse_redis_url(text);
  if (!again.url || !(*again.url == *p.url)) std::abort();  // the round trip must hold
  return 0;
}
