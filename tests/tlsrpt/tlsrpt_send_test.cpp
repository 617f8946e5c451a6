// tlsrpt_send_test.cpp — sending TLSRPT reports (tlsp/tlsrpt_send.h): the
// gzip body, the RFC 8460 §5.1 file name, the §5.3 report mail taken apart
// again (headers, the parts, the attachment decoded and gunzipped back to
// the report), and the outbox of https deliveries against a real loopback
// HTTPS collector (the scripted server of tlsp/sim/https_server.h, test
// PKI certificates): delivery, backoff, giving up after 24 hours, a
// restart, a corrupt file. Time is given, never waited for.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "test_support.h"
#include "tlsp/sim/dns_responder.h"
#include "tlsp/sim/https_server.h"
#include "tlsp/sim/test_pki.h"
#include "tlsp/tlsrpt_send.h"

namespace {

using namespace std::chrono_literals;
using namespace tlsp;
using namespace tlsp::tlsrpt;
using namespace tlsp::sim;

const std::string kReport =
    R"({"organization-name":"Acme","date-range":{"start-datetime":"2026-12-06T00:00:00Z",)"
    R"("end-datetime":"2026-12-06T23:59:59Z"},"contact-info":"tlsrpt@acme.example",)"
    R"("report-id":"2026-12-06.example.net.ab12","policies":[]})";

std::string base64_decode(std::string_view s) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    int v = value(c);
    if (v < 0) continue;  // CRLF, padding
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return out;
}

// The header section's fields, unfolded, by name.
std::multimap<std::string, std::string> headers_of(std::string_view section) {
  std::multimap<std::string, std::string> out;
  std::string name, value;
  size_t pos = 0;
  auto flush = [&] {
    if (!name.empty()) out.emplace(name, value);
    name.clear();
  };
  while (pos < section.size()) {
    size_t end = section.find("\r\n", pos);
    std::string_view line = section.substr(pos, end - pos);
    pos = end + 2;
    if (line.empty()) break;
    if (line[0] == ' ' || line[0] == '\t') {
      value += std::string(line);
      continue;
    }
    flush();
    size_t colon = line.find(':');
    name = std::string(line.substr(0, colon));
    value = std::string(line.substr(colon + 2));
  }
  flush();
  return out;
}

ReportMailInput mail_input() {
  ReportMailInput in;
  in.from = "tlsrpt@acme.example";
  in.to = "reports@example.net";
  in.policy_domain = "Example.NET";
  in.submitter = "acme.example";
  in.report_id = "2026-12-06.example.net.ab12";
  in.begin = 1796515200;
  in.end = 1796601599;
  in.now = 1796605200;
  in.message_id = "fixed@acme.example";
  in.report_json = kReport;
  return in;
}

TEST(TlsrptGzip, RoundTripsAndRefusesWhatIsNotWhole) {
  const std::string gz = gzip_report(kReport);
  ASSERT_GE(gz.size(), 18u);
  EXPECT_EQ(static_cast<unsigned char>(gz[0]), 0x1f);  // RFC 1952 magic
  EXPECT_EQ(static_cast<unsigned char>(gz[1]), 0x8b);
  EXPECT_EQ(gunzip_report(gz), kReport);
  EXPECT_EQ(gunzip_report(gzip_report("")), "");
  EXPECT_FALSE(gunzip_report(gz.substr(0, gz.size() - 4)));  // truncated
  EXPECT_FALSE(gunzip_report(gz + "x"));                     // trailing garbage
  EXPECT_FALSE(gunzip_report(kReport));                      // not gzip
  const std::string big(100000, 'a');
  EXPECT_FALSE(gunzip_report(gzip_report(big), 99999));  // past the limit
  EXPECT_EQ(gunzip_report(gzip_report(big), 100000), big);
}

