// tlsrpt_delivery_test.cpp — TLSRPT discovery and the https report POST
// (tlsp/tlsrpt_delivery.h) for real on the loopback: `_smtp._tls` TXT
// records served by the scripted DNS responder and read by the relay's DNS
// client; reports POSTed with libcurl to the scripted HTTPS server
// (tlsp/sim/https_server.h), which records each body, under certificates
// of the test PKI.
//
// The collector listens on kCollectorAddress, which only the scripted DNS
// names: a POST that arrives proves the address came from the relay's
// resolver.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "test_support.h"
#include "tlsp/dns.h"
#include "tlsp/sim/dns_responder.h"
#include "tlsp/sim/https_server.h"
#include "tlsp/sim/test_pki.h"
#include "tlsp/tlsrpt_delivery.h"

namespace {

using namespace std::chrono_literals;
using namespace tlsp;
using namespace tlsp::sim;

constexpr char kCollectorAddress[] = "127.0.0.43";
constexpr char kCollectorHost[] = "reports.example.test";

struct TempDir : tlsp::testing_support::TempDir {
  TempDir() : tlsp::testing_support::TempDir("tlsp-tlsrpt-test") {}
};

class TlsrptDelivery : public ::testing::Test {
 protected:
  TlsrptDelivery() : pki(tmp.path() + "/pki") {
    dns.start("127.0.0.1", 0);
    resolver = std::make_unique<dns::Resolver>(dns::ResolverConfig{dns.server(), 2000ms, 2});
    TestCert cert = pki.issue({kCollectorHost});
    server.start(cert.cert_file, cert.key_file, kCollectorAddress, 0);
    dns.set({kCollectorHost, dns_type::A, {kCollectorAddress}});
    config.ca_file = pki.ca_file();
    config.timeout = 5000ms;
  }

  void txt(const std::string& domain, std::vector<std::string> rdata, bool secure = true) {
    dns.set({"_smtp._tls." + domain, dns_type::TXT, std::move(rdata), secure});
  }

  TlsrptUri collector(const std::string& path = "/v1/tlsrpt") {
    std::string problem;
    auto u = parse_tlsrpt_uri("https://" + std::string(kCollectorHost) + ":" + std::to_string(server.port()) + path,
                              &problem);
    EXPECT_TRUE(u) << problem;
    return *u;
  }

  TempDir tmp;
  TestPki pki;
  DnsResponder dns;
  std::unique_ptr<dns::Resolver> resolver;
  HttpsServer server;
  TlsrptPostConfig config;
};

TEST_F(TlsrptDelivery, DiscoversTheRecordThroughTheResolver) {
  txt("example.test", {"\"v=TLSRPTv1; rua=mailto:tlsrpt@example.test,https://reports.example.test/v1\""});
  TlsrptDiscovery d = discover_tlsrpt("Example.TEST.", *resolver);
  ASSERT_TRUE(d.record) << d.detail;
  ASSERT_EQ(d.record->rua.size(), 2u);
  EXPECT_EQ(d.record->rua[0].address, "tlsrpt@example.test");
  EXPECT_EQ(d.record->rua[1].host, "reports.example.test");
  // Unsigned is as good: RFC 8460 does not require DNSSEC.
  txt("unsigned.test", {"\"v=TLSRPTv1; rua=mailto:r@unsigned.test\""}, false);
  EXPECT_TRUE(discover_tlsrpt("unsigned.test", *resolver).record);
}

TEST_F(TlsrptDelivery, StringsOfOneRecordAreConcatenated) {
  txt("split.test", {"\"v=TLSRPTv1; rua=mailto:tls\" \"rpt@split.test\""});
  TlsrptDiscovery d = discover_tlsrpt("split.test", *resolver);
  ASSERT_TRUE(d.record) << d.detail;
  EXPECT_EQ(d.record->rua[0].address, "tlsrpt@split.test");
}

TEST_F(TlsrptDelivery, NoRecordSeveralOrAFailureMeanNoReport) {
  EXPECT_FALSE(discover_tlsrpt("nothing.test", *resolver).record);
  txt("two.test", {"\"v=TLSRPTv1; rua=mailto:a@two.test\"", "\"v=TLSRPTv1; rua=mailto:b@two.test\""});
  TlsrptDiscovery two = discover_tlsrpt("two.test", *resolver);
  EXPECT_FALSE(two.record);
  EXPECT_NE(two.detail.find("exactly one"), std::string::npos) << two.detail;
  txt("other.test", {"\"v=spf1 -all\"", "\"v=TLSRPTv1; rua=mailto:a@other.test\""});
  EXPECT_TRUE(discover_tlsrpt("other.test", *resolver).record);
  dns.set_name("_smtp._tls.broken.test", DnsBehaviour::servfail);
  TlsrptDiscovery broken = discover_tlsrpt("broken.test", *resolver);
  EXPECT_FALSE(broken.record);
  EXPECT_NE(broken.detail.find("servfail"), std::string::npos) << broken.detail;
  const size_t before = dns.query_count();
  EXPECT_FALSE(discover_tlsrpt("bad..name", *resolver).record);
  EXPECT_EQ(dns.query_count(), before);  // an invalid domain sends no query
}

TEST_F(TlsrptDelivery, PostsTheReportAndThe2xxIsDelivered) {
  const std::string body("\x1f\x8b\x08\x00 gzipped bytes \x00\xff", 20);
  HttpsResponse created;
  created.status = 201;
  created.body = "stored\n";
  server.set_response(kCollectorHost, "/v1/tlsrpt", created);
  TlsrptPostResult r = post_tlsrpt_report(collector(), body, *resolver, config);
  EXPECT_TRUE(r.delivered) << r.detail;
  EXPECT_EQ(r.status, 201);
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].method, "POST");
  EXPECT_EQ(reqs[0].path, "/v1/tlsrpt");
  EXPECT_EQ(reqs[0].sni, kCollectorHost);
  EXPECT_EQ(reqs[0].content_type, "application/tlsrpt+gzip");
  EXPECT_EQ(reqs[0].body, body);
}

