// tlsrpt_daily_test.cpp — the relay sends the TLSRPT reports (issue 12):
// the daily schedule as pure functions; the control protocol's tlsrpt
// requests; and a real relay process whose store (SQLite, written with the
// store API before it starts) holds a past day's sessions, sending that day
// on `tlsp tlsrpt send --day` to a loopback HTTPS collector (the gzip body
// decoded and checked) and, as a report mail through its own queue, to a
// loopback SMTP sink; once (claimed), again with --force; the previous
// day sent at once by a relay started after the send time; the outbox
// retried by the relay once the collector is back; a report mail handed to
// the running relay by `tlsp tlsrpt send REPORT`; the shutdown bounded
// while a collector hangs.
//
// Waiting is on events (a log line, a message at the sink), with a
// deadline; nothing sleeps to wait.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "command.h"
#include "tlsp/compiler.h"
#include "tlsp/decision_table.h"
#include "tlsp/queue_control.h"
#include "tlsp/sim/dns_responder.h"
#include "tlsp/sim/https_server.h"
#include "tlsp/sim/relay_process.h"
#include "tlsp/sim/smtp_peer.h"
#include "tlsp/sim/test_pki.h"
#include "tlsp/tlsrpt_dispatch.h"
#include "tlsp/tlsrpt_send.h"
#include "tlsp/tlsrpt_store.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace tlsp;
using namespace tlsp::sim;
using tlsp::testing_support::CommandRun;
using tlsp::testing_support::run_tlsp;