TEST(TlsrptFilename, IsRfc8460Section51) {
  EXPECT_EQ(tlsrpt_report_filename("mail.sender.example", "example.com", 1013662812, 1013749130),
            "mail.sender.example!example.com!1013662812!1013749130.json.gz");
  EXPECT_EQ(tlsrpt_report_filename("s.example", "d.example", 1, 2, "2026-12-06.x!y"),
            "s.example!d.example!1!2!20261206xy.json.gz");
}

TEST(TlsrptMail, HasTheShapeOfRfc8460Section53) {
  ReportMail mail = make_tlsrpt_mail(mail_input());
  EXPECT_EQ(mail.mail_from, "tlsrpt@acme.example");
  EXPECT_EQ(mail.recipients, std::vector<std::string>{"reports@example.net"});
  // CRLF only, lines under 998 octets, 7-bit.
  size_t pos = 0;
  while (pos < mail.data.size()) {
    size_t end = mail.data.find("\r\n", pos);
    ASSERT_NE(end, std::string::npos) << "a line without CRLF at " << pos;
    std::string_view line = std::string_view(mail.data).substr(pos, end - pos);
    EXPECT_LE(line.size(), 998u);
    EXPECT_EQ(line.find('\n'), std::string_view::npos);
    EXPECT_EQ(line.find('\r'), std::string_view::npos);
    for (unsigned char c : line) EXPECT_LT(c, 0x80);
    pos = end + 2;
  }
  auto h = headers_of(mail.data);
  EXPECT_EQ(h.find("From")->second, "<tlsrpt@acme.example>");
  EXPECT_EQ(h.find("To")->second, "<reports@example.net>");
  EXPECT_EQ(h.find("Date")->second, "Mon, 07 Dec 2026 01:00:00 +0000");
  EXPECT_EQ(h.find("Message-ID")->second, "<fixed@acme.example>");
  EXPECT_EQ(h.find("Subject")->second,
            "Report Domain: example.net Submitter: acme.example Report-ID: <2026-12-06.example.net.ab12>");
  EXPECT_EQ(h.find("TLS-Report-Domain")->second, "example.net");
  EXPECT_EQ(h.find("TLS-Report-Submitter")->second, "acme.example");
  EXPECT_EQ(h.find("MIME-Version")->second, "1.0");
  const std::string ct = h.find("Content-Type")->second;
  EXPECT_EQ(ct.find("multipart/report; report-type=\"tlsrpt\"; boundary=\""), 0u) << ct;
  const std::string boundary = ct.substr(ct.find("boundary=\"") + 10, ct.size() - ct.find("boundary=\"") - 11);

  // The parts: text/plain, then the gzipped report.
  std::vector<std::string> parts;
  const std::string delim = "\r\n--" + boundary;
  size_t at = mail.data.find("--" + boundary + "\r\n");
  ASSERT_NE(at, std::string::npos);
  at += boundary.size() + 4;
  while (true) {
    size_t next = mail.data.find(delim, at);
    ASSERT_NE(next, std::string::npos);
    parts.push_back(mail.data.substr(at, next - at));
    at = next + delim.size();
    if (mail.data.compare(at, 2, "--") == 0) break;
    at += 2;
  }
  EXPECT_EQ(mail.data.substr(at), "--\r\n");
  ASSERT_EQ(parts.size(), 2u);
  auto h1 = headers_of(parts[0]);
  EXPECT_EQ(h1.find("Content-Type")->second, "text/plain; charset=\"us-ascii\"");
  EXPECT_NE(parts[0].find("aggregate TLS report"), std::string::npos);
  auto h2 = headers_of(parts[1]);
  EXPECT_EQ(h2.find("Content-Type")->second, "application/tlsrpt+gzip");
  EXPECT_EQ(h2.find("Content-Transfer-Encoding")->second, "base64");
  EXPECT_EQ(h2.find("Content-Disposition")->second,
            "attachment; filename=\"acme.example!example.net!1796515200!1796601599!20261206examplenetab12.json.gz\"");
  const std::string b64 = parts[1].substr(parts[1].find("\r\n\r\n") + 4);
  EXPECT_EQ(gunzip_report(base64_decode(b64)), kReport);

  // Deterministic with a given message id; a random one otherwise.
  EXPECT_EQ(make_tlsrpt_mail(mail_input()).data, mail.data);
  ReportMailInput random = mail_input();
  random.message_id.clear();
  EXPECT_NE(make_tlsrpt_mail(random).data, mail.data);
}

