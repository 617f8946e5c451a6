// relay_test.cpp — end-to-end tests of `tlsp relay` (issue 4): the real
// relay binary as a child process, real SMTP peers with real TLS on
// 127.0.0.x, a real DNS responder (ldns) answering with or without the AD
// bit, a real HTTPS server for MTA-STS, certificates made at test time.
// Each test builds its own world in a fresh directory and tears it down.
//
// Waiting is always on an event (a log line of the relay, a message at a
// peer), with a deadline; nothing sleeps.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "tlsp/compiler.h"
#include "tlsp/relay.h"
#include "tlsp/dane.h"
#include "tlsp/decision_table.h"
#include "tlsp/sim/dns_responder.h"
#include "tlsp/sim/https_server.h"
#include "tlsp/sim/relay_process.h"
#include "tlsp/sim/slow_clients.h"
#include "tlsp/sim/smtp_peer.h"
#include "tlsp/sim/test_pki.h"
#include "tlsp/stream.h"
#include "tlsp/tls.h"
#include "command.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace tlsp;
using namespace tlsp::sim;

namespace {

constexpr auto kWait = 20s;  // generous: CI machines are slow; a pass is usually < 1 s

using Fields = std::map<std::string, std::string>;
using relay::LogLine;

// A relay log line through the log's own parser; a line it refuses fails
// the test.
LogLine parsed(const std::string& line) {
  std::string problem;
  std::optional<LogLine> l = relay::parse_log_line(line, &problem);
  if (!l) {
    ADD_FAILURE() << "the relay wrote a line its parser refuses (" << problem << "): " << line;
    return {};
  }
  return *l;
}

// `line` is an `event` line carrying every one of `want`.
bool line_matches(const LogLine& line, const std::string& event, const Fields& want) {
  std::optional<relay::LogEvent> e = relay::parse_log_event(event);
  if (!e) ADD_FAILURE() << "no such relay log event: " << event;
  return e && line.matches(*e, relay::LogFields(want.begin(), want.end()));
}

// A raw SMTP dialogue: the greeting, then one reply per command (a
// multi-line reply as one string). An empty command sends nothing and
// just waits for what the server says next (a timeout reply).
std::vector<std::string> smtp_dialogue(const std::string& address, uint16_t port,
                                       const std::vector<std::string>& commands, std::chrono::milliseconds timeout) {
  std::vector<std::string> replies;
  std::string error;
  int fd = connect_tcp(address, port, timeout, error);
  if (fd < 0) return replies;
  Stream s(fd);
  s.set_timeout(timeout);
  auto read_reply = [&]() -> bool {
    std::string all, line;
    while (true) {
      if (s.read_line(line, 100000) != IoStatus::ok) return false;
      all += (all.empty() ? "" : "\n") + line;
      if (line.size() < 4 || line[3] != '-') break;
    }
    replies.push_back(all);
    return true;
  };
  if (!read_reply()) return replies;
  for (const std::string& c : commands) {
    if (!c.empty() && s.write_all(c + "\r\n") != IoStatus::ok) break;
    if (!read_reply()) break;
  }
  return replies;
}

// ---------------------------------------------- writing a table in place

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Writes `bytes` at `offset` of the existing file, on the same inode, as
// `cp` over a live table does (O_TRUNC first when `truncate`) or as a
// botched copy that stops early. Never a rename.
void write_in_place(const std::string& path, std::string_view bytes, bool truncate, off_t offset = 0) {
  const int fd = ::open(path.c_str(), O_WRONLY | (truncate ? O_TRUNC : 0));
  ASSERT_GE(fd, 0) << path;
  while (!bytes.empty()) {
    const ssize_t n = ::pwrite(fd, bytes.data(), bytes.size(), offset);
    ASSERT_GT(n, 0);
    bytes.remove_prefix(static_cast<size_t>(n));
    offset += n;
  }
  ::close(fd);
}

class RelayWorld : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tlsp-relay-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    pki_ = std::make_unique<TestPki>(dir_ + "/pki");
    relay_cert_ = pki_->issue({"relay.test"});
    dns_.start("127.0.0.1");
    // Every MX peer listens on the same port (the relay's --smtp-port) on
    // its own 127.0.0.x address; the first free port of 127.0.0.2 decides.
    smtp_port_ = 0;
  }

  void TearDown() override {
    // The log is a contract: every line the relay wrote reads back through
    // its parser (the CLI's own `tlsp relay: error:` lines are not the log).
    if (relay_)
      for (const std::string& l : relay_->lines())
        if (!l.starts_with("tlsp relay: ")) parsed(l);
    relay_.reset();
    peers_.clear();
    dns_.stop();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // ----------------------------------------------------------- the world

  SmtpPeer& peer(const std::string& address, SmtpPeerConfig cfg) {
    cfg.address = address;
    cfg.port = smtp_port_;
    if (cfg.cert_file.empty() && cfg.offer_starttls) {
      TestCert c = pki_->issue({cfg.hostname});
      cfg.cert_file = c.cert_file;
      cfg.key_file = c.key_file;
    }
    auto p = std::make_unique<SmtpPeer>(cfg);
    if (smtp_port_ == 0) smtp_port_ = p->port();
    peers_.push_back(std::move(p));
    return *peers_.back();
  }

  SmtpPeerConfig mx_config(const std::string& host) {
    SmtpPeerConfig c;
    c.hostname = host;
    return c;
  }

  // MX + A records for a domain with one MX host at `address`.
  void dns_mx(const std::string& domain, const std::string& host, const std::string& address, bool secure = true) {
    dns_.set({domain, dns_type::MX, {"10 " + host + "."}, secure});
    dns_.set({host, dns_type::A, {address}, secure});
  }

  void dns_tlsa(const std::string& host, const std::vector<TlsaRecord>& records, bool secure = true) {
    std::vector<std::string> rdata;
    for (const TlsaRecord& r : records) rdata.push_back(format_tlsa_record(r));
    dns_.set({"_25._tcp." + host, dns_type::TLSA, rdata, secure});
  }

  std::string write_policy(const std::string& outbound_peers, const std::string& inbound_peers = "",
                           const std::string& name = "policy.tlsp") {
    std::string text = "policy \"relay-test\" version \"1\";\n"
                       "default domain {\n"
                       "  outbound { default peer { level opportunistic; min_tls any; } }\n"
                       "  inbound  { default peer { level opportunistic; min_tls any; } }\n"
                       "}\n"
                       "domain \"acme.example\" {\n"
                       "  outbound {\n    default peer { level opportunistic; min_tls any; }\n" +
                       outbound_peers +
                       "  }\n"
                       "  inbound {\n    default peer { level opportunistic; min_tls any; }\n" +
                       inbound_peers + "  }\n}\n";
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  std::string compile_table(const std::string& policy, const std::string& out = "table.tlspdt") {
    CompileOptions o;
    o.inputs = {policy};
    o.threads = 1;
    CompileResult r = compile(o);
    EXPECT_TRUE(r.table) << render_diagnostics(r);
    std::string path = dir_ + "/" + out;
    write_table_file(path, *r.table);
    return path;
  }

  void start_relay(const std::string& table, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"relay",
                                     "--listen", "127.0.0.1:0",
                                     "--hostname", "relay.test",
                                     "--table", table,
                                     "--spool", dir_ + "/spool",
                                     "--resolver", dns_.server(),
                                     "--smtp-port", std::to_string(smtp_port_),
                                     "--ca-file", pki_->ca_file(),
                                     "--tls-cert", relay_cert_.cert_file,
                                     "--tls-key", relay_cert_.key_file,
                                     "--retry-schedule", "1s",
                                     "--connect-timeout", "3s",
                                     "--command-timeout", "5s",
                                     "--dns-timeout", "3s",
                                     "--delivery-workers", "2",
                                     "--table-check-interval", "1s"};
    if (next_hop_port_) args.insert(args.end(), {"--next-hop", "acme.example=127.0.0.30:" + std::to_string(next_hop_port_)});
    // A setting in `extra` replaces the default above.
    for (size_t i = 0; i + 1 < extra.size(); i += 2) {
      auto it = std::find(args.begin() + 1, args.end(), extra[i]);
      if (it != args.end() && extra[i] != "--next-hop" && extra[i] != "--submit-network")
        *(it + 1) = extra[i + 1];
      else
        args.insert(args.end(), {extra[i], extra[i + 1]});
    }
    for (std::string& a : service_user_args(dir_)) args.push_back(std::move(a));
    relay_ = std::make_unique<RelayProcess>(TLSP_BINARY, args);
    relay_port_ = relay_->wait_ready(kWait);
    ASSERT_NE(relay_port_, 0) << log();
  }

  SubmitResult submit(const std::string& from, const std::vector<std::string>& to, SubmitOptions o = {}) {
    o.address = "127.0.0.1";
    o.port = relay_port_;
    o.ehlo_name = "client.test";
    o.message.mail_from = from;
    o.message.rcpts = to;
    if (o.message.data.empty()) o.message.data = "Subject: test\r\nMessage-ID: <t@test>\r\n\r\nhello\r\n";
    o.timeout = 10s;
    return submit_message(o);
  }

  // The first relay log line of `event` matching all `want` fields.
  bool wait_log(const std::string& event, const Fields& want, std::string* line = nullptr, size_t from = 0,
                std::chrono::milliseconds timeout = kWait) {
    return relay_->wait_for([&](const LogLine& l) { return line_matches(l, event, want); }, timeout, from, line);
  }

  std::string log() const {
    std::string s;
    if (relay_)
      for (const std::string& l : relay_->lines()) s += l + "\n";
    return s;
  }

  std::string dir_;
  std::unique_ptr<TestPki> pki_;
  TestCert relay_cert_;
  DnsResponder dns_;
  std::vector<std::unique_ptr<SmtpPeer>> peers_;
  uint16_t smtp_port_ = 0;
  uint16_t next_hop_port_ = 0;
  std::unique_ptr<RelayProcess> relay_;
  uint16_t relay_port_ = 0;
};

// ------------------------------------------------------------ outbound

TEST_F(RelayWorld, OpportunisticDeliversEncryptedWhenStarttlsIsOffered) {
  SmtpPeer& mx = peer("127.0.0.2", mx_config("mx1.partner.example"));
  dns_mx("partner.example", "mx1.partner.example", "127.0.0.2");
  start_relay(compile_table(write_policy("")));
  SubmitResult r = submit("alice@acme.example", {"bob@partner.example"});
  ASSERT_TRUE(r.accepted) << r.reply << log();
  ASSERT_TRUE(mx.wait_for_messages(1, kWait)) << log();
  auto m = mx.messages();
  EXPECT_EQ(m[0].tls, TlsVersion::tls1_3);
  EXPECT_EQ(m[0].sni, "mx1.partner.example");
  EXPECT_NE(m[0].data.find("hello"), std::string::npos);
  std::string line;
  ASSERT_TRUE(wait_log("attempt", {{"outcome", "deliver"}, {"channel", "encrypted"}, {"mx", "mx1.partner.example"}},
                       &line))
      << log();
  LogLine f = parsed(line);
  EXPECT_EQ(f.get("rule"), "opportunistic");
  EXPECT_EQ(f.get("tls"), "tls1.3");
  EXPECT_EQ(f.get("addr"), "127.0.0.2");
  EXPECT_EQ(f.get("reason"), "ok");
  EXPECT_EQ(f.get("auth"), "none");
  EXPECT_NE(f.get("source").find("policy.tlsp:"), std::string::npos);
  EXPECT_FALSE(f.get("queue_id").empty());
  EXPECT_FALSE(f.get("cipher").empty());
  // Nothing verified the certificate: Postfix's Untrusted.
  EXPECT_EQ(f.get("trust"), "Untrusted");
  EXPECT_EQ(f.get("status"), "sent");
}

TEST_F(RelayWorld, OpportunisticDeliversPlaintextWithoutStarttls) {
  SmtpPeerConfig c = mx_config("mx1.partner.example");
  c.offer_starttls = false;
  SmtpPeer& mx = peer("127.0.0.2", c);
  dns_mx("partner.example", "mx1.partner.example", "127.0.0.2");
  start_relay(compile_table(write_policy("")));
  ASSERT_TRUE(submit("alice@acme.example", {"bob@partner.example"}).accepted);
  ASSERT_TRUE(mx.wait_for_messages(1, kWait)) << log();
  EXPECT_EQ(mx.messages()[0].tls, TlsVersion::none);
  EXPECT_TRUE(wait_log("attempt", {{"outcome", "deliver"}, {"channel", "plaintext"},
                                   {"reason", "starttls-not-supported"}}))
      << log();
}