namespace {

constexpr auto kWait = 20s;
constexpr char kCollectorAddress[] = "127.0.0.45";
constexpr char kCollectorHost[] = "collector.example.net";
constexpr char kMxAddress[] = "127.0.0.2";

// ------------------------------------------------------------ the schedule

int64_t at(const std::string& day, int hh, int mm, int ss = 0) {
  return *tlsrpt::parse_utc_day(day) + hh * 3600 + mm * 60 + ss;
}

TEST(TlsrptSchedule, ThePreviousDayIsDueFromTheSendTimeOnOnce) {
  const int one_am = 60;
  // Before the send time: nothing, whatever was sent.
  EXPECT_EQ(tlsrpt_day_due(at("2026-12-07", 0, 59, 59), one_am, ""), std::nullopt);
  // At and after it: the previous day, until it is sent.
  EXPECT_EQ(tlsrpt_day_due(at("2026-12-07", 1, 0), one_am, ""), "2026-12-06");
  EXPECT_EQ(tlsrpt_day_due(at("2026-12-07", 23, 59, 59), one_am, "2026-12-05"), "2026-12-06");
  EXPECT_EQ(tlsrpt_day_due(at("2026-12-07", 1, 0), one_am, "2026-12-06"), std::nullopt);
  // A relay started after the send time (nothing sent yet) sends at once.
  EXPECT_EQ(tlsrpt_day_due(at("2026-12-07", 15, 30), one_am, ""), "2026-12-06");
  // 00:00: due at midnight; across a month and a year.
  EXPECT_EQ(tlsrpt_day_due(at("2027-01-01", 0, 0), 0, ""), "2026-12-31");
  EXPECT_EQ(tlsrpt_day_due(at("2027-03-01", 0, 0), 0, "2027-02-27"), "2027-02-28");
  EXPECT_EQ(tlsrpt_day_due(at("2026-12-07", 23, 58), 23 * 60 + 59, ""), std::nullopt);
  EXPECT_EQ(tlsrpt_day_due(at("2026-12-07", 23, 59), 23 * 60 + 59, ""), "2026-12-06");
}

TEST(TlsrptSchedule, TheNextSendTimeIsTodaysStillToComeElseTomorrows) {
  EXPECT_EQ(next_tlsrpt_send_time(at("2026-12-07", 0, 30), 60), at("2026-12-07", 1, 0));
  EXPECT_EQ(next_tlsrpt_send_time(at("2026-12-07", 1, 0), 60), at("2026-12-08", 1, 0));
  EXPECT_EQ(next_tlsrpt_send_time(at("2026-12-07", 1, 0, 1), 60), at("2026-12-08", 1, 0));
  EXPECT_EQ(next_tlsrpt_send_time(at("2026-12-31", 23, 59, 59), 0), at("2027-01-01", 0, 0));
  // Every minute of a day: the next send time is in (now, now + 1 day], on
  // the minute, and due exactly from there.
  for (int m = 0; m < 24 * 60; m += 7) {
    for (int64_t now = at("2026-12-07", 0, 0); now < at("2026-12-08", 0, 0); now += 3541) {
      const int64_t next = next_tlsrpt_send_time(now, m);
      ASSERT_GT(next, now);
      ASSERT_LE(next, now + 86400);
      ASSERT_EQ((next % 86400) / 60, m);
      ASSERT_TRUE(tlsrpt_day_due(next, m, "")) << next;
      // The second before, on the same UTC day, is before the send time.
      if (next % 86400 != 0) {
        ASSERT_FALSE(tlsrpt_day_due(next - 1, m, "")) << next;
      }
    }
  }
  EXPECT_EQ(tlsrpt_keep_from(at("2026-12-07", 13, 0)), "2026-11-07");
}

// ------------------------------------------------------------ the protocol

TEST(TlsrptControlProtocol, DayRequestsRoundTripAndAreStrict) {
  std::string problem;
  auto r = make_queue_request(QueueOp::tlsrpt_send, "2026-12-06 Example.NET", problem);
  ASSERT_TRUE(r) << problem;
  EXPECT_EQ(format_queue_request(*r), "tlsp-queue/1 tlsrpt-send 2026-12-06 example.net\n");
  auto back = parse_queue_request(format_queue_request(*r), problem);
  ASSERT_TRUE(back) << problem;
  EXPECT_EQ(back->op, QueueOp::tlsrpt_send);
  EXPECT_EQ(back->argument, "2026-12-06 example.net");
  EXPECT_TRUE(parse_queue_request("tlsp-queue/1 tlsrpt-resend 2026-12-06\n", problem));
  for (const char* bad : {"tlsp-queue/1 tlsrpt-send\n", "tlsp-queue/1 tlsrpt-send 2026-13-01\n",
                          "tlsp-queue/1 tlsrpt-send 2026-12-6\n", "tlsp-queue/1 tlsrpt-send 2026-12-06 Example.net\n",
                          "tlsp-queue/1 tlsrpt-send 2026-12-06 a..b\n", "tlsp-queue/1 tlsrpt-mail 0\n",
                          "tlsp-queue/1 tlsrpt-mail 017\n", "tlsp-queue/1 tlsrpt-mail 99999999999\n"})
    EXPECT_FALSE(parse_queue_request(bad, problem)) << bad;
}

TEST(TlsrptControlProtocol, TheMailPayloadRoundTripsAndRefusesWhatIsNotMailto) {
  TlsrptMailPayload p;
  p.domain = "example.net";
  p.submitter = "acme.example";
  std::string problem;
  p.to.push_back(*parse_tlsrpt_uri("mailto:reports@example.net", &problem));
  p.to.push_back(*parse_tlsrpt_uri("mailto:other@example.org", &problem));
  p.gzip = tlsrpt::gzip_report("{}");
  QueueRequest r = make_tlsrpt_mail_request(p);
  EXPECT_EQ(queue_request_payload_bytes(r), r.payload.size());
  TlsrptMailPayload back;
  ASSERT_TRUE(parse_tlsrpt_mail_payload(r.payload, back, problem)) << problem;
  EXPECT_EQ(back.domain, p.domain);
  EXPECT_EQ(back.submitter, p.submitter);
  EXPECT_EQ(back.to, p.to);
  EXPECT_EQ(back.gzip, p.gzip);
  const std::string tail = "report\n" + p.gzip;
  for (const std::string& bad : std::vector<std::string>{
           "submitter acme.example\ndomain example.net\nto mailto:a@example.net\n" + tail,
           "domain Example.net\nsubmitter acme.example\nto mailto:a@example.net\n" + tail,
           "domain example.net\nsubmitter acme.example\n" + tail,
           "domain example.net\nsubmitter acme.example\nto https://c.example.net/\n" + tail,
           "domain example.net\nsubmitter acme.example\nto mailto:a@example.net\nreport\n",
           "domain example.net\nsubmitter acme.example\nto mailto:a@example.net\n",
           std::string("domain example.net\nsubmitter acme.example\nto mailto:a\x01@example.net\n") + tail,
           "domain example.net\nsubmitter acme.example\nto mailto:" + std::string(2000, 'a') + "@example.net\n" + tail})
    EXPECT_FALSE(parse_tlsrpt_mail_payload(bad, back, problem)) << bad;
  std::string many = "domain example.net\nsubmitter acme.example\n";
  for (int i = 0; i < 9; ++i) many += "to mailto:r" + std::to_string(i) + "@example.net\n";
  EXPECT_FALSE(parse_tlsrpt_mail_payload(many + tail, back, problem));
  EXPECT_NE(problem.find("more than 8"), std::string::npos) << problem;
}

TEST(TlsrptControlProtocol, TheStepsRoundTripInTheReply) {
  QueueReply reply;
  TlsrptSendEvent e;
  e.result = "report-queued";
  e.day = "2026-12-06";
  e.domain = "example.net";
  e.report_id = "20261206T000000Z_example.net_0123456789abcdef@acme.example";
  e.uri = "mailto:reports@example.net";
  e.queue_id_report = "18c1f2a3b4c5d-1a2b-3.0";
  e.detail = "queued; with spaces\nand a line end";
  reply.tlsrpt.push_back(e);
  TlsrptSendEvent f;
  f.result = "report-failed";
  f.error = "x";
  f.failed = true;
  reply.tlsrpt.push_back(f);
  QueueReply back;
  std::string problem;
  ASSERT_TRUE(parse_queue_reply(format_queue_reply(reply), back, problem)) << problem;
  ASSERT_EQ(back.tlsrpt.size(), 2u);
  EXPECT_EQ(back.tlsrpt[0].detail, e.detail);
  EXPECT_EQ(back.tlsrpt[0].queue_id_report, e.queue_id_report);
  EXPECT_FALSE(back.tlsrpt[0].failed);
  EXPECT_TRUE(back.tlsrpt[1].failed);
  EXPECT_FALSE(parse_queue_reply("ok\ntlsrpt result=x day=\nend\n", back, problem));
  EXPECT_FALSE(parse_queue_reply("ok\ntlsrpt day= result=x domain= report-id= uri= queue-id= detail= error= failed=0\nend\n",
                                 back, problem));
}

// ------------------------------------------------------------ a real relay

class TlsrptRelay : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tlsp-tlsrpt-daily-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    spool_ = dir_ + "/spool";
    fs::create_directories(spool_);
    pki_ = std::make_unique<TestPki>(dir_ + "/pki");
    dns_.start("127.0.0.1");
    dns_.set({kCollectorHost, dns_type::A, {kCollectorAddress}});
    dns_.set({"example.net", dns_type::MX, {"10 mx1.example.net."}, true});
    dns_.set({"mx1.example.net", dns_type::A, {kMxAddress}, true});
    TestCert cert = pki_->issue({kCollectorHost});
    https_.start(cert.cert_file, cert.key_file, kCollectorAddress, 0);
    SmtpPeerConfig c;
    c.address = kMxAddress;
    c.hostname = "mx1.example.net";
    c.offer_starttls = false;
    sink_ = std::make_unique<SmtpPeer>(c);
    HttpsResponse ok;
    ok.status = 200;
    https_.set_response(kCollectorHost, "/tlsrpt", ok);
    dns_.set({"_smtp._tls.example.net", dns_type::TXT,
              {"\"v=TLSRPTv1; rua=" + uri("/tlsrpt") + ",mailto:reports@example.net\""}});
  }

  void TearDown() override {
    if (relay_)
      for (const std::string& l : relay_->lines()) {
        std::string problem;
        if (!l.starts_with("tlsp relay: ")) {
          EXPECT_TRUE(relay::parse_log_line(l, &problem)) << problem << ": " << l;
        }
      }
    relay_.reset();
    sink_.reset();
    https_.stop();
    dns_.stop();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string uri(const std::string& path) {
    return "https://" + std::string(kCollectorHost) + ":" + std::to_string(https_.port()) + path;
  }

  // Sessions to example.net on `day`: 3 successful, 2 failed
  // (starttls-not-supported), written as the relay's delivery would.
  void record_day(const std::string& day, const std::string& domain = "example.net") {
    std::string error;
    auto store = tlsrpt::open_store(spool_ + "/tlsrpt.db", &error);
    ASSERT_TRUE(store) << error;
    for (int i = 0; i < 5; ++i) {
      tlsrpt::SessionRecord r;
      r.session_id = day + "-" + domain + "-" + std::to_string(i);
      r.time = *tlsrpt::parse_utc_day(day) + 3600 + i;
      r.policy.type = tlsrpt::PolicyType::no_policy_found;
      r.policy.domain = domain;
      r.success = i < 3;
      if (!r.success) {
        r.failure.result_type = "starttls-not-supported";
        r.failure.receiving_mx_hostname = "mx1." + domain;
        r.failure.receiving_ip = kMxAddress;
      }
      ASSERT_TRUE(store->record(r, &error)) << error;
    }
  }

  std::string table() {
    std::ofstream(dir_ + "/policy.tlsp") << "policy \"tlsrpt-test\" version \"1\";\n"
                                            "default domain {\n"
                                            "  outbound { default peer { level opportunistic; min_tls any; } }\n"
                                            "  inbound  { default peer { level opportunistic; min_tls any; } }\n"
                                            "}\n";
    CompileOptions o;
    o.inputs = {dir_ + "/policy.tlsp"};
    o.threads = 1;
    CompileResult r = compile(o);
    EXPECT_TRUE(r.table) << render_diagnostics(r);
    write_table_file(dir_ + "/table.tlspdt", *r.table);
    return dir_ + "/table.tlspdt";
  }

  void start_relay(const std::string& send_time) {
    if (table_.empty()) table_ = table();
    if (ca_.empty()) ca_ = readable_by_service_user(pki_->ca_file(), dir_);
    std::vector<std::string> args = {"relay",        "--listen",         "127.0.0.1:0",    "--hostname",
                                     "relay.test",   "--table",          table_,           "--spool",
                                     spool_,         "--resolver",       dns_.server(),    "--smtp-port",
                                     std::to_string(sink_->port()),      "--ca-file",      ca_,
                                     "--retry-schedule", "1h",           "--connection-cache-time", "0",
                                     "--connect-timeout", "3s",          "--dns-timeout",  "3s",
                                     "--delivery-workers", "2",          "--tlsrpt-submitter", "acme.example",
                                     "--tlsrpt-organization", "Acme Mail", "--tlsrpt-from", "tlsrpt@acme.example",
                                     "--tlsrpt-send-time=" + send_time};
    for (std::string& a : service_user_args(dir_)) args.push_back(std::move(a));
    relay_ = std::make_unique<RelayProcess>(TLSP_BINARY, args);
    ASSERT_NE(relay_->wait_ready(kWait), 0u) << log();
  }

  void stop_relay() {
    relay_->signal(SIGTERM);
    ASSERT_TRUE(relay_->wait_exit(kWait)) << log();
  }

  // The first `tlsrpt` line with these fields at or after `from`; its index.
  bool wait_tlsrpt(const relay::LogFields& want, size_t from = 0, size_t* index = nullptr) {
    return relay_->wait_for([&](const relay::LogLine& l) { return l.matches(relay::LogEvent::tlsrpt, want); }, kWait,
                            from, nullptr, index);
  }

  std::string log() const {
    std::string s;
    if (relay_)
      for (const std::string& l : relay_->lines()) s += l + "\n";
    return s;
  }

  CommandRun send(const std::string& args, std::string& err) { return run_tlsp("tlsrpt send " + args + " --spool " + spool_, err); }

  // The report the collector received, as JSON.
  nlohmann::json posted(size_t i) {
    auto reqs = https_.requests();
    EXPECT_GT(reqs.size(), i);
    if (reqs.size() <= i) return {};
    EXPECT_EQ(reqs[i].method, "POST");
    EXPECT_EQ(reqs[i].content_type, "application/tlsrpt+gzip");
    auto json = tlsrpt::gunzip_report(reqs[i].body);
    EXPECT_TRUE(json);
    return json ? nlohmann::json::parse(*json) : nlohmann::json{};
  }

  static void expect_the_days_report(const nlohmann::json& j, const std::string& day) {
    EXPECT_EQ(j["organization-name"], "Acme Mail");
    EXPECT_EQ(j["date-range"]["start-datetime"], day + "T00:00:00Z");
    EXPECT_EQ(j["date-range"]["end-datetime"], day + "T23:59:59Z");
    ASSERT_EQ(j["policies"].size(), 1u) << j.dump();
    const auto& p = j["policies"][0];
    EXPECT_EQ(p["policy"]["policy-domain"], "example.net");
    EXPECT_EQ(p["summary"]["total-successful-session-count"], 3);
    EXPECT_EQ(p["summary"]["total-failure-session-count"], 2);
    EXPECT_EQ(p["failure-details"][0]["result-type"], "starttls-not-supported");
  }

  std::string dir_, spool_, table_, ca_;
  std::unique_ptr<TestPki> pki_;
  DnsResponder dns_;
  HttpsServer https_;
  std::unique_ptr<SmtpPeer> sink_;
  std::unique_ptr<RelayProcess> relay_;
};

