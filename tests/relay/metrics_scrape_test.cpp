// metrics_scrape_test.cpp — the relay's Prometheus metrics as an operator
// gets them: the real `tlsp relay` binary with `metrics-listen`, real SMTP
// peers on 127.0.0.x, a real DNS responder, and `curl` scraping it during
// a burst of messages and after it. Every scrape must pass `promtool check
// metrics` without a complaint; the values must be what happened (the
// deliveries counter is what the sinks received, the queue gauges what is
// left deferred, the table info the table loaded); the metric names and
// labels are those docs/metrics.md lists (a contract). Also: 404, 405 and
// an oversize request against the running relay, and a non-loopback
// metrics-listen refused by `tlsp relay --check-config`.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "command.h"
#include "test_support.h"
#include "tlsp/compiler.h"
#include "tlsp/decision_table.h"
#include "tlsp/relay_log.h"
#include "tlsp/sim/dns_responder.h"
#include "tlsp/sim/relay_process.h"
#include "tlsp/sim/smtp_peer.h"
#include "tlsp/sim/test_pki.h"
#include "tlsp/stream.h"

namespace {

using namespace tlsp;
using namespace tlsp::sim;
using namespace std::chrono_literals;
using testing_support::run_shell;
using testing_support::TempDir;

constexpr auto kWait = 20s;
constexpr size_t kBurst = 40;  // messages delivered to the sink
constexpr size_t kStuck = 3;   // messages to a host that refuses connections (deferred)

// One scrape, parsed: the samples by "name{labels}", the families by TYPE.
struct Scrape {
  int curl_code = -1;
  std::string text;
  std::map<std::string, std::string> samples;
  std::map<std::string, std::string> types;              // name -> type
  std::map<std::string, std::set<std::string>> labels;   // family -> label names seen (le left out)

  double value(const std::string& series) const {
    auto it = samples.find(series);
    return it == samples.end() ? -1 : std::stod(it->second);
  }
  // The sum over the series of `family` whose labels include every one of `want`.
  double sum(const std::string& family, const std::map<std::string, std::string>& want = {}) const {
    double total = 0;
    for (const auto& [series, v] : samples) {
      if (series != family && !series.starts_with(family + "{")) continue;
      bool all = true;
      for (const auto& [k, val] : want)
        if (series.find(k + "=\"" + val + "\"") == std::string::npos) all = false;
      if (all) total += std::stod(v);
    }
    return total;
  }
};

// The family a sample belongs to: its name, without a histogram's suffix
// when the family is a histogram.
std::string family_of(const std::string& name, const std::map<std::string, std::string>& types) {
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string s = suffix;
    if (name.ends_with(s)) {
      const std::string base = name.substr(0, name.size() - s.size());
      auto t = types.find(base);
      if (t != types.end() && t->second == "histogram") return base;
    }
  }
  return name;
}

Scrape parse_scrape(std::string text) {
  Scrape s;
  s.text = std::move(text);
  std::istringstream in(s.text);
  std::string line;
  const std::regex label(R"(([a-zA-Z_][a-zA-Z0-9_]*)=")");
  while (std::getline(in, line)) {
    if (line.starts_with("# TYPE ")) {
      std::istringstream w(line.substr(7));
      std::string name, type;
      w >> name >> type;
      s.types[name] = type;
      continue;
    }
    if (line.empty() || line[0] == '#') continue;
    const size_t sp = line.rfind(' ');
    const std::string series = line.substr(0, sp);
    s.samples[series] = line.substr(sp + 1);
    const size_t brace = series.find('{');
    const std::string name = series.substr(0, brace);
    std::set<std::string>& seen = s.labels[family_of(name, s.types)];
    if (brace == std::string::npos) continue;
    // Label values here are engine spellings and the table's name: no `="` inside them.
    const std::string body = series.substr(brace);
    for (auto it = std::sregex_iterator(body.begin(), body.end(), label); it != std::sregex_iterator(); ++it)
      if ((*it)[1] != "le") seen.insert((*it)[1]);
  }
  return s;
}

