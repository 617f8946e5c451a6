// queue_test.cpp — `tlsp queue ...` and `tlsp mta-sts-cache ...` against a
// real relay process (issue 11): deferred mail from a real SMTP sink that
// answers 4xx, the commands run as the real binary, the relay killed -9
// right after a request reaches its control socket; and the same
// operations with no relay running. The MTA-STS cache is one the relay
// wrote from a real HTTPS fetch.
//
// Waiting is on events (a relay log line, a message at a peer), with a
// deadline; nothing sleeps to wait.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "command.h"
#include "test_support.h"
#include "tlsp/compiler.h"
#include "tlsp/decision_table.h"
#include "tlsp/queue_control.h"
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
constexpr const char* kDefer = "451 4.3.0 try again later";

class QueueWorld : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tlsp-queue-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    spool_ = dir_ + "/spool";
    pki_ = std::make_unique<TestPki>(dir_ + "/pki");
    dns_.start("127.0.0.1");
    // Two destinations, one MX peer for both.
    for (const char* d : {"partner.example", "other.example"}) {
      dns_.set({d, dns_type::MX, {std::string("10 mx1.") + d + "."}, true});
      dns_.set({std::string("mx1.") + d, dns_type::A, {"127.0.0.2"}, true});
    }
  }

  void TearDown() override {
    // The queue lines the control socket adds are log lines like any other:
    // each reads back through the log's parser.
    if (relay_)
      for (const std::string& l : relay_->lines()) {
        std::string problem;
        if (!l.starts_with("tlsp relay: ")) {
          EXPECT_TRUE(relay::parse_log_line(l, &problem)) << problem << ": " << l;
        }
      }
    relay_.reset();
    peer_.reset();
    https_.reset();
    dns_.stop();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // The MX sink: deferring every recipient (4xx), or accepting. The first
  // one picks the port; later ones take the same port.
  SmtpPeer& sink(bool defer) {
    peer_.reset();
    SmtpPeerConfig c;
    c.address = "127.0.0.2";
    c.port = smtp_port_;
    c.hostname = "mx1.partner.example";
    c.offer_starttls = false;
    if (defer) c.rcpt_reply = kDefer;
    peer_ = std::make_unique<SmtpPeer>(c);
    smtp_port_ = peer_->port();
    return *peer_;
  }

  std::string table(const std::string& outbound_peers = "") {
    std::string text =
        "policy \"queue-test\" version \"1\";\n"
        "default domain {\n"
        "  outbound { default peer { level opportunistic; min_tls any; } }\n"
        "  inbound  { default peer { level opportunistic; min_tls any; } }\n"
        "}\n"
        "domain \"acme.example\" {\n"
        "  outbound {\n    default peer { level opportunistic; min_tls any; }\n" +
        outbound_peers + "  }\n}\n";
    std::ofstream(dir_ + "/policy.tlsp") << text;
    CompileOptions o;
    o.inputs = {dir_ + "/policy.tlsp"};
    o.threads = 1;
    CompileResult r = compile(o);
    EXPECT_TRUE(r.table) << render_diagnostics(r);
    write_table_file(dir_ + "/table.tlspdt", *r.table);
    return dir_ + "/table.tlspdt";
  }

  void start_relay(std::vector<std::string> extra = {}) {
    if (table_.empty()) table_ = table();
    std::vector<std::string> args = {"relay",
                                     "--listen",
                                     "127.0.0.1:0",
                                     "--hostname",
                                     "relay.test",
                                     "--table",
                                     table_,
                                     "--spool",
                                     spool_,
                                     "--resolver",
                                     dns_.server(),
                                     "--smtp-port",
                                     std::to_string(smtp_port_),
                                     "--ca-file",
                                     pki_->ca_file(),
                                     "--retry-schedule",
                                     "1h",
                                     "--connection-cache-time",
                                     "0",
                                     "--connect-timeout",
                                     "3s",
                                     "--dns-timeout",
                                     "3s",
                                     "--delivery-workers",
                                     "2"};
    args.insert(args.end(), extra.begin(), extra.end());
    for (std::string& a : service_user_args(dir_)) args.push_back(std::move(a));
    relay_ = std::make_unique<RelayProcess>(TLSP_BINARY, args);
    relay_port_ = relay_->wait_ready(kWait);
    ASSERT_NE(relay_port_, 0) << log();
  }

  void stop_relay() {
    relay_->signal(SIGTERM);
    ASSERT_TRUE(relay_->wait_exit(kWait));
  }

  void submit(const std::string& to) {
    SubmitOptions o;
    o.address = "127.0.0.1";
    o.port = relay_port_;
    o.ehlo_name = "client.test";
    o.message.mail_from = "alice@acme.example";
    o.message.rcpts = {to};
    o.message.data = "Subject: queued for " + to + "\r\nMessage-ID: <t@test>\r\n\r\nhello\r\n";
    o.timeout = 10s;
    SubmitResult r = submit_message(o);
    ASSERT_TRUE(r.accepted) << r.reply;
  }

  // Waits until `n` deferrals have been logged since line `from`.
  void wait_deferred(size_t n, size_t from = 0) {
    for (size_t i = 0; i < n; ++i) {
      size_t at = 0;
      ASSERT_TRUE(relay_->wait_for(
          [](const relay::LogLine& l) {
            return l.matches(relay::LogEvent::queue, {{"result", "deferred"}});
          },
          kWait, from, nullptr, &at))
          << log();
      from = at + 1;
    }
  }

  bool wait_log(const std::string& result, size_t from = 0) {
    return relay_->wait_for(
        [&](const relay::LogLine& l) {
          return l.matches(relay::LogEvent::queue, {{"result", result}});
        },
        kWait, from);
  }

  CommandRun queue(const std::string& args) { return run_tlsp("queue " + args + " --spool " + spool_); }

  nlohmann::json list() {
    std::string err;
    CommandRun r = run_tlsp("queue list --json --spool " + spool_, err);
    EXPECT_EQ(r.code, 0) << r.out << err;
    try {
      return nlohmann::json::parse(r.out)["entries"];
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what() << ": " << r.out << err;
      return nlohmann::json::array();
    }
  }

  // The ids in the queue, by recipient.
  std::map<std::string, std::string> ids() {
    std::map<std::string, std::string> m;
    for (const auto& e : list()) m[e["recipients"][0].get<std::string>()] = e["id"].get<std::string>();
    return m;
  }

  std::string log() const {
    std::string s;
    if (relay_)
      for (const std::string& l : relay_->lines()) s += l + "\n";
    return s;
  }

  // Writes a request line to the relay's control socket and returns at
  // once, without reading the reply.
  void send_raw(const std::string& line) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::string path = control_socket_path(spool_);
    std::memcpy(sa.sun_path, path.data(), path.size());
    bool connected = false;
    for (int i = 0; i < 200 && !connected; ++i) {  // the socket comes up after the start line
      connected = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
      if (!connected) relay_->wait_for([](const relay::LogLine&) { return false; }, 20ms);
    }
    ASSERT_TRUE(connected) << path;
    ASSERT_EQ(::write(fd, line.data(), line.size()), static_cast<ssize_t>(line.size()));
    ::close(fd);
  }

  std::string dir_, spool_, table_;
  std::unique_ptr<TestPki> pki_;
  DnsResponder dns_;
  std::unique_ptr<SmtpPeer> peer_;
  std::unique_ptr<HttpsServer> https_;
  uint16_t smtp_port_ = 0;
  std::unique_ptr<RelayProcess> relay_;
  uint16_t relay_port_ = 0;
};

}  // namespace