TEST_F(RelayWorld, MandatoryRefusesAPeerWithoutStarttlsAndKeepsTheMessage) {
  SmtpPeerConfig c = mx_config("mx1.partner.example");
  c.offer_starttls = false;
  SmtpPeer& mx = peer("127.0.0.2", c);
  dns_mx("partner.example", "mx1.partner.example", "127.0.0.2");
  start_relay(compile_table(write_policy("    peer \"partner.example\" { level mandatory; }\n")));
  ASSERT_TRUE(submit("alice@acme.example", {"bob@partner.example"}).accepted);
  ASSERT_TRUE(
      wait_log("attempt",
               {{"outcome", "refuse"}, {"reason", "starttls-not-supported"}, {"to", "<bob@partner.example>"}}))
      << log();
  ASSERT_TRUE(wait_log("queue", {{"result", "deferred"}})) << log();
  EXPECT_EQ(mx.messages().size(), 0u);
}

TEST_F(RelayWorld, MandatoryDeliversEncryptedAtTheMinimumOnly) {
  SmtpPeerConfig c = mx_config("mx1.partner.example");
  c.tls_versions = version_bit(TlsVersion::tls1_2);
  SmtpPeer& mx = peer("127.0.0.2", c);
  dns_mx("partner.example", "mx1.partner.example", "127.0.0.2");
  start_relay(compile_table(write_policy("    peer \"partner.example\" { level mandatory; min_tls tls1.2; }\n")));
  ASSERT_TRUE(submit("alice@acme.example", {"bob@partner.example"}).accepted);
  ASSERT_TRUE(mx.wait_for_messages(1, kWait)) << log();
  EXPECT_EQ(mx.messages()[0].tls, TlsVersion::tls1_2);
  EXPECT_TRUE(wait_log("attempt", {{"outcome", "deliver"}, {"channel", "encrypted"}, {"tls", "tls1.2"}})) << log();
}

TEST_F(RelayWorld, APeerBelowTheMinimumIsRefusedNeverSentInPlaintext) {
  SmtpPeerConfig c = mx_config("mx1.partner.example");
  c.tls_versions = version_bit(TlsVersion::tls1_0);
  SmtpPeer& mx = peer("127.0.0.2", c);
  dns_mx("partner.example", "mx1.partner.example", "127.0.0.2");
  start_relay(compile_table(write_policy("    peer \"partner.example\" { level opportunistic; min_tls tls1.2; }\n")));
  ASSERT_TRUE(submit("alice@acme.example", {"bob@partner.example"}).accepted);
  ASSERT_TRUE(wait_log("attempt", {{"outcome", "refuse"}, {"reason", "tls-version-too-low"}})) << log();
  ASSERT_TRUE(wait_log("queue", {{"result", "deferred"}})) << log();
  EXPECT_EQ(mx.messages().size(), 0u);
}

TEST_F(RelayWorld, Tls10ReallyWorksForALegacyPeerWhenTheRuleAllowsIt) {
  SmtpPeerConfig c = mx_config("mx1.legacy.example");
  c.tls_versions = version_bit(TlsVersion::tls1_0);
  SmtpPeer& mx = peer("127.0.0.2", c);
  dns_mx("legacy.example", "mx1.legacy.example", "127.0.0.2");
  start_relay(compile_table(write_policy("    peer \"legacy.example\" { level mandatory; min_tls any; }\n")));
  ASSERT_TRUE(submit("alice@acme.example", {"bob@legacy.example"}).accepted);
  ASSERT_TRUE(mx.wait_for_messages(1, kWait)) << log();
  EXPECT_EQ(mx.messages()[0].tls, TlsVersion::tls1_0);
  EXPECT_TRUE(wait_log("attempt", {{"outcome", "deliver"}, {"tls", "tls1.0"}})) << log();
}

TEST_F(RelayWorld, OpportunisticTriesAWorkingHostBeforePlaintextToABrokenOne) {
  SmtpPeerConfig broken = mx_config("mx1.partner.example");
  broken.broken_tls = true;
  SmtpPeer& mx1 = peer("127.0.0.2", broken);
  SmtpPeer& mx2 = peer("127.0.0.3", mx_config("mx2.partner.example"));
  dns_.set({"partner.example", dns_type::MX, {"10 mx1.partner.example.", "20 mx2.partner.example."}});
  dns_.set({"mx1.partner.example", dns_type::A, {"127.0.0.2"}});
  dns_.set({"mx2.partner.example", dns_type::A, {"127.0.0.3"}});
  start_relay(compile_table(write_policy("")));
  ASSERT_TRUE(submit("alice@acme.example", {"bob@partner.example"}).accepted);
  ASSERT_TRUE(mx2.wait_for_messages(1, kWait)) << log();
  EXPECT_EQ(mx2.messages()[0].tls, TlsVersion::tls1_3);
  EXPECT_EQ(mx1.messages().size(), 0u);
  EXPECT_TRUE(wait_log("attempt", {{"mx", "mx1.partner.example"}, {"action", "set-aside"},
                                   {"reason", "tls-handshake-failure"}}))
      << log();
}

TEST_F(RelayWorld, OpportunisticFallsBackToPlaintextOnlyWhenNoHostHasWorkingTls) {
  SmtpPeerConfig broken = mx_config("mx1.partner.example");
  broken.broken_tls = true;
  SmtpPeer& mx1 = peer("127.0.0.2", broken);
  dns_mx("partner.example", "mx1.partner.example", "127.0.0.2");
  start_relay(compile_table(write_policy("")));
  ASSERT_TRUE(submit("alice@acme.example", {"bob@partner.example"}).accepted);
  ASSERT_TRUE(mx1.wait_for_messages(1, kWait)) << log();
  EXPECT_EQ(mx1.messages()[0].tls, TlsVersion::none);
  EXPECT_TRUE(
      wait_log("attempt", {{"action", "sent-last-resort"}, {"channel", "plaintext"}, {"to", "<bob@partner.example>"}}))
      << log();
}

TEST_F(RelayWorld, DaneOnlyDeliversAuthenticatedWithAMatchingDaneEeRecord) {
  SmtpPeerConfig c = mx_config("mx1.partner.example");
  TestCert cert = pki_->issue({"mx1.partner.example"}, CertKind::self_signed);  // DANE-EE ignores the WebPKI
  c.cert_file = cert.cert_file;
  c.key_file = cert.key_file;
  SmtpPeer& mx = peer("127.0.0.2", c);
  dns_mx("partner.example", "mx1.partner.example", "127.0.0.2");
  dns_tlsa("mx1.partner.example", {TestPki::tlsa_for(cert, 3, 1, 1)});
  start_relay(compile_table(write_policy("    peer \"partner.example\" { level dane-only; min_tls tls1.2; }\n")));
  ASSERT_TRUE(submit("alice@acme.example", {"bob@partner.example"}).accepted);
  ASSERT_TRUE(mx.wait_for_messages(1, kWait)) << log();
  EXPECT_EQ(mx.messages()[0].tls, TlsVersion::tls1_3);
  EXPECT_TRUE(wait_log("attempt", {{"outcome", "deliver"}, {"channel", "authenticated"}, {"auth", "dane-ee"}}))
      << log();
}

TEST_F(RelayWorld, DaneTaRecordAuthenticatesTheChain) {
  SmtpPeerConfig c = mx_config("mx1.partner.example");
  TestCert cert = pki_->issue({"mx1.partner.example"}, CertKind::untrusted);  // DANE-TA: its own CA
  c.cert_file = cert.cert_file;
  c.key_file = cert.key_file;
  SmtpPeer& mx = peer("127.0.0.2", c);
  dns_mx("partner.example", "mx1.partner.example", "127.0.0.2");
  dns_tlsa("mx1.partner.example", {TestPki::tlsa_for(cert, 2, 1, 1)});
  start_relay(compile_table(write_policy("    peer \"partner.example\" { level dane; }\n")));
  ASSERT_TRUE(submit("alice@acme.example", {"bob@partner.example"}).accepted);
  ASSERT_TRUE(mx.wait_for_messages(1, kWait)) << log();
  EXPECT_TRUE(wait_log(
      "attempt", {{"outcome", "deliver"}, {"channel", "authenticated"}, {"auth", "dane-ta"}, {"trust", "Verified"}}))
      << log();
}

TEST_F(RelayWorld, DaneOnlyRefusesAMismatchingRecordAndNothingArrives) {
  SmtpPeer& mx = peer("127.0.0.2", mx_config("mx1.partner.example"));
  TestCert other = pki_->issue({"other.example"});
  dns_mx("partner.example", "mx1.partner.example", "127.0.0.2");
  dns_tlsa("mx1.partner.example", {TestPki::tlsa_for(other, 3, 1, 1)});
  start_relay(compile_table(write_policy("    peer \"partner.example\" { level dane-only; }\n")));
  ASSERT_TRUE(submit("alice@acme.example", {"bob@partner.example"}).accepted);
  ASSERT_TRUE(wait_log("attempt", {{"outcome", "refuse"}, {"reason", "validation-failure"}})) << log();
  ASSERT_TRUE(wait_log("queue", {{"result", "deferred"}})) << log();
  EXPECT_EQ(mx.messages().size(), 0u);
}

TEST_F(RelayWorld, DaneOnlyRefusesWithoutConnectingWhenTheTlsaAnswerIsInsecure) {
  SmtpPeer& mx = peer("127.0.0.2", mx_config("mx1.partner.example"));
  TestCert cert = pki_->issue({"mx1.partner.example"});
  dns_mx("partner.example", "mx1.partner.example", "127.0.0.2");
  dns_tlsa("mx1.partner.example", {TestPki::tlsa_for(cert, 3, 1, 1)}, /*secure=*/false);
  start_relay(compile_table(write_policy("    peer \"partner.example\" { level dane-only; }\n")));
  ASSERT_TRUE(submit("alice@acme.example", {"bob@partner.example"}).accepted);
  ASSERT_TRUE(wait_log("attempt", {{"outcome", "refuse"}, {"reason", "dane-required"}})) << log();
  EXPECT_EQ(mx.sessions().size(), 0u);
}

TEST_F(RelayWorld, DaneDowngradesToOpportunisticWithoutSecureTlsa) {
  SmtpPeer& mx = peer("127.0.0.2", mx_config("mx1.partner.example"));
  dns_mx("partner.example", "mx1.partner.example", "127.0.0.2", /*secure=*/false);
  start_relay(compile_table(write_policy("    peer \"partner.example\" { level dane; }\n")));
  ASSERT_TRUE(submit("alice@acme.example", {"bob@partner.example"}).accepted);
  ASSERT_TRUE(mx.wait_for_messages(1, kWait)) << log();
  EXPECT_TRUE(wait_log("attempt", {{"outcome", "downgrade"}, {"applied", "opportunistic"}, {"reason", "tlsa-insecure"}}))
      << log();
}

TEST_F(RelayWorld, DaneRefusesWhenTheTlsaLookupFails) {
  SmtpPeer& mx = peer("127.0.0.2", mx_config("mx1.partner.example"));
  dns_mx("partner.example", "mx1.partner.example", "127.0.0.2");
  dns_.set({"_25._tcp.mx1.partner.example", dns_type::TLSA, {}, true, DnsBehaviour::servfail});
  start_relay(compile_table(write_policy("    peer \"partner.example\" { level dane; }\n")));
  ASSERT_TRUE(submit("alice@acme.example", {"bob@partner.example"}).accepted);
  ASSERT_TRUE(wait_log("attempt", {{"outcome", "refuse"}, {"reason", "tlsa-lookup-failed"}})) << log();
  EXPECT_EQ(mx.messages().size(), 0u);
}

TEST_F(RelayWorld, MxLookupFailureRefusesAtEveryLevel) {
  dns_.set_name("partner.example", DnsBehaviour::servfail);
  SmtpPeer& mx = peer("127.0.0.2", mx_config("mx1.partner.example"));
  start_relay(compile_table(write_policy("")));
  ASSERT_TRUE(submit("alice@acme.example", {"bob@partner.example"}).accepted);
  ASSERT_TRUE(wait_log(
      "attempt",
      {{"outcome", "refuse"}, {"reason", "mx-lookup-failed"}, {"action", "defer"}, {"to", "<bob@partner.example>"}}))
      << log();
  EXPECT_EQ(mx.messages().size(), 0u);
}

// Issue 10: a delivering attempt line logged to="" (the recipients were
// joined after the transaction had settled the pending list). Each
// recipient the transaction was for has its own line, as Postfix writes
// them: to=<...>, relay=, dsn=, status=.
TEST_F(RelayWorld, ADeliveringAttemptLineNamesItsRecipients) {
  SmtpPeer& mx = peer("127.0.0.2", mx_config("mx1.partner.example"));
  dns_mx("partner.example", "mx1.partner.example", "127.0.0.2");
  start_relay(compile_table(write_policy("")));
  ASSERT_TRUE(submit("alice@acme.example", {"bob@partner.example", "carol@partner.example"}).accepted);
  ASSERT_TRUE(mx.wait_for_messages(1, kWait)) << log();
  for (const char* to : {"<bob@partner.example>", "<carol@partner.example>"})
    EXPECT_TRUE(wait_log("attempt", {{"action", "sent"},
                                     {"direction", "outbound"},
                                     {"outcome", "deliver"},
                                     {"to", to},
                                     {"relay", "mx1.partner.example[127.0.0.2]:" + std::to_string(smtp_port_)},
                                     {"dsn", "2.0.0"},
                                     {"status", "sent"}}))
        << to << "\n" << log();
}