// The metrics docs/metrics.md lists: its table rows "| `name` | type | `label`, ... | ... |".
struct DocumentedMetric {
  std::string type;
  std::set<std::string> labels;
};
std::map<std::string, DocumentedMetric> documented_metrics() {
  std::ifstream in(std::string(TLSP_SOURCE_DIR) + "/docs/metrics.md");
  EXPECT_TRUE(in) << "docs/metrics.md";
  std::map<std::string, DocumentedMetric> out;
  const std::regex row(R"(^\| `([a-z_]+)` \| (counter|gauge|histogram) \| ([^|]*)\|)");
  const std::regex label("`([a-z_]+)`");
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (!std::regex_search(line, m, row)) continue;
    DocumentedMetric d;
    d.type = m[2];
    const std::string labels = m[3];
    for (auto it = std::sregex_iterator(labels.begin(), labels.end(), label); it != std::sregex_iterator(); ++it)
      d.labels.insert((*it)[1]);
    EXPECT_TRUE(out.emplace(m[1], d).second) << "listed twice: " << m[1];
  }
  return out;
}

class MetricsScrape : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_ = std::make_unique<TestPki>(dir_.file("pki"));
    relay_cert_ = pki_->issue({"relay.test"});
    dns_.start("127.0.0.1");
    // The sink: every outbound message to partner.example, over STARTTLS.
    SmtpPeerConfig sink;
    sink.address = "127.0.0.2";
    sink.hostname = "mx1.partner.example";
    TestCert c = pki_->issue({sink.hostname});
    sink.cert_file = c.cert_file;
    sink.key_file = c.key_file;
    sink_ = std::make_unique<SmtpPeer>(sink);
    // The next hop of acme.example (inbound), plaintext.
    SmtpPeerConfig hop;
    hop.address = "127.0.0.30";
    hop.hostname = "internal.acme.example";
    hop.offer_starttls = false;
    next_hop_ = std::make_unique<SmtpPeer>(hop);
    dns_.set({"partner.example", dns_type::MX, {"10 mx1.partner.example."}});
    dns_.set({"mx1.partner.example", dns_type::A, {"127.0.0.2"}});
    // Nothing listens on 127.0.0.3: every attempt fails to connect.
    dns_.set({"stuck.example", dns_type::MX, {"10 mx.stuck.example."}});
    dns_.set({"mx.stuck.example", dns_type::A, {"127.0.0.3"}});
    // A resolver failure: the MX lookup gets SERVFAIL.
    dns_.set_name("broken.example", DnsBehaviour::servfail);

    std::ofstream(dir_.file("policy.tlsp")) << "policy \"metrics-test\" version \"7\";\n"
                                               "default domain {\n"
                                               "  outbound { default peer { level opportunistic; } }\n"
                                               "  inbound  { default peer { level opportunistic; } }\n"
                                               "}\n"
                                               "domain \"acme.example\" {\n"
                                               "  outbound {\n"
                                               "    default peer { level opportunistic; }\n"
                                               "    peer \"sts.example\" { level mta-sts; }\n"
                                               "  }\n"
                                               "}\n"
                                               "domain \"strict.example\" {\n"
                                               "  inbound { default peer { level mandatory; } }\n"
                                               "}\n";
    CompileOptions o;
    o.inputs = {dir_.file("policy.tlsp")};
    o.threads = 1;
    CompileResult r = compile(o);
    ASSERT_TRUE(r.table) << render_diagnostics(r);
    table_ = dir_.file("table.tlspdt");
    write_table_file(table_, *r.table);
  }

  void TearDown() override {
    relay_.reset();
    sink_.reset();
    next_hop_.reset();
    dns_.stop();
  }

  void start_relay(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args{"relay",
                                  "--listen", "127.0.0.1:0",
                                  "--hostname", "relay.test",
                                  "--table", table_,
                                  "--spool", dir_.file("spool"),
                                  "--resolver", dns_.server(),
                                  "--smtp-port", std::to_string(sink_->port()),
                                  // strict.example first: a MAIL is checked against it before
                                  // acme.example, and that check alone decides nothing.
                                  "--next-hop", "strict.example=127.0.0.30:" + std::to_string(next_hop_->port()),
                                  "--next-hop", "acme.example=127.0.0.30:" + std::to_string(next_hop_->port()),
                                  "--tls-cert", relay_cert_.cert_file,
                                  "--tls-key", relay_cert_.key_file,
                                  "--ca-file", pki_->ca_file(),
                                  "--retry-schedule", "1h",
                                  "--connect-timeout", "3s",
                                  "--command-timeout", "5s",
                                  "--dns-timeout", "2s",
                                  "--delivery-workers", "2",
                                  "--metrics-listen", "127.0.0.1:0"};
    args.insert(args.end(), extra.begin(), extra.end());
    for (std::string& a : service_user_args(dir_.path())) args.push_back(std::move(a));
    relay_ = std::make_unique<RelayProcess>(TLSP_BINARY, args);
    relay_port_ = relay_->wait_ready(kWait);
    ASSERT_NE(relay_port_, 0) << log();
    std::string start;
    ASSERT_TRUE(relay_->wait_for([](const relay::LogLine& l) { return l.event == relay::LogEvent::start; }, kWait, 0,
                                 &start));
    metrics_ = relay::parse_log_line(start)->get("metrics");
    ASSERT_TRUE(metrics_.starts_with("127.0.0.1:")) << start;
  }

  SubmitResult submit(const std::string& from, const std::string& to, bool starttls = false) {
    SubmitOptions o;
    o.starttls = starttls;
    o.address = "127.0.0.1";
    o.port = relay_port_;
    o.ehlo_name = "client.test";
    o.message.mail_from = from;
    o.message.rcpts = {to};
    o.message.data = "Subject: burst\r\n\r\nhello\r\n";
    o.timeout = 10s;
    return submit_message(o);
  }

  // curl's view of one request: `curl -sS` with the extra arguments; the
  // response head (-D) and body kept apart.
  struct Curl {
    int code = -1;
    std::string head, body;
  };
  Curl curl(const std::string& extra, const std::string& path = "/metrics") {
    const std::string head = dir_.file("head.txt"), body = dir_.file("body.txt");
    Curl c;
    c.code = run_shell("curl -sS --max-time 10 -D '" + head + "' -o '" + body + "' " + extra + " 'http://" + metrics_ +
                       path + "' 2>&1")
                 .code;
    c.head = file_text(head);
    c.body = file_text(body);
    return c;
  }

  static std::string file_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  // One scrape, checked the way Prometheus would take it, and by promtool.
  Scrape scrape() {
    Curl c = curl("");
    EXPECT_EQ(c.code, 0) << c.head;
    EXPECT_TRUE(c.head.starts_with("HTTP/1.1 200 OK\r\n")) << c.head;
    EXPECT_NE(c.head.find("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), std::string::npos)
        << c.head;
    EXPECT_NE(c.head.find("\r\nConnection: close\r\n"), std::string::npos) << c.head;
    std::ofstream(dir_.file("scrape.txt"), std::ios::binary) << c.body;
    testing_support::CommandRun check = run_shell("promtool check metrics < '" + dir_.file("scrape.txt") + "' 2>&1");
    EXPECT_EQ(check.code, 0) << check.out << c.body;
    EXPECT_EQ(check.out, "") << c.body;
    ++scrapes_;
    Scrape s = parse_scrape(c.body);
    s.curl_code = c.code;
    return s;
  }

  // Scrapes until `pred` holds (the relay's threads record a fact just
  // after they log it), up to kWait.
  Scrape scrape_until(const std::function<bool(const Scrape&)>& pred) {
    const auto deadline = std::chrono::steady_clock::now() + kWait;
    Scrape s = scrape();
    while (!pred(s) && std::chrono::steady_clock::now() < deadline) s = scrape();
    return s;
  }

  std::string log() const {
    std::string s;
    if (relay_)
      for (const std::string& l : relay_->lines()) s += l + "\n";
    return s;
  }

  TempDir dir_{"tlsp-metrics-test"};
  std::unique_ptr<TestPki> pki_;
  TestCert relay_cert_;
  DnsResponder dns_;
  std::unique_ptr<SmtpPeer> sink_, next_hop_;
  std::string table_;
  std::unique_ptr<RelayProcess> relay_;
  uint16_t relay_port_ = 0;
  std::string metrics_;
  size_t scrapes_ = 0;
};

TEST_F(MetricsScrape, ABurstIsCountedAsDeliveredAndEveryScrapePassesPromtool) {
  start_relay();
  // The burst runs on its own thread; it waits halfway for a scrape to be
  // taken, so that one surely falls in the middle of it.
  std::mutex mu;
  std::condition_variable cv;
  bool halfway = false, scraped = false;
  std::atomic<size_t> accepted{0};
  std::thread burst([&] {
    for (size_t i = 0; i < kBurst; ++i) {
      if (i == kBurst / 2) {
        std::unique_lock lock(mu);
        halfway = true;
        cv.notify_all();
        cv.wait_for(lock, kWait, [&] { return scraped; });
      }
      if (submit("alice@acme.example", "bob" + std::to_string(i) + "@partner.example").accepted) ++accepted;
    }
    for (size_t i = 0; i < kStuck; ++i)
      if (submit("alice@acme.example", "carl" + std::to_string(i) + "@stuck.example").accepted) ++accepted;
    if (submit("alice@acme.example", "dora@broken.example").accepted) ++accepted;
    if (submit("erin@partner.example", "frank@acme.example").accepted) ++accepted;  // inbound, to the next hop
  });
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, kWait, [&] { return halfway; }));
  }
  Scrape during = scrape();
  {
    std::lock_guard lock(mu);
    scraped = true;
  }
  cv.notify_all();
  EXPECT_LE(during.sum("tlsp_delivery_attempts_total", {{"action", "sent"}}), kBurst / 2);
  EXPECT_LE(during.value("tlsp_queue_entries"), kBurst / 2);
  // More scrapes while the rest of the burst goes on.
  while (accepted < kBurst + kStuck + 2 && scrapes_ < 50) {
    Scrape s = scrape();
    EXPECT_LE(s.sum("tlsp_delivery_attempts_total", {{"action", "sent"}}), kBurst + 1);
  }
  burst.join();
  ASSERT_EQ(accepted, kBurst + kStuck + 2) << log();
  ASSERT_TRUE(sink_->wait_for_messages(kBurst, kWait)) << log();
  ASSERT_TRUE(next_hop_->wait_for_messages(1, kWait)) << log();

  // After the burst: the counters are what happened.
  Scrape after = scrape_until([](const Scrape& s) {
    return s.sum("tlsp_delivery_attempts_total", {{"action", "sent"}}) == kBurst + 1 &&
           s.sum("tlsp_delivery_attempts_total", {{"reason", "connection-failed"}}) == kStuck &&
           s.sum("tlsp_delivery_attempts_total", {{"action", "defer"}}) == 1 &&
           s.sum("tlsp_inbound_sessions_total") == kBurst + kStuck + 2 &&
           s.value("tlsp_queue_entries") == kStuck + 1 && s.value("tlsp_queue_deliveries_in_flight") == 0;
  });
  EXPECT_EQ(sink_->messages().size(), kBurst);
  EXPECT_EQ(after.value("tlsp_delivery_attempts_total{direction=\"outbound\",level=\"opportunistic\","
                        "applied=\"opportunistic\",outcome=\"deliver\",channel=\"encrypted\",tls=\"tls1.3\","
                        "reason=\"ok\",action=\"sent\"}"),
            kBurst)
      << after.text;
  EXPECT_EQ(after.value("tlsp_delivery_attempts_total{direction=\"inbound\",level=\"opportunistic\","
                        "applied=\"opportunistic\",outcome=\"deliver\",channel=\"plaintext\",tls=\"none\","
                        "reason=\"ok\",action=\"sent\"}"),
            1)
      << after.text;
  EXPECT_EQ(after.value("tlsp_delivery_attempts_total{direction=\"outbound\",level=\"opportunistic\","
                        "outcome=\"refuse\",channel=\"none\",tls=\"none\",reason=\"connection-failed\","
                        "action=\"next-host\"}"),
            kStuck)
      << after.text;
  EXPECT_EQ(after.sum("tlsp_delivery_attempts_total", {{"reason", "mx-lookup-failed"}, {"action", "defer"}}), 1)
      << after.text;
  EXPECT_EQ(after.value("tlsp_dns_errors_total{query=\"mx\",status=\"servfail\"}"), 1) << after.text;
  // Every delivery run (one per queue entry) is in the run histogram, and
  // the delivered ones in the delay histogram.
  EXPECT_EQ(after.value("tlsp_delivery_run_duration_seconds_count{direction=\"outbound\"}"), kBurst + kStuck + 1);
  EXPECT_EQ(after.value("tlsp_delivery_run_duration_seconds_count{direction=\"inbound\"}"), 1);
  EXPECT_EQ(after.value("tlsp_delivery_delay_seconds_count{direction=\"outbound\"}"), kBurst);
  EXPECT_EQ(after.value("tlsp_delivery_run_duration_seconds_bucket{direction=\"outbound\",le=\"+Inf\"}"),
            kBurst + kStuck + 1);
  // Sessions: the submitters sent outbound (no inbound rule consulted),
  // the inbound one was accepted under the opportunistic default.
  EXPECT_EQ(after.value("tlsp_inbound_sessions_total{outcome=\"none\",tls=\"none\",end=\"quit\"}"), kBurst + kStuck + 1)
      << after.text;
  EXPECT_EQ(after.value("tlsp_inbound_sessions_total{outcome=\"deliver\",tls=\"none\",end=\"quit\"}"), 1)
      << after.text;
  // The queue: what stays deferred, one recipient each.
  EXPECT_EQ(after.value("tlsp_queue_entries"), kStuck + 1);
  EXPECT_EQ(after.value("tlsp_queue_recipients"), kStuck + 1);
  const double age = after.value("tlsp_queue_oldest_entry_age_seconds");
  EXPECT_GE(age, 0);
  EXPECT_LT(age, 120);
  // The table.
  EXPECT_EQ(after.value("tlsp_table_info{policy=\"metrics-test\",version=\"7\"}"), 1) << after.text;
  EXPECT_EQ(after.value("tlsp_table_loads_total{result=\"loaded\"}"), 1);
  EXPECT_EQ(after.value("tlsp_table_loads_total{result=\"refused\"}"), 0);
  const double now = static_cast<double>(std::time(nullptr));
  EXPECT_GT(after.value("tlsp_table_loaded_timestamp_seconds"), now - 120);
  EXPECT_LE(after.value("tlsp_table_loaded_timestamp_seconds"), now + 1);
  EXPECT_LE(after.value("process_start_time_seconds"), after.value("tlsp_table_loaded_timestamp_seconds"));
  EXPECT_GT(after.value("process_start_time_seconds"), now - 120);
  EXPECT_EQ(after.sum("tlsp_build_info", {{"version", TLSP_VERSION}}), 1) << after.text;
  EXPECT_EQ(after.value("tlsp_metrics_series_dropped_total"), 0);

  // The contract: exactly the metrics docs/metrics.md lists, of its types,
  // with its labels.
  const auto docs = documented_metrics();
  ASSERT_FALSE(docs.empty());
  std::set<std::string> listed, served;
  for (const auto& [name, d] : docs) listed.insert(name);
  for (const auto& [name, type] : after.types) served.insert(name);
  EXPECT_EQ(listed, served);
  for (const auto& [name, d] : docs) {
    auto t = after.types.find(name);
    if (t == after.types.end()) continue;
    EXPECT_EQ(t->second, d.type) << name;
    EXPECT_EQ(after.labels[name], d.labels) << name;
  }
}

