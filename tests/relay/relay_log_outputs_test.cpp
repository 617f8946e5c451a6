// relay_log_outputs_test.cpp — the relay log as a real relay writes it
// (docs/logs.md): every line kind it writes in a session and a delivery, in
// both formats, to standard error, a file and a syslog socket at once; the
// Postfix fields of the attempt lines and the outbound `tls` line; the
// inbound session id; a SIGHUP reopening a renamed file; the journal
// output and syslog's /dev/log caught in a private mount namespace;
// outputs that fail without costing mail. The real binary as a child process, real peers, TLS and
// DNS on 127.0.0.x (as relay_test.cpp). Events the relay writes only on
// faults (spool, error, stress) are covered by relay_log_test.cpp, through
// the same writer.
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tlsp/base/digest.h"
#include "tlsp/compiler.h"
#include "tlsp/decision_table.h"
#include "tlsp/relay_log.h"
#include "tlsp/sim/dns_responder.h"
#include "tlsp/sim/relay_process.h"
#include "tlsp/sim/smtp_peer.h"
#include "tlsp/sim/test_pki.h"
#include "tlsp/stream.h"
#include "command.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace tlsp;
using namespace tlsp::sim;
using relay::LogEvent;
using relay::LogLine;

namespace {

constexpr auto kWait = 20s;

using Fields = std::map<std::string, std::string>;

LogLine parsed(const std::string& line) {
  std::string problem;
  std::optional<LogLine> l = relay::parse_log_line(line, &problem);
  if (!l) {
    ADD_FAILURE() << "the relay wrote a line its parser refuses (" << problem << "): " << line;
    return {};
  }
  return *l;
}

std::vector<std::string> file_lines(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// The file's lines once one satisfies `pred` (the file is written just
// after standard error, which the test waits on), or at the deadline.
template <class Pred>
std::vector<std::string> wait_file_lines(const std::string& path, Pred pred) {
  const auto end = std::chrono::steady_clock::now() + kWait;
  std::vector<std::string> l;
  while (std::chrono::steady_clock::now() < end) {
    l = file_lines(path);
    if (std::any_of(l.begin(), l.end(), pred)) break;
    std::this_thread::sleep_for(20ms);
  }
  return l;
}

std::string file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A datagram socket bound at `path` that keeps what arrives (a syslog
// daemon's /dev/log, journald's socket), read by a thread until destroyed.
class DatagramSink {
 public:
  explicit DatagramSink(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      throw std::runtime_error("cannot bind " + path + ": " + std::strerror(errno));
    int size = 4 << 20;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    reader_ = std::thread([this] {
      std::vector<char> buf(1 << 20);
      while (!done_) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 100) <= 0) continue;
        const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
        if (n < 0) continue;
        std::lock_guard lock(mu_);
        got_.emplace_back(buf.data(), static_cast<size_t>(n));
      }
    });
  }
  ~DatagramSink() {
    done_ = true;
    reader_.join();
    ::close(fd_);
  }
  std::vector<std::string> datagrams() const {
    std::lock_guard lock(mu_);
    return got_;
  }
  // Waits until at least n datagrams arrived.
  bool wait_for(size_t n, std::chrono::milliseconds timeout) const {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      if (datagrams().size() >= n) return true;
      std::this_thread::sleep_for(20ms);
    }
    return datagrams().size() >= n;
  }

 private:
  int fd_ = -1;
  std::atomic<bool> done_{false};
  std::thread reader_;
  mutable std::mutex mu_;
  std::vector<std::string> got_;
};

// The journal's native protocol (systemd's JOURNAL_NATIVE_PROTOCOL):
// `KEY=value\n`, or `KEY\n` + 64-bit little-endian size + bytes + `\n`.
std::multimap<std::string, std::string> journal_fields(std::string_view d) {
  std::multimap<std::string, std::string> out;
  while (!d.empty()) {
    const size_t nl = d.find('\n');
    const size_t eq = d.find('=');
    if (eq != std::string_view::npos && (nl == std::string_view::npos || eq < nl)) {
      const size_t end = nl == std::string_view::npos ? d.size() : nl;
      out.emplace(std::string(d.substr(0, eq)), std::string(d.substr(eq + 1, end - eq - 1)));
      d.remove_prefix(std::min(d.size(), end + 1));
      continue;
    }
    if (nl == std::string_view::npos || d.size() < nl + 9) {
      ADD_FAILURE() << "a malformed journal item";
      return out;
    }
    const std::string key(d.substr(0, nl));
    uint64_t size = 0;
    for (int i = 7; i >= 0; --i) size = size << 8 | static_cast<unsigned char>(d[nl + 1 + i]);
    d.remove_prefix(nl + 9);
    if (d.size() < size + 1) {
      ADD_FAILURE() << "a short journal item";
      return out;
    }
    out.emplace(key, std::string(d.substr(0, size)));
    d.remove_prefix(size + 1);
  }
  return out;
}

