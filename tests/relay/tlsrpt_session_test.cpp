// tlsrpt_session_test.cpp — the policy a session is counted under for
// TLSRPT and the record made of it (runtime/relay/src/tlsrpt_session.h),
// and the MTA-STS policy lines a report gives (tlsp/mta_sts.h).
#include "tlsrpt_session.h"

#include <gtest/gtest.h>

#include "tlsp/mta_sts.h"

using namespace tlsp;
using namespace tlsp::relay;

namespace {

TlsaRecord tlsa311(uint8_t fill) { return TlsaRecord{3, 1, 1, std::vector<uint8_t>(32, fill)}; }

StsDiscovery fetched(StsMode mode, std::vector<std::string> mx) {
  StsDiscovery d;
  d.txt = true;
  d.fetch = StsFetch::ok;
  d.fetched = MtaStsPolicy{mode, 86400, std::move(mx)};
  return d;
}

TEST(TlsrptPolicy, DaneWinsWhenTheLevelConsultsItAndSecureRecordsExist) {
  const std::vector<TlsaRecord> tlsa = {tlsa311(0xab), tlsa311(0x01)};
  for (Level l : {Level::dane, Level::dane_only, Level::mta_sts}) {
    StsDiscovery sts = fetched(StsMode::enforce, {"mx1.bank.example"});
    tlsrpt::Policy p = tlsrpt_policy("Bank.Example.", l, tlsa, &sts);
    EXPECT_EQ(p.type, tlsrpt::PolicyType::tlsa) << to_string(l);
    EXPECT_EQ(p.domain, "bank.example");
    ASSERT_EQ(p.strings.size(), 2u);
    EXPECT_EQ(p.strings[0], format_tlsa_record(tlsa[0]));
    EXPECT_EQ(p.strings[0].substr(0, 6), "3 1 1 ");
    EXPECT_TRUE(p.mx_host.empty());
  }
  // Levels that do not consult DANE count under no policy, records or not.
  for (Level l : {Level::opportunistic, Level::mandatory}) {
    tlsrpt::Policy p = tlsrpt_policy("bank.example", l, tlsa, nullptr);
    EXPECT_EQ(p.type, tlsrpt::PolicyType::no_policy_found) << to_string(l);
    EXPECT_TRUE(p.strings.empty());
  }
  // dane without records (e.g. dane-required): no policy found.
  EXPECT_EQ(tlsrpt_policy("bank.example", Level::dane_only, {}, nullptr).type, tlsrpt::PolicyType::no_policy_found);
}

TEST(TlsrptPolicy, MtaStsIsThePolicyInForceAsItsLinesAndPatterns) {
  StsDiscovery sts = fetched(StsMode::testing, {"mx1.bank.example", "*.backup.bank.example"});
  tlsrpt::Policy p = tlsrpt_policy("bank.example", Level::mta_sts, {}, &sts);
  EXPECT_EQ(p.type, tlsrpt::PolicyType::sts);
  EXPECT_EQ(p.strings, (std::vector<std::string>{"version: STSv1", "mode: testing", "mx: mx1.bank.example",
                                                 "mx: *.backup.bank.example", "max_age: 86400"}));
  EXPECT_EQ(p.mx_host, (std::vector<std::string>{"mx1.bank.example", "*.backup.bank.example"}));

  // The fetch failed: the cached policy is the one in force.
  StsDiscovery cached;
  cached.txt = true;
  cached.fetch = StsFetch::timeout;
  cached.cached = MtaStsPolicy{StsMode::enforce, 600, {"mx.bank.example"}};
  p = tlsrpt_policy("bank.example", Level::mta_sts, {}, &cached);
  EXPECT_EQ(p.type, tlsrpt::PolicyType::sts);
  EXPECT_EQ(p.strings.at(1), "mode: enforce");
  EXPECT_EQ(p.mx_host, (std::vector<std::string>{"mx.bank.example"}));

  // Published (TXT) but no policy could be had: sts, no strings.
  StsDiscovery none;
  none.txt = true;
  none.fetch = StsFetch::http_error;
  p = tlsrpt_policy("bank.example", Level::mta_sts, {}, &none);
  EXPECT_EQ(p.type, tlsrpt::PolicyType::sts);
  EXPECT_TRUE(p.strings.empty());
  EXPECT_TRUE(p.mx_host.empty());

  // Mode none, no TXT record, or no discovery: no policy.
  StsDiscovery off = fetched(StsMode::none, {});
  EXPECT_EQ(tlsrpt_policy("bank.example", Level::mta_sts, {}, &off).type, tlsrpt::PolicyType::no_policy_found);
  StsDiscovery absent;
  EXPECT_EQ(tlsrpt_policy("bank.example", Level::mta_sts, {}, &absent).type, tlsrpt::PolicyType::no_policy_found);
  EXPECT_EQ(tlsrpt_policy("bank.example", Level::mta_sts, {}, nullptr).type, tlsrpt::PolicyType::no_policy_found);
  // Another level ignores a discovery it was handed.
  EXPECT_EQ(tlsrpt_policy("bank.example", Level::mandatory, {}, &sts).type, tlsrpt::PolicyType::no_policy_found);
}

TEST(TlsrptPolicy, PolicyLinesParseBackToThePolicy) {
  const MtaStsPolicy p{StsMode::enforce, 31557600, {"mx1.example.com", "*.example.net"}};
  std::string body;
  for (const std::string& l : mta_sts_policy_lines(p)) body += l + "\r\n";
  MtaStsParse<MtaStsPolicy> back = parse_mta_sts_policy(body);
  ASSERT_TRUE(back) << back.problem;
  EXPECT_EQ(back.value->mode, p.mode);
  EXPECT_EQ(back.value->max_age, p.max_age);
  EXPECT_EQ(back.value->mx, p.mx);
}

TEST(TlsrptSessionRecord, SuccessOrTheResultTypeWithWhereItHappened) {
  TlsrptSession s;
  s.relay_hostname = "relay1.acme.example";
  s.queue_id = "1a2b-3c.0";
  s.attempt = 2;
  s.mx_host = "MX1.Bank.Example";
  s.sending_ip = "127.0.0.1";
  s.receiving_ip = "127.0.0.2";
  s.time = 1765065600;
  tlsrpt::Policy policy;
  policy.domain = "bank.example";

  tlsrpt::SessionRecord ok = tlsrpt_session_record(s, policy, Reason::ok);
  EXPECT_EQ(ok.session_id, "relay1.acme.example/1a2b-3c.0/2/mx1.bank.example");
  EXPECT_TRUE(ok.success);
  EXPECT_EQ(ok.failure, tlsrpt::FailureDetail{});
  EXPECT_EQ(ok.time, s.time);
  EXPECT_EQ(ok.policy, policy);
  // A reason that only says no policy applies is a success too.
  EXPECT_TRUE(tlsrpt_session_record(s, policy, Reason::tlsa_not_found).success);

  tlsrpt::SessionRecord bad = tlsrpt_session_record(s, policy, Reason::starttls_not_supported);
  EXPECT_FALSE(bad.success);
  EXPECT_EQ(bad.session_id, ok.session_id);  // the same session: counted once whatever it says
  EXPECT_EQ(bad.failure.result_type, "starttls-not-supported");
  EXPECT_EQ(bad.failure.receiving_mx_hostname, "mx1.bank.example");
  EXPECT_EQ(bad.failure.sending_mta_ip, "127.0.0.1");
  EXPECT_EQ(bad.failure.receiving_ip, "127.0.0.2");
  EXPECT_EQ(bad.failure.failure_reason_code, "tlsp: starttls-not-supported");

  // tlsp's own reasons report as validation-failure, named in the code.
  tlsrpt::SessionRecord low = tlsrpt_session_record(s, policy, Reason::tls_version_too_low);
  EXPECT_EQ(low.failure.result_type, "validation-failure");
  EXPECT_EQ(low.failure.failure_reason_code, "tlsp: tls-version-too-low");

  // The MX lookup failed: no host, no addresses.
  TlsrptSession mx = s;
  mx.mx_host.clear();
  mx.sending_ip.clear();
  mx.receiving_ip.clear();
  tlsrpt::SessionRecord dns = tlsrpt_session_record(mx, policy, Reason::dnssec_invalid);
  EXPECT_EQ(dns.session_id, "relay1.acme.example/1a2b-3c.0/2/-");
  EXPECT_EQ(dns.failure.result_type, "dnssec-invalid");
  EXPECT_TRUE(dns.failure.receiving_mx_hostname.empty());
  EXPECT_TRUE(dns.failure.receiving_ip.empty());

  // Another attempt is another session.
  s.attempt = 3;
  EXPECT_NE(tlsrpt_session_record(s, policy, Reason::ok).session_id, ok.session_id);
}

}  // namespace