// A raw SMTP connection: the greeting read, then `send` written; the
// replies until the server closes (or 10 s pass).
std::vector<std::string> raw_session(uint16_t port, const std::string& send, bool wait_for_close) {
  std::vector<std::string> replies;
  std::string error;
  const int fd = connect_tcp("127.0.0.1", port, 5000ms, error);
  EXPECT_GE(fd, 0) << error;
  if (fd < 0) return replies;
  Stream s(fd);
  s.set_timeout(10s);
  std::string line;
  if (s.read_line(line, 4096) == IoStatus::ok) replies.push_back(line);
  if (!send.empty()) s.write_all(send);
  if (!send.empty() || wait_for_close)
    while (s.read_line(line, 4096) == IoStatus::ok) replies.push_back(line);
  return replies;
}

TEST_F(MetricsScrape, SessionsAreCountedByVerdictTlsVersionAndHowTheyEnded) {
  start_relay({"--idle-timeout", "1s"});
  // Refused at RCPT: strict.example wants STARTTLS.
  SubmitResult refused = submit("erin@partner.example", "gus@strict.example");
  EXPECT_FALSE(refused.accepted);
  EXPECT_EQ(refused.rcpt_codes, std::vector<int>{530}) << refused.reply;
  // Accepted over STARTTLS.
  EXPECT_TRUE(submit("erin@partner.example", "frank@acme.example", /*starttls=*/true).accepted) << log();
  // A bare LF ends the session (a limit); a client that leaves; one that
  // says nothing until the idle timeout.
  auto bare = raw_session(relay_port_, "EHLO client.test\n", true);
  ASSERT_EQ(bare.size(), 2u);
  EXPECT_TRUE(bare[1].starts_with("521 5.5.2")) << bare[1];
  EXPECT_EQ(raw_session(relay_port_, "", false).size(), 1u);
  auto idle = raw_session(relay_port_, "", true);
  ASSERT_EQ(idle.size(), 2u);
  EXPECT_TRUE(idle[1].starts_with("421 4.4.2")) << idle[1];

  Scrape s = scrape_until([](const Scrape& s) { return s.sum("tlsp_inbound_sessions_total") == 5; });
  const std::string m = "tlsp_inbound_sessions_total";
  EXPECT_EQ(s.value(m + "{outcome=\"refuse\",tls=\"none\",end=\"quit\"}"), 1) << s.text;
  EXPECT_EQ(s.value(m + "{outcome=\"deliver\",tls=\"tls1.3\",end=\"quit\"}"), 1) << s.text;
  EXPECT_EQ(s.value(m + "{outcome=\"none\",tls=\"none\",end=\"limit\"}"), 1) << s.text;
  EXPECT_EQ(s.value(m + "{outcome=\"none\",tls=\"none\",end=\"disconnect\"}"), 1) << s.text;
  EXPECT_EQ(s.value(m + "{outcome=\"none\",tls=\"none\",end=\"timeout\"}"), 1) << s.text;
}

