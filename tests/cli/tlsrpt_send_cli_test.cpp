// tlsrpt_send_cli_test.cpp — `tlsp tlsrpt send` as the binary runs it: a
// report file sent to the domain's discovered collectors (the scripted DNS
// responder serves `_smtp._tls`, the scripted HTTPS server is the
// collector, certificates from the test PKI), a failed POST left in the
// outbox, a mailto: queued in the spool as a report mail (version 3
// envelope, the gzipped report inside), and the refusals.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <string>

#include "command.h"
#include "test_support.h"
#include "tlsp/sim/dns_responder.h"
#include "tlsp/sim/https_server.h"
#include "tlsp/sim/test_pki.h"
#include "tlsp/spool.h"
#include "tlsp/tlsrpt_send.h"

namespace {

using namespace tlsp;
using namespace tlsp::sim;
using tlsp::testing_support::run_tlsp;

constexpr char kCollectorAddress[] = "127.0.0.45";
constexpr char kCollectorHost[] = "collector.example.net";
const std::string kReport =
    R"({"organization-name":"Acme","date-range":{"start-datetime":"2026-12-06T00:00:00Z",)"
    R"("end-datetime":"2026-12-06T23:59:59Z"},"contact-info":"tlsrpt@acme.example","report-id":"2026-12-06-x1",)"
    R"("policies":[{"policy":{"policy-type":"no-policy-found","policy-domain":"example.net"},)"
    R"("summary":{"total-successful-session-count":3,"total-failure-session-count":0}}]})";

class TlsrptSendCli : public ::testing::Test {
 protected:
  TlsrptSendCli() : pki(tmp.path() + "/pki") {
    dns.start("127.0.0.1", 0);
    dns.set({kCollectorHost, dns_type::A, {kCollectorAddress}});
    TestCert cert = pki.issue({kCollectorHost});
    server.start(cert.cert_file, cert.key_file, kCollectorAddress, 0);
    report = tmp.path() + "/report.json";
    std::ofstream(report) << kReport;
    spool = tmp.path() + "/spool";
    Spool make(spool);  // as the relay made it
  }
  std::string https_uri(const std::string& path) {
    return "https://" + std::string(kCollectorHost) + ":" + std::to_string(server.port()) + path;
  }
  std::string common() {
    return " --resolver " + dns.server() + " --ca-file " + pki.ca_file() + " --spool " + spool +
           " --from tlsrpt@acme.example ";
  }

  tlsp::testing_support::TempDir tmp{"tlsp-tlsrpt-cli-test"};
  TestPki pki;
  DnsResponder dns;
  HttpsServer server;
  std::string report, spool;
};

TEST_F(TlsrptSendCli, SendsToTheDiscoveredCollectorsAndQueuesTheMail) {
  HttpsResponse ok;
  ok.status = 200;
  server.set_response(kCollectorHost, "/tlsrpt", ok);
  dns.set({"_smtp._tls.example.net", dns_type::TXT,
           {"\"v=TLSRPTv1; rua=" + https_uri("/tlsrpt") + ",mailto:reports@example.net\""}});
  auto r = run_tlsp("tlsrpt send " + report + common());
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find(": report-sent: report POST to "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("mailto:reports@example.net: report-queued as "), std::string::npos) << r.out;

  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].content_type, "application/tlsrpt+gzip");
  EXPECT_EQ(tlsrpt::gunzip_report(reqs[0].body), kReport);

  Spool queue(spool);
  auto entries = queue.scan();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_TRUE(entries[0].tlsrpt_report);
  EXPECT_EQ(entries[0].mail_from, "tlsrpt@acme.example");
  EXPECT_EQ(entries[0].recipients, std::vector<std::string>{"reports@example.net"});
  EXPECT_EQ(entries[0].destination, "example.net");
  const std::string data = queue.read_data(entries[0].id);
  EXPECT_NE(data.find("\r\nTLS-Report-Domain: example.net\r\n"), std::string::npos) << data;
  EXPECT_NE(data.find("\r\nTLS-Report-Submitter: acme.example\r\n"), std::string::npos) << data;
  EXPECT_NE(data.find("filename=\"acme.example!example.net!1796515200!1796601599!20261206x1.json.gz\""),
            std::string::npos)
      << data;
}

TEST_F(TlsrptSendCli, AFailedPostIsLeftInTheOutbox) {
  HttpsResponse busy;
  busy.status = 503;
  server.set_response(kCollectorHost, "/busy", busy);
  auto r = run_tlsp("tlsrpt send " + report + common() + "--to " + https_uri("/busy"));
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("report-deferred: report POST to "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("status 503; in the outbox for retries"), std::string::npos) << r.out;
  EXPECT_EQ(tlsrpt::Outbox(spool + "/tlsrpt-outbox").size(), 1u);
}

TEST_F(TlsrptSendCli, RefusesWhatItCannotDo) {
  // No record: the domain asks for no reports.
  std::string err;
  auto r = run_tlsp("tlsrpt send " + report + common(), err);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(err.find("asks for no reports"), std::string::npos) << err;
  // The spool is locked but nobody answers on its control socket: no mail
  // is queued behind the lock holder's back (after kControlConnectWait).
  {
    auto lock = SpoolLock::try_acquire(spool);
    ASSERT_TRUE(lock);
    r = run_tlsp("tlsrpt send " + report + common() + "--to mailto:r@example.net", err);
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(err.find("nobody answers"), std::string::npos) << err;
  }
  EXPECT_TRUE(Spool(spool).scan().empty());
  r = run_tlsp("tlsrpt send " + report + common() + "--to ftp://x.example.net/", err);
  EXPECT_EQ(r.code, 2);
  std::ofstream(tmp.path() + "/not-a-report.json") << "[1,2]";
  r = run_tlsp("tlsrpt send " + tmp.path() + "/not-a-report.json" + common() + "--to mailto:r@example.net", err);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(err.find("is not an RFC 8460 report"), std::string::npos) << err;
}

}  // namespace