TEST_F(QueueWorld, ListAndShowGiveTheDeferredMailWithItsLastReason) {
  sink(true);
  start_relay();
  submit("bob@partner.example");
  wait_deferred(1);
  nlohmann::json l = list();
  ASSERT_EQ(l.size(), 1u) << l.dump();
  const auto& e = l[0];
  EXPECT_EQ(e["sender"], "alice@acme.example");
  EXPECT_EQ(e["recipients"], nlohmann::json::array({"bob@partner.example"}));
  EXPECT_EQ(e["attempts"], 1);
  EXPECT_EQ(e["state"], "deferred");
  EXPECT_EQ(e["held"], false);
  EXPECT_NE(e["last_reason"].get<std::string>().find(kDefer), std::string::npos) << e.dump();
  EXPECT_GT(e["size"].get<int>(), 0);
  const std::string id = e["id"];

  CommandRun text = queue("list");
  EXPECT_EQ(text.code, 0) << text.out;
  EXPECT_NE(text.out.find(id), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("to   <bob@partner.example>"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find(kDefer), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("-- 1 entry"), std::string::npos) << text.out;

  CommandRun show = queue("show " + id);
  EXPECT_EQ(show.code, 0) << show.out;
  EXPECT_NE(show.out.find("Subject: queued for bob@partner.example"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("the body (7 bytes) is not shown"), std::string::npos) << show.out;
  EXPECT_EQ(show.out.find("hello"), std::string::npos) << show.out;

  std::string err;
  CommandRun json = run_tlsp("queue show " + id + " --json --spool " + spool_, err);
  ASSERT_EQ(json.code, 0) << json.out << err;
  nlohmann::json j = nlohmann::json::parse(json.out);
  EXPECT_EQ(j["id"], id);
  EXPECT_EQ(j["body_bytes"], 7);
  EXPECT_EQ(j["headers_cut"], false);
  EXPECT_NE(std::find(j["headers"].begin(), j["headers"].end(), "Subject: queued for bob@partner.example"),
            j["headers"].end())
      << json.out;

  CommandRun missing = queue("show 18c1f2a3b4c5d-1a2b-3.0");
  EXPECT_EQ(missing.code, 1) << missing.out;
  EXPECT_NE(missing.out.find("no queued entry"), std::string::npos) << missing.out;
  CommandRun bad = queue("show ../../etc/passwd");
  EXPECT_EQ(bad.code, 2) << bad.out;
}

TEST_F(QueueWorld, FlushDeliversDeferredMailAtOnceWithoutWaitingForTheRetry) {
  sink(true);
  start_relay();  // retry schedule 1h
  submit("bob@partner.example");
  submit("carol@other.example");
  wait_deferred(2);
  SmtpPeer& mx = sink(false);  // the destination accepts now
  size_t mark = relay_->line_count();
  CommandRun one = queue("flush --domain partner.example");
  EXPECT_EQ(one.code, 0) << one.out;
  EXPECT_NE(one.out.find("1 entry made due now"), std::string::npos) << one.out;
  ASSERT_TRUE(mx.wait_for_messages(1, 10s)) << log();
  ASSERT_TRUE(wait_log("removed", mark)) << log();
  EXPECT_EQ(mx.messages()[0].rcpts, std::vector<std::string>{"bob@partner.example"});
  // Only that domain: the other entry is still waiting for its hour.
  nlohmann::json l = list();
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0]["recipients"][0], "carol@other.example");
  CommandRun all = queue("flush");
  EXPECT_EQ(all.code, 0) << all.out;
  ASSERT_TRUE(mx.wait_for_messages(2, 10s)) << log();
}