TEST_F(MetricsScrape, AConnectionRefusedByAnAdmissionLimitIsCountedNotASession) {
  start_relay({"--max-connections-per-client", "1"});
  std::string error;
  const int held = connect_tcp("127.0.0.1", relay_port_, 5000ms, error);
  ASSERT_GE(held, 0) << error;
  Stream first(held);
  first.set_timeout(10s);
  std::string line;
  ASSERT_EQ(first.read_line(line, 4096), IoStatus::ok);
  ASSERT_TRUE(line.starts_with("220 ")) << line;
  auto second = raw_session(relay_port_, "", true);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_TRUE(second[0].starts_with("421 4.7.0")) << second[0];
  Scrape s = scrape_until([](const Scrape& s) {
    return s.value("tlsp_smtp_connections_refused_total{limit=\"max_connections_per_client\"}") == 1;
  });
  EXPECT_EQ(s.value("tlsp_smtp_connections_refused_total{limit=\"max_connections_per_client\"}"), 1) << s.text;
  EXPECT_EQ(s.sum("tlsp_inbound_sessions_total"), 0) << s.text;  // the held one has not ended
}

TEST_F(MetricsScrape, DnsAndMtaStsFailuresAreCountedByKind) {
  // sts.example publishes an MTA-STS TXT record, but its policy host has
  // no address (a failed fetch, `timeout`), and the TLSA lookup of its MX
  // host gets SERVFAIL; noaddr.example's MX host's address lookup too.
  dns_.set({"sts.example", dns_type::MX, {"10 mx.sts.example."}});
  dns_.set({"mx.sts.example", dns_type::A, {"127.0.0.2"}});
  dns_.set({"_mta-sts.sts.example", dns_type::TXT, {"\"v=STSv1; id=20261207\""}});
  dns_.set_name("_25._tcp.mx.sts.example", DnsBehaviour::servfail);
  dns_.set({"noaddr.example", dns_type::MX, {"10 mx.noaddr.example."}});
  dns_.set_name("mx.noaddr.example", DnsBehaviour::servfail);
  start_relay();
  ASSERT_TRUE(submit("alice@acme.example", "hal@sts.example").accepted) << log();
  ASSERT_TRUE(submit("alice@acme.example", "ida@noaddr.example").accepted) << log();
  Scrape s = scrape_until([](const Scrape& s) {
    return s.value("tlsp_mta_sts_fetch_errors_total{kind=\"timeout\"}") == 1 &&
           s.value("tlsp_dns_errors_total{query=\"tlsa\",status=\"servfail\"}") == 1 &&
           s.value("tlsp_dns_errors_total{query=\"address\",status=\"servfail\"}") == 1;
  });
  EXPECT_EQ(s.value("tlsp_mta_sts_fetch_errors_total{kind=\"timeout\"}"), 1) << s.text << log();
  EXPECT_EQ(s.value("tlsp_dns_errors_total{query=\"tlsa\",status=\"servfail\"}"), 1) << s.text << log();
  EXPECT_EQ(s.value("tlsp_dns_errors_total{query=\"address\",status=\"servfail\"}"), 1) << s.text << log();
  EXPECT_EQ(s.sum("tlsp_dns_errors_total", {{"query", "mx"}}), 0) << s.text;
  EXPECT_EQ(s.sum("tlsp_mta_sts_fetch_errors_total"), 1) << s.text;
}