// A peer that goes away in the middle of the RCPTs: every recipient stays
// queued, the ones after the broken RCPT too, and all of them arrive at
// the next attempt. (The recipients not yet tried were dropped, and the
// entry left the queue without them: mail lost without a trace.)
TEST_F(RelayWorld, ASessionBrokenDuringRcptKeepsEveryRecipientQueued) {
  SmtpPeerConfig breaking = mx_config("mx1.partner.example");
  breaking.rcpt_replies["carol@partner.example"] = std::string(kPeerCloseScript);
  SmtpPeer& first = peer("127.0.0.2", breaking);
  dns_mx("partner.example", "mx1.partner.example", "127.0.0.2");
  start_relay(compile_table(write_policy("")));
  const std::vector<std::string> rcpts = {"bob@partner.example", "carol@partner.example", "dave@partner.example"};
  ASSERT_TRUE(submit("alice@acme.example", rcpts).accepted);
  ASSERT_TRUE(wait_log("queue", {{"result", "deferred"}})) << log();
  EXPECT_TRUE(first.messages().empty());
  first.stop();
  SmtpPeer& second = peer("127.0.0.2", mx_config("mx1.partner.example"));
  ASSERT_TRUE(second.wait_for_messages(1, kWait)) << log();
  const std::vector<PeerMessage> got = second.messages();
  ASSERT_EQ(got.size(), 1u);
  std::vector<std::string> arrived = got[0].rcpts;
  std::sort(arrived.begin(), arrived.end());
  EXPECT_EQ(arrived, rcpts) << log();
  EXPECT_TRUE(wait_log("queue", {{"result", "removed"}})) << log();
}

// Issue 10: the queue's deferral said "(nxdomain)" while the attempt said
// NODATA. Both lines now carry one text, quoting the resolver's answer, so
// they agree, and for each kind of denial it is that denial's name.
TEST_F(RelayWorld, TheDeferralAndTheAttemptNameTheSameDenial) {
  // mx1.nodata.example exists without addresses (NODATA); mx1.gone.example
  // is unknown to the responder (NXDOMAIN).
  dns_.set({"nodata.example", dns_type::MX, {"10 mx1.nodata.example."}});
  dns_.set_name("mx1.nodata.example", DnsBehaviour::answer);
  dns_.set({"gone.example", dns_type::MX, {"10 mx1.gone.example."}});
  start_relay(compile_table(write_policy("")));
  struct Case {
    std::string rcpt, host, says, not_says;
  };
  for (const Case& c : {Case{"bob@nodata.example", "mx1.nodata.example", "NODATA", "NXDOMAIN"},
                        Case{"bob@gone.example", "mx1.gone.example", "NXDOMAIN", "NODATA"}}) {
    SCOPED_TRACE(c.host);
    ASSERT_TRUE(submit("alice@acme.example", {c.rcpt}).accepted);
    std::string line;
    ASSERT_TRUE(wait_log("attempt", {{"mx", c.host}, {"to", "<" + c.rcpt + ">"}}, &line)) << log();
    LogLine attempt = parsed(line);
    ASSERT_TRUE(wait_log("queue", {{"queue_id", attempt.get("queue_id")}, {"result", "deferred"}}, &line)) << log();
    const std::string reason = parsed(line).get("reason");
    EXPECT_EQ(reason, attempt.get("detail")) << log();
    EXPECT_NE(reason.find(c.says), std::string::npos) << reason;
    EXPECT_EQ(reason.find(c.not_says), std::string::npos) << reason;
    EXPECT_NE(reason.find(c.host), std::string::npos) << reason;
  }
}

class MtaStsWorld : public RelayWorld {
 protected:
  void serve_policy(const std::string& domain, const std::string& body, CertKind kind = CertKind::valid) {
    TestCert c = pki_->issue({"mta-sts." + domain}, kind);
    if (!https_) {
      https_ = std::make_unique<HttpsServer>();
      https_->start(c.cert_file, c.key_file, "127.0.0.40");
    }
    https_->add_certificate("mta-sts." + domain, c.cert_file, c.key_file);
    HttpsResponse r;
    r.body = body;
    https_->set_response("mta-sts." + domain, "/.well-known/mta-sts.txt", r);
    dns_.set({"_mta-sts." + domain, dns_type::TXT, {"\"v=STSv1; id=20261128\""}, false});
    dns_.set({"mta-sts." + domain, dns_type::A, {"127.0.0.40"}, false});
  }
  void start(const std::string& table, std::vector<std::string> extra = {}) {
    extra.insert(extra.end(), {"--mta-sts-port", std::to_string(https_->port())});
    start_relay(table, extra);
  }
  void TearDown() override {
    RelayWorld::TearDown();
    https_.reset();
  }
  std::unique_ptr<HttpsServer> https_;
};

TEST_F(MtaStsWorld, EnforceDeliversAuthenticatedToAListedHostWithAValidCertificate) {
  SmtpPeer& mx = peer("127.0.0.2", mx_config("mx1.bank.example"));
  dns_mx("bank.example", "mx1.bank.example", "127.0.0.2", /*secure=*/false);
  serve_policy("bank.example", "version: STSv1\nmode: enforce\nmx: *.bank.example\nmax_age: 86400\n");
  start(compile_table(write_policy("    peer \"bank.example\" { level mta-sts; min_tls tls1.2; }\n")));
  ASSERT_TRUE(submit("alice@acme.example", {"bob@bank.example"}).accepted);
  ASSERT_TRUE(mx.wait_for_messages(1, kWait)) << log();
  EXPECT_TRUE(wait_log("attempt", {{"outcome", "deliver"}, {"channel", "authenticated"}, {"auth", "mta-sts"},
                                   {"trust", "Verified"}}))
      << log();
  EXPECT_GE(https_->request_count(), 1u);
}

TEST_F(MtaStsWorld, EnforceRefusesACertificateForTheWrongName) {
  SmtpPeerConfig c = mx_config("mx1.bank.example");
  TestCert wrong = pki_->issue({"mx1.bank.example"}, CertKind::wrong_name);
  c.cert_file = wrong.cert_file;
  c.key_file = wrong.key_file;
  SmtpPeer& mx = peer("127.0.0.2", c);
  dns_mx("bank.example", "mx1.bank.example", "127.0.0.2", false);
  serve_policy("bank.example", "version: STSv1\nmode: enforce\nmx: mx1.bank.example\nmax_age: 86400\n");
  start(compile_table(write_policy("    peer \"bank.example\" { level mta-sts; }\n")));
  ASSERT_TRUE(submit("alice@acme.example", {"bob@bank.example"}).accepted);
  ASSERT_TRUE(wait_log("attempt", {{"outcome", "refuse"}, {"reason", "certificate-host-mismatch"}})) << log();
  EXPECT_EQ(mx.messages().size(), 0u);
  // The chain verified, the name did not: Postfix's Trusted.
  EXPECT_TRUE(wait_log("tls", {{"direction", "outbound"}, {"result", "ok"}, {"trust", "Trusted"}})) << log();
}

TEST_F(MtaStsWorld, TestingModeDeliversAnywayAndReportsTheFailure) {
  SmtpPeerConfig c = mx_config("mx1.bank.example");
  TestCert untrusted = pki_->issue({"mx1.bank.example"}, CertKind::untrusted);
  c.cert_file = untrusted.cert_file;
  c.key_file = untrusted.key_file;
  SmtpPeer& mx = peer("127.0.0.2", c);
  dns_mx("bank.example", "mx1.bank.example", "127.0.0.2", false);
  serve_policy("bank.example", "version: STSv1\nmode: testing\nmx: mx1.bank.example\nmax_age: 86400\n");
  start(compile_table(write_policy("    peer \"bank.example\" { level mta-sts; }\n")));
  ASSERT_TRUE(submit("alice@acme.example", {"bob@bank.example"}).accepted);
  ASSERT_TRUE(mx.wait_for_messages(1, kWait)) << log();
  EXPECT_TRUE(wait_log("attempt", {{"outcome", "downgrade"}, {"channel", "encrypted"},
                                   {"reason", "certificate-not-trusted"}, {"trust", "Untrusted"}}))
      << log();
}

TEST_F(MtaStsWorld, TheCachedPolicyIsUsedWhenARefetchFails) {
  SmtpPeer& mx = peer("127.0.0.2", mx_config("mx1.bank.example"));
  dns_mx("bank.example", "mx1.bank.example", "127.0.0.2", false);
  serve_policy("bank.example", "version: STSv1\nmode: enforce\nmx: mx1.bank.example\nmax_age: 86400\n");
  // No connection reuse: the second message must go through discovery.
  start(compile_table(write_policy("    peer \"bank.example\" { level mta-sts; }\n")),
        {"--connection-cache-time", "0"});
  ASSERT_TRUE(submit("alice@acme.example", {"bob@bank.example"}).accepted);
  ASSERT_TRUE(mx.wait_for_messages(1, kWait)) << log();
  // A new id forces a refetch, and the policy host now fails: the cached
  // enforce policy stays in force (RFC 8461 §5.1).
  dns_.set({"_mta-sts.bank.example", dns_type::TXT, {"\"v=STSv1; id=20261129\""}, false});
  HttpsResponse broken;
  broken.status = 500;
  https_->set_response("mta-sts.bank.example", "/.well-known/mta-sts.txt", broken);
  size_t requests = https_->request_count();
  size_t mark = relay_->line_count();
  ASSERT_TRUE(submit("alice@acme.example", {"carol@bank.example"}).accepted);
  ASSERT_TRUE(mx.wait_for_messages(2, kWait)) << log();
  EXPECT_TRUE(wait_log("attempt", {{"outcome", "deliver"}, {"channel", "authenticated"}, {"auth", "mta-sts"}},
                       nullptr, mark))
      << log();
  EXPECT_GT(https_->request_count(), requests);  // it did try
}

TEST_F(RelayWorld, ADeliveringSessionIsReusedForTheNextMessageToTheSameDestination) {
  SmtpPeer& mx = peer("127.0.0.2", mx_config("mx1.partner.example"));
  dns_mx("partner.example", "mx1.partner.example", "127.0.0.2");
  start_relay(compile_table(write_policy("    peer \"partner.example\" { level mandatory; min_tls tls1.2; }\n")),
              {"--connection-cache-time", "30s"});
  ASSERT_TRUE(submit("alice@acme.example", {"bob@partner.example"}).accepted);
  ASSERT_TRUE(mx.wait_for_messages(1, kWait)) << log();
  ASSERT_TRUE(wait_log("queue", {{"result", "removed"}})) << log();
  ASSERT_TRUE(submit("alice@acme.example", {"carol@partner.example"}).accepted);
  ASSERT_TRUE(mx.wait_for_messages(2, kWait)) << log();
  EXPECT_TRUE(wait_log("attempt", {{"detail", "reused connection"},
                                   {"outcome", "deliver"},
                                   {"channel", "encrypted"},
                                   {"rule", "mandatory"},
                                   {"to", "<carol@partner.example>"}}))
      << log();
  EXPECT_EQ(mx.messages()[1].tls, TlsVersion::tls1_3);
  // The shutdown closes the cached session: one TLS session carried both.
  relay_->signal(SIGTERM);
  ASSERT_TRUE(relay_->wait_exit(kWait));
  ASSERT_TRUE(mx.wait_for_sessions(1, kWait));
  auto sessions = mx.sessions();
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_EQ(sessions[0].messages, 2u);
}

TEST_F(RelayWorld, ImplicitMxDeliversToTheDomainsAddress) {
  SmtpPeer& mx = peer("127.0.0.2", mx_config("partner.example"));
  dns_.set({"partner.example", dns_type::A, {"127.0.0.2"}});
  start_relay(compile_table(write_policy("")));
  ASSERT_TRUE(submit("alice@acme.example", {"bob@partner.example"}).accepted);
  ASSERT_TRUE(mx.wait_for_messages(1, kWait)) << log();
  EXPECT_TRUE(wait_log("attempt", {{"mx", "partner.example"}, {"outcome", "deliver"}})) << log();
}

TEST_F(RelayWorld, SessionTimeAndPerClientLimits) {
  start_relay(compile_table(write_policy("")),
              {"--session-timeout", "1s", "--idle-timeout", "30s", "--max-connections-per-client", "1"});
  // One session at a time from 127.0.0.1: a second one gets 421 at once.
  std::string error;
  int fd = connect_tcp("127.0.0.1", relay_port_, 5s, error);
  ASSERT_GE(fd, 0) << error;
  Stream first(fd);
  first.set_timeout(10s);
  std::string line;
  ASSERT_EQ(first.read_line(line, 1000), IoStatus::ok);
  auto second = smtp_dialogue("127.0.0.1", relay_port_, {}, 10s);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].substr(0, 3), "421") << second[0];
  // The first session ends after its total time, however busy it looks.
  ASSERT_EQ(first.read_line(line, 1000), IoStatus::ok);
  EXPECT_EQ(line.substr(0, 3), "421") << line;
  EXPECT_TRUE(wait_log("limit", {{"limit", "session_timeout"}})) << log();
  EXPECT_TRUE(wait_log("limit", {{"limit", "max_connections_per_client"}})) << log();
}