TEST_F(QueueWorld, AHeldEntryIsNeverDeliveredUntilReleasedAlsoAcrossARestart) {
  sink(true);
  start_relay();
  submit("bob@partner.example");
  wait_deferred(1);
  const std::string id = ids()["bob@partner.example"];
  CommandRun hold = queue("hold " + id);
  EXPECT_EQ(hold.code, 0) << hold.out;
  EXPECT_NE(hold.out.find("1 entry held"), std::string::npos) << hold.out;
  EXPECT_EQ(list()[0]["state"], "held");
  EXPECT_EQ(list()[0]["next_attempt"], nullptr);

  SmtpPeer& mx = sink(false);
  CommandRun flush = queue("flush " + id);
  EXPECT_EQ(flush.code, 0) << flush.out;
  EXPECT_NE(flush.out.find("is held: release it first"), std::string::npos) << flush.out;
  EXPECT_NE(flush.out.find("0 entries made due now"), std::string::npos) << flush.out;
  // A restart makes every recovered entry due at once, but not a held one.
  stop_relay();
  start_relay();
  EXPECT_TRUE(relay_->wait_for(
      [](const relay::LogLine& l) {
        return l.matches(relay::LogEvent::start, {{"recovered", "1"}});
      },
      kWait))
      << log();
  EXPECT_FALSE(mx.wait_for_messages(1, 2s));
  EXPECT_EQ(list()[0]["held"], true);

  CommandRun again = queue("hold " + id);
  EXPECT_EQ(again.code, 0);
  EXPECT_NE(again.out.find("already held"), std::string::npos) << again.out;
  CommandRun release = queue("release " + id);
  EXPECT_EQ(release.code, 0) << release.out;
  ASSERT_TRUE(mx.wait_for_messages(1, 10s)) << log();
  ASSERT_TRUE(wait_log("removed")) << log();
  EXPECT_TRUE(wait_log("released")) << log();
  EXPECT_EQ(list().size(), 0u);
}