TEST_F(TlsrptDelivery, OtherStatusesRedirectsAndBadCertificatesFail) {
  HttpsResponse redirect;
  redirect.status = 307;
  redirect.location = "https://elsewhere.example.test/";
  server.set_response(kCollectorHost, "/moved", redirect);
  TlsrptPostResult r = post_tlsrpt_report(collector("/moved"), "x", *resolver, config);
  EXPECT_FALSE(r.delivered);
  EXPECT_EQ(r.status, 307);
  EXPECT_NE(r.detail.find("not followed"), std::string::npos) << r.detail;

  HttpsResponse unavailable;
  unavailable.status = 503;
  server.set_response(kCollectorHost, "/busy", unavailable);
  r = post_tlsrpt_report(collector("/busy"), "x", *resolver, config);
  EXPECT_FALSE(r.delivered);
  EXPECT_EQ(r.status, 503);
  // Unscripted: 404.
  EXPECT_FALSE(post_tlsrpt_report(collector("/nowhere"), "x", *resolver, config).delivered);

  // A big answer is cut at the limit; the status still counts.
  HttpsResponse chatty;
  chatty.status = 200;
  chatty.body = std::string(kMaxTlsrptResponseBytes * 4, 'z');
  server.set_response(kCollectorHost, "/chatty", chatty);
  r = post_tlsrpt_report(collector("/chatty"), "x", *resolver, config);
  EXPECT_TRUE(r.delivered) << r.detail;

  // Not trusted: another CA's anchors.
  TestPki other(tmp.path() + "/other");
  TlsrptPostConfig wrong = config;
  wrong.ca_file = other.ca_file();
  server.set_response(kCollectorHost, "/v1/tlsrpt", HttpsResponse{});
  r = post_tlsrpt_report(collector(), "x", *resolver, wrong);
  EXPECT_FALSE(r.delivered);
  EXPECT_EQ(r.status, 0);

  // No address for the host: no connection at all.
  std::string problem;
  auto nowhere = parse_tlsrpt_uri("https://unknown.example.test/x", &problem);
  ASSERT_TRUE(nowhere);
  r = post_tlsrpt_report(*nowhere, "x", *resolver, config);
  EXPECT_FALSE(r.delivered);
  EXPECT_NE(r.detail.find("no address"), std::string::npos) << r.detail;
  // A mailto: URI is not POSTed.
  auto mail = parse_tlsrpt_uri("mailto:a@example.test", &problem);
  EXPECT_FALSE(post_tlsrpt_report(*mail, "x", *resolver, config).delivered);
}

}  // namespace
