// The TLSRPT data model: policy-type names, the result type of every
// reason, UTC days.
#include <gtest/gtest.h>

#include <algorithm>

#include "tlsp/tlsrpt.h"

namespace tlsp::tlsrpt {
namespace {

TEST(TlsrptModel, PolicyTypeNamesReadBack) {
  for (PolicyType t : {PolicyType::sts, PolicyType::tlsa, PolicyType::no_policy_found})
    EXPECT_EQ(parse_policy_type(to_string(t)), t);
  EXPECT_EQ(to_string(PolicyType::no_policy_found), "no-policy-found");
  EXPECT_FALSE(parse_policy_type("STS"));
}

TEST(TlsrptModel, EveryReasonHasItsResultType) {
  // RFC 8460 §4.3's result types; a reason that names one reports as it.
  const std::vector<std::string_view> rfc = {
      "starttls-not-supported", "certificate-host-mismatch", "certificate-expired", "certificate-not-trusted",
      "validation-failure",     "tlsa-invalid",              "dnssec-invalid",      "dane-required",
      "sts-policy-fetch-error", "sts-policy-invalid",        "sts-webpki-invalid"};
  int successes = 0;
  for (int i = 0; i < kReasonCount; ++i) {
    const auto r = static_cast<Reason>(i);
    const auto t = result_type_of(r);
    if (!t) {
      ++successes;
      continue;
    }
    EXPECT_NE(std::find(rfc.begin(), rfc.end(), *t), rfc.end()) << to_string(r);
    if (std::find(rfc.begin(), rfc.end(), to_string(r)) != rfc.end()) {
      EXPECT_EQ(*t, to_string(r));
    }
  }
  EXPECT_EQ(successes, 7);
  EXPECT_EQ(result_type_of(Reason::tls_version_too_low), "validation-failure");
  EXPECT_FALSE(result_type_of(Reason::ok));
}

TEST(TlsrptModel, UtcDays) {
  EXPECT_EQ(utc_day(0), "1970-01-01");
  EXPECT_EQ(utc_day(1796601599), "2026-12-06");
  EXPECT_EQ(utc_day(1796601600), "2026-12-07");
  EXPECT_EQ(parse_utc_day("2026-12-07"), 1796601600);
  EXPECT_EQ(parse_utc_day("2024-02-29"), 1709164800);
  EXPECT_FALSE(parse_utc_day("2023-02-29"));
  EXPECT_FALSE(parse_utc_day("2026-13-01"));
  EXPECT_FALSE(parse_utc_day("2026-1-01"));
  EXPECT_FALSE(parse_utc_day("2026-12-07x"));
  for (int64_t t = 0; t < 4102444800; t += 86400 * 37 + 1234)
    EXPECT_EQ(parse_utc_day(utc_day(t)), t - t % 86400);
}

}  // namespace
}  // namespace tlsp::tlsrpt