TEST_F(QueueWorld, DeleteByIdAndByDomainSendsNoBounce) {
  sink(true);
  start_relay();
  submit("bob@partner.example");
  submit("dave@partner.example");
  submit("carol@other.example");
  wait_deferred(3);
  auto m = ids();
  ASSERT_EQ(m.size(), 3u);
  CommandRun one = queue("delete " + m["carol@other.example"]);
  EXPECT_EQ(one.code, 0) << one.out;
  EXPECT_NE(one.out.find("1 entry deleted (no bounce sent)"), std::string::npos) << one.out;
  CommandRun usage = queue("delete --domain partner.example");  // --all is required
  EXPECT_EQ(usage.code, 2) << usage.out;
  CommandRun dom = queue("delete --all --domain Partner.Example");
  EXPECT_EQ(dom.code, 0) << dom.out;
  EXPECT_NE(dom.out.find("2 entries deleted"), std::string::npos) << dom.out;
  EXPECT_EQ(list().size(), 0u);
  EXPECT_TRUE(wait_log("deleted")) << log();
  stop_relay();
  for (const std::string& l : relay_->lines()) EXPECT_EQ(l.find(" bounce "), std::string::npos) << l;
  EXPECT_TRUE(fs::is_empty(spool_ + "/queue"));
  EXPECT_TRUE(fs::is_empty(spool_ + "/failed"));
}

TEST_F(QueueWorld, TheSameOperationsWorkWithNoRelayRunning) {
  sink(true);
  start_relay();
  submit("bob@partner.example");
  submit("dave@partner.example");
  submit("carol@other.example");
  wait_deferred(3);
  stop_relay();
  auto m = ids();  // read from the spool itself: the lock is free
  ASSERT_EQ(m.size(), 3u);
  CommandRun show = queue("show " + m["bob@partner.example"]);
  EXPECT_EQ(show.code, 0) << show.out;
  EXPECT_NE(show.out.find("Subject: queued for bob@partner.example"), std::string::npos) << show.out;
  EXPECT_EQ(queue("hold " + m["bob@partner.example"]).code, 0);
  EXPECT_EQ(queue("hold " + m["carol@other.example"]).code, 0);
  EXPECT_EQ(queue("release " + m["carol@other.example"]).code, 0);
  CommandRun flush = queue("flush");
  EXPECT_EQ(flush.code, 0) << flush.out;
  EXPECT_NE(flush.out.find("no relay runs"), std::string::npos) << flush.out;
  EXPECT_EQ(queue("delete " + m["dave@partner.example"]).code, 0);
  nlohmann::json l = list();
  ASSERT_EQ(l.size(), 2u);
  for (const auto& e : l) EXPECT_EQ(e["held"], e["recipients"][0] == "bob@partner.example") << e.dump();
  // Run as root, the command acted as the spool's owner (the relay's
  // user): every file it made is the relay's to read and replace.
  struct stat top {};
  ASSERT_EQ(::stat(spool_.c_str(), &top), 0);
  for (const auto& f : std::filesystem::recursive_directory_iterator(spool_)) {
    struct stat st {};
    ASSERT_EQ(::lstat(f.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, top.st_uid) << f.path();
    EXPECT_EQ(st.st_gid, top.st_gid) << f.path();
  }
  // The relay finds it so: the held entry stays, the other one is delivered.
  SmtpPeer& mx = sink(false);
  start_relay();
  ASSERT_TRUE(mx.wait_for_messages(1, 10s)) << log();
  EXPECT_EQ(mx.messages()[0].rcpts, std::vector<std::string>{"carol@other.example"});
  ASSERT_TRUE(wait_log("removed")) << log();
  EXPECT_FALSE(mx.wait_for_messages(2, 1s));
  l = list();
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0]["state"], "held");
  // What the command changed on its own is the relay's to use: run as root,
  // it acted as the spool's owner, so the relay (the service user) can
  // release, deliver and remove the entry the command held.
  EXPECT_EQ(queue("release " + m["bob@partner.example"]).code, 0);
  EXPECT_EQ(queue("flush").code, 0);
  ASSERT_TRUE(mx.wait_for_messages(2, 10s)) << log();
  EXPECT_EQ(mx.messages()[1].rcpts, std::vector<std::string>{"bob@partner.example"});
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  while (!list().empty() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(list().empty()) << log();
}