TEST_F(RelayWorld, TooManyCommandsOrErrorsEndTheSession) {
  start_relay(compile_table(write_policy("")), {"--max-commands", "5", "--max-errors", "2"});
  auto replies = smtp_dialogue("127.0.0.1", relay_port_, {"NOOP", "NOOP", "NOOP", "NOOP", "NOOP", "NOOP"}, 10s);
  ASSERT_EQ(replies.size(), 7u);
  EXPECT_EQ(replies[6].substr(0, 3), "421") << replies[6];
  replies = smtp_dialogue("127.0.0.1", relay_port_, {"BOGUS", "BOGUS", "BOGUS", "NOOP"}, 10s);
  ASSERT_EQ(replies.size(), 4u);
  EXPECT_EQ(replies[1].substr(0, 3), "500");
  EXPECT_EQ(replies[3].substr(0, 3), "421") << replies[3];
  EXPECT_TRUE(wait_log("limit", {{"limit", "max_commands"}})) << log();
  EXPECT_TRUE(wait_log("limit", {{"limit", "max_errors"}})) << log();
}

// ------------------------------------------------------------- inbound

class InboundWorld : public RelayWorld {
 protected:
  void SetUp() override {
    RelayWorld::SetUp();
    SmtpPeerConfig hop;
    hop.hostname = "mailstore.acme.example";
    hop.offer_starttls = false;
    hop.address = "127.0.0.30";
    hop.port = 0;
    auto p = std::make_unique<SmtpPeer>(hop);
    next_hop_port_ = p->port();
    hop_ = p.get();
    peers_.push_back(std::move(p));
  }
  SmtpPeer* hop_ = nullptr;
};

TEST_F(InboundWorld, MandatoryPeerWithoutStarttlsGets530AtMail) {
  start_relay(compile_table(write_policy("", "    peer \"127.0.0.5/32\" { level mandatory; }\n")));
  SubmitOptions o;
  o.source_address = "127.0.0.5";
  o.starttls = false;
  SubmitResult r = submit("carol@sender.example", {"alice@acme.example"}, o);
  EXPECT_FALSE(r.accepted);
  EXPECT_EQ(r.code, 530) << r.reply;
  EXPECT_NE(r.reply.find("5.7.0"), std::string::npos) << r.reply;
  EXPECT_NE(r.reply.find("STARTTLS"), std::string::npos) << r.reply;
  // The reject line names the sender the client gave, though MAIL failed.
  EXPECT_TRUE(wait_log("reject", {{"sender", "carol@sender.example"}, {"reason", "starttls-required"}})) << log();
}

TEST_F(InboundWorld, MandatoryPeerWithStarttlsIsAcceptedAndDeliveredToTheNextHop) {
  start_relay(compile_table(write_policy("", "    peer \"127.0.0.5/32\" { level mandatory; min_tls tls1.2; }\n")));
  SubmitOptions o;
  o.source_address = "127.0.0.5";
  o.starttls = true;
  SubmitResult r = submit("carol@sender.example", {"alice@acme.example"}, o);
  ASSERT_TRUE(r.accepted) << r.reply << log();
  EXPECT_EQ(r.tls, TlsVersion::tls1_3);
  ASSERT_TRUE(hop_->wait_for_messages(1, kWait)) << log();
  auto m = hop_->messages()[0];
  EXPECT_EQ(m.rcpts, std::vector<std::string>{"alice@acme.example"});
  EXPECT_NE(m.data.find("using tls1.3"), std::string::npos) << m.data;  // our Received: line
  // Issue 10: the next-hop leg's line names its recipient (it said to="").
  EXPECT_TRUE(wait_log("attempt", {{"direction", "inbound"}, {"action", "sent"}, {"to", "<alice@acme.example>"}}))
      << log();
}

// Issue 10: the inbound reject line names the level applied beside the
// rule, and the accept line names the rule and the verdict (the live
// simulation reads them from these lines instead of probing).
TEST_F(InboundWorld, RejectAndAcceptLinesNameTheRuleAndTheLevelApplied) {
  start_relay(compile_table(write_policy("", "    peer \"127.0.0.5/32\" { level mandatory; min_tls tls1.2; }\n")));
  SubmitOptions o;
  o.source_address = "127.0.0.5";
  o.starttls = false;
  EXPECT_EQ(submit("carol@sender.example", {"alice@acme.example"}, o).code, 530);
  std::string line;
  ASSERT_TRUE(wait_log("reject", {{"direction", "inbound"}}, &line)) << log();
  LogLine reject = parsed(line);
  EXPECT_EQ(reject.get("rule"), "mandatory") << line;
  EXPECT_EQ(reject.get("min_tls"), "tls1.2") << line;
  EXPECT_NE(reject.get("source").find("policy.tlsp:12"), std::string::npos) << line;
  EXPECT_EQ(reject.get("applied"), "mandatory") << line;
  EXPECT_EQ(reject.get("reason"), "starttls-required") << line;

  o.starttls = true;
  SubmitResult r = submit("carol@sender.example", {"alice@acme.example"}, o);
  ASSERT_TRUE(r.accepted) << r.reply << log();
  ASSERT_TRUE(wait_log("accept", {{"direction", "inbound"}, {"tls", "tls1.3"}}, &line)) << log();
  LogLine accept = parsed(line);
  EXPECT_EQ(accept.get("rule"), "mandatory") << line;
  EXPECT_EQ(accept.get("min_tls"), "tls1.2") << line;
  EXPECT_NE(accept.get("source").find("policy.tlsp:12"), std::string::npos) << line;
  EXPECT_EQ(accept.get("applied"), "mandatory") << line;
  EXPECT_EQ(accept.get("channel"), "encrypted") << line;
  EXPECT_EQ(accept.get("reason"), "ok") << line;

  // Another client gets the default peer's rule, in plaintext.
  o.source_address = "127.0.0.6";
  o.starttls = false;
  ASSERT_TRUE(submit("carol@sender.example", {"alice@acme.example"}, o).accepted) << log();
  ASSERT_TRUE(wait_log("accept", {{"client", "127.0.0.6"}}, &line)) << log();
  accept = parsed(line);
  EXPECT_EQ(accept.get("rule"), "opportunistic") << line;
  EXPECT_EQ(accept.get("applied"), "opportunistic") << line;
  EXPECT_EQ(accept.get("channel"), "plaintext") << line;
  EXPECT_EQ(accept.get("reason"), "plaintext-allowed") << line;
}

TEST_F(InboundWorld, BelowTheMinimumVersionIsRefusedNamingTheVersion) {
  start_relay(compile_table(write_policy("", "    peer \"127.0.0.5/32\" { level opportunistic; min_tls tls1.3; }\n")));
  SubmitOptions o;
  o.source_address = "127.0.0.5";
  o.starttls = true;
  o.tls_versions = version_bit(TlsVersion::tls1_2);
  SubmitResult r = submit("carol@sender.example", {"alice@acme.example"}, o);
  EXPECT_FALSE(r.accepted);
  EXPECT_EQ(r.tls, TlsVersion::tls1_2);  // the handshake completed
  EXPECT_EQ(r.code, 530) << r.reply;
  EXPECT_NE(r.reply.find("TLS 1.3"), std::string::npos) << r.reply;
}

TEST_F(InboundWorld, LegacyTls10ClientWorksWhenItsRuleAllowsIt) {
  start_relay(compile_table(write_policy("", "")));
  SubmitOptions o;
  o.source_address = "127.0.0.6";
  o.starttls = true;
  o.tls_versions = version_bit(TlsVersion::tls1_0);
  SubmitResult r = submit("carol@sender.example", {"alice@acme.example"}, o);
  ASSERT_TRUE(r.accepted) << r.reply << log();
  EXPECT_EQ(r.tls, TlsVersion::tls1_0);
  ASSERT_TRUE(hop_->wait_for_messages(1, kWait)) << log();
}

TEST_F(InboundWorld, SenderDomainRuleTightensTheClientRule) {
  start_relay(compile_table(write_policy("", "    peer \"partner.example\" { level mandatory; }\n")));
  SubmitOptions o;
  o.source_address = "127.0.0.7";
  SubmitResult r = submit("carol@partner.example", {"alice@acme.example"}, o);
  EXPECT_EQ(r.code, 530) << r.reply;
  SubmitResult ok = submit("carol@elsewhere.example", {"alice@acme.example"}, o);
  EXPECT_TRUE(ok.accepted) << ok.reply;
}

// Issue 10: the model's side is simulator_test's
// InboundRule.AnAddressLiteralSenderBorrowsNoAddressRule. A MAIL FROM
// address literal that falls in a CIDR selector is the client's claim, not
// its address: the client's own rule (opportunistic) applies.
TEST_F(InboundWorld, AnAddressLiteralSenderBorrowsNoAddressRule) {
  start_relay(compile_table(write_policy("", "    peer \"198.51.100.0/24\" { level mandatory; }\n"
                                             "    peer \"127.0.0.9/32\" { level mandatory; }\n")));
  SubmitOptions o;
  o.source_address = "127.0.0.7";
  SubmitResult r = submit("carol@[198.51.100.7]", {"alice@acme.example"}, o);
  EXPECT_TRUE(r.accepted) << r.reply << log();
  // A client inside a selector is held to it, whatever the sender says.
  o.source_address = "127.0.0.9";
  SubmitResult own = submit("carol@[198.51.100.7]", {"alice@acme.example"}, o);
  EXPECT_EQ(own.code, 530) << own.reply;
}

TEST_F(InboundWorld, NeverAnOpenRelay) {
  start_relay(compile_table(write_policy("", "")), {"--submit-network", "127.0.0.1/32"});
  SubmitOptions o;
  o.source_address = "127.0.0.8";  // not in the submit networks
  SubmitResult r = submit("alice@acme.example", {"someone@elsewhere.example"}, o);
  EXPECT_FALSE(r.accepted);
  EXPECT_EQ(r.code, 554) << r.reply;
  EXPECT_NE(r.reply.find("5.7.1"), std::string::npos);
  // A submit client with a sender outside the managed domains: the same.
  SubmitResult r2 = submit("mallory@elsewhere.example", {"someone@elsewhere.example"});
  EXPECT_EQ(r2.code, 554) << r2.reply;
}

// ------------------------------------------------------ robustness

TEST_F(RelayWorld, CrashAfterTheAcknowledgementLosesNothingAndDeliversOnce) {
  // The MX is not listening yet: the first attempt fails, the message
  // waits in the spool; the relay is killed -9; the MX comes up; a new
  // relay on the same spool delivers it exactly once.
  dns_mx("partner.example", "mx1.partner.example", "127.0.0.2");
  // Reserve the port for the MX peer, then stop it so nothing listens.
  {
    SmtpPeer& p = peer("127.0.0.2", mx_config("mx1.partner.example"));
    p.stop();
    peers_.clear();
  }
  std::string table = compile_table(write_policy(""));
  start_relay(table, {"--retry-schedule", "1h"});
  SubmitResult r = submit("alice@acme.example", {"bob@partner.example"});
  ASSERT_TRUE(r.accepted) << r.reply;
  ASSERT_TRUE(wait_log("queue", {{"result", "deferred"}})) << log();
  relay_->signal(SIGKILL);
  ASSERT_TRUE(relay_->wait_exit(kWait));
  SmtpPeer& mx = peer("127.0.0.2", mx_config("mx1.partner.example"));
  start_relay(table, {"--retry-schedule", "1h"});
  ASSERT_TRUE(wait_log("start", {{"recovered", "1"}})) << log();
  ASSERT_TRUE(mx.wait_for_messages(1, kWait)) << log();
  ASSERT_TRUE(wait_log("queue", {{"result", "removed"}})) << log();
  relay_->signal(SIGTERM);
  ASSERT_TRUE(relay_->wait_exit(kWait));
  EXPECT_EQ(mx.messages().size(), 1u);
  // And a third start finds nothing left to do.
  start_relay(table);
  EXPECT_TRUE(wait_log("start", {{"recovered", "0"}})) << log();
}