TEST_F(MetricsScrape, ARefusedTableIsCountedAndTheTableInForceStaysTheOneShown) {
  start_relay();
  // The file-change check (every 2 s) loads it once and refuses it; a
  // refused file is not read again until it changes.
  std::ofstream(table_, std::ios::binary | std::ios::trunc) << "not a decision table";
  ASSERT_TRUE(relay_->wait_for(
      [](const relay::LogLine& l) { return l.matches(relay::LogEvent::table, {{"result", "refused"}}); }, kWait))
      << log();
  Scrape s = scrape_until([](const Scrape& s) { return s.value("tlsp_table_loads_total{result=\"refused\"}") == 1; });
  EXPECT_EQ(s.value("tlsp_table_loads_total{result=\"refused\"}"), 1) << s.text;
  EXPECT_EQ(s.value("tlsp_table_loads_total{result=\"loaded\"}"), 1);
  EXPECT_EQ(s.value("tlsp_table_info{policy=\"metrics-test\",version=\"7\"}"), 1) << s.text;
}

TEST_F(MetricsScrape, TheEndpointRefusesWhatIsNotAScrape) {
  start_relay();
  Curl post = curl("-X POST");
  EXPECT_TRUE(post.head.starts_with("HTTP/1.1 405 Method Not Allowed\r\n")) << post.head;
  EXPECT_NE(post.head.find("\r\nAllow: GET, HEAD\r\n"), std::string::npos) << post.head;
  Curl other = curl("", "/");
  EXPECT_TRUE(other.head.starts_with("HTTP/1.1 404 Not Found\r\n")) << other.head;
  Curl big = curl("-H 'X-Big: " + std::string(9000, 'b') + "'");
  EXPECT_TRUE(big.head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n")) << big.head;
  Curl head = curl("-I");
  EXPECT_TRUE(head.head.starts_with("HTTP/1.1 200 OK\r\n")) << head.head;
  EXPECT_EQ(head.body, head.head);  // curl -I writes the head as its output: there was no body
  // Still serving after all that.
  EXPECT_GT(scrape().value("tlsp_table_loads_total{result=\"loaded\"}"), 0);
}

TEST_F(MetricsScrape, ANonLoopbackMetricsListenIsAConfigurationProblem) {
  auto r = testing_support::run_tlsp("relay --check-config --table '" + table_ + "' --spool '" + dir_.file("spool") +
                                     "' --metrics-listen 0.0.0.0:9100");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("metrics-listen"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("`0.0.0.0` is not a loopback address (127.0.0.0/8 or ::1)"), std::string::npos) << r.out;
  auto ok = testing_support::run_tlsp("relay --check-config --table '" + table_ + "' --spool '" + dir_.file("spool") +
                                      "' --metrics-listen '[::1]:9100'");
  EXPECT_EQ(ok.code, 0) << ok.out;
}

}  // namespace