// kill -9 of the relay right after each request reaches its control socket:
// after a restart the spool recovers, every entry is in its old or its new
// state, none is lost or duplicated, and `tlsp queue list` reads it.
TEST_F(QueueWorld, KillNineDuringEachOperationLeavesEveryEntryOldOrNew) {
  sink(true);
  struct Op {
    std::string name;
    std::string logged;  // the relay's `queue result=` once the change is made
  };
  const std::vector<Op> ops = {{"hold", "held"},
                               {"release", "released"},
                               {"delete", "deleted"},
                               {"delete-domain", "deleted"},
                               {"flush-domain", "flushed"},
                               {"flush", "flushed"}};
  // Killed right after the request is written (anywhere in the change, or
  // before it), and killed once the relay said it made the change (the
  // new state must then be on disk).
  for (const Op& op : ops) {
    for (bool after_change : {false, true}) {
      SCOPED_TRACE(op.name + (after_change ? ", killed after the change" : ", killed at once"));
      std::error_code ec;
      fs::remove_all(spool_, ec);
      start_relay();
      submit("bob@partner.example");
      submit("dave@partner.example");
      submit("carol@other.example");
      wait_deferred(3);
      auto before = ids();
      ASSERT_EQ(before.size(), 3u);
      const std::string target = before["bob@partner.example"];
      if (op.name == "release") {
        ASSERT_EQ(queue("hold " + target).code, 0);
      }
      std::string arg = op.name.ends_with("-domain") ? "partner.example" : op.name == "flush" ? "" : target;
      size_t mark = relay_->line_count();
      send_raw("tlsp-queue/1 " + op.name + (arg.empty() ? "" : " " + arg) + "\n");
      if (after_change) {
        ASSERT_TRUE(wait_log(op.logged, mark)) << log();
      }
      relay_->signal(SIGKILL);
      ASSERT_TRUE(relay_->wait_exit(kWait));

      // With the relay gone the command reads the spool itself.
      nlohmann::json after = list();
      std::set<std::string> seen;
      std::map<std::string, bool> held;
      for (const auto& e : after) {
        EXPECT_TRUE(seen.insert(e["id"].get<std::string>()).second) << "duplicate " << e.dump();
        const std::string rcpt = e["recipients"][0];
        EXPECT_EQ(before[rcpt], e["id"]) << "an entry changed its id: " << e.dump();
        EXPECT_EQ(e["recipients"].size(), 1u);
        EXPECT_EQ(e["attempts"], 1) << e.dump();
        held[rcpt] = e["held"].get<bool>();
        if (rcpt != "bob@partner.example") {
          EXPECT_FALSE(held[rcpt]) << e.dump();
        }
      }
      EXPECT_TRUE(seen.count(before["carol@other.example"])) << "an entry of another domain was lost";
      if (!op.name.starts_with("delete")) {
        EXPECT_EQ(after.size(), 3u) << "an entry was lost";
      }
      if (after_change && (op.name == "hold" || op.name == "release")) {
        EXPECT_EQ(held["bob@partner.example"], op.name == "hold");
      }
      if (after_change && op.name == "delete") {
        EXPECT_EQ(after.size(), 2u);
        EXPECT_FALSE(seen.count(target));
      }
      if (op.name == "delete-domain") {
        // By domain, entry by entry: each one gone or still there, and once
        // the relay logged a deletion, at least that one is gone.
        EXPECT_GE(after.size(), 1u);
        EXPECT_LE(after.size(), after_change ? 2u : 3u);
      }
      // The relay starts on it and recovers exactly what the list showed.
      start_relay();
      EXPECT_TRUE(relay_->wait_for(
          [&](const relay::LogLine& l) {
            return l.matches(relay::LogEvent::start, {{"recovered", std::to_string(after.size())}});
          },
          kWait))
          << log();
      EXPECT_EQ(list().size(), after.size());
      stop_relay();
    }
  }
}