TEST_F(RelayWorld, ReloadRefusesACorruptTableAndKeepsTheOldOne) {
  SmtpPeerConfig c = mx_config("mx1.partner.example");
  c.offer_starttls = false;
  SmtpPeer& mx = peer("127.0.0.2", c);
  dns_mx("partner.example", "mx1.partner.example", "127.0.0.2");
  std::string table = compile_table(write_policy("    peer \"partner.example\" { level mandatory; }\n"));
  start_relay(table, {"--table-check-interval", "1h"});
  // Corrupt the table in place, then SIGHUP.
  {
    std::fstream f(table, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x5a');
  }
  size_t mark = relay_->line_count();
  relay_->signal(SIGHUP);
  ASSERT_TRUE(wait_log("table", {{"result", "refused"}}, nullptr, mark)) << log();
  // The old rule (mandatory) is still in force: no plaintext delivery.
  ASSERT_TRUE(submit("alice@acme.example", {"bob@partner.example"}).accepted);
  ASSERT_TRUE(wait_log("attempt", {{"outcome", "refuse"}, {"rule", "mandatory"}}, nullptr, mark)) << log();
  // A good new table (opportunistic) is taken on the next SIGHUP.
  compile_table(write_policy("", "", "policy2.tlsp"), "table.tlspdt");
  mark = relay_->line_count();
  relay_->signal(SIGHUP);
  ASSERT_TRUE(wait_log("table", {{"result", "loaded"}}, nullptr, mark)) << log();
  ASSERT_TRUE(mx.wait_for_messages(1, kWait)) << log();
}

TEST_F(RelayWorld, HostileInputIsBoundedWithTheRightReplies) {
  start_relay(compile_table(write_policy("")), {"--max-recipients", "3", "--max-message-size", "2048",
                                                "--idle-timeout", "1s", "--max-data-line-length", "100"});
  // A message line longer than max-data-line-length.
  {
    SubmitOptions o;
    o.message.data = "Subject: long\r\n\r\n" + std::string(300, 'y') + "\r\n";
    SubmitResult r = submit("alice@acme.example", {"bob@partner.example"}, o);
    EXPECT_EQ(r.code, 554) << r.reply;
    EXPECT_TRUE(wait_log("limit", {{"limit", "max_data_line_length"}})) << log();
  }
  // Line too long.
  {
    std::vector<std::string> replies = smtp_dialogue("127.0.0.1", relay_port_,
                                                     {"EHLO x", std::string(5000, 'A'), "QUIT"}, 10s);
    ASSERT_GE(replies.size(), 3u);
    EXPECT_EQ(replies[2].substr(0, 3), "500") << replies[2];
  }
  // Too many recipients.
  {
    std::vector<std::string> cmds = {"EHLO x", "MAIL FROM:<a@acme.example>"};
    for (int i = 0; i < 4; ++i) cmds.push_back("RCPT TO:<r" + std::to_string(i) + "@partner.example>");
    cmds.push_back("QUIT");
    std::vector<std::string> replies = smtp_dialogue("127.0.0.1", relay_port_, cmds, 10s);
    ASSERT_GE(replies.size(), 7u);
    EXPECT_EQ(replies[6].substr(0, 3), "452") << replies[6];
  }
  // Too big: announced with SIZE, then sent anyway.
  {
    std::vector<std::string> replies =
        smtp_dialogue("127.0.0.1", relay_port_, {"EHLO x", "MAIL FROM:<a@acme.example> SIZE=999999", "QUIT"}, 10s);
    ASSERT_GE(replies.size(), 3u);
    EXPECT_EQ(replies[2].substr(0, 3), "552") << replies[2];
    SubmitOptions o;
    o.message.data = "Subject: big\r\n\r\n";
    for (int i = 0; i < 60; ++i) o.message.data += std::string(70, 'x') + "\r\n";  // 4 KB, short lines
    SubmitResult r = submit("alice@acme.example", {"bob@partner.example"}, o);
    EXPECT_EQ(r.code, 552) << r.reply;
  }
  // Idle timeout.
  {
    std::vector<std::string> replies = smtp_dialogue("127.0.0.1", relay_port_, {"EHLO x", ""}, 10s);
    ASSERT_GE(replies.size(), 3u);
    EXPECT_EQ(replies.back().substr(0, 3), "421") << replies.back();
  }
  EXPECT_TRUE(wait_log("limit", {{"limit", "idle_timeout"}})) << log();
  EXPECT_TRUE(wait_log("limit", {{"limit", "max_recipients"}})) << log();
}

TEST_F(InboundWorld, ExpiredMessagesBounceToTheSenderWithADsn) {
  // An outbound message from acme.example that mandatory TLS refuses;
  // the queue lifetime is 1 s, so the first retry bounces it. The bounce
  // goes back to acme.example's next hop.
  SmtpPeerConfig c = mx_config("mx1.partner.example");
  c.offer_starttls = false;
  SmtpPeer& mx = peer("127.0.0.2", c);
  dns_mx("partner.example", "mx1.partner.example", "127.0.0.2");
  start_relay(compile_table(write_policy("    peer \"partner.example\" { level mandatory; }\n")),
              {"--queue-lifetime", "1s", "--retry-schedule", "1s"});
  ASSERT_TRUE(submit("alice@acme.example", {"bob@partner.example"}).accepted);
  ASSERT_TRUE(wait_log("bounce", {{"to", "alice@acme.example"}})) << log();
  ASSERT_TRUE(hop_->wait_for_messages(1, kWait)) << log();
  auto m = hop_->messages()[0];
  EXPECT_EQ(m.mail_from, "");
  EXPECT_EQ(m.rcpts, std::vector<std::string>{"alice@acme.example"});
  EXPECT_NE(m.data.find("multipart/report"), std::string::npos);
  EXPECT_NE(m.data.find("report-type=delivery-status"), std::string::npos);
  EXPECT_NE(m.data.find("Final-Recipient: rfc822; bob@partner.example"), std::string::npos) << m.data;
  EXPECT_NE(m.data.find("Action: failed"), std::string::npos);
  EXPECT_EQ(mx.messages().size(), 0u);
}

TEST_F(RelayWorld, AChangedTableFileIsLoadedWithoutASignal) {
  SmtpPeerConfig c = mx_config("mx1.partner.example");
  c.offer_starttls = false;
  SmtpPeer& mx = peer("127.0.0.2", c);
  dns_mx("partner.example", "mx1.partner.example", "127.0.0.2");
  std::string table = compile_table(write_policy("    peer \"partner.example\" { level mandatory; }\n"));
  start_relay(table, {"--table-check-interval", "1s"});
  ASSERT_TRUE(submit("alice@acme.example", {"bob@partner.example"}).accepted);
  ASSERT_TRUE(wait_log("attempt", {{"outcome", "refuse"}, {"rule", "mandatory"}})) << log();
  size_t mark = relay_->line_count();
  compile_table(write_policy("", "", "policy2.tlsp"), "table.tlspdt");  // atomic replace
  ASSERT_TRUE(wait_log("table", {{"result", "loaded"}, {"why", "file changed"}}, nullptr, mark)) << log();
  ASSERT_TRUE(mx.wait_for_messages(1, kWait)) << log();
}

// ------------------------------------------- a table rewritten in place
//
// Operators copy tables with `cp`, which rewrites the live file in place.
// Whatever the file holds afterwards, only bytes the relay validated may
// decide anything: a refused table has no effect at all, a truncated one
// cannot crash the relay, and foreign bytes cannot make a lookup spin.

class InPlaceWorld : public InboundWorld {
 protected:
  // A mandatory rule for the client 127.0.0.5 (table.tlspdt, in force), and
  // the same policy with that rule opportunistic (other.tlspdt): the two
  // tables have the same layout, so the second one's bytes read through the
  // first one's offsets give the opportunistic rule.
  void SetUp() override {
    InboundWorld::SetUp();
    table_ = compile_table(write_policy("", "    peer \"127.0.0.5/32\" { level mandatory; }\n"));
    other_ = compile_table(write_policy("", "    peer \"127.0.0.5/32\" { level opportunistic; }\n", "other.tlsp"),
                           "other.tlspdt");
    ASSERT_EQ(file_bytes(table_).size(), file_bytes(other_).size());
  }

  // MAIL without STARTTLS from the mandatory client: 530 while the
  // mandatory table is in force, 250 under the opportunistic one.
  SubmitResult plaintext_from_mandatory_client() {
    SubmitOptions o;
    o.source_address = "127.0.0.5";
    o.starttls = false;
    return submit("carol@sender.example", {"alice@acme.example"}, o);
  }

  void expect_mandatory_still_enforced() {
    SubmitResult r = plaintext_from_mandatory_client();
    EXPECT_FALSE(r.accepted) << r.reply << r.error << log();
    EXPECT_EQ(r.code, 530) << r.reply << r.error << log();
    EXPECT_TRUE(relay_->running()) << log();
  }

  std::string table_, other_;
};

TEST_F(InPlaceWorld, ADamagedTableCopiedInPlaceIsRefusedAndHasNoEffect) {
  start_relay(table_, {"--table-check-interval", "1h"});
  expect_mandatory_still_enforced();
  // `cp other.tlspdt table.tlspdt` of a table damaged on the way (here its
  // checksum, which no lookup reads): the bytes read through the old
  // offsets would say opportunistic.
  std::string damaged = file_bytes(other_);
  damaged[24] ^= 0x01;
  write_in_place(table_, damaged, /*truncate=*/true);
  size_t mark = relay_->line_count();
  relay_->signal(SIGHUP);
  ASSERT_TRUE(wait_log("table", {{"result", "refused"}, {"kept", "previous table stays in force"}}, nullptr, mark))
      << log();
  expect_mandatory_still_enforced();
}

TEST_F(InPlaceWorld, ATruncatedTableKeepsTheRelayRunningAndEnforcing) {
  start_relay(table_, {"--table-check-interval", "1h"});
  expect_mandatory_still_enforced();
  ASSERT_EQ(::truncate(table_.c_str(), 0), 0);
  expect_mandatory_still_enforced();  // the lookup comes before any reload
  size_t mark = relay_->line_count();
  relay_->signal(SIGHUP);
  std::string line;
  ASSERT_TRUE(wait_log("table", {{"result", "refused"}}, &line, mark)) << log();
  EXPECT_NE(line.find("the file is empty"), std::string::npos) << line;
  expect_mandatory_still_enforced();
  // Cut in the middle rather than emptied: the same.
  const std::string next = file_bytes(other_);
  write_in_place(table_, next.substr(0, next.size() / 2), /*truncate=*/true);
  mark = relay_->line_count();
  relay_->signal(SIGHUP);
  ASSERT_TRUE(wait_log("table", {{"result", "refused"}}, &line, mark)) << log();
  EXPECT_NE(line.find("size mismatch"), std::string::npos) << line;
  expect_mandatory_still_enforced();
}

TEST_F(InPlaceWorld, PartOfAnotherTableWrittenInPlaceCannotMakeALookupSpin) {
  // Another table whose string pool (a long version label) lies where the
  // table in force keeps its domain index: written over the start of the
  // live file, it fills every index slot with text, so a probe that
  // trusted the file to keep an empty slot would never end.
  const std::string policy = dir_ + "/long.tlsp";
  std::ofstream(policy) << "policy \"relay-test\" version \"" << std::string(8000, 'x') << "\";\n"
                        << "domain \"acme.example\" { inbound { default peer { level opportunistic; } } }\n";
  const std::string foreign = file_bytes(compile_table(policy, "long.tlspdt"));
  const std::string live = file_bytes(table_);
  uint64_t index_offset, index_size;
  std::memcpy(&index_offset, live.data() + 112 + 2 * 24 + 8, 8);  // section 3 (docs/decision-table.md)
  std::memcpy(&index_size, live.data() + 112 + 2 * 24 + 16, 8);
  ASSERT_LT(index_offset + index_size, foreign.size());
  ASSERT_LT(index_offset + index_size, live.size());
  for (uint64_t slot = index_offset; slot < index_offset + index_size; slot += 8)
    ASSERT_EQ(foreign.substr(slot, 8), "xxxxxxxx") << "no empty slot may be left";

  start_relay(table_, {"--table-check-interval", "1h"});
  expect_mandatory_still_enforced();
  write_in_place(table_, std::string_view(foreign).substr(0, index_offset + index_size), /*truncate=*/false);
  expect_mandatory_still_enforced();  // within the submit timeout: no lookup spins
  size_t mark = relay_->line_count();
  relay_->signal(SIGHUP);
  ASSERT_TRUE(wait_log("table", {{"result", "refused"}}, nullptr, mark)) << log();
  expect_mandatory_still_enforced();
}

TEST_F(InPlaceWorld, AGoodTableCopiedInPlaceTakesEffectOnSighup) {
  start_relay(table_, {"--table-check-interval", "1h"});
  expect_mandatory_still_enforced();
  write_in_place(table_, file_bytes(other_), /*truncate=*/true);
  size_t mark = relay_->line_count();
  relay_->signal(SIGHUP);
  ASSERT_TRUE(wait_log("table", {{"result", "loaded"}, {"why", "SIGHUP"}}, nullptr, mark)) << log();
  SubmitResult r = plaintext_from_mandatory_client();
  EXPECT_TRUE(r.accepted) << r.reply << log();
}

TEST_F(InPlaceWorld, AHalfWrittenTableIsRefusedAndTheFinishedWriteIsLoaded) {
  start_relay(table_, {"--table-check-interval", "1s"});
  expect_mandatory_still_enforced();
  const std::string next = file_bytes(other_);
  const size_t half = next.size() / 2;
  size_t mark = relay_->line_count();
  write_in_place(table_, std::string_view(next).substr(0, half), /*truncate=*/true);
  // The file-change check finds it half written: refused, the old table stays.
  ASSERT_TRUE(wait_log("table", {{"result", "refused"}, {"why", "file changed"}}, nullptr, mark)) << log();
  expect_mandatory_still_enforced();
  // The writer finishes: the next check loads the complete table.
  mark = relay_->line_count();
  write_in_place(table_, std::string_view(next).substr(half), /*truncate=*/false, static_cast<off_t>(half));
  ASSERT_TRUE(wait_log("table", {{"result", "loaded"}, {"why", "file changed"}}, nullptr, mark)) << log();
  SubmitResult r = plaintext_from_mandatory_client();
  EXPECT_TRUE(r.accepted) << r.reply << log();
}

TEST_F(RelayWorld, PipelinedCommandsGetTheirRepliesInOrder) {
  start_relay(compile_table(write_policy("")));
  std::string error;
  int fd = connect_tcp("127.0.0.1", relay_port_, 5s, error);
  ASSERT_GE(fd, 0) << error;
  Stream s(fd);
  s.set_timeout(10s);
  std::string line;
  ASSERT_EQ(s.read_line(line, 1000), IoStatus::ok);
  ASSERT_EQ(s.write_all("EHLO x\r\n"), IoStatus::ok);
  bool pipelining = false;
  do {
    ASSERT_EQ(s.read_line(line, 1000), IoStatus::ok);
    if (line.find("PIPELINING") != std::string::npos) pipelining = true;
  } while (line.size() > 3 && line[3] == '-');
  EXPECT_TRUE(pipelining);
  // RFC 2920: MAIL, RCPTs and DATA in one write.
  ASSERT_EQ(s.write_all("MAIL FROM:<alice@acme.example>\r\nRCPT TO:<bob@partner.example>\r\n"
                        "RCPT TO:<x@elsewhere.example>\r\nDATA\r\n"),
            IoStatus::ok);
  std::vector<std::string> codes;
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(s.read_line(line, 1000), IoStatus::ok);
    codes.push_back(line.substr(0, 3));
  }
  EXPECT_EQ(codes, (std::vector<std::string>{"250", "250", "250", "354"}));
  ASSERT_EQ(s.write_all("Subject: p\r\n\r\nbody\r\n.\r\nQUIT\r\n"), IoStatus::ok);
  ASSERT_EQ(s.read_line(line, 1000), IoStatus::ok);
  EXPECT_EQ(line.substr(0, 3), "250") << line;
  ASSERT_EQ(s.read_line(line, 1000), IoStatus::ok);
  EXPECT_EQ(line.substr(0, 3), "221") << line;
}

