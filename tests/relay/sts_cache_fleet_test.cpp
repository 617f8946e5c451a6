// sts_cache_fleet_test.cpp — the MTA-STS policy cache in Redis shared by a
// fleet (`mta-sts-cache = redis://...`, docs/relay.md): two real relay
// processes, each with its own spool, naming one real redis-server started
// by the test on a free loopback port, deliver to an MTA-STS peer whose
// policy a loopback HTTPS server serves and counts. The second relay uses
// the policy the first fetched without fetching; `tlsp mta-sts-cache purge`
// reaches both; a Redis that is down, or that accepts connections and
// never answers, still lets mail go out per the policy (fetched instead),
// within the cache's timeout.
//
// Waiting is on events (a relay log line, a message at the peer), with a
// deadline; nothing sleeps to wait.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "command.h"
#include "redis_server.h"
#include "test_support.h"
#include "tlsp/compiler.h"
#include "tlsp/decision_table.h"
#include "tlsp/mta_sts_cache.h"
#include "tlsp/relay.h"
#include "tlsp/sim/dns_responder.h"
#include "tlsp/sim/https_server.h"
#include "tlsp/sim/relay_process.h"
#include "tlsp/sim/smtp_peer.h"
#include "tlsp/sim/test_pki.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace tlsp;
using namespace tlsp::sim;
using tlsp::testing_support::CommandRun;
using tlsp::testing_support::run_tlsp;

namespace {

constexpr auto kWait = 20s;
constexpr char kPolicy[] = "version: STSv1\nmode: enforce\nmx: mx1.bank.example\nmax_age: 86400\n";

class FleetWorld : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_ = std::make_unique<TestPki>(tmp_.file("pki"));
    dns_.start("127.0.0.1");
    SmtpPeerConfig c;
    c.address = "127.0.0.2";
    c.hostname = "mx1.bank.example";
    TestCert mx_cert = pki_->issue({"mx1.bank.example"});
    c.cert_file = mx_cert.cert_file;
    c.key_file = mx_cert.key_file;
    mx_ = std::make_unique<SmtpPeer>(c);
    dns_.set({"bank.example", dns_type::MX, {"10 mx1.bank.example."}, false});
    dns_.set({"mx1.bank.example", dns_type::A, {"127.0.0.2"}, false});
    TestCert sts = pki_->issue({"mta-sts.bank.example"});
    https_ = std::make_unique<HttpsServer>();
    https_->start(sts.cert_file, sts.key_file, "127.0.0.40");
    https_->add_certificate("mta-sts.bank.example", sts.cert_file, sts.key_file);
    HttpsResponse policy;
    policy.body = kPolicy;
    https_->set_response("mta-sts.bank.example", "/.well-known/mta-sts.txt", policy);
    dns_.set({"_mta-sts.bank.example", dns_type::TXT, {"\"v=STSv1; id=20261207\""}, false});
    dns_.set({"mta-sts.bank.example", dns_type::A, {"127.0.0.40"}, false});
    table_ = table();
  }

  void TearDown() override {
    relays_.clear();
    mx_.reset();
    https_.reset();
    dns_.stop();
  }

  std::string table() {
    const std::string text =
        "policy \"fleet-test\" version \"1\";\n"
        "default domain {\n"
        "  outbound { default peer { level opportunistic; min_tls any; } }\n"
        "  inbound  { default peer { level opportunistic; min_tls any; } }\n"
        "}\n"
        "domain \"acme.example\" {\n"
        "  outbound {\n"
        "    default peer { level opportunistic; min_tls any; }\n"
        "    peer \"bank.example\" { level mta-sts; min_tls tls1.2; }\n"
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
  };

  // A relay with a spool of its own and the given cache.
  Relay& start_relay(const std::string& cache) {
    const std::string spool = tmp_.file("spool" + std::to_string(relays_.size()));
    std::vector<std::string> args = {"relay",          "--listen",     "127.0.0.1:0",
                                     "--hostname",     "relay.test",   "--table",
                                     table_,           "--spool",      spool,
                                     "--resolver",     dns_.server(),  "--smtp-port",
                                     std::to_string(mx_->port()),      "--ca-file",
                                     pki_->ca_file(),  "--mta-sts-port", std::to_string(https_->port()),
                                     "--mta-sts-cache", cache,         "--retry-schedule",
                                     "1h",             "--connection-cache-time", "0",
                                     "--delivery-workers", "2"};
    for (std::string& a : service_user_args(tmp_.path())) args.push_back(std::move(a));
    relays_.push_back({std::make_unique<RelayProcess>(TLSP_BINARY, args), 0});
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

  // Waits for the relay's authenticated MTA-STS delivery number `n` (1, 2, ...).
  bool delivered_authenticated(Relay& relay, size_t n) {
    size_t from = 0;
    for (size_t i = 0; i < n; ++i) {
      size_t at = 0;
      if (!relay.process->wait_for(
              [](const relay::LogLine& l) {
                return l.matches(relay::LogEvent::attempt,
                                 {{"outcome", "deliver"}, {"channel", "authenticated"}, {"auth", "mta-sts"}});
              },
              kWait, from, nullptr, &at))
        return false;
      from = at + 1;
    }
    return true;
  }

  static std::string log(const Relay& r) {
    std::string s;
    if (r.process)
      for (const std::string& l : r.process->lines()) s += l + "\n";
    return s;
  }

  nlohmann::json cache_list(const std::string& cache) {
    std::string err;
    CommandRun l = run_tlsp("mta-sts-cache list --json --cache " + cache, err);
    EXPECT_EQ(l.code, 0) << l.out << err;
    try {
      return nlohmann::json::parse(l.out);
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what() << ": " << l.out << err;
      return nlohmann::json::array();
    }
  }

  tlsp::testing_support::TempDir tmp_{"tlsp-sts-fleet"};
  std::unique_ptr<TestPki> pki_;
  DnsResponder dns_;
  std::unique_ptr<SmtpPeer> mx_;
  std::unique_ptr<HttpsServer> https_;
  std::string table_;
  std::vector<Relay> relays_;
};

