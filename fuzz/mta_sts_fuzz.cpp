// mta_sts_fuzz.cpp — libFuzzer target for the MTA-STS texts that come from
// the network (RFC 8461): the `_mta-sts` TXT record, the policy body and its
// Content-Type, and MX matching against the parsed patterns. Any input
// gives a result or a problem; never a crash or an exception.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tlsp/mta_sts.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  (void)tlsp::parse_mta_sts_txt(in);
  (void)tlsp::split_mta_sts_txt(in);
  (void)tlsp::is_text_plain_content_type(in);
  auto policy = tlsp::parse_mta_sts_policy(in);
  if (policy) {
    (void)tlsp::mta_sts_mx_matches("mx1.example.com", policy.value->mx);
    for (const auto& p : policy.value->mx) (void)tlsp::mta_sts_mx_matches(p, p);
  }
  // The first line as a host against the rest as a pattern.
  size_t nl = in.find('\n');
  if (nl != std::string_view::npos) (void)tlsp::mta_sts_mx_matches(in.substr(0, nl), in.substr(nl + 1));
  return 0;
}