TEST_F(RelayWorld, BareLineEndingsCannotSmuggleASecondMessage) {
  SmtpPeerConfig c = mx_config("mx1.partner.example");
  c.offer_starttls = false;
  SmtpPeer& mx = peer("127.0.0.2", c);
  dns_mx("partner.example", "mx1.partner.example", "127.0.0.2");
  start_relay(compile_table(write_policy("")));
  // "\n.\n" and "\r\n.\n" are not the end of the data; the message runs to
  // the real CR LF . CR LF and is refused as a whole.
  for (const char* smuggle : {"\n.\nMAIL FROM:<evil@acme.example>\r\n", "\r\n.\nRCPT TO:<x@partner.example>\r\n",
                              "\n.\r\nDATA\r\n", "\r.\r\nQUIT\r\n"}) {
    std::string error;
    int fd = connect_tcp("127.0.0.1", relay_port_, 5s, error);
    ASSERT_GE(fd, 0) << error;
    Stream s(fd);
    s.set_timeout(10s);
    std::string line;
    ASSERT_EQ(s.read_line(line, 1000), IoStatus::ok);
    ASSERT_EQ(s.write_all("HELO x\r\nMAIL FROM:<alice@acme.example>\r\nRCPT TO:<bob@partner.example>\r\nDATA\r\n"),
              IoStatus::ok);
    for (int i = 0; i < 4; ++i) ASSERT_EQ(s.read_line(line, 1000), IoStatus::ok);
    ASSERT_EQ(line.substr(0, 3), "354");
    ASSERT_EQ(s.write_all(std::string("Subject: s\r\n\r\nhello") + smuggle + "more\r\n.\r\n"), IoStatus::ok);
    ASSERT_EQ(s.read_line(line, 1000), IoStatus::ok);
    EXPECT_EQ(line.substr(0, 3), "554") << line;
  }
  EXPECT_TRUE(wait_log("limit", {{"limit", "bare_line_ending"}})) << log();
  // A clean message still goes through.
  ASSERT_TRUE(submit("alice@acme.example", {"bob@partner.example"}).accepted);
  ASSERT_TRUE(mx.wait_for_messages(1, kWait)) << log();
  EXPECT_EQ(mx.messages().size(), 1u);
}

TEST_F(RelayWorld, PlaintextPipelinedBehindStarttlsIsDiscarded) {
  start_relay(compile_table(write_policy("")));
  std::string error;
  int fd = connect_tcp("127.0.0.1", relay_port_, 5s, error);
  ASSERT_GE(fd, 0) << error;
  Stream s(fd);
  s.set_timeout(10s);
  std::string line;
  ASSERT_EQ(s.read_line(line, 1000), IoStatus::ok);
  ASSERT_EQ(s.write_all("EHLO x\r\n"), IoStatus::ok);
  do ASSERT_EQ(s.read_line(line, 1000), IoStatus::ok);
  while (line.size() > 3 && line[3] == '-');
  // The injection: a command behind STARTTLS in the same packet.
  ASSERT_EQ(s.write_all("STARTTLS\r\nMAIL FROM:<injected@acme.example>\r\n"), IoStatus::ok);
  ASSERT_EQ(s.read_line(line, 1000), IoStatus::ok);
  ASSERT_EQ(line.substr(0, 3), "220");
  TlsClientParams p;
  p.sni = "relay.test";
  p.min_version = TlsVersion::tls1_2;
  TlsClientResult r = s.start_tls_client(p);
  ASSERT_TRUE(r.ok) << r.error;
  // Inside TLS the session starts afresh: the injected MAIL was never
  // executed, so MAIL now needs an EHLO first.
  ASSERT_EQ(s.write_all("MAIL FROM:<alice@acme.example>\r\n"), IoStatus::ok);
  ASSERT_EQ(s.read_line(line, 1000), IoStatus::ok);
  EXPECT_EQ(line.substr(0, 3), "503") << line;
  EXPECT_TRUE(wait_log("limit", {{"limit", "starttls_injection"}})) << log();
}

TEST_F(RelayWorld, ConnectionLimitsAnswer421) {
  start_relay(compile_table(write_policy("")),
              {"--max-connections", "2", "--max-connections-per-client", "3", "--admission-wait", "0"});
  std::string error;
  std::vector<std::unique_ptr<Stream>> held;
  std::string line;
  for (int i = 0; i < 2; ++i) {
    int fd = connect_tcp("127.0.0.1", relay_port_, 5s, error);
    ASSERT_GE(fd, 0) << error;
    held.push_back(std::make_unique<Stream>(fd));
    held.back()->set_timeout(10s);
    ASSERT_EQ(held.back()->read_line(line, 1000), IoStatus::ok);
    EXPECT_EQ(line.substr(0, 3), "220");
  }
  int fd = connect_tcp("127.0.0.1", relay_port_, 5s, error);
  ASSERT_GE(fd, 0) << error;
  Stream third(fd);
  third.set_timeout(10s);
  ASSERT_EQ(third.read_line(line, 1000), IoStatus::ok);
  EXPECT_EQ(line.substr(0, 3), "421") << line;
  EXPECT_TRUE(wait_log("limit", {{"limit", "max_connections"}})) << log();
}

TEST_F(InboundWorld, APermanentRecipientFailureBouncesThatRecipientOnly) {
  SmtpPeerConfig c = mx_config("mx1.partner.example");
  c.rcpt_replies["nobody@partner.example"] = "550 5.1.1 no such user";
  SmtpPeer& mx = peer("127.0.0.2", c);
  dns_mx("partner.example", "mx1.partner.example", "127.0.0.2");
  start_relay(compile_table(write_policy("")));
  ASSERT_TRUE(submit("alice@acme.example", {"bob@partner.example", "nobody@partner.example"}).accepted);
  ASSERT_TRUE(mx.wait_for_messages(1, kWait)) << log();
  EXPECT_EQ(mx.messages()[0].rcpts, std::vector<std::string>{"bob@partner.example"});
  ASSERT_TRUE(hop_->wait_for_messages(1, kWait)) << log();
  auto bounce = hop_->messages()[0];
  EXPECT_EQ(bounce.rcpts, std::vector<std::string>{"alice@acme.example"});
  EXPECT_NE(bounce.data.find("Final-Recipient: rfc822; nobody@partner.example"), std::string::npos) << bounce.data;
  EXPECT_NE(bounce.data.find("Status: 5.1.1"), std::string::npos) << bounce.data;
  EXPECT_EQ(bounce.data.find("Final-Recipient: rfc822; bob@partner.example"), std::string::npos);
}

TEST_F(InboundWorld, ANullMxBouncesAtOnce) {
  dns_.set({"nomail.example", dns_type::MX, {"0 ."}});
  start_relay(compile_table(write_policy("")));
  ASSERT_TRUE(submit("alice@acme.example", {"bob@nomail.example"}).accepted);
  ASSERT_TRUE(hop_->wait_for_messages(1, kWait)) << log();
  EXPECT_NE(hop_->messages()[0].data.find("Status: 5.1.10"), std::string::npos) << hop_->messages()[0].data;
}

TEST_F(InboundWorld, PostmasterWithoutADomainIsAccepted) {
  start_relay(compile_table(write_policy("", "")));
  SubmitOptions o;
  o.source_address = "127.0.0.9";
  SubmitResult r = submit("carol@sender.example", {"PostMaster"}, o);
  ASSERT_TRUE(r.accepted) << r.reply << log();
  ASSERT_TRUE(hop_->wait_for_messages(1, kWait)) << log();
  EXPECT_EQ(hop_->messages()[0].rcpts, std::vector<std::string>{"postmaster@acme.example"});
}

TEST_F(InboundWorld, AFailedBounceIsKeptInTheFailedArea) {
  // A bounce (null sender) refused permanently by the next hop: nobody to
  // tell, so the message is kept in failed/ and logged.
  hop_->stop();
  peers_.clear();
  SmtpPeerConfig hop;
  hop.hostname = "mailstore.acme.example";
  hop.offer_starttls = false;
  hop.address = "127.0.0.31";
  hop.rcpt_reply = "550 5.1.1 mailbox unavailable";
  auto p = std::make_unique<SmtpPeer>(hop);
  uint16_t port = p->port();
  peers_.push_back(std::move(p));
  next_hop_port_ = 0;
  start_relay(compile_table(write_policy("", "")), {"--next-hop", "acme.example=127.0.0.31:" + std::to_string(port)});
  ASSERT_TRUE(submit("", {"alice@acme.example"}).accepted) << log();
  ASSERT_TRUE(wait_log("queue", {{"result", "failed"}})) << log();
  size_t kept = 0;
  for (const auto& e : fs::directory_iterator(dir_ + "/spool/failed")) kept += e.path().extension() == ".reason";
  EXPECT_EQ(kept, 1u);
}

TEST_F(RelayWorld, SigtermShutsDownCleanly) {
  start_relay(compile_table(write_policy("")));
  relay_->signal(SIGTERM);
  auto st = relay_->wait_exit(kWait);
  ASSERT_TRUE(st);
  EXPECT_TRUE(WIFEXITED(*st));
  EXPECT_EQ(WEXITSTATUS(*st), 0);
  EXPECT_TRUE(wait_log("stop", {{"result", "stopped"}})) << log();
}

TEST_F(RelayWorld, ConfigFileGivesTheSameSettings) {
  std::string table = compile_table(write_policy(""));
  std::string conf = dir_ + "/relay.conf";
  std::ofstream(conf) << "# tlsp relay configuration\nlisten = 127.0.0.1:0\nhostname = conf.test\n"
                      << "table = " << table << "\nspool = " << dir_ << "/spool2\nresolver = " << dns_.server()
                      << "\nmax-recipients = 7\n";
  std::vector<std::string> args{"relay", "--config", conf};
  for (std::string& a : service_user_args(dir_)) args.push_back(std::move(a));
  relay_ = std::make_unique<RelayProcess>(TLSP_BINARY, args);
  relay_port_ = relay_->wait_ready(kWait);
  ASSERT_NE(relay_port_, 0) << log();
  EXPECT_TRUE(wait_log("start", {{"hostname", "conf.test"}})) << log();
  auto replies = smtp_dialogue("127.0.0.1", relay_port_, {"EHLO x", "QUIT"}, 10s);
  ASSERT_GE(replies.size(), 2u);
  EXPECT_NE(replies[0].find("conf.test"), std::string::npos);
}

// ------------------------------------------------------ hardening (issue 9)