TEST_F(FleetWorld, TwoRelaysShareOneFetchedPolicyAndAPurgeReachesBoth) {
  tlsp::testing_support::RedisServer redis;
  const std::string cache = redis.url(3);
  relays_.reserve(2);
  Relay& a = start_relay(cache);
  Relay& b = start_relay(cache);

  submit(a, "bob@bank.example");
  ASSERT_TRUE(mx_->wait_for_messages(1, kWait)) << log(a);
  ASSERT_TRUE(delivered_authenticated(a, 1)) << log(a);
  EXPECT_EQ(https_->request_count(), 1u);
  nlohmann::json j = cache_list(cache);
  ASSERT_EQ(j.size(), 1u) << j.dump();
  EXPECT_EQ(j[0]["domain"], "bank.example");
  EXPECT_EQ(j[0]["path"], "tlsp:mta-sts:bank.example");
  EXPECT_EQ(j[0]["id"], "20261207");
  EXPECT_EQ(j[0]["expired"], false);

  // The other relay: the policy the first fetched, not fetched again.
  submit(b, "carol@bank.example");
  ASSERT_TRUE(mx_->wait_for_messages(2, kWait)) << log(b);
  ASSERT_TRUE(delivered_authenticated(b, 1)) << log(b);
  EXPECT_EQ(https_->request_count(), 1u) << log(b);

  // Purged once, gone for both: the next delivery through b fetches, and a
  // uses what b fetched.
  CommandRun purge = run_tlsp("mta-sts-cache purge bank.example --cache " + cache);
  EXPECT_EQ(purge.code, 0) << purge.out;
  EXPECT_NE(purge.out.find("1 cached policy removed"), std::string::npos) << purge.out;
  EXPECT_EQ(run_tlsp("mta-sts-cache list --cache " + cache).out, "the policy cache is empty\n");
  submit(b, "dave@bank.example");
  ASSERT_TRUE(mx_->wait_for_messages(3, kWait)) << log(b);
  ASSERT_TRUE(delivered_authenticated(b, 2)) << log(b);
  EXPECT_EQ(https_->request_count(), 2u);
  submit(a, "erin@bank.example");
  ASSERT_TRUE(mx_->wait_for_messages(4, kWait)) << log(a);
  ASSERT_TRUE(delivered_authenticated(a, 2)) << log(a);
  EXPECT_EQ(https_->request_count(), 2u) << log(a);
  CommandRun all = run_tlsp("mta-sts-cache purge --cache " + cache);
  EXPECT_NE(all.out.find("1 cached policy removed"), std::string::npos) << all.out;
}

