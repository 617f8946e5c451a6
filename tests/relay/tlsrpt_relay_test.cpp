// tlsrpt_relay_test.cpp — what the relay counts for TLSRPT (RFC 8460),
// end to end: real relay processes deliver to scripted loopback peers, some
// failing (STARTTLS stripped, a DANE mismatch, an MX host outside the
// MTA-STS policy), and the report built from the store afterwards
// (`tlsp tlsrpt report --json`) counts exactly what was attempted: two
// relays sharing one real redis-server make one report per policy domain;
// the same world with the SQLite store and one relay counts the same. A
// report mail (RFC 8460 §3) goes out despite the DANE failure and is not
// counted. A relay killed with SIGKILL in the middle of a delivery run,
// restarted, runs it again without counting any session twice.
//
// Waiting is on events (a relay log line, a message at a peer, a
// connection), with a deadline; nothing sleeps to wait.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "command.h"
#include "redis_server.h"
#include "test_support.h"
#include "tlsp/compiler.h"
#include "tlsp/dane.h"
#include "tlsp/decision_table.h"
#include "tlsp/relay_log.h"
#include "tlsp/sim/dns_responder.h"
#include "tlsp/sim/https_server.h"
#include "tlsp/sim/relay_process.h"
#include "tlsp/sim/smtp_peer.h"
#include "tlsp/sim/test_pki.h"
#include "tlsp/tlsrpt.h"
#include "tlsp/tlsrpt_send.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace tlsp;
using namespace tlsp::sim;
using tlsp::testing_support::CommandRun;
using tlsp::testing_support::run_tlsp;