// Each line of the configuration file is checked before it is used, and a
// mistake names the file and line. `%canonical_option%` in a setting's name
// made Boost's error message loop forever (found by relay_config_fuzz);
// `[x]` was taken as a section; a FIFO blocked the read.

namespace {
// `tlsp relay ARGS --check-config` (in at most 20 s): its exit status and
// what it printed.
std::pair<int, std::string> check_config(const std::string& args) {
  const auto r = tlsp::testing_support::run_shell("timeout 20 '" TLSP_BINARY "' relay " + args + " --check-config 2>&1");
  return {r.code, r.out};
}
}  // namespace

TEST(RelayConfig, BadLinesNameTheFileAndLine) {
  tlsp::testing_support::TempDir dir;
  struct Case {
    std::string text, says;
  };
  for (const Case& c : {Case{"listen = 127.0.0.1:0\nlisten%canonical_option%x = 1\n", ":2: expected `name = value`"},
                        Case{"# fine\n\n[relay]\n", ":3: expected `name = value`"},
                        Case{"hostname = a\nno-such-setting = 1\n", ":2: unknown setting `no-such-setting`"},
                        Case{"max-recipients\n", ":1: expected `name = value`"},
                        Case{"host\x9bname = x\n", ":1: expected `name = value`, found `host\\x9bname = x`"}}) {
    const std::string conf = dir.path() + "/relay.conf";
    std::ofstream(conf, std::ios::trunc) << c.text;
    const auto [code, out] = check_config("--config '" + conf + "'");
    EXPECT_EQ(code, 2) << c.text << ": " << out;
    EXPECT_NE(out.find(conf + c.says), std::string::npos) << c.text << ": " << out;
  }
  const std::string fifo = dir.path() + "/fifo.conf";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const auto [code, out] = check_config("--config '" + fifo + "'");
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("not a regular file"), std::string::npos) << out;
}

// A careless number in the configuration is an error naming the setting,
// never a wrapped value: `-1` was taken as 18446744073709551615 sessions,
// and port 70000 as port 4464.
TEST(RelayConfig, NumbersOutOfRangeAreRefused) {
  tlsp::testing_support::TempDir dir;
  for (const std::string line : {"max-connections = -1", "smtp-port = 70000", "max-recipients = 1e3",
                                 "delivery-workers = 99999999999999999999999"}) {
    const std::string conf = dir.path() + "/relay.conf";
    std::ofstream(conf) << line << "\n";
    const auto [code, out] = check_config("--config '" + conf + "'");
    EXPECT_EQ(code, 2) << line << ": " << out;
    const std::string name = line.substr(0, line.find(' '));
    EXPECT_NE(out.find("tlsp relay: error: " + conf + ":1: " + name + ": `"), std::string::npos) << line << ": " << out;
    EXPECT_NE(out.find("is not a whole number"), std::string::npos) << line << ": " << out;
  }
}


// Every mistake of a configuration is reported in one run, each where it
// was made (FILE:LINE for the file, --name for a flag), with one prefix:
// an operator fixes them all at once instead of one per attempt.
TEST(RelayConfig, EveryMistakeIsReportedInOneRun) {
  tlsp::testing_support::TempDir dir;
  const std::string conf = dir.path() + "/relay.conf";
  std::ofstream(conf) << "# relay\n"
                      << "listen = 127.0.0.1:0\n"
                      << "listen = nonsense\n"            // 3: not address:port
                      << "max-line-length = 100\n"        // 4: below 512
                      << "[relay]\n"                      // 5: not name = value
                      << "idle-timeout = soon\n"          // 6: not a duration
                      << "no-such = 1\n"                  // 7: unknown
                      << "hostname = a\nhostname = b\n"   // 9: twice
                      << "next-hop = acme.example\n"      // 10: no host:port
                      << "max-recipients = 0\n"           // 11: overridden by the flag below
                      << "next-hop = globex.example=:25\n"  // 12: no host
                      << "spool = " << dir.path() << "/spool\n";
  auto [rc, out] = check_config("--config '" + conf + "' --table '" + dir.path() +
                                "/missing.tlspdt' --max-recipients 0 --session-timeout 1x");
  EXPECT_EQ(rc, 2) << out;
  for (const std::string& says :
       {conf + ":3: listen: `nonsense` is not address:port", conf + ":4: max-line-length: must be at least 512",
        conf + ":5: expected `name = value`, found `[relay]`", conf + ":6: idle-timeout: `soon` is not a duration",
        conf + ":7: unknown setting `no-such`", conf + ":9: hostname: given more than once",
        conf + ":10: next-hop: `acme.example` is not domain=host:port", conf + ":12: next-hop: needs domain=host:port",
        std::string("--max-recipients: must be at least 1"),
        std::string("--session-timeout: `1x` is not a duration"), std::string("--table: decision table `")})
    EXPECT_NE(out.find("tlsp relay: error: " + says), std::string::npos) << says << "\n" << out;
  EXPECT_NE(out.find("tlsp relay: 11 errors in the configuration"), std::string::npos) << out;
  // every line but the count carries the one prefix
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);)
    EXPECT_TRUE(line.starts_with("tlsp relay: error: ") || line == "tlsp relay: 11 errors in the configuration")
        << line;
}

// A raw client for the byte-level cases: what a reply-reading SMTP client
// would not let a test see (a reset, bytes that are not lines).
class RawClient {
 public:
  RawClient(uint16_t port, const std::string& source = "") {
    std::string error;
    fd_ = connect_tcp("127.0.0.1", port, 5s, error, source);
    EXPECT_GE(fd_, 0) << error;
  }
  ~RawClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return fd_ >= 0; }

  // Sends everything unless the peer goes away first.
  bool send_all(std::string_view data, std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n > 0) {
        data.remove_prefix(static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        if (!wait(POLLOUT, deadline)) return false;
        continue;
      }
      return false;
    }
    return true;
  }

  // Reads until the peer closes (true, received holds everything) or
  // resets the connection / the deadline passes (false, errno_ says which).
  bool read_to_end(std::string& received, std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    char buf[4096];
    while (true) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0) {
        received.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n == 0) return true;
      if (errno == EAGAIN || errno == EINTR) {
        if (!wait(POLLIN, deadline)) {
          error_ = ETIMEDOUT;
          return false;
        }
        continue;
      }
      error_ = errno;
      return false;
    }
  }

  // Reads until `text` has arrived (or EOF / the deadline).
  bool read_until(std::string& received, std::string_view text, std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    char buf[4096];
    while (received.find(text) == std::string::npos) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0) {
        received.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR) && wait(POLLIN, deadline)) continue;
      return false;
    }
    return true;
  }

  int error() const { return error_; }

 private:
  bool wait(short events, std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, events, 0};
    return ::poll(&p, 1, static_cast<int>(left.count())) > 0;
  }

  int fd_ = -1;
  int error_ = 0;
};

size_t count_lines(const std::vector<std::string>& lines, const std::string& event, const Fields& want) {
  size_t n = 0;
  for (const std::string& l : lines) n += line_matches(parsed(l), event, want);
  return n;
}

TEST_F(InboundWorld, SlowClientsDoNotLockOutWellBehavedOnes) {
  // The attack of issue 9, scaled down: 30 connections trickling one byte
  // per second from five addresses against 10 slots, and 20 well-behaved
  // clients (one address each) sending a message meanwhile. Stress
  // timeouts cut the trickle, the listener evicts the longest-stalled
  // session for a new client, and the rate limit stops the reconnects.
  start_relay(compile_table(write_policy("", "")),
              {"--max-connections", "10", "--submit-network", "127.0.0.1/32", "--stress-idle-timeout", "2s",
               "--evict-stalled-after", "1s", "--max-connection-rate-per-client", "10", "--admission-wait", "5s"});
  SlowClientsConfig attack;
  attack.port = relay_port_;
  attack.sources = {"127.0.0.10", "127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14"};
  attack.connections = 30;
  SlowClients attackers(attack);
  ASSERT_TRUE(wait_log("stress", {{"result", "on"}})) << log();
  std::atomic<int> accepted{0};
  std::vector<std::string> failures;
  std::mutex mu;
  std::vector<std::thread> good;
  const auto began = std::chrono::steady_clock::now();
  for (int t = 0; t < 4; ++t)
    good.emplace_back([&, t] {
      for (int i = 0; i < 5; ++i) {
        SubmitOptions o;
        o.source_address = "127.0.0." + std::to_string(50 + t * 5 + i);
        SubmitResult r = submit("carol@sender.example", {"alice@acme.example"}, o);
        pollfd none{-1, 0, 0};
        ::poll(&none, 0, 250);  // clients arrive over the attack, not in one burst (a pace, not a wait)
        if (r.accepted) {
          ++accepted;
        } else {
          std::lock_guard lock(mu);
          failures.push_back(o.source_address + ": " + std::to_string(r.code) + " " + r.reply + r.error);
        }
      }
    });
  for (std::thread& t : good) t.join();
  const auto took = std::chrono::steady_clock::now() - began;
  EXPECT_TRUE(wait_log("limit", {{"limit", "evict_stalled_after"}})) << log();
  EXPECT_TRUE(wait_log("limit", {{"limit", "max_connection_rate_per_client"}})) << log();
  attackers.stop();
  std::string why;
  for (const std::string& f : failures) why += f + "\n";
  EXPECT_GE(accepted.load(), 19) << why << log();
  EXPECT_LT(took, 30s);
  EXPECT_GT(attackers.stats().greeted, 0u);  // the attack did get in
}

TEST_F(RelayWorld, StressShortensTheTimeoutsOfRunningSessions) {
  start_relay(compile_table(write_policy("")), {"--max-connections", "5", "--stress-threshold", "60", "--idle-timeout",
                                                "60s", "--stress-idle-timeout", "1s", "--evict-stalled-after", "0"});
  std::vector<std::unique_ptr<RawClient>> held;
  std::string greeting;
  for (int i = 0; i < 3; ++i) {
    held.push_back(std::make_unique<RawClient>(relay_port_));
    std::string got;
    ASSERT_TRUE(held.back()->read_until(got, "\r\n")) << log();
    EXPECT_EQ(got.substr(0, 3), "220");
  }
  ASSERT_TRUE(wait_log("stress", {{"result", "on"}, {"sessions", "3"}})) << log();
  // All three, the first two included (they were waiting already), get the
  // stress timeout, not the 60 s one.
  const auto began = std::chrono::steady_clock::now();
  for (auto& c : held) {
    std::string got;
    ASSERT_TRUE(c->read_to_end(got, 10s)) << log();
    EXPECT_EQ(got.substr(0, 9), "421 4.4.2") << got;
  }
  EXPECT_LT(std::chrono::steady_clock::now() - began, 5s);
  EXPECT_TRUE(wait_log("limit", {{"limit", "stress_idle_timeout"}})) << log();
  EXPECT_TRUE(wait_log("stress", {{"result", "off"}})) << log();
}

TEST_F(RelayWorld, AFullRelayEvictsTheLongestStalledSessionForANewClient) {
  start_relay(compile_table(write_policy("")),
              {"--max-connections", "2", "--stress-threshold", "0", "--evict-stalled-after", "2s"});
  RawClient first(relay_port_), second(relay_port_);
  std::string got1, got2;
  ASSERT_TRUE(first.read_until(got1, "\r\n"));
  ASSERT_TRUE(second.read_until(got2, "\r\n"));
  // The second stays busy on a thread of its own (a command every ~100 ms),
  // the first just waits. A newcomer waits in the admission room (the relay
  // is full) until the first has waited 2 s, then displaces it. The busy
  // session must not wait on the newcomer's test thread: when it did, both
  // sessions sat idle while the newcomer waited, and on a loaded machine
  // the one displaced was whichever had started waiting a moment earlier.
  std::atomic<bool> done{false};
  std::atomic<int> busy_failures{0};
  std::thread busy([&] {
    while (!done) {
      std::string r;
      if (!second.send_all("NOOP\r\n") || !second.read_until(r, "\r\n") || r.substr(0, 3) != "250") {
        ++busy_failures;
        return;
      }
      pollfd p{-1, 0, 0};
      ::poll(&p, 0, 100);  // the pace of a busy client, not a wait for an event
    }
  });
  const auto began = std::chrono::steady_clock::now();
  auto replies = smtp_dialogue("127.0.0.1", relay_port_, {}, 8s);
  const auto waited = std::chrono::steady_clock::now() - began;
  done = true;
  busy.join();
  ASSERT_EQ(replies.size(), 1u) << log();
  EXPECT_EQ(replies[0].substr(0, 3), "220") << replies[0] << "\n" << log();
  EXPECT_GE(waited, 1s);  // not before the first had stalled (2 s from its greeting)
  EXPECT_EQ(busy_failures.load(), 0) << "the busy session was displaced\n" << log();
  std::string rest;
  ASSERT_TRUE(first.read_to_end(rest)) << log();
  EXPECT_NE(rest.find("421 4.7.0"), std::string::npos) << rest;
  EXPECT_TRUE(wait_log("limit", {{"limit", "evict_stalled_after"}})) << log();
}