// The SHA-256 of a PEM certificate's DER, as the log writes it.
std::string fingerprint_of_pem(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (!x) return "";
  unsigned char* der = nullptr;
  const int n = i2d_X509(x, &der);
  std::string bytes(reinterpret_cast<const char*>(der), static_cast<size_t>(n));
  OPENSSL_free(der);
  X509_free(x);
  return base::hex(base::sha256(bytes));
}

bool is_seconds(const std::string& s) {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || c == '.'; }) &&
         std::count(s.begin(), s.end(), '.') <= 1;
}

// A raw SMTP dialogue (the greeting, one reply per command); `hang_up`
// closes the connection after the last command without reading a reply.
void smtp_dialogue(uint16_t port, const std::vector<std::string>& commands, bool hang_up = false) {
  std::string error;
  int fd = connect_tcp("127.0.0.1", port, 5s, error);
  ASSERT_GE(fd, 0) << error;
  Stream s(fd);
  s.set_timeout(5s);
  std::string line;
  auto reply = [&] {
    while (s.read_line(line, 100000) == IoStatus::ok)
      if (line.size() < 4 || line[3] != '-') return;
  };
  reply();
  for (size_t i = 0; i < commands.size(); ++i) {
    ASSERT_EQ(s.write_all(commands[i] + "\r\n"), IoStatus::ok);
    if (hang_up && i + 1 == commands.size()) return;
    reply();
  }
}