namespace {

constexpr auto kWait = 20s;

// The peers, each on its own loopback address and the relay's --smtp-port.
constexpr char kBankMx[] = "127.0.0.2";   // MTA-STS enforce, in the policy: delivers
constexpr char kWrongMx[] = "127.0.0.3";  // MTA-STS enforce, MX host not in the policy: never connected
constexpr char kPlainMx[] = "127.0.0.4";  // mandatory, STARTTLS stripped
constexpr char kDaneMx[] = "127.0.0.5";   // dane-only, TLSA for another key
constexpr char kKillMx2[] = "127.0.0.6";  // kill.example's second MX: accepts and says nothing
constexpr char kHttps[] = "127.0.0.40";   // the mta-sts.<domain> policy host

class TlsrptWorld : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_ = std::make_unique<TestPki>(tmp_.file("pki"));
    dns_.start("127.0.0.1");
    peer(kBankMx, "mx1.bank.example");
    peer(kWrongMx, "mx1.wrong.example");
    SmtpPeerConfig plain;
    plain.offer_starttls = false;
    peer(kPlainMx, "mx1.plain.example", plain);
    peer(kDaneMx, "mx1.dane.example");
    for (const char* d : {"bank", "wrong", "plain", "dane"})
      dns_mx(std::string(d) + ".example", std::string("mx1.") + d + ".example",
             d == std::string("bank")    ? kBankMx
             : d == std::string("wrong") ? kWrongMx
             : d == std::string("plain") ? kPlainMx
                                         : kDaneMx);
    // DANE: a TLSA record for a key the peer does not have.
    const TestCert other = pki_->issue({"mx1.dane.example"});
    dane_tlsa_ = format_tlsa_record(TestPki::tlsa_for(other, 3, 1, 1));
    dns_.set({"_25._tcp.mx1.dane.example", dns_type::TLSA, {dane_tlsa_}, true});
    // MTA-STS: bank.example names its MX host, wrong.example another one;
    // kill.example names only its second MX host.
    TestCert sts = pki_->issue({"mta-sts.bank.example", "mta-sts.wrong.example", "mta-sts.kill.example"});
    https_ = std::make_unique<HttpsServer>();
    https_->start(sts.cert_file, sts.key_file, kHttps);
    sts_policy("bank.example", "mx1.bank.example");
    sts_policy("wrong.example", "mx9.wrong.example");
    sts_policy("kill.example", "mx2.kill.example");
    dns_.set({"kill.example", dns_type::MX, {"10 mx1.kill.example.", "20 mx2.kill.example."}, false});
    dns_.set({"mx1.kill.example", dns_type::A, {kWrongMx}, false});
    dns_.set({"mx2.kill.example", dns_type::A, {kKillMx2}, false});
    table_ = table();
    day_ = tlsrpt::utc_day(std::time(nullptr));
  }

  void TearDown() override {
    for (Relay& r : relays_)
      if (r.process)
        for (const std::string& l : r.process->lines())
          if (!l.starts_with("tlsp relay: ")) EXPECT_TRUE(relay::parse_log_line(l)) << l;
    relays_.clear();
    peers_.clear();
    https_.reset();
    dns_.stop();
  }

  SmtpPeer& peer(const std::string& address, const std::string& host, SmtpPeerConfig c = {}) {
    c.address = address;
    c.hostname = host;
    c.port = smtp_port_;
    if (c.offer_starttls) {
      TestCert cert = pki_->issue({host});
      c.cert_file = cert.cert_file;
      c.key_file = cert.key_file;
    }
    peers_[address] = std::make_unique<SmtpPeer>(c);
    if (smtp_port_ == 0) smtp_port_ = peers_[address]->port();
    return *peers_[address];
  }

  void dns_mx(const std::string& domain, const std::string& host, const std::string& address) {
    // Signed (the AD bit): DANE needs it; the others do not mind.
    dns_.set({domain, dns_type::MX, {"10 " + host + "."}, true});
    dns_.set({host, dns_type::A, {address}, true});
  }

  void sts_policy(const std::string& domain, const std::string& mx) {
    const TestCert cert = pki_->issue({"mta-sts." + domain});
    https_->add_certificate("mta-sts." + domain, cert.cert_file, cert.key_file);
    HttpsResponse policy;
    policy.body = "version: STSv1\nmode: enforce\nmx: " + mx + "\nmax_age: 86400\n";
    https_->set_response("mta-sts." + domain, "/.well-known/mta-sts.txt", policy);
    dns_.set({"_mta-sts." + domain, dns_type::TXT, {"\"v=STSv1; id=20261207\""}, false});
    dns_.set({"mta-sts." + domain, dns_type::A, {kHttps}, false});
  }

  std::string table() {
    const std::string text =
        "policy \"tlsrpt-test\" version \"1\";\n"
        "default domain {\n"
        "  outbound { default peer { level opportunistic; min_tls any; } }\n"
        "  inbound  { default peer { level opportunistic; min_tls any; } }\n"
        "}\n"
        "domain \"acme.example\" {\n"
        "  outbound {\n"
        "    default peer { level opportunistic; min_tls any; }\n"
        "    peer \"bank.example\" { level mta-sts; min_tls tls1.2; }\n"
        "    peer \"wrong.example\" { level mta-sts; min_tls tls1.2; }\n"
        "    peer \"kill.example\" { level mta-sts; min_tls tls1.2; }\n"
        "    peer \"plain.example\" { level mandatory; min_tls tls1.2; }\n"
        "    peer \"dane.example\" { level dane-only; min_tls tls1.2; }\n"
        "    peer \"two.example\" { level dane-only; min_tls tls1.2; }\n"
        "  }\n"
        "}\n";
    const std::string policy = tmp_.write("policy.tlsp", text);
    CompileOptions o;
    o.inputs = {policy};
    o.threads = 1;
    CompileResult r = compile(o);
    EXPECT_TRUE(r.table) << render_diagnostics(r);
    write_table_file(tmp_.file("table.tlspdt"), *r.table);
    return tmp_.file("table.tlspdt");
  }

  struct Relay {
    std::unique_ptr<RelayProcess> process;
    uint16_t port = 0;
    std::string spool;
  };

  std::vector<std::string> relay_args(const std::string& name, const std::string& spool, const std::string& store) {
    std::vector<std::string> args = {"relay",          "--listen",        "127.0.0.1:0",
                                     "--hostname",     name,              "--table",
                                     table_,           "--spool",         spool,
                                     "--resolver",     dns_.server(),     "--smtp-port",
                                     std::to_string(smtp_port_),          "--ca-file",
                                     pki_->ca_file(),  "--mta-sts-port",  std::to_string(https_->port()),
                                     "--retry-schedule", "1h",            "--connection-cache-time",
                                     "0",              "--delivery-workers", "2"};
    if (!store.empty()) {
      args.push_back("--tlsrpt-store");
      args.push_back(store);
    }
    for (std::string& a : service_user_args(tmp_.path())) args.push_back(std::move(a));
    return args;
  }

  // A relay with a spool of its own; `store` empty: the default SQLite file.
  Relay& start_relay(const std::string& name, const std::string& store, std::string spool = {}) {
    if (spool.empty()) spool = tmp_.file("spool-" + name);
    relays_.push_back({std::make_unique<RelayProcess>(TLSP_BINARY, relay_args(name, spool, store)), 0, spool});
    Relay& r = relays_.back();
    r.port = r.process->wait_ready(kWait);
    EXPECT_NE(r.port, 0) << log(r);
    return r;
  }

  void submit(const Relay& relay, const std::string& to) {
    SubmitOptions o;
    o.address = "127.0.0.1";
    o.port = relay.port;
    o.ehlo_name = "client.test";
    o.message.mail_from = "alice@acme.example";
    o.message.rcpts = {to};
    o.message.data = "Subject: for " + to + "\r\nMessage-ID: <t@test>\r\n\r\nhello\r\n";
    o.timeout = 10s;
    SubmitResult r = submit_message(o);
    ASSERT_TRUE(r.accepted) << r.reply;
  }

  // Waits for the end of the delivery run of the message to `to` (its
  // `queue` line: removed or deferred), which follows its counting.
  bool run_ended(Relay& relay, const std::string& to, const std::string& result) {
    std::string id;
    if (!relay.process->wait_for(
            [&](const relay::LogLine& l) {
              if (!l.matches(relay::LogEvent::accept, {{"to", to}})) return false;
              id = l.get("queue_id");
              return true;
            },
            kWait))
      return false;
    return relay.process->wait_for(
        [&](const relay::LogLine& l) {
          return l.matches(relay::LogEvent::queue, {{"queue_id", id}, {"result", result}});
        },
        kWait);
  }

  static std::string log(const Relay& r) {
    std::string s;
    if (r.process)
      for (const std::string& l : r.process->lines()) s += l + "\n";
    return s;
  }

  // The day's reports from the store, by policy domain.
  std::map<std::string, nlohmann::json> reports(const std::string& store) {
    std::string err;
    CommandRun r = run_tlsp("tlsrpt report --json --day " + day_ + " --store " + store, err);
    EXPECT_EQ(r.code, 0) << r.out << err;
    std::map<std::string, nlohmann::json> by_domain;
    try {
      for (const nlohmann::json& rep : nlohmann::json::parse(r.out))
        by_domain[rep.at("policies").at(0).at("policy").at("policy-domain").get<std::string>()] = rep;
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what() << ": " << r.out << err;
    }
    return by_domain;
  }

  // The messages of the world's deliveries, sent through `a` and `b`
  // (possibly the same relay), and what the report must then say.
  void deliver_and_check(Relay& a, Relay& b, const std::string& store) {
    submit(a, "bob@bank.example");
    submit(a, "x@wrong.example");
    submit(a, "y@plain.example");
    submit(b, "carol@bank.example");
    submit(b, "z@dane.example");
    submit(b, "w@wrong.example");
    EXPECT_TRUE(run_ended(a, "bob@bank.example", "removed")) << log(a);
    EXPECT_TRUE(run_ended(a, "x@wrong.example", "deferred")) << log(a);
    EXPECT_TRUE(run_ended(a, "y@plain.example", "deferred")) << log(a);
    EXPECT_TRUE(run_ended(b, "carol@bank.example", "removed")) << log(b);
    EXPECT_TRUE(run_ended(b, "z@dane.example", "deferred")) << log(b);
    EXPECT_TRUE(run_ended(b, "w@wrong.example", "deferred")) << log(b);
    if (tlsrpt::utc_day(std::time(nullptr)) != day_) GTEST_SKIP() << "the UTC day changed during the test";

    std::map<std::string, nlohmann::json> r = reports(store);
    ASSERT_EQ(r.size(), 4u) << store;  // ONE report per policy domain, whatever the number of relays
    auto only_policy = [&](const std::string& domain) -> nlohmann::json {
      const nlohmann::json& p = r[domain].at("policies");
      EXPECT_EQ(p.size(), 1u) << domain << ": " << p.dump(2);
      return p.at(0);
    };
    auto summary = [](const nlohmann::json& p, int ok, int failed) {
      EXPECT_EQ(p.at("summary").at("total-successful-session-count").get<int>(), ok) << p.dump(2);
      EXPECT_EQ(p.at("summary").at("total-failure-session-count").get<int>(), failed) << p.dump(2);
    };
    const std::vector<std::string> bank_lines = {"version: STSv1", "mode: enforce", "mx: mx1.bank.example",
                                                 "max_age: 86400"};

    // bank.example: MTA-STS, both deliveries successful.
    nlohmann::json bank = only_policy("bank.example");
    EXPECT_EQ(bank["policy"]["policy-type"], "sts");
    EXPECT_EQ(bank["policy"]["policy-string"].get<std::vector<std::string>>(), bank_lines);
    EXPECT_EQ(bank["policy"]["mx-host"].get<std::vector<std::string>>(), std::vector<std::string>{"mx1.bank.example"});
    summary(bank, 2, 0);
    EXPECT_FALSE(bank.contains("failure-details"));

    // wrong.example: its MX host is not in the policy; refused before
    // connecting, once per relay (two sessions), no receiving IP.
    nlohmann::json wrong = only_policy("wrong.example");
    EXPECT_EQ(wrong["policy"]["policy-type"], "sts");
    EXPECT_EQ(wrong["policy"]["mx-host"].get<std::vector<std::string>>(),
              std::vector<std::string>{"mx9.wrong.example"});
    summary(wrong, 0, 2);
    ASSERT_EQ(wrong["failure-details"].size(), 1u) << wrong.dump(2);
    const nlohmann::json& wf = wrong["failure-details"][0];
    EXPECT_EQ(wf["result-type"], "validation-failure");
    EXPECT_EQ(wf["receiving-mx-hostname"], "mx1.wrong.example");
    EXPECT_FALSE(wf.contains("receiving-ip"));
    EXPECT_EQ(wf["failed-session-count"], 2);

    // plain.example: mandatory TLS, STARTTLS stripped.
    nlohmann::json plain = only_policy("plain.example");
    EXPECT_EQ(plain["policy"]["policy-type"], "no-policy-found");
    summary(plain, 0, 1);
    ASSERT_EQ(plain["failure-details"].size(), 1u) << plain.dump(2);
    const nlohmann::json& pf = plain["failure-details"][0];
    EXPECT_EQ(pf["result-type"], "starttls-not-supported");
    EXPECT_EQ(pf["receiving-mx-hostname"], "mx1.plain.example");
    EXPECT_EQ(pf["receiving-ip"], kPlainMx);
    EXPECT_EQ(pf["sending-mta-ip"], "127.0.0.1");

    // dane.example: DANE, the certificate does not match the TLSA record.
    // The report mail sent to it (when there is one) is not counted.
    nlohmann::json dane = only_policy("dane.example");
    EXPECT_EQ(dane["policy"]["policy-type"], "tlsa");
    EXPECT_EQ(dane["policy"]["policy-string"].get<std::vector<std::string>>(), std::vector<std::string>{dane_tlsa_});
    summary(dane, 0, 1);
    ASSERT_EQ(dane["failure-details"].size(), 1u) << dane.dump(2);
    EXPECT_EQ(dane["failure-details"][0]["result-type"], "validation-failure");
    EXPECT_EQ(dane["failure-details"][0]["receiving-ip"], kDaneMx);
  }


  // The day's report for wrong.example, sent by hand through the running
  // relay `a` (`tlsp tlsrpt send --day`, the daily job's path): POSTed to
  // the loopback HTTPS collector its _smtp._tls record names, and mailed
  // to the mailto: one (bank.example's MX is the sink). `b`, asked next,
  // finds it claimed and sends nothing: one report per fleet.
  void send_and_check(Relay& a, Relay& b) {
    const TestCert cert = pki_->issue({"collector.wrong.example"});
    https_->add_certificate("collector.wrong.example", cert.cert_file, cert.key_file);
    HttpsResponse ok;
    ok.status = 200;
    https_->set_response("collector.wrong.example", "/tlsrpt", ok);
    dns_.set({"collector.wrong.example", dns_type::A, {kHttps}, false});
    dns_.set({"_smtp._tls.wrong.example", dns_type::TXT,
              {"\"v=TLSRPTv1; rua=https://collector.wrong.example:" + std::to_string(https_->port()) +
               "/tlsrpt,mailto:reports@bank.example\""},
              false});
    const size_t posts_before = https_->requests().size();
    const size_t mails_before = peers_[kBankMx]->messages().size();
    std::string err;
    CommandRun r = run_tlsp("tlsrpt send --day " + day_ + " --domain wrong.example --spool " + a.spool, err);
    ASSERT_EQ(r.code, 0) << r.out << err << log(a);
    std::vector<HttpsRequest> posts;
    for (const HttpsRequest& q : https_->requests())
      if (q.path == "/tlsrpt") posts.push_back(q);
    ASSERT_EQ(posts.size(), 1u) << r.out << err;
    EXPECT_EQ(posts[0].method, "POST");
    EXPECT_EQ(posts[0].content_type, "application/tlsrpt+gzip");
    auto json = tlsrpt::gunzip_report(posts[0].body);
    ASSERT_TRUE(json);
    const nlohmann::json j = nlohmann::json::parse(*json);
    EXPECT_EQ(j["date-range"]["start-datetime"], day_ + "T00:00:00Z");
    ASSERT_EQ(j["policies"].size(), 1u) << j.dump(2);
    EXPECT_EQ(j["policies"][0]["policy"]["policy-domain"], "wrong.example");
    EXPECT_EQ(j["policies"][0]["summary"]["total-failure-session-count"], 2);
    EXPECT_EQ(j["policies"][0]["failure-details"][0]["result-type"], "validation-failure");
    ASSERT_TRUE(peers_[kBankMx]->wait_for_messages(mails_before + 1, kWait)) << log(a);
    const PeerMessage mail = peers_[kBankMx]->messages().back();
    EXPECT_EQ(mail.rcpts, std::vector<std::string>{"reports@bank.example"});
    EXPECT_NE(mail.data.find("TLS-Report-Domain: wrong.example"), std::string::npos) << mail.data;
    EXPECT_NE(mail.data.find("report-type=\"tlsrpt\""), std::string::npos) << mail.data;
    EXPECT_NE(mail.data.find("application/tlsrpt+gzip"), std::string::npos) << mail.data;
    // Asked again (the other relay of the fleet, or the same one): claimed.
    r = run_tlsp("tlsrpt send --day " + day_ + " --domain wrong.example --spool " + b.spool, err);
    EXPECT_EQ(r.code, 0) << r.out << err;
    size_t after = 0;
    for (const HttpsRequest& q : https_->requests())
      if (q.path == "/tlsrpt") ++after;
    EXPECT_EQ(after, 1u) << r.out;
    (void)posts_before;
  }

  // A report mail for dane.example queued in `spool` by hand, before the
  // relay starts (`tlsp tlsrpt send --to mailto:`).
  void queue_report_mail(const std::string& spool) {
    nlohmann::json report = {{"organization-name", "Acme"},
                             {"date-range", {{"start-datetime", "2026-12-06T00:00:00Z"},
                                             {"end-datetime", "2026-12-06T23:59:59Z"}}},
                             {"contact-info", "mailto:tlsrpt@acme.example"},
                             {"report-id", "test-report-1"},
                             {"policies", nlohmann::json::array()}};
    const std::string file = tmp_.write("report.json", report.dump());
    std::string err;
    fs::create_directories(spool);
    CommandRun r = run_tlsp("tlsrpt send " + file + " --to mailto:tlsrpt@dane.example --domain dane.example --from " +
                                "tlsrpt@acme.example --spool " + spool,
                            err);
    ASSERT_EQ(r.code, 0) << r.out << err;
  }

  tlsp::testing_support::TempDir tmp_{"tlsp-tlsrpt-relay"};
  std::unique_ptr<TestPki> pki_;
  DnsResponder dns_;
  std::map<std::string, std::unique_ptr<SmtpPeer>> peers_;
  uint16_t smtp_port_ = 0;
  std::unique_ptr<HttpsServer> https_;
  std::string table_;
  std::string dane_tlsa_;
  std::string day_;
  std::vector<Relay> relays_;
};