TEST_F(RelayWorld, AClientOverItsConnectionRateIsRefused) {
  start_relay(compile_table(write_policy("")), {"--max-connection-rate-per-client", "3", "--connection-rate-time-unit",
                                                "2s", "--submit-network", "127.0.0.1/32"});
  for (int i = 0; i < 4; ++i) {
    auto replies = smtp_dialogue("127.0.0.1", relay_port_, {"QUIT"}, 5s);  // 127.0.0.1/32 is exempt
    ASSERT_GE(replies.size(), 1u);
    EXPECT_EQ(replies[0].substr(0, 3), "220");
  }
  std::vector<std::string> firsts;
  for (int i = 0; i < 6; ++i) {
    RawClient c(relay_port_, "127.0.0.40");
    std::string got;
    ASSERT_TRUE(c.read_until(got, "\r\n"));
    firsts.push_back(got.substr(0, 9));
    c.send_all("QUIT\r\n");
  }
  EXPECT_EQ(firsts,
            (std::vector<std::string>{"220 relay", "220 relay", "220 relay", "421 4.7.0", "421 4.7.0", "421 4.7.0"}));
  ASSERT_TRUE(wait_log("limit", {{"limit", "max_connection_rate_per_client"}, {"client", "127.0.0.40"}})) << log();
  // A flood of refusals is one line as it starts, and one with the count
  // when its window is over (here: at the first connection of the next).
  EXPECT_EQ(count_lines(relay_->lines(), "limit", {{"limit", "max_connection_rate_per_client"}}), 1u) << log();
  std::string greeting;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (greeting.substr(0, 3) != "220" && std::chrono::steady_clock::now() < deadline) {
    RawClient c(relay_port_, "127.0.0.40");
    greeting.clear();
    c.read_until(greeting, "\r\n");
    c.send_all("QUIT\r\n");
    if (greeting.substr(0, 3) != "220") {
      pollfd none{-1, 0, 0};
      ::poll(&none, 0, 250);  // the pace of a client retrying: the window ends by time alone
    }
  }
  EXPECT_EQ(greeting.substr(0, 3), "220");
  std::string summary;
  ASSERT_TRUE(wait_log("limit", {{"limit", "max_connection_rate_per_client"}, {"window", "2s"}}, &summary)) << log();
  EXPECT_GE(std::stoi(parsed(summary).get("refused")), 3) << summary;  // with the retries above
}

TEST_F(RelayWorld, TheDataPhaseHasATimeLimitAsAWhole) {
  // One line every 300 ms never trips the idle timeout; the DATA phase as
  // a whole ends after 2 s.
  start_relay(compile_table(write_policy("")), {"--idle-timeout", "5s", "--data-phase-timeout", "2s"});
  RawClient c(relay_port_);
  std::string got;
  ASSERT_TRUE(c.send_all("HELO x\r\nMAIL FROM:<alice@acme.example>\r\nRCPT TO:<bob@partner.example>\r\nDATA\r\n"));
  ASSERT_TRUE(c.read_until(got, "354 "));
  const auto began = std::chrono::steady_clock::now();
  while (got.find("421") == std::string::npos && std::chrono::steady_clock::now() - began < 8s) {
    if (!c.send_all("a line of the message\r\n")) break;
    c.read_until(got, "421", 300ms);  // the pace, and the wait for the end
  }
  EXPECT_NE(got.find("421 4.4.2"), std::string::npos) << got;
  EXPECT_LT(std::chrono::steady_clock::now() - began, 5s);
  EXPECT_TRUE(wait_log("limit", {{"limit", "data_phase_timeout"}})) << log();
}

TEST_F(RelayWorld, ABareLineEndingInACommandEndsTheSessionWith521) {
  start_relay(compile_table(write_policy("")));
  for (const char* input : {"NOOP\nNOOP\n", "NOOP\rNOOP\r\n"}) {
    RawClient c(relay_port_);
    std::string got;
    ASSERT_TRUE(c.read_until(got, "\r\n"));
    got.clear();
    ASSERT_TRUE(c.send_all(input));
    ASSERT_TRUE(c.read_to_end(got)) << c.error();
    EXPECT_EQ(got.substr(0, 9), "521 5.5.2") << got;
    EXPECT_EQ(got.find("250"), std::string::npos) << got;  // no command ran
  }
  EXPECT_TRUE(wait_log("limit", {{"limit", "bare_line_ending"}, {"phase", "command"}})) << log();
}

TEST_F(InboundWorld, SenderSpecifiedRoutingIsRefused) {
  start_relay(compile_table(write_policy("", "")), {"--submit-network", "127.0.0.1/32"});
  SubmitOptions o;
  o.source_address = "127.0.0.9";
  for (const char* rcpt : {"v%victim.example@acme.example", "v@victim.example@acme.example",
                           "\"v@victim.example\"@acme.example", "victim.example!v@acme.example"}) {
    SubmitResult r = submit("carol@sender.example", {rcpt}, o);
    EXPECT_FALSE(r.accepted) << rcpt;
    EXPECT_EQ(r.code, 550) << rcpt << ": " << r.reply;
    EXPECT_NE(r.reply.find("5.7.1"), std::string::npos) << r.reply;
  }
  EXPECT_TRUE(
      wait_log("reject", {{"reason", "sender-specified-routing"}, {"recipient", "\"v@victim.example\"@acme.example"}}))
      << log();
  ASSERT_TRUE(submit("carol@sender.example", {"alice@acme.example"}, o).accepted);
  ASSERT_TRUE(hop_->wait_for_messages(1, kWait)) << log();
  EXPECT_EQ(hop_->messages().size(), 1u);
  EXPECT_EQ(hop_->messages()[0].rcpts, std::vector<std::string>{"alice@acme.example"});
}

// Address domains follow the one rule (tlsp/base/domain_name.h): no `_`, no
// hyphen at a label's ends, valid A-labels; an address literal has no domain
// to route outbound by and is refused at RCPT rather than queued.
TEST_F(RelayWorld, AddressDomainsAreHostNames) {
  start_relay(compile_table(write_policy("")));
  for (const char* rcpt : {"bob@a_b.example", "bob@partner-.example", "bob@xn--a.example", "bob@partner..example"}) {
    SubmitResult r = submit("alice@acme.example", {rcpt});
    EXPECT_FALSE(r.accepted) << rcpt;
    EXPECT_EQ(r.code, 501) << rcpt << ": " << r.reply;
  }
  SubmitResult literal = submit("alice@acme.example", {"bob@[192.0.2.1]"});
  EXPECT_FALSE(literal.accepted);
  EXPECT_EQ(literal.code, 553) << literal.reply;
  EXPECT_NE(literal.reply.find("address literals are not routed"), std::string::npos) << literal.reply;
}

TEST_F(RelayWorld, EightBitAddressesAreRefusedAndTheLogEscapesEveryNonPrintableByte) {
  start_relay(compile_table(write_policy("")));
  // 0x9B is CSI to a terminal, 0x85 NEL, U+0085 (C2 85) NEL in UTF-8.
  const std::string address =
      "a\x9b"
      "b\x85"
      "c\xc2\x85"
      "d@acme.example";
  auto replies = smtp_dialogue("127.0.0.1", relay_port_,
                               {"EHLO x", "MAIL FROM:<" + address + ">", "MAIL FROM:<alice@acme.example>",
                                "RCPT TO:<caf\xc3\xa9@partner.example>", "QUIT"},
                               10s);
  ASSERT_EQ(replies.size(), 6u);
  EXPECT_EQ(replies[2].substr(0, 9), "553 5.6.7") << replies[2];
  EXPECT_EQ(replies[3].substr(0, 3), "250") << replies[3];
  EXPECT_EQ(replies[4].substr(0, 9), "553 5.6.7") << replies[4];
  std::string line;
  ASSERT_TRUE(wait_log("reject", {{"reason", "non-ascii-address"}, {"role", "sender"}}, &line)) << log();
  EXPECT_EQ(parsed(line).get("address"), address);  // the parser undoes the escaping
  EXPECT_NE(line.find(R"(address="a\x9bb\x85c\xc2\x85d@acme.example")"), std::string::npos) << line;
  for (const std::string& l : relay_->lines())
    for (char ch : l) {
      unsigned char u = static_cast<unsigned char>(ch);
      ASSERT_TRUE(u >= 0x20 && u <= 0x7e) << "raw byte " << int(u) << " in: " << l;
    }
}

TEST_F(RelayWorld, MaxCommandsClosesWithoutAResetSoThe421Arrives) {
  start_relay(compile_table(write_policy("")), {"--max-commands", "5"});
  RawClient c(relay_port_);
  std::string got;
  ASSERT_TRUE(c.read_until(got, "\r\n"));
  got.clear();
  std::string flood;
  for (int i = 0; i < 20000; ++i) flood += "NOOP\r\n";  // 120 KB, far more than one read
  c.send_all(flood);                                    // may stop early if the relay is already done
  ASSERT_TRUE(c.read_to_end(got)) << "errno " << c.error() << " after: " << got;  // FIN, not a reset
  EXPECT_NE(got.find("421 4.7.0"), std::string::npos) << got;
  EXPECT_TRUE(wait_log("limit", {{"limit", "max_commands"}})) << log();
}

TEST_F(RelayWorld, ExcessRecipientsAreOneLogLinePerTransaction) {
  start_relay(compile_table(write_policy("")), {"--max-recipients", "3"});
  std::vector<std::string> cmds = {"EHLO x", "MAIL FROM:<alice@acme.example>"};
  for (int i = 0; i < 50; ++i) cmds.push_back("RCPT TO:<r" + std::to_string(i) + "@partner.example>");
  cmds.push_back("RSET");
  cmds.push_back("MAIL FROM:<alice@acme.example>");
  for (int i = 0; i < 5; ++i) cmds.push_back("RCPT TO:<s" + std::to_string(i) + "@partner.example>");
  cmds.push_back("QUIT");
  auto replies = smtp_dialogue("127.0.0.1", relay_port_, cmds, 10s);
  ASSERT_EQ(replies.size(), cmds.size() + 1);
  EXPECT_EQ(replies[52].substr(0, 3), "452");
  ASSERT_TRUE(wait_log("limit", {{"limit", "max_recipients"}, {"refused", "47"}}, nullptr, 0, 5s)) << log();
  ASSERT_TRUE(wait_log("limit", {{"limit", "max_recipients"}, {"refused", "2"}}, nullptr, 0, 5s)) << log();
  EXPECT_EQ(count_lines(relay_->lines(), "limit", {{"limit", "max_recipients"}}), 2u) << log();
}

TEST_F(RelayWorld, AClientDroppingMidDataIsLogged) {
  start_relay(compile_table(write_policy("")));
  {
    RawClient c(relay_port_);
    std::string got;
    ASSERT_TRUE(c.send_all("HELO x\r\nMAIL FROM:<alice@acme.example>\r\nRCPT TO:<bob@partner.example>\r\nDATA\r\n"));
    ASSERT_TRUE(c.read_until(got, "354 "));
    ASSERT_TRUE(c.send_all("Subject: cut\r\n\r\nhalf a message\r\n"));
  }  // closed without the final dot
  EXPECT_TRUE(wait_log("abort", {{"phase", "data"},
                                 {"sender", "alice@acme.example"},
                                 {"recipients", "1"},
                                 {"received", "32"},
                                 {"reason", "connection closed"}}))
      << log();
}

TEST(RelayCli, BadConfigurationIsAClearUsageError) {
  int rc = std::system((std::string(TLSP_BINARY) + " relay --listen nonsense --table x --spool y 2>/dev/null").c_str());
  EXPECT_EQ(WEXITSTATUS(rc), 2);
  tlsp::testing_support::TempDir dir("tlsp-relay-cli");
  rc = std::system((std::string(TLSP_BINARY) + " relay --listen 127.0.0.1:0 --table /nonexistent.tlspdt --spool '" +
                    dir.path() + "/spool' 2>/dev/null")
                       .c_str());
  EXPECT_EQ(WEXITSTATUS(rc), 2);
}

}  // namespace

// Submit networks are read as policy CIDRs are (tlsp/base/address.h): a
// network with host bits set, or a prefix with a leading zero, was taken
// silently (as 10.0.0.0/8) and is now refused, naming the network meant.
TEST(RelayConfig, SubmitNetworksAreReadAsPolicyCidrs) {
  tlsp::RelayConfig c;
  c.listen = {"127.0.0.1:0"};
  c.table = "table.tlsd";
  c.spool_dir = "spool";
  for (const auto& [network, says] : std::vector<std::pair<std::string, std::string>>{
           {"10.0.0.1/8", "`10.0.0.1/8` has host bits set; did you mean `10.0.0.0/8`?"},
           {"10.0.0.0/08", "`10.0.0.0/08` is not an address or CIDR"},
           {"10.0.0.0/33", "`10.0.0.0/33` is not an address or CIDR"}}) {
    c.submit_networks = {network};
    try {
      tlsp::validate_relay_config(c);
      ADD_FAILURE() << network << " accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
  }
}