class LogWorld : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tlsp-log-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    pki_ = std::make_unique<TestPki>(dir_ + "/pki");
    relay_cert_ = pki_->issue({"relay.test"});
    dns_.start("127.0.0.1");
  }

  void TearDown() override {
    relay_.reset();
    peers_.clear();
    dns_.stop();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // One MX host for partner.example at 127.0.0.2 whose certificate a
  // DANE-EE record pins; bob is accepted, nobody refused (550 5.1.1).
  SmtpPeer& dane_peer() {
    SmtpPeerConfig c;
    c.address = "127.0.0.2";
    c.hostname = "mx1.partner.example";
    peer_cert_ = pki_->issue({"mx1.partner.example"}, CertKind::self_signed);
    c.cert_file = peer_cert_.cert_file;
    c.key_file = peer_cert_.key_file;
    c.rcpt_replies["nobody@partner.example"] = "550 5.1.1 <nobody@partner.example>: no such user";
    peers_.push_back(std::make_unique<SmtpPeer>(c));
    smtp_port_ = peers_.back()->port();
    dns_.set({"partner.example", dns_type::MX, {"10 mx1.partner.example."}, true});
    dns_.set({"mx1.partner.example", dns_type::A, {"127.0.0.2"}, true});
    dns_.set({"_25._tcp.mx1.partner.example", dns_type::TLSA,
              {format_tlsa_record(TestPki::tlsa_for(peer_cert_, 3, 1, 1))}, true});
    return *peers_.back();
  }

  std::string table(const std::string& outbound_rule = "level dane-only; min_tls tls1.2;") {
    const std::string policy = dir_ + "/policy.tlsp";
    std::ofstream(policy) << "policy \"log-test\" version \"1\";\n"
                             "default domain {\n"
                             "  outbound { default peer { level opportunistic; min_tls any; } }\n"
                             "  inbound  { default peer { level opportunistic; min_tls any; } }\n"
                             "}\n"
                             "domain \"acme.example\" {\n"
                             "  outbound { default peer { level opportunistic; min_tls any; }\n"
                             "    peer \"partner.example\" { " +
                                 outbound_rule +
                                 " } }\n"
                                 "}\n";
    CompileOptions o;
    o.inputs = {policy};
    o.threads = 1;
    CompileResult r = compile(o);
    EXPECT_TRUE(r.table) << render_diagnostics(r);
    const std::string path = dir_ + "/table.tlspdt";
    write_table_file(path, *r.table);
    return path;
  }

  // `wrapper`: a command the relay runs under (unshare ...), its binary
  // then the relay's.
  void start_relay(const std::string& table, const std::vector<std::string>& extra,
                   std::vector<std::string> wrapper = {}) {
    std::vector<std::string> args = {"relay",
                                     "--listen", "127.0.0.1:0",
                                     "--hostname", "relay.test",
                                     "--table", table,
                                     "--spool", dir_ + "/spool",
                                     "--resolver", dns_.server(),
                                     "--smtp-port", std::to_string(smtp_port_ ? smtp_port_ : 1),
                                     "--ca-file", pki_->ca_file(),
                                     "--tls-cert", relay_cert_.cert_file,
                                     "--tls-key", relay_cert_.key_file,
                                     "--retry-schedule", "1m",
                                     "--connect-timeout", "3s",
                                     "--dns-timeout", "3s",
                                     "--delivery-workers", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    for (std::string& a : service_user_args(dir_)) args.push_back(std::move(a));
    std::string binary = TLSP_BINARY;
    if (!wrapper.empty()) {
      binary = wrapper.front();
      wrapper.erase(wrapper.begin());
      wrapper.push_back(TLSP_BINARY);
      args.insert(args.begin(), wrapper.begin(), wrapper.end());
    }
    relay_ = std::make_unique<RelayProcess>(binary, args);
    relay_port_ = relay_->wait_ready(kWait);
    ASSERT_NE(relay_port_, 0) << log();
  }

  SubmitResult submit(const std::vector<std::string>& to, bool starttls = true) {
    SubmitOptions o;
    o.address = "127.0.0.1";
    o.port = relay_port_;
    o.ehlo_name = "client.test";
    o.starttls = starttls;
    o.message.mail_from = "alice@acme.example";
    o.message.rcpts = to;
    o.message.data = "Subject: test\r\nMessage-ID: <t@test>\r\n\r\nhello\r\n";
    o.timeout = 10s;
    return submit_message(o);
  }

  bool wait_log(LogEvent event, const Fields& want, std::string* line = nullptr, size_t from = 0) {
    return relay_->wait_for(
        [&](const LogLine& l) { return l.matches(event, relay::LogFields(want.begin(), want.end())); }, kWait, from,
        line);
  }

  std::vector<LogLine> lines_of(LogEvent event) const {
    std::vector<LogLine> out;
    for (const std::string& l : relay_->lines()) {
      std::optional<LogLine> p = relay::parse_log_line(l);
      if (p && p->event == event) out.push_back(*p);
    }
    return out;
  }

  std::string log() const {
    std::string s;
    if (relay_)
      for (const std::string& l : relay_->lines()) s += l + "\n";
    return s;
  }

  std::string relay_of_peer() const { return "mx1.partner.example[127.0.0.2]:" + std::to_string(smtp_port_); }

  std::string dir_;
  std::unique_ptr<TestPki> pki_;
  TestCert relay_cert_, peer_cert_;
  DnsResponder dns_;
  std::vector<std::unique_ptr<SmtpPeer>> peers_;
  uint16_t smtp_port_ = 0;
  std::unique_ptr<RelayProcess> relay_;
  uint16_t relay_port_ = 0;
};

// One relay writing to standard error, a file and a syslog socket in one
// format: a delivery (one recipient sent, one bounced), the inbound
// session with STARTTLS, a relay denial, a limit, an abandoned DATA, the
// stop. Every line kind the relay wrote parses; the three outputs carry
// the same lines; the Postfix fields and the session id are there.
class LogFormats : public LogWorld, public ::testing::WithParamInterface<std::string> {};

TEST_P(LogFormats, EveryLineKindReachesEveryOutputAndParses) {
  const std::string format = GetParam();
  dane_peer();
  DatagramSink syslog(dir_ + "/syslog.sock");
  const std::string file = dir_ + "/relay.log";
  start_relay(table(), {"--log", "stderr", "--log", "file:" + file, "--log", "syslog:" + dir_ + "/syslog.sock",
                        "--log-format", format, "--max-errors", "1"});
  SubmitResult r = submit({"bob@partner.example", "nobody@partner.example"});
  ASSERT_TRUE(r.accepted) << r.reply << r.error << log();
  ASSERT_TRUE(wait_log(LogEvent::queue, {{"result", "removed"}})) << log();
  // A relay denial, then too many errors (a limit that ends the session).
  smtp_dialogue(relay_port_, {"EHLO client.test", "MAIL FROM:<mallory@evil.example>", "RCPT TO:<x@elsewhere.example>",
                              "BOGUS", "BOGUS"});
  ASSERT_TRUE(wait_log(LogEvent::limit, {{"limit", "max_errors"}})) << log();
  // A client that leaves in the middle of DATA.
  smtp_dialogue(relay_port_, {"EHLO client.test", "MAIL FROM:<alice@acme.example>", "RCPT TO:<bob@partner.example>",
                              "DATA", "Subject: cut"},
                true);
  ASSERT_TRUE(wait_log(LogEvent::abort, {{"phase", "data"}})) << log();
  ASSERT_TRUE(wait_log(LogEvent::disconnect, {{"end", "eof"}})) << log();
  relay_->signal(SIGTERM);
  ASSERT_TRUE(relay_->wait_exit(kWait)) << log();

  // Every kind this run writes, each line parsed (text or JSON).
  const std::vector<std::string> lines = relay_->lines();
  std::set<std::string> kinds;
  for (const std::string& l : lines) {
    EXPECT_EQ(l.front() == '{', format == "json") << l;
    kinds.insert(std::string(relay::log_event_name(parsed(l).event)));
    if (format == "json") {
      // An independent JSON reader sees the same object.
      nlohmann::json j = nlohmann::json::parse(l);
      LogLine p = parsed(l);
      EXPECT_EQ(j.at("time").get<std::string>(), p.time);
      EXPECT_EQ(j.at("event").get<std::string>(), relay::log_event_name(p.event));
      EXPECT_EQ(j.at("fields").size(), p.fields.size()) << l;
      for (const auto& [k, v] : p.fields) EXPECT_EQ(j.at("fields").at(k).get<std::string>(), v) << l;
    }
  }
  for (const char* k : {"start", "table", "connect", "tls", "accept", "attempt", "queue", "bounce", "reject",
                        "limit", "abort", "disconnect", "stop"})
    EXPECT_TRUE(kinds.count(k)) << k << " missing\n" << log();

  // The file holds the same lines as standard error.
  EXPECT_EQ(file_lines(file), lines);
  // Syslog: one datagram a line, `<PRI>Mmm dd hh:mm:ss tlsp-relay[PID]: `,
  // facility mail, then the body (text) or the object (JSON).
  ASSERT_TRUE(syslog.wait_for(lines.size(), 5s));
  const std::vector<std::string> datagrams = syslog.datagrams();
  ASSERT_EQ(datagrams.size(), lines.size());
  const std::string tag = " tlsp-relay[" + std::to_string(relay_->pid()) + "]: ";
  for (size_t i = 0; i < lines.size(); ++i) {
    const LogLine want = parsed(lines[i]);
    const std::string& d = datagrams[i];
    const int priority = 8 * relay::kLogFacilityMail + relay::log_severity(want.event, want.fields);
    const std::string pri = "<" + std::to_string(priority) + ">";
    ASSERT_EQ(d.substr(0, pri.size()), pri) << d;
    const size_t at = d.find(tag);
    ASSERT_EQ(at, pri.size() + 15) << d;  // "Dec  7 12:34:56"
    const std::string message = d.substr(at + tag.size());
    std::optional<LogLine> got = format == "json" ? relay::parse_log_line(message) : relay::parse_log_body(message);
    ASSERT_TRUE(got) << d;
    EXPECT_EQ(got->event, want.event);
    EXPECT_EQ(got->fields, want.fields);
  }

  // Postfix's fields, one line per recipient.
  std::string line;
  const size_t from = 0;
  ASSERT_TRUE(wait_log(LogEvent::attempt, {{"to", "<bob@partner.example>"}, {"status", "sent"}}, &line, from)) << log();
  LogLine sent = parsed(line);
  EXPECT_EQ(sent.get("relay"), relay_of_peer());
  EXPECT_EQ(sent.get("dsn"), "2.0.0");
  EXPECT_TRUE(is_seconds(sent.get("delay"))) << sent.get("delay");
  const std::string delays = sent.get("delays");
  EXPECT_EQ(std::count(delays.begin(), delays.end(), '/'), 4) << delays;
  EXPECT_EQ(sent.get("tls"), "tls1.3");
  EXPECT_FALSE(sent.get("cipher").empty());
  EXPECT_FALSE(sent.get("group").empty());
  EXPECT_EQ(sent.get("trust"), "Verified");
  EXPECT_EQ(sent.get("auth"), "dane-ee");
  EXPECT_NE(sent.get("peer_subject").find("CN=mx1.partner.example"), std::string::npos) << sent.get("peer_subject");
  EXPECT_FALSE(sent.get("peer_issuer").empty());
  EXPECT_EQ(sent.get("peer_fingerprint"), fingerprint_of_pem(peer_cert_.cert_pem));
  ASSERT_TRUE(wait_log(LogEvent::attempt, {{"to", "<nobody@partner.example>"}, {"status", "bounced"}}, &line)) << log();
  EXPECT_EQ(parsed(line).get("dsn"), "5.1.1");
  EXPECT_NE(parsed(line).get("smtp").find("no such user"), std::string::npos) << line;

  // One outbound tls line per session, Postfix's sentence in `summary`.
  ASSERT_TRUE(wait_log(LogEvent::tls, {{"direction", "outbound"}, {"relay", relay_of_peer()}}, &line)) << log();
  LogLine tls = parsed(line);
  EXPECT_EQ(tls.get("queue_id"), sent.get("queue_id"));
  EXPECT_EQ(tls.get("trust"), "Verified");
  EXPECT_EQ(tls.get("peer_fingerprint"), sent.get("peer_fingerprint"));
  EXPECT_EQ(tls.get("summary"), "Verified TLS connection established to " + relay_of_peer() +
                                    ": TLSv1.3 with cipher " + sent.get("cipher") + " key-exchange " +
                                    sent.get("group"));
  // What an operator greps, in the file as written (text and JSON alike).
  const std::string raw = file_text(file);
  EXPECT_NE(raw.find("Verified TLS connection established to mx1.partner.example"), std::string::npos);
  if (format == "text") {
    bool found = false;
    for (const std::string& l : lines)
      found = found || (l.find(" to=<bob@partner.example> relay=" + relay_of_peer() + " delay=") != std::string::npos &&
                        l.find(" dsn=2.0.0 status=sent ") != std::string::npos);
    EXPECT_TRUE(found) << log();
  }

  // The inbound session: connect .. disconnect share its id with the
  // accept and the tls line between them; the denial and the limit share
  // the second session's.
  ASSERT_TRUE(wait_log(LogEvent::accept, {{"queue_id", sent.get("queue_id")}}, &line)) << log();
  const std::string session = parsed(line).get("session");
  ASSERT_FALSE(session.empty()) << line;
  EXPECT_TRUE(wait_log(LogEvent::connect, {{"session", session}, {"client", "127.0.0.1"}})) << log();
  EXPECT_TRUE(wait_log(LogEvent::tls, {{"session", session}, {"direction", "inbound"}, {"result", "ok"},
                                       {"trust", "Anonymous"}}))
      << log();
  EXPECT_TRUE(wait_log(LogEvent::disconnect, {{"session", session}, {"end", "quit"}, {"messages", "1"},
                                              {"recipients", "2"}, {"tls", "tls1.3"}}))
      << log();
  ASSERT_TRUE(wait_log(LogEvent::reject, {{"recipient", "x@elsewhere.example"}}, &line)) << log();
  const std::string second = parsed(line).get("session");
  EXPECT_NE(second, session);
  EXPECT_TRUE(wait_log(LogEvent::limit, {{"session", second}, {"limit", "max_errors"}})) << log();
  EXPECT_TRUE(wait_log(LogEvent::disconnect, {{"session", second}, {"end", "max_errors"}, {"rejected", "1"}})) << log();
  // Session ids are unique.
  std::set<std::string> ids;
  for (const LogLine& c : lines_of(LogEvent::connect)) EXPECT_TRUE(ids.insert(c.get("session")).second);
  EXPECT_EQ(ids.size(), lines_of(LogEvent::disconnect).size());
}

INSTANTIATE_TEST_SUITE_P(TextAndJson, LogFormats, ::testing::Values("text", "json"));

// `status`, as Postfix's, is on the line that settled the recipient for
// the run: a host that could not be reached before the one that took the
// message has a line without it; when every host failed, the last line
// says deferred, once.
TEST_F(LogWorld, StatusIsOnTheLineThatSettledTheRecipient) {
  SmtpPeerConfig c;
  c.address = "127.0.0.2";
  c.hostname = "mx2.two.example";
  TestCert cert = pki_->issue({"mx2.two.example"});
  c.cert_file = cert.cert_file;
  c.key_file = cert.key_file;
  peers_.push_back(std::make_unique<SmtpPeer>(c));
  smtp_port_ = peers_.back()->port();
  dns_.set({"two.example", dns_type::MX, {"10 mx1.two.example.", "20 mx2.two.example."}, true});
  dns_.set({"mx1.two.example", dns_type::A, {"127.0.0.9"}, true});  // nobody listens
  dns_.set({"mx2.two.example", dns_type::A, {"127.0.0.2"}, true});
  dns_.set({"down.example", dns_type::MX, {"10 mx1.down.example.", "20 mx2.down.example."}, true});
  dns_.set({"mx1.down.example", dns_type::A, {"127.0.0.9"}, true});
  dns_.set({"mx2.down.example", dns_type::A, {"127.0.0.10"}, true});
  start_relay(table(), {"--log", "stderr"});
  ASSERT_TRUE(submit({"carol@two.example"}).accepted) << log();
  ASSERT_TRUE(peers_.back()->wait_for_messages(1, kWait)) << log();
  ASSERT_TRUE(wait_log(LogEvent::queue, {{"result", "removed"}})) << log();
  ASSERT_TRUE(submit({"dave@down.example"}).accepted) << log();
  ASSERT_TRUE(wait_log(LogEvent::queue, {{"result", "deferred"}})) << log();

  auto attempts_for = [&](const std::string& to) {
    std::vector<LogLine> out;
    for (const LogLine& l : lines_of(LogEvent::attempt))
      if (l.get("to") == to) out.push_back(l);
    return out;
  };
  const std::vector<LogLine> carol = attempts_for("<carol@two.example>");
  ASSERT_EQ(carol.size(), 2u) << log();
  EXPECT_EQ(carol[0].get("mx"), "mx1.two.example");
  EXPECT_EQ(carol[0].find("status"), nullptr) << log();
  EXPECT_EQ(carol[0].get("dsn"), "4.4.1");
  EXPECT_EQ(carol[0].get("relay"), "none");
  EXPECT_EQ(carol[1].get("mx"), "mx2.two.example");
  EXPECT_EQ(carol[1].get("status"), "sent");
  EXPECT_EQ(carol[1].get("relay"), "mx2.two.example[127.0.0.2]:" + std::to_string(smtp_port_));
  EXPECT_EQ(carol[1].get("trust"), "Untrusted");  // opportunistic: nothing verified

  const std::vector<LogLine> dave = attempts_for("<dave@down.example>");
  ASSERT_EQ(dave.size(), 2u) << log();
  EXPECT_EQ(dave[0].get("mx"), "mx1.down.example");
  EXPECT_EQ(dave[0].find("status"), nullptr) << log();
  EXPECT_EQ(dave[1].get("mx"), "mx2.down.example");
  EXPECT_EQ(dave[1].get("status"), "deferred");
  EXPECT_EQ(dave[1].get("dsn"), "4.4.1");
}

// logrotate renames the file, then sends SIGHUP: the relay writes on in a
// new file of the old name; the renamed one keeps what came before.
TEST_F(LogWorld, SighupReopensARenamedLogFile) {
  const std::string file = dir_ + "/relay.log";
  start_relay(table(), {"--log", "stderr", "--log-file", file});
  ASSERT_TRUE(wait_log(LogEvent::table, {{"why", "start"}})) << log();
  fs::rename(file, file + ".1");
  relay_->signal(SIGHUP);
  ASSERT_TRUE(wait_log(LogEvent::table, {{"why", "SIGHUP"}})) << log();
  const std::vector<std::string> before = file_lines(file + ".1");
  const std::vector<std::string> after =
      wait_file_lines(file, [](const std::string& l) { return l.find("why=SIGHUP") != std::string::npos; });
  ASSERT_FALSE(before.empty());
  ASSERT_FALSE(after.empty());
  EXPECT_EQ(parsed(before.front()).event, LogEvent::table);
  // The start line is there (the TLSRPT thread's first lines, a daily run
  // caught up at start, may follow it).
  EXPECT_TRUE(std::any_of(before.begin(), before.end(),
                          [&](const std::string& l) { return parsed(l).event == LogEvent::start; }));
  // The new file's first line is the reload's table line; only the TLSRPT
  // thread (its own timing, slower under sanitizers) may write before it.
  auto first = std::find_if(after.begin(), after.end(),
                            [&](const std::string& l) { return parsed(l).event != LogEvent::tlsrpt; });
  ASSERT_NE(first, after.end());
  EXPECT_TRUE(parsed(*first).matches(LogEvent::table, {{"why", "SIGHUP"}})) << *first;
  for (const std::string& l : before) EXPECT_EQ(l.find("SIGHUP"), std::string::npos) << l;
  // Lines written later go to the new file too.
  ASSERT_TRUE(submit({"bob@partner.example"}, false).accepted) << log();
  ASSERT_TRUE(wait_log(LogEvent::accept, {})) << log();
  const std::vector<std::string> later =
      wait_file_lines(file, [](const std::string& l) { return parsed(l).event == LogEvent::accept; });
  EXPECT_TRUE(std::any_of(later.begin(), later.end(), [](const std::string& l) {
    return parsed(l).event == LogEvent::accept;
  }));
  EXPECT_EQ(file_lines(file + ".1"), before);
}

// The journal output, caught where libsystemd sends it: the relay runs in
// a private mount namespace whose /run/systemd/journal is this test's
// directory, with a datagram socket of the test at `socket`.
TEST_F(LogWorld, JournalEntriesCarryTheMessagePriorityAndEveryField) {
  if (::geteuid() != 0) GTEST_SKIP() << "a private mount namespace needs root (unshare --mount)";
  fs::create_directories(dir_ + "/journal");
  DatagramSink journal(dir_ + "/journal/socket");
  // dir_ is mkdtemp's: letters, digits, `/`, `-` only.
  const std::string script = "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal && mount --bind '" + dir_ +
                             "/journal' /run/systemd/journal && exec \"$0\" \"$@\"";
  start_relay(table(), {"--log", "stderr", "--log", "journal"},
              {"/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script});
  ASSERT_TRUE(submit({"bob@partner.example"}, false).accepted) << log();
  ASSERT_TRUE(wait_log(LogEvent::accept, {})) << log();
  relay_->signal(SIGTERM);
  ASSERT_TRUE(relay_->wait_exit(kWait)) << log();
  const std::vector<std::string> lines = relay_->lines();
  ASSERT_TRUE(journal.wait_for(lines.size(), 5s));
  const std::vector<std::string> entries = journal.datagrams();
  ASSERT_EQ(entries.size(), lines.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    const LogLine want = parsed(lines[i]);
    auto f = journal_fields(entries[i]);
    auto one = [&](const std::string& k) {
      EXPECT_EQ(f.count(k), 1u) << k << " in entry " << i;
      auto it = f.find(k);
      return it == f.end() ? std::string() : it->second;
    };
    EXPECT_EQ(one("SYSLOG_IDENTIFIER"), "tlsp-relay");
    EXPECT_EQ(one("SYSLOG_FACILITY"), "2");
    EXPECT_EQ(one("PRIORITY"), std::to_string(relay::log_severity(want.event, want.fields)));
    EXPECT_EQ(one("TLSP_EVENT"), relay::log_event_name(want.event));
    std::optional<LogLine> message = relay::parse_log_body(one("MESSAGE"));
    ASSERT_TRUE(message) << one("MESSAGE");
    EXPECT_EQ(message->fields, want.fields);
    size_t tlsp_fields = 0;
    for (const auto& [k, v] : want.fields) {
      std::string key = "TLSP_";
      for (char c : k) key.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
      EXPECT_EQ(one(key), v) << key;
    }
    for (const auto& [k, v] : f) tlsp_fields += k.starts_with("TLSP_") && k != "TLSP_EVENT";
    EXPECT_EQ(tlsp_fields, want.fields.size()) << entries[i];
  }
  EXPECT_TRUE(std::any_of(lines.begin(), lines.end(), [](const std::string& l) {
    return parsed(l).event == LogEvent::accept;
  }));
}

// `log = syslog` is /dev/log: the relay runs in a private mount namespace
// whose /dev is a tmpfs holding the host's null, zero, random, urandom and
// full, and a /dev/log that leads to this test's socket.
TEST_F(LogWorld, SyslogGoesToDevLog) {
  if (::geteuid() != 0) GTEST_SKIP() << "a private mount namespace needs root (unshare --mount)";
  fs::create_directories(dir_ + "/host-dev");
  DatagramSink syslog(dir_ + "/syslog.sock");
  // dir_ is mkdtemp's: letters, digits, `/`, `-` only.
  const std::string script = "mount --bind /dev '" + dir_ + "/host-dev' && mount -t tmpfs tmpfs /dev && " +
                             "for n in null zero random urandom full; do touch /dev/$n && mount --bind '" + dir_ +
                             "/host-dev/'$n /dev/$n || exit 1; done && ln -s '" + dir_ +
                             "/syslog.sock' /dev/log && exec \"$0\" \"$@\"";
  start_relay(table(), {"--log", "stderr", "--log", "syslog"},
              {"/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script});
  relay_->signal(SIGTERM);
  ASSERT_TRUE(relay_->wait_exit(kWait)) << log();
  const std::vector<std::string> lines = relay_->lines();
  ASSERT_TRUE(syslog.wait_for(lines.size(), 5s));
  const std::vector<std::string> datagrams = syslog.datagrams();
  ASSERT_EQ(datagrams.size(), lines.size()) << log();
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& d = datagrams[i];
    const size_t at = d.find("]: ");
    ASSERT_NE(at, std::string::npos) << d;
    std::optional<LogLine> got = relay::parse_log_body(d.substr(at + 3));
    ASSERT_TRUE(got) << d;
    EXPECT_EQ(got->fields, parsed(lines[i]).fields);
  }
}

// Outputs that cannot take a line (no syslog daemon listening, a full
// disk) cost lines, never mail: the message is delivered all the same.
TEST_F(LogWorld, AFailingOutputLosesNoMail) {
  SmtpPeer& mx = dane_peer();
  start_relay(table(), {"--log", "stderr", "--log", "syslog:" + dir_ + "/nobody-listens.sock", "--log",
                        "file:/dev/full"});
  ASSERT_TRUE(submit({"bob@partner.example"}).accepted) << log();
  ASSERT_TRUE(mx.wait_for_messages(1, kWait)) << log();
  EXPECT_TRUE(wait_log(LogEvent::attempt, {{"status", "sent"}})) << log();
  EXPECT_TRUE(wait_log(LogEvent::queue, {{"result", "removed"}})) << log();
  relay_->signal(SIGTERM);
  ASSERT_TRUE(relay_->wait_exit(kWait)) << log();
  EXPECT_TRUE(wait_log(LogEvent::stop, {{"result", "stopped"}})) << log();
}

// A `log` value the relay does not know, or an output given twice, is a
// configuration problem.
TEST_F(LogWorld, ABadLogSettingIsRefusedAtStart) {
  const std::string t = table();
  struct Case {
    std::string args, says;
  };
  for (const Case& c : {Case{"--log syslog:relative", "--log: `syslog:relative`: a syslog socket is an absolute path"},
                        Case{"--log mail.log", "--log: `mail.log`: not stderr, file:PATH"},
                        Case{"--log-format xml", "--log-format: `xml` is not text or json"},
                        Case{"--log stderr --log stderr", "--log: `stderr` is given twice"},
                        Case{"--log-file /tmp/x.log --log file:/tmp/x.log", "`file:/tmp/x.log` is given twice"}}) {
    testing_support::CommandRun r =
        testing_support::run_tlsp("relay --check-config --table " + t + " --spool " + dir_ + "/spool " + c.args);
    EXPECT_NE(r.code, 0) << c.args;
    EXPECT_NE(r.out.find(c.says), std::string::npos) << r.out;
  }
  testing_support::CommandRun ok = testing_support::run_tlsp("relay --check-config --table " + t + " --spool " +
                                                             dir_ + "/spool --log stderr --log journal --log syslog "
                                                             "--log file:" + dir_ + "/r.log --log-format json");
  EXPECT_EQ(ok.code, 0) << ok.out;
}

}  // namespace