TEST(TlsrptMail, RefusesWhatCannotBeWritten) {
  auto refused = [](auto change) {
    ReportMailInput in = mail_input();
    change(in);
    EXPECT_THROW(make_tlsrpt_mail(in), std::invalid_argument);
  };
  refused([](ReportMailInput& in) { in.from = "tlsrpt@acme.example\r\nBcc: x@y.example"; });
  refused([](ReportMailInput& in) { in.from = ""; });
  refused([](ReportMailInput& in) { in.to = "nobody"; });
  refused([](ReportMailInput& in) { in.to = "a@[192.0.2.1]"; });
  refused([](ReportMailInput& in) { in.policy_domain = "bad..example"; });
  refused([](ReportMailInput& in) { in.submitter = ""; });
  refused([](ReportMailInput& in) { in.report_id = "two words"; });
  refused([](ReportMailInput& in) { in.report_id = "<x>"; });
  refused([](ReportMailInput& in) { in.report_id = std::string(kMaxReportIdBytes + 1, 'a'); });
}

TEST(TlsrptMail, LongValuesAreFoldedUnderTheLimit) {
  ReportMailInput in = mail_input();
  in.report_id = std::string(kMaxReportIdBytes, 'r');
  in.submitter = std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + ".example";
  ReportMail mail = make_tlsrpt_mail(in);
  size_t pos = 0;
  while (pos < mail.data.size()) {
    size_t end = mail.data.find("\r\n", pos);
    EXPECT_LE(end - pos, 998u);
    pos = end + 2;
  }
  EXPECT_NE(headers_of(mail.data).find("Subject")->second.find(in.report_id), std::string::npos);
}

// ---------------------------------------------------------------- outbox

constexpr char kCollectorAddress[] = "127.0.0.44";
constexpr char kCollectorHost[] = "collector.example.test";
constexpr int64_t kT0 = 1796605200;

class OutboxTest : public ::testing::Test {
 protected:
  OutboxTest() : pki(tmp.path() + "/pki") {
    dns.start("127.0.0.1", 0);
    dns.set({kCollectorHost, dns_type::A, {kCollectorAddress}});
    resolver = std::make_unique<dns::Resolver>(dns::ResolverConfig{dns.server(), 2000ms, 2});
    TestCert cert = pki.issue({kCollectorHost});
    server.start(cert.cert_file, cert.key_file, kCollectorAddress, 0);
    config.ca_file = pki.ca_file();
    config.timeout = 5000ms;
    std::string problem;
    uri = *parse_tlsrpt_uri("https://" + std::string(kCollectorHost) + ":" + std::to_string(server.port()) + "/r",
                            &problem);
  }
  void answer(int status) {
    HttpsResponse r;
    r.status = status;
    server.set_response(kCollectorHost, "/r", r);
  }
  std::vector<OutboxEvent> run(Outbox& box, int64_t now) { return tlsrpt_outbox_run(box, now, *resolver, config); }

  tlsp::testing_support::TempDir tmp{"tlsp-outbox-test"};
  TestPki pki;
  DnsResponder dns;
  std::unique_ptr<dns::Resolver> resolver;
  HttpsServer server;
  TlsrptPostConfig config;
  TlsrptUri uri;
};