// Redis stopped while the relay runs: each delivery is "nothing cached",
// fetches the policy and delivers by it.
TEST_F(FleetWorld, ARedisThatIsDownStillDeliversByAFetchedPolicy) {
  tlsp::testing_support::RedisServer redis;
  const std::string cache = redis.url(0);
  Relay& a = start_relay(cache);
  submit(a, "bob@bank.example");
  ASSERT_TRUE(delivered_authenticated(a, 1)) << log(a);
  EXPECT_EQ(https_->request_count(), 1u);
  redis.kill();  // nothing listens on its port now
  submit(a, "carol@bank.example");
  ASSERT_TRUE(mx_->wait_for_messages(2, kWait)) << log(a);
  ASSERT_TRUE(delivered_authenticated(a, 2)) << log(a);
  EXPECT_EQ(https_->request_count(), 2u);
  // The attempt line says the policy was fetched and could not be cached.
  EXPECT_TRUE(a.process->wait_for(
      [](const relay::LogLine& l) {
        return l.matches(relay::LogEvent::attempt, {{"to", "<carol@bank.example>"}, {"status", "sent"}}) &&
               l.get("sts").find("not cached: ") != std::string::npos;
      },
      kWait))
      << log(a);
  std::string err;
  CommandRun l = run_tlsp("mta-sts-cache list --cache " + cache, err);
  EXPECT_EQ(l.code, 2) << l.out;
  EXPECT_NE(err.find(cache), std::string::npos) << err;
}

// A Redis that accepts connections and never answers (stopped with
// SIGSTOP): the relay waits at most the cache's timeout for the lookup and
// the store, then delivers by the policy it fetched; the next delivery does
// not wait for it again (kStsCacheRedisRetryAfter).
TEST_F(FleetWorld, ARedisThatNeverAnswersDelaysADeliveryByTheTimeoutAtMost) {
  tlsp::testing_support::RedisServer redis;
  Relay& a = start_relay(redis.url(0));
  redis.pause();
  const auto t0 = std::chrono::steady_clock::now();
  submit(a, "bob@bank.example");
  ASSERT_TRUE(mx_->wait_for_messages(1, kWait)) << log(a);
  ASSERT_TRUE(delivered_authenticated(a, 1)) << log(a);
  const auto first = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(https_->request_count(), 1u);
  const auto t1 = std::chrono::steady_clock::now();
  submit(a, "carol@bank.example");
  ASSERT_TRUE(mx_->wait_for_messages(2, kWait)) << log(a);
  ASSERT_TRUE(delivered_authenticated(a, 2)) << log(a);
  const auto second = std::chrono::steady_clock::now() - t1;
  EXPECT_EQ(https_->request_count(), 2u);
  redis.resume();
  auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
  std::cout << "delivery with a hung Redis cache: " << ms(first) << " ms, the next one " << ms(second) << " ms\n";
  // The lookup waited out the timeout (the store was not tried again), and
  // the delivery itself; the second delivery waited for nothing.
  EXPECT_GE(first, kStsCacheRedisTimeout);
  EXPECT_LT(first, kStsCacheRedisTimeout + 3s);
  EXPECT_LT(second, first);
}

TEST(MtaStsCacheSetting, ARedisCacheMustBeAValidUrl) {
  auto problems = [](const std::string& cache) {
    RelayConfig c;
    c.listen = {"127.0.0.1:25"};
    c.table = "t";
    c.spool_dir = "s";
    c.mta_sts_cache = cache;
    std::vector<std::string> out;
    for (const ConfigProblem& p : relay_config_problems(c))
      if (p.setting == "mta-sts-cache") out.push_back(p.text);
    return out;
  };
  for (const char* ok : {"", "/var/cache/tlsp/sts", "redis://127.0.0.1:6379/0", "redis://cache.example:6380/12",
                         "redis://[::1]:6379/1"})
    EXPECT_EQ(problems(ok), std::vector<std::string>{}) << ok;
  for (const char* bad : {"redis://", "redis://127.0.0.1:6379", "redis://127.0.0.1/0", "redis://127.0.0.1:0/0",
                          "redis://127.0.0.1:6379/x", "REDIS://127.0.0.1:6379/"}) {
    auto p = problems(bad);
    EXPECT_EQ(p.size(), 1u) << bad;
  }
  // The relay refuses to start with one, naming the setting.
  std::string err;
  CommandRun r = run_tlsp("relay --listen 127.0.0.1:0 --table t --spool s --mta-sts-cache redis://127.0.0.1:6379", err);
  EXPECT_EQ(r.code, 2) << r.out << err;
  EXPECT_NE(err.find("mta-sts-cache"), std::string::npos) << err;
}

}  // namespace