// An entry whose attempt is running is not changed: hold/release/delete by
// id are refused with a clear message, a delete by domain skips it and says
// so; once the attempt ends the same request works.
TEST_F(QueueWorld, AnEntryBeingDeliveredIsRefusedUntilItsAttemptEnds) {
  sink(true);
  // slow.example's MX accepts connections (the kernel does, from the
  // backlog) and never greets: the attempt waits on it.
  dns_.set({"slow.example", dns_type::MX, {"10 mx1.slow.example."}, true});
  dns_.set({"mx1.slow.example", dns_type::A, {"127.0.0.3"}, true});
  int silent = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(silent, 0);
  int one = 1;
  ::setsockopt(silent, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(smtp_port_);
  sa.sin_addr.s_addr = htonl(0x7f000003);
  ASSERT_EQ(::bind(silent, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0) << std::strerror(errno);
  ASSERT_EQ(::listen(silent, 8), 0);
  start_relay({"--command-timeout", "60s"});
  submit("erin@slow.example");
  std::string id;
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  while (id.empty() && std::chrono::steady_clock::now() < deadline) {
    for (const auto& e : list())
      if (e["state"] == "delivering") id = e["id"];
  }
  ASSERT_FALSE(id.empty()) << log();
  for (const char* op : {"hold ", "delete "}) {
    CommandRun r = queue(std::string(op) + id);
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.out.find("is being delivered right now; try again when the attempt ends"), std::string::npos) << r.out;
  }
  CommandRun dom = queue("delete --all --domain slow.example");
  EXPECT_EQ(dom.code, 0) << dom.out;
  EXPECT_NE(dom.out.find("0 entries deleted"), std::string::npos) << dom.out;
  EXPECT_NE(dom.out.find("being delivered right now"), std::string::npos) << dom.out;
  ASSERT_EQ(list().size(), 1u);
  // The peer goes away: the attempt ends (deferred), and the hold works.
  size_t mark = relay_->line_count();
  ::close(silent);
  ASSERT_TRUE(wait_log("deferred", mark)) << log();
  CommandRun hold = queue("hold " + id);
  EXPECT_EQ(hold.code, 0) << hold.out;
  EXPECT_EQ(list()[0]["state"], "held");
}

TEST_F(QueueWorld, OnlyRootAndTheRelaysUserMayUseTheControlSocket) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a command as another user";
  sink(true);
  start_relay();
  submit("bob@partner.example");
  wait_deferred(1);
  struct stat st {};
  ASSERT_EQ(::stat(control_socket_path(spool_).c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);
  ASSERT_EQ(::chmod(spool_.c_str(), 0755), 0);
  // The file mode stops another user first (not nobody: the relay runs
  // as nobody when the tests run as root, service_user_args()) ...
  const std::string as_other = "setpriv --reuid=65533 --regid=65533 --clear-groups " + std::string(TLSP_BINARY) +
                                " queue list --spool " + spool_ + " 2>&1";
  CommandRun r = tlsp::testing_support::run_shell(as_other);
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("Permission denied"), std::string::npos) << r.out;
  // ... and with the mode opened, SO_PEERCRED still does.
  ASSERT_EQ(::chmod(control_socket_path(spool_).c_str(), 0666), 0);
  r = tlsp::testing_support::run_shell(as_other);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("only root and the relay's user"), std::string::npos) << r.out;
  EXPECT_TRUE(relay_->wait_for(
      [](const relay::LogLine& l) {
        return l.matches(relay::LogEvent::spool, {{"result", "control-refused"}});
      },
      kWait))
      << log();
}

TEST_F(QueueWorld, ASecondRelayOnTheSameSpoolIsRefused) {
  sink(true);
  start_relay();
  std::vector<std::string> args = {"relay",   "--listen", "127.0.0.1:0", "--hostname",   "relay.test", "--table",
                                   table_,    "--spool",  spool_,        "--resolver", dns_.server()};
  for (std::string& a : service_user_args(dir_)) args.push_back(std::move(a));
  RelayProcess second(TLSP_BINARY, args);
  EXPECT_EQ(second.wait_ready(kWait), 0);
  std::optional<int> status = second.wait_exit(kWait);
  ASSERT_TRUE(status);
  std::string all;
  for (const std::string& l : second.lines()) all += l + "\n";
  EXPECT_NE(all.find("is in use by another relay"), std::string::npos) << all;
  EXPECT_TRUE(relay_->running());
}

// ------------------------------------------------------------ MTA-STS cache