TEST_F(OutboxTest, DeliversAndTheCollectorGetsTheGzippedReport) {
  answer(200);
  Outbox box(tmp.path() + "/outbox");
  const std::string gz = gzip_report(kReport);
  ASSERT_TRUE(box.add("r1", uri, gz, kT0));
  ASSERT_TRUE(box.add("r1", uri, gz, kT0));  // the same delivery once
  EXPECT_EQ(box.size(), 1u);
  auto ev = run(box, kT0);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, OutboxEvent::Kind::delivered) << ev[0].detail;
  EXPECT_EQ(box.size(), 0u);
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].method, "POST");
  EXPECT_EQ(reqs[0].content_type, "application/tlsrpt+gzip");
  EXPECT_EQ(gunzip_report(reqs[0].body), kReport);
  EXPECT_TRUE(run(box, kT0 + 1).empty());
}

TEST_F(OutboxTest, RetriesWithBackoffAcrossARestartThenDelivers) {
  answer(503);
  {
    Outbox box(tmp.path() + "/outbox");
    ASSERT_TRUE(box.add("r2", uri, gzip_report(kReport), kT0));
    auto ev = run(box, kT0);
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].kind, OutboxEvent::Kind::deferred);
    EXPECT_EQ(ev[0].next_attempt, kT0 + kOutboxFirstRetry.count());
    EXPECT_TRUE(run(box, kT0 + kOutboxFirstRetry.count() - 1).empty());  // not due yet
  }
  Outbox again(tmp.path() + "/outbox");  // a restarted relay
  int64_t t = kT0 + kOutboxFirstRetry.count();
  auto ev = run(again, t);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].attempts, 2);
  EXPECT_EQ(ev[0].next_attempt, t + 2 * kOutboxFirstRetry.count());  // doubled
  answer(200);
  ev = run(again, ev[0].next_attempt);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, OutboxEvent::Kind::delivered);
  EXPECT_EQ(server.request_count(), 3u);
}

TEST_F(OutboxTest, GivesUpAfterADay) {
  answer(500);
  Outbox box(tmp.path() + "/outbox");
  ASSERT_TRUE(box.add("r3", uri, "gz", kT0));
  int64_t t = kT0;
  int tries = 0;
  OutboxEvent last;
  while (box.size() > 0 && tries < 100) {
    auto ev = run(box, t);
    ASSERT_EQ(ev.size(), 1u);
    last = ev[0];
    ++tries;
    if (last.kind == OutboxEvent::Kind::deferred) {
      EXPECT_LE(last.next_attempt - t, kOutboxMaxRetry.count());
      EXPECT_LE(last.next_attempt, kT0 + kOutboxGiveUpAfter.count());
      t = last.next_attempt;
    }
  }
  EXPECT_EQ(last.kind, OutboxEvent::Kind::given_up);
  EXPECT_EQ(t, kT0 + kOutboxGiveUpAfter.count());  // the last try falls at the give-up time
  EXPECT_EQ(static_cast<size_t>(tries), server.request_count());
  EXPECT_LT(tries, 20);  // backoff: a handful of tries in a day, not one every few minutes
}

TEST_F(OutboxTest, ACorruptFileIsDroppedAndSaid) {
  answer(200);
  Outbox box(tmp.path() + "/outbox");
  ASSERT_TRUE(box.add("r4", uri, "report bytes", kT0));
  ASSERT_EQ(box.size(), 1u);
  for (const auto& e : std::filesystem::directory_iterator(box.directory())) {
    std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-1, std::ios::end);
    f.put('X');  // the body no longer matches its digest
  }
  auto ev = run(box, kT0);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, OutboxEvent::Kind::corrupt);
  EXPECT_NE(ev[0].detail.find("digest"), std::string::npos) << ev[0].detail;
  EXPECT_EQ(box.size(), 0u);
  EXPECT_EQ(server.request_count(), 0u);
  std::string error;
  std::string problem;
  EXPECT_FALSE(box.add("r5", *parse_tlsrpt_uri("mailto:a@example.test", &problem), "x", kT0, &error));
  EXPECT_NE(error.find("not an https"), std::string::npos);
}

}  // namespace