const std::string kPastDay = tlsrpt::utc_day(std::time(nullptr) - 3 * 86400);
// The daily run sends only the previous day, which these tests leave empty:
// what they send is by hand.
constexpr char kByHandOnly[] = "23:59";
const std::string kYesterday = tlsrpt::utc_day(std::time(nullptr) - 86400);

TEST_F(TlsrptRelay, SendsADayByHandToTheCollectorAndThroughItsQueueOnce) {
  record_day(kPastDay);
  start_relay(kByHandOnly);
  std::string err;
  CommandRun r = send("--day " + kPastDay, err);
  ASSERT_EQ(r.code, 0) << r.out << err << log();
  EXPECT_NE(r.out.find(": report-claimed 20"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(uri("/tlsrpt") + ": report-sent"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("mailto:reports@example.net: report-queued as "), std::string::npos) << r.out;

  // https: the day's report, gzipped.
  ASSERT_EQ(https_.request_count(), 1u);
  nlohmann::json report = posted(0);
  expect_the_days_report(report, kPastDay);
  const std::string id = report["report-id"];
  EXPECT_TRUE(id.ends_with("@acme.example")) << id;

  // mailto: through the relay's own queue to the domain's MX.
  ASSERT_TRUE(sink_->wait_for_messages(1, kWait)) << log();
  PeerMessage m = sink_->messages()[0];
  EXPECT_EQ(m.mail_from, "tlsrpt@acme.example");
  EXPECT_EQ(m.rcpts, std::vector<std::string>{"reports@example.net"});
  EXPECT_NE(m.data.find("Content-Type: multipart/report; report-type=\"tlsrpt\""), std::string::npos) << m.data;
  EXPECT_NE(m.data.find("\r\nTLS-Report-Domain: example.net\r\n"), std::string::npos) << m.data;
  EXPECT_NE(m.data.find("\r\nTLS-Report-Submitter: acme.example\r\n"), std::string::npos) << m.data;
  EXPECT_NE(m.data.find("<" + id + ">"), std::string::npos) << m.data;  // the Subject's Report-ID
  auto mailed = tlsrpt::read_report_mail(m.data);
  ASSERT_TRUE(mailed.report) << mailed.error;
  EXPECT_EQ(mailed.report->report_id, id);
  EXPECT_TRUE(wait_tlsrpt({{"result", "report-queued"}, {"day", kPastDay}, {"domain", "example.net"}}));
  EXPECT_TRUE(wait_tlsrpt({{"result", "report-sent"}, {"report_id", id}}));

  // Once: a second call finds the claim and sends nothing.
  r = send("--day " + kPastDay, err);
  EXPECT_EQ(r.code, 0) << r.out << err;
  EXPECT_NE(r.out.find("example.net: report-claimed-elsewhere " + id), std::string::npos) << r.out;
  EXPECT_EQ(https_.request_count(), 1u);

  // --force: again, with the kept id.
  r = send("--day " + kPastDay + " --domain example.net --force", err);
  EXPECT_EQ(r.code, 0) << r.out << err;
  EXPECT_NE(r.out.find("report-resent"), std::string::npos) << r.out;
  ASSERT_EQ(https_.request_count(), 2u);
  EXPECT_EQ(posted(1)["report-id"], id);
  ASSERT_TRUE(sink_->wait_for_messages(2, kWait)) << log();
  stop_relay();
}

TEST_F(TlsrptRelay, ARelayStartedAfterTheSendTimeSendsThePreviousDayAtOnce) {
  record_day(kYesterday);
  start_relay("00:00");  // every moment of the day is after it
  size_t at = 0;
  ASSERT_TRUE(wait_tlsrpt({{"result", "report-sent"}, {"day", kYesterday}}, 0, &at)) << log();
  expect_the_days_report(posted(0), kYesterday);
  ASSERT_TRUE(sink_->wait_for_messages(1, kWait)) << log();
  EXPECT_TRUE(wait_tlsrpt({{"result", "pruned"}}, at)) << log();
  stop_relay();
  // Started again: the claim says it was sent; nothing goes out twice.
  start_relay("00:00");
  ASSERT_TRUE(wait_tlsrpt({{"result", "report-claimed-elsewhere"}, {"day", kYesterday}})) << log();
  EXPECT_EQ(https_.request_count(), 1u);
  stop_relay();
}

TEST_F(TlsrptRelay, TheRelayRetriesTheOutboxOnceTheCollectorIsBack) {
  record_day(kPastDay);
  HttpsResponse busy;
  busy.status = 503;
  https_.set_response(kCollectorHost, "/tlsrpt", busy);
  start_relay(kByHandOnly);
  std::string err;
  CommandRun r = send("--day " + kPastDay, err);
  EXPECT_EQ(r.code, 0) << r.out << err;
  EXPECT_NE(r.out.find("report-deferred"), std::string::npos) << r.out;
  EXPECT_TRUE(wait_tlsrpt({{"result", "report-deferred"}})) << log();
  EXPECT_EQ(tlsrpt::Outbox(spool_ + "/tlsrpt-outbox").size(), 1u);
  stop_relay();
  // The collector is back; the relay's outbox run at its start delivers.
  HttpsResponse ok;
  ok.status = 200;
  https_.set_response(kCollectorHost, "/tlsrpt", ok);
  start_relay(kByHandOnly);
  ASSERT_TRUE(wait_tlsrpt({{"result", "post-delivered"}, {"uri", uri("/tlsrpt")}})) << log();
  ASSERT_EQ(https_.request_count(), 2u);
  expect_the_days_report(posted(1), kPastDay);
  EXPECT_EQ(tlsrpt::Outbox(spool_ + "/tlsrpt-outbox").size(), 0u);
  stop_relay();
}

TEST_F(TlsrptRelay, AReportFileMailedByHandIsQueuedByTheRunningRelay) {
  start_relay(kByHandOnly);
  const std::string file = dir_ + "/report.json";
  std::ofstream(file) << R"({"organization-name":"Acme","date-range":{"start-datetime":"2026-12-06T00:00:00Z",)"
                         R"("end-datetime":"2026-12-06T23:59:59Z"},"contact-info":"tlsrpt@acme.example",)"
                         R"("report-id":"2026-12-06-x1","policies":[{"policy":{"policy-type":"no-policy-found",)"
                         R"("policy-domain":"example.net"},"summary":{"total-successful-session-count":3,)"
                         R"("total-failure-session-count":0}}]})";
  std::string err;
  CommandRun r = send(file + " --to mailto:reports@example.net --submitter acme.example", err);
  ASSERT_EQ(r.code, 0) << r.out << err << log();
  EXPECT_NE(r.out.find("mailto:reports@example.net: report-queued as "), std::string::npos) << r.out;
  ASSERT_TRUE(sink_->wait_for_messages(1, kWait)) << log();
  PeerMessage m = sink_->messages()[0];
  EXPECT_EQ(m.mail_from, "tlsrpt@acme.example");
  EXPECT_NE(m.data.find("<2026-12-06-x1>"), std::string::npos) << m.data;
  auto mailed = tlsrpt::read_report_mail(m.data);
  ASSERT_TRUE(mailed.report) << mailed.error;
  EXPECT_EQ(mailed.report->report_id, "2026-12-06-x1");
  // A file that is not a report is refused before anything is sent.
  std::ofstream(dir_ + "/not.json") << R"({"report-id":"x"})";
  r = send(dir_ + "/not.json --to mailto:reports@example.net --domain example.net", err);
  EXPECT_EQ(r.code, 1) << r.out << err;
  stop_relay();
}

TEST_F(TlsrptRelay, ShutdownWhileACollectorHangsIsBoundedAndKeepsTheReport) {
  record_day(kPastDay);
  HttpsResponse hang;
  hang.status = 200;
  hang.delay = 60s;
  https_.set_response(kCollectorHost, "/tlsrpt", hang);
  dns_.set({"_smtp._tls.example.net", dns_type::TXT, {"\"v=TLSRPTv1; rua=" + uri("/tlsrpt") + "\""}});
  start_relay(kByHandOnly);
  CommandRun by_hand;
  std::string err;
  std::thread client([&] { by_hand = send("--day " + kPastDay, err); });
  struct Joined {
    std::thread& t;
    RelayProcess& relay;
    ~Joined() {
      if (relay.running()) relay.signal(SIGKILL);  // a failed check: the client must not wait for it
      if (t.joinable()) t.join();
    }
  } joined{client, *relay_};
  // The POST is under way once the collector has the request.
  const auto until = std::chrono::steady_clock::now() + kWait;
  while (https_.request_count() == 0 && std::chrono::steady_clock::now() < until)
    relay_->wait_for([](const relay::LogLine&) { return false; }, 20ms);
  ASSERT_EQ(https_.request_count(), 1u) << log();
  const auto t0 = std::chrono::steady_clock::now();
  relay_->signal(SIGTERM);
  ASSERT_TRUE(relay_->wait_exit(kWait)) << log();
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(took, 5s) << log();
  std::cout << "shutdown during a hanging POST took "
            << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms\n";
  // The report is kept for the next start, in the outbox.
  client.join();
  EXPECT_NE(by_hand.out.find("report-deferred"), std::string::npos) << by_hand.out << err;
  EXPECT_EQ(tlsrpt::Outbox(spool_ + "/tlsrpt-outbox").size(), 1u);
  EXPECT_TRUE(relay_->wait_for([](const relay::LogLine& l) { return l.matches(relay::LogEvent::stop, {{"result", "stopped"}}); },
                               1s))
      << log();
}

}  // namespace