TEST_F(QueueWorld, MtaStsCacheListAndPurgeAPolicyTheRelayFetched) {
  SmtpPeerConfig c;
  c.address = "127.0.0.2";
  c.hostname = "mx1.bank.example";
  TestCert mx_cert = pki_->issue({"mx1.bank.example"});
  c.cert_file = mx_cert.cert_file;
  c.key_file = mx_cert.key_file;
  peer_ = std::make_unique<SmtpPeer>(c);
  smtp_port_ = peer_->port();
  SmtpPeer& mx = *peer_;
  dns_.set({"bank.example", dns_type::MX, {"10 mx1.bank.example."}, false});
  dns_.set({"mx1.bank.example", dns_type::A, {"127.0.0.2"}, false});
  TestCert sts = pki_->issue({"mta-sts.bank.example"});
  https_ = std::make_unique<HttpsServer>();
  https_->start(sts.cert_file, sts.key_file, "127.0.0.40");
  https_->add_certificate("mta-sts.bank.example", sts.cert_file, sts.key_file);
  HttpsResponse policy;
  policy.body = "version: STSv1\nmode: enforce\nmx: mx1.bank.example\nmax_age: 86400\n";
  https_->set_response("mta-sts.bank.example", "/.well-known/mta-sts.txt", policy);
  dns_.set({"_mta-sts.bank.example", dns_type::TXT, {"\"v=STSv1; id=20261207\""}, false});
  dns_.set({"mta-sts.bank.example", dns_type::A, {"127.0.0.40"}, false});
  table_ = table("    peer \"bank.example\" { level mta-sts; min_tls tls1.2; }\n");
  start_relay({"--mta-sts-port", std::to_string(https_->port())});
  submit("bob@bank.example");
  ASSERT_TRUE(mx.wait_for_messages(1, kWait)) << log();
  const size_t fetches = https_->request_count();
  ASSERT_GE(fetches, 1u);

  std::string err;
  CommandRun l = run_tlsp("mta-sts-cache list --json --spool " + spool_, err);
  ASSERT_EQ(l.code, 0) << l.out << err;
  nlohmann::json j = nlohmann::json::parse(l.out);
  ASSERT_EQ(j.size(), 1u) << l.out;
  EXPECT_EQ(j[0]["domain"], "bank.example");
  EXPECT_EQ(j[0]["id"], "20261207");
  EXPECT_EQ(j[0]["mode"], "enforce");
  EXPECT_EQ(j[0]["mx"], nlohmann::json::array({"mx1.bank.example"}));
  EXPECT_EQ(j[0]["expired"], false);
  CommandRun text = run_tlsp("mta-sts-cache list --spool " + spool_);
  EXPECT_NE(text.out.find("bank.example  id 20261207  mode enforce  max_age 86400"), std::string::npos) << text.out;

  // A second message with the same TXT id: served from the cache, no fetch.
  submit("carol@bank.example");
  ASSERT_TRUE(mx.wait_for_messages(2, kWait)) << log();
  EXPECT_EQ(https_->request_count(), fetches);
  // Purged while the relay runs: the next delivery fetches again, since
  // the relay keeps no copy of its own.
  CommandRun purge = run_tlsp("mta-sts-cache purge bank.example --spool " + spool_);
  EXPECT_EQ(purge.code, 0) << purge.out;
  EXPECT_NE(purge.out.find("1 cached policy removed"), std::string::npos) << purge.out;
  EXPECT_EQ(run_tlsp("mta-sts-cache list --spool " + spool_).out, "the policy cache is empty\n");
  submit("dave@bank.example");
  ASSERT_TRUE(mx.wait_for_messages(3, kWait)) << log();
  EXPECT_GT(https_->request_count(), fetches);
  // Purge of everything, and of a domain with nothing cached.
  CommandRun all = run_tlsp("mta-sts-cache purge --spool " + spool_);
  EXPECT_EQ(all.code, 0) << all.out;
  EXPECT_NE(all.out.find("1 cached policy removed"), std::string::npos) << all.out;
  CommandRun none = run_tlsp("mta-sts-cache purge nothing.example --spool " + spool_);
  EXPECT_EQ(none.code, 0);
  EXPECT_NE(none.out.find("0 cached policies removed"), std::string::npos) << none.out;
  EXPECT_EQ(run_tlsp("mta-sts-cache purge 'bad..name' --spool " + spool_).code, 2);
}