TEST_F(TlsrptWorld, TwoRelaysOnOneRedisMakeOneReportPerPolicyDomain) {
  tlsp::testing_support::RedisServer redis;
  const std::string store = redis.url(2);
  relays_.reserve(2);
  const std::string spool_b = tmp_.file("spool-relay-b.test");
  queue_report_mail(spool_b);
  Relay& a = start_relay("relay-a.test", store);
  Relay& b = start_relay("relay-b.test", store, spool_b);
  // The report mail: delivered to dane.example despite its DANE failure,
  // on TLS when offered, under the report rule.
  ASSERT_TRUE(b.process->wait_for(
      [](const relay::LogLine& l) {
        return l.matches(relay::LogEvent::attempt, {{"to", "<tlsrpt@dane.example>"},
                                                    {"status", "sent"},
                                                    {"rule", "opportunistic"},
                                                    {"source", "tlsrpt-report (RFC 8460 §3)"},
                                                    {"channel", "encrypted"}});
      },
      kWait))
      << log(b);
  ASSERT_TRUE(peers_[kDaneMx]->wait_for_messages(1, kWait));
  EXPECT_NE(peers_[kDaneMx]->messages()[0].data.find("TLS-Report-Domain: dane.example"), std::string::npos);
  deliver_and_check(a, b, store);
  send_and_check(a, b);
}

TEST_F(TlsrptWorld, OneRelayWithTheSqliteStoreCountsTheSame) {
  const std::string spool = tmp_.file("spool-relay.test");
  queue_report_mail(spool);
  Relay& a = start_relay("relay.test", "", spool);
  ASSERT_TRUE(peers_[kDaneMx]->wait_for_messages(1, kWait)) << log(a);
  deliver_and_check(a, a, spool + "/tlsrpt.db");
  send_and_check(a, a);
}

// kill.example: its first MX host is outside the MTA-STS policy (refused,
// counted), its second accepts the connection and never greets. The relay
// is killed while it waits there: its run had counted mx1 and had not
// ended. Restarted, it runs the entry again (the same attempt: the run
// never finished) and counts nothing twice.
TEST_F(TlsrptWorld, ARelayKilledMidRunCountsNoSessionTwice) {
  const int silent = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(silent, 0);
  int one = 1;
  ::setsockopt(silent, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(smtp_port_);
  ::inet_pton(AF_INET, kKillMx2, &sa.sin_addr);
  ASSERT_EQ(::bind(silent, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0) << std::strerror(errno);
  ASSERT_EQ(::listen(silent, 8), 0);

  const std::string spool = tmp_.file("spool-kill");
  Relay* r = &start_relay("relay.test", "", spool);
  submit(*r, "k@kill.example");
  pollfd p{silent, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 20000), 1) << "the relay never reached the second MX host\n" << log(*r);
  const int held = ::accept4(silent, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(held, 0);
  // The run got past mx1 (refused, counted; its attempt line is held
  // until the recipient's next line) and waits at mx2: it has not ended.
  for (const std::string& l : r->process->lines())
    ASSERT_EQ(l.find(" queue "), std::string::npos) << "the run ended before the kill: " << l;
  r->process->signal(SIGKILL);
  ASSERT_TRUE(r->process->wait_exit(kWait));
  ::close(held);
  ::close(silent);  // the second MX host is gone now: connection refused, no session

  relays_.clear();
  r = &start_relay("relay.test", "", spool);
  ASSERT_TRUE(r->process->wait_for(
      [](const relay::LogLine& l) {
        return l.matches(relay::LogEvent::queue, {{"result", "deferred"}, {"attempts", "1"}});
      },
      kWait))
      << log(*r);
  if (tlsrpt::utc_day(std::time(nullptr)) != day_) GTEST_SKIP() << "the UTC day changed during the test";
  std::map<std::string, nlohmann::json> rep = reports(spool + "/tlsrpt.db");
  ASSERT_EQ(rep.count("kill.example"), 1u);
  const nlohmann::json& pol = rep["kill.example"]["policies"];
  ASSERT_EQ(pol.size(), 1u) << pol.dump(2);
  EXPECT_EQ(pol[0]["summary"]["total-failure-session-count"], 1) << pol.dump(2);
  EXPECT_EQ(pol[0]["summary"]["total-successful-session-count"], 0) << pol.dump(2);
  ASSERT_EQ(pol[0]["failure-details"].size(), 1u);
  EXPECT_EQ(pol[0]["failure-details"][0]["receiving-mx-hostname"], "mx1.kill.example");
}

// Each MX host is counted under its own records: two.example's first MX
// host has TLSA records (that do not match), its second no address (the
// lookup fails). The second session is not counted under the first
// host's records.
TEST_F(TlsrptWorld, EachMxHostIsCountedUnderItsOwnRecords) {
  dns_.set({"two.example", dns_type::MX, {"10 mx1.two.example.", "20 mx2.two.example."}, true});
  dns_.set({"mx1.two.example", dns_type::A, {kDaneMx}, true});
  dns_.set({"_25._tcp.mx1.two.example", dns_type::TLSA, {dane_tlsa_}, true});
  dns_.set({"mx2.two.example", dns_type::A, {}, true, DnsBehaviour::servfail});
  const std::string spool = tmp_.file("spool-two");
  Relay& a = start_relay("relay.test", "", spool);
  submit(a, "t@two.example");
  ASSERT_TRUE(run_ended(a, "t@two.example", "deferred")) << log(a);
  if (tlsrpt::utc_day(std::time(nullptr)) != day_) GTEST_SKIP() << "the UTC day changed during the test";
  std::map<std::string, nlohmann::json> rep = reports(spool + "/tlsrpt.db");
  ASSERT_EQ(rep.count("two.example"), 1u);
  std::map<std::string, nlohmann::json> by_type;
  for (const nlohmann::json& p : rep["two.example"]["policies"]) by_type[p["policy"]["policy-type"]] = p;
  ASSERT_EQ(by_type.size(), 2u) << rep["two.example"].dump(2);
  const nlohmann::json& tlsa = by_type["tlsa"];
  EXPECT_EQ(tlsa["policy"]["policy-string"].get<std::vector<std::string>>(), std::vector<std::string>{dane_tlsa_});
  EXPECT_EQ(tlsa["summary"]["total-failure-session-count"], 1);
  EXPECT_EQ(tlsa["failure-details"][0]["receiving-mx-hostname"], "mx1.two.example");
  const nlohmann::json& none = by_type["no-policy-found"];
  EXPECT_FALSE(none["policy"].contains("policy-string")) << none.dump(2);
  EXPECT_EQ(none["summary"]["total-failure-session-count"], 1);
  EXPECT_EQ(none["failure-details"][0]["receiving-mx-hostname"], "mx2.two.example");
}

}  // namespace
