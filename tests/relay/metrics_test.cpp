// metrics_test.cpp — the relay's metrics without the relay around them:
// the registry and its text format (runtime/relay/src/metrics.h), checked
// by promtool as a scraper would; the HTTP request head parser, case by
// case; the metrics server on a real loopback socket (oversize heads,
// 404/405, too many connections, a head that never ends); and the
// metrics-listen rule of relay_config_problems(). metrics_scrape_test.cpp
// scrapes a running relay.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "command.h"
#include "metrics.h"
#include "metrics_server.h"
#include "test_support.h"
#include "tlsp/relay.h"
#include "tlsp/relay_log.h"
#include "tlsp/stream.h"

namespace {

using namespace tlsp;
using namespace tlsp::relay;
using namespace std::chrono_literals;
using testing_support::run_shell;
using testing_support::TempDir;

// promtool's verdict on a scrape: its output (empty when clean) and code.
testing_support::CommandRun promtool_check(const TempDir& dir, const std::string& text) {
  const std::string path = dir.write("scrape.txt", text);
  return run_shell("promtool check metrics < '" + path + "' 2>&1");
}

// The sample lines of a scrape: "name{labels}" -> value.
std::map<std::string, std::string> samples(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t sp = line.rfind(' ');
    out[line.substr(0, sp)] = line.substr(sp + 1);
  }
  return out;
}

QueueGauges no_queue() { return {}; }

TEST(MetricsRegistry, AFreshRegistryPassesPromtoolAndStartsKnownSeriesAtZero) {
  TempDir dir;
  Metrics m;
  const std::string text = m.render(no_queue());
  auto check = promtool_check(dir, text);
  EXPECT_EQ(check.code, 0) << check.out << text;
  EXPECT_EQ(check.out, "") << text;
  auto s = samples(text);
  EXPECT_EQ(s["tlsp_table_loads_total{result=\"refused\"}"], "0");
  EXPECT_EQ(s["tlsp_dns_errors_total{query=\"tlsa\",status=\"servfail\"}"], "0");
  EXPECT_EQ(s["tlsp_mta_sts_fetch_errors_total{kind=\"bad-cert\"}"], "0");
  EXPECT_EQ(s["tlsp_delivery_run_duration_seconds_count{direction=\"inbound\"}"], "0");
  EXPECT_EQ(s["tlsp_queue_entries"], "0");
  EXPECT_EQ(s["tlsp_queue_oldest_entry_age_seconds"], "0");
  EXPECT_EQ(s["tlsp_metrics_series_dropped_total"], "0");
  bool build_info = false;
  for (auto& [k, v] : s)
    if (k.starts_with("tlsp_build_info{version=\"" TLSP_VERSION "\",openssl=\"3.") && v == "1") build_info = true;
  EXPECT_TRUE(build_info) << text;
}

TEST(MetricsRegistry, AttemptsAreCountedByTheirLabelsAndAMissingAppliedLevelIsLeftOut) {
  Metrics m;
  for (int i = 0; i < 3; ++i)
    m.delivery_attempt(Direction::outbound, Level::dane_only, Level::dane_only, OutcomeKind::deliver,
                       Channel::authenticated, TlsVersion::tls1_3, "ok", "sent");
  m.delivery_attempt(Direction::outbound, Level::mandatory, std::nullopt, OutcomeKind::refuse, Channel::none,
                     TlsVersion::none, "connection-failed", "next-host");
  auto s = samples(m.render(no_queue()));
  EXPECT_EQ(s["tlsp_delivery_attempts_total{direction=\"outbound\",level=\"dane-only\",applied=\"dane-only\","
              "outcome=\"deliver\",channel=\"authenticated\",tls=\"tls1.3\",reason=\"ok\",action=\"sent\"}"],
            "3");
  EXPECT_EQ(s["tlsp_delivery_attempts_total{direction=\"outbound\",level=\"mandatory\",outcome=\"refuse\","
              "channel=\"none\",tls=\"none\",reason=\"connection-failed\",action=\"next-host\"}"],
            "1");
}

TEST(MetricsRegistry, HistogramBucketsAreCumulativeWithSumAndCount) {
  Metrics m;
  const int64_t now = std::time(nullptr);
  m.delivery_run(Direction::outbound, 3ms, true, now);
  m.delivery_run(Direction::outbound, 200ms, false, now);
  m.delivery_run(Direction::outbound, 700s, true, now - 7200);
  auto s = samples(m.render(no_queue()));
  const std::string run = "tlsp_delivery_run_duration_seconds";
  EXPECT_EQ(s[run + "_bucket{direction=\"outbound\",le=\"0.005\"}"], "1");
  EXPECT_EQ(s[run + "_bucket{direction=\"outbound\",le=\"0.1\"}"], "1");
  EXPECT_EQ(s[run + "_bucket{direction=\"outbound\",le=\"0.25\"}"], "2");
  EXPECT_EQ(s[run + "_bucket{direction=\"outbound\",le=\"600\"}"], "2");
  EXPECT_EQ(s[run + "_bucket{direction=\"outbound\",le=\"+Inf\"}"], "3");
  EXPECT_EQ(s[run + "_count{direction=\"outbound\"}"], "3");
  EXPECT_NEAR(std::stod(s[run + "_sum{direction=\"outbound\"}"]), 700.203, 1e-9);
  // Only the two runs that delivered count for the delay since arrival.
  const std::string delay = "tlsp_delivery_delay_seconds";
  EXPECT_EQ(s[delay + "_count{direction=\"outbound\"}"], "2");
  EXPECT_EQ(s[delay + "_bucket{direction=\"outbound\",le=\"5\"}"], "1");
  EXPECT_EQ(s[delay + "_bucket{direction=\"outbound\",le=\"3600\"}"], "1");
  EXPECT_EQ(s[delay + "_bucket{direction=\"outbound\",le=\"14400\"}"], "2");
  EXPECT_EQ(s[delay + "_count{direction=\"inbound\"}"], "0");
}

TEST(MetricsRegistry, OnlyFailedLookupsAndFetchesAreErrors) {
  Metrics m;
  for (DnsStatus st : {DnsStatus::secure, DnsStatus::insecure, DnsStatus::nxdomain, DnsStatus::bogus,
                       DnsStatus::servfail, DnsStatus::timeout, DnsStatus::timeout})
    m.dns_lookup(DnsQuery::address, st);
  m.sts_fetch(StsFetch::ok);
  m.sts_fetch(StsFetch::invalid);
  auto s = samples(m.render(no_queue()));
  EXPECT_EQ(s["tlsp_dns_errors_total{query=\"address\",status=\"bogus\"}"], "1");
  EXPECT_EQ(s["tlsp_dns_errors_total{query=\"address\",status=\"servfail\"}"], "1");
  EXPECT_EQ(s["tlsp_dns_errors_total{query=\"address\",status=\"timeout\"}"], "2");
  EXPECT_EQ(s.count("tlsp_dns_errors_total{query=\"address\",status=\"nxdomain\"}"), 0u);
  EXPECT_EQ(s["tlsp_mta_sts_fetch_errors_total{kind=\"invalid\"}"], "1");
  EXPECT_EQ(s.count("tlsp_mta_sts_fetch_errors_total{kind=\"ok\"}"), 0u);
}

TEST(MetricsRegistry, SessionsAndQueueGauges) {
  Metrics m;
  m.session_end(std::nullopt, TlsVersion::none, SessionEnd::quit);
  m.session_end(OutcomeKind::refuse, TlsVersion::tls1_2, SessionEnd::timeout);
  m.session_end(OutcomeKind::refuse, TlsVersion::tls1_2, SessionEnd::timeout);
  QueueGauges q;
  q.entries = 4;
  q.recipients = 9;
  q.in_flight = 1;
  q.oldest_arrival = std::time(nullptr) - 100;
  m.connection_refused("max_connections_per_client");
  auto s = samples(m.render(q));
  EXPECT_EQ(s["tlsp_smtp_connections_refused_total{limit=\"max_connections_per_client\"}"], "1");
  EXPECT_EQ(s["tlsp_smtp_connections_refused_total{limit=\"max_connections\"}"], "0");
  EXPECT_EQ(s["tlsp_inbound_sessions_total{outcome=\"none\",tls=\"none\",end=\"quit\"}"], "1");
  EXPECT_EQ(s["tlsp_inbound_sessions_total{outcome=\"refuse\",tls=\"tls1.2\",end=\"timeout\"}"], "2");
  EXPECT_EQ(s["tlsp_queue_entries"], "4");
  EXPECT_EQ(s["tlsp_queue_recipients"], "9");
  EXPECT_EQ(s["tlsp_queue_deliveries_in_flight"], "1");
  const double age = std::stod(s["tlsp_queue_oldest_entry_age_seconds"]);
  EXPECT_GE(age, 100);
  EXPECT_LT(age, 110);
}

TEST(MetricsRegistry, TableLabelsAreEscapedAndInvalidUtf8IsReplaced) {
  TempDir dir;
  Metrics m;
  m.table_loaded("acme \"gw\"\\\nx", "v\xff\xc3\xa9",
                 std::chrono::system_clock::time_point(std::chrono::seconds(1700000000)));
  m.table_refused();
  const std::string text = m.render(no_queue());
  auto s = samples(text);
  EXPECT_EQ(s["tlsp_table_info{policy=\"acme \\\"gw\\\"\\\\\\nx\",version=\"v\xef\xbf\xbd\xc3\xa9\"}"], "1") << text;
  EXPECT_EQ(s["tlsp_table_loaded_timestamp_seconds"], "1700000000");
  EXPECT_EQ(s["tlsp_table_loads_total{result=\"loaded\"}"], "1");
  EXPECT_EQ(s["tlsp_table_loads_total{result=\"refused\"}"], "1");
  auto check = promtool_check(dir, text);
  EXPECT_EQ(check.code, 0) << check.out;
}

TEST(MetricsRegistry, AMetricKeepsAtMostItsBoundOfSeriesAndSaysSoOnce) {
  TempDir dir;
  const std::string log_path = dir.file("relay.log");
  {
    RelayLog log(log_path);
    Metrics m;
    m.set_log(&log);
    for (size_t i = 0; i < kMaxSeriesPerMetric + 5; ++i)
      m.delivery_attempt(Direction::outbound, Level::opportunistic, Level::opportunistic, OutcomeKind::deliver,
                         Channel::plaintext, TlsVersion::none, "ok", "action-" + std::to_string(i));
    // An existing series still counts.
    m.delivery_attempt(Direction::outbound, Level::opportunistic, Level::opportunistic, OutcomeKind::deliver,
                       Channel::plaintext, TlsVersion::none, "ok", "action-0");
    const std::string text = m.render(no_queue());
    auto s = samples(text);
    EXPECT_EQ(s["tlsp_metrics_series_dropped_total"], "5");
    size_t series = 0;
    for (auto& [k, v] : s) series += k.starts_with("tlsp_delivery_attempts_total{");
    EXPECT_EQ(series, kMaxSeriesPerMetric);
    EXPECT_EQ(s["tlsp_delivery_attempts_total{direction=\"outbound\",level=\"opportunistic\",applied=\"opportunistic\","
                "outcome=\"deliver\",channel=\"plaintext\",tls=\"none\",reason=\"ok\",action=\"action-0\"}"],
              "2");
  }
  std::ifstream in(log_path);
  std::string line;
  size_t limits = 0;
  while (std::getline(in, line)) {
    auto l = parse_log_line(line);
    ASSERT_TRUE(l) << line;
    if (l->matches(LogEvent::limit, {{"limit", "max_metric_series"}, {"max", std::to_string(kMaxSeriesPerMetric)}}))
      ++limits;
  }
  EXPECT_EQ(limits, 1u);
}

TEST(MetricsRegistry, ConcurrentFeedsAreAllCounted) {
  Metrics m;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&m] {
      for (int i = 0; i < 5000; ++i) m.session_end(std::nullopt, TlsVersion::tls1_3, SessionEnd::quit);
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(samples(m.render(no_queue()))["tlsp_inbound_sessions_total{outcome=\"none\",tls=\"tls1.3\",end=\"quit\"}"],
            "20000");
}

// ------------------------------------------------------- the HTTP parser

struct HeadCase {
  std::string bytes;
  HttpRequestHead::State state;
  int status = 0;  // refused
};

TEST(MetricsHttpParser, EveryKindOfHead) {
  using S = HttpRequestHead::State;
  const std::string big(kMaxHttpRequestHeadBytes, 'a');
  const std::vector<HeadCase> cases = {
      {"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", S::complete},
      {"GET /metrics?name[]=x HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n", S::complete},
      {"HEAD /metrics HTTP/1.0\r\n\r\n", S::complete},
      {"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", S::complete},
      {"GET /metrics HTTP/1.1\r\nHost:\tx \r\nX-Empty:\r\n\r\n", S::complete},
      {"GET /metrics HTTP/1.1\r\nHost: x\r\n", S::incomplete},
      {"GET /metr", S::incomplete},
      {"", S::incomplete},
      {"GET /metrics HTTP/1.1\nHost: x\n\n", S::refused, 400},            // bare LF
      {"GET /metrics HTTP/1.1\r\nHost: x\n", S::refused, 400},            // found before the end
      {"GET /metrics HTTP/1.1\r\n\r\n", S::refused, 400},                 // no Host in HTTP/1.1
      {"GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", S::refused, 400},
      {"GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n", S::refused, 505},
      {"GET /metrics HTTP/1.10\r\nHost: x\r\n\r\n", S::refused, 400},
      {"GET /metrics http/1.1\r\nHost: x\r\n\r\n", S::refused, 400},
      {"GET  /metrics HTTP/1.1\r\nHost: x\r\n\r\n", S::refused, 400},
      {"GET /metrics HTTP/1.1 \r\nHost: x\r\n\r\n", S::refused, 400},
      {"GET http://x/metrics HTTP/1.1\r\nHost: x\r\n\r\n", S::refused, 400},  // absolute form
      {"G(T /metrics HTTP/1.1\r\nHost: x\r\n\r\n", S::refused, 400},
      {"GET /metrics HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", S::refused, 400},
      {"GET /metrics HTTP/1.1\r\nHost x\r\n\r\n", S::refused, 400},
      {"GET /metrics HTTP/1.1\r\nHo st: x\r\n\r\n", S::refused, 400},
      {std::string("GET /metrics HTTP/1.1\r\nHost: x\x01y\r\n\r\n"), S::refused, 400},
      {"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", S::refused, 400},
      {"GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", S::refused, 400},
      {"GET /" + big + " HTTP/1.1\r\n", S::refused, 431},
      {"GET /metrics HTTP/1.1\r\nHost: x\r\nX: " + big, S::refused, 431},
  };
  for (const HeadCase& c : cases) {
    const HttpRequestHead h = parse_http_request_head(c.bytes);
    EXPECT_EQ(h.state, c.state) << c.bytes.substr(0, 80) << " -> " << h.problem;
    if (c.state == S::refused) {
      EXPECT_EQ(h.status, c.status) << c.bytes.substr(0, 80) << " -> " << h.problem;
      EXPECT_FALSE(h.problem.empty());
    }
  }
}

TEST(MetricsHttpParser, AHeadOfExactlyTheBoundIsReadAndItsPathAndLengthAreKnown) {
  std::string head = "GET /metrics?a=b HTTP/1.1\r\nHost: x\r\nX-Pad: ";
  head += std::string(kMaxHttpRequestHeadBytes - head.size() - 4, 'p') + "\r\n\r\n";
  ASSERT_EQ(head.size(), kMaxHttpRequestHeadBytes);
  const HttpRequestHead h = parse_http_request_head(head + "trailing bytes are not the head's");
  ASSERT_EQ(h.state, HttpRequestHead::State::complete) << h.problem;
  EXPECT_EQ(h.method, "GET");
  EXPECT_EQ(h.path, "/metrics");
  EXPECT_EQ(h.length, kMaxHttpRequestHeadBytes);
  // One byte more and the head no longer fits.
  head.insert(head.find("X-Pad: ") + 7, "p");
  EXPECT_EQ(parse_http_request_head(head).status, 431);
}

TEST(MetricsHttpParser, TheResponseAnswersByMethodAndPath) {
  auto answer = [](const std::string& request) {
    return metrics_http_response(parse_http_request_head(request), [] { return std::string("tlsp_x 1\n"); });
  };
  const std::string ok = answer("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_TRUE(ok.starts_with("HTTP/1.1 200 OK\r\n")) << ok;
  EXPECT_NE(ok.find("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), std::string::npos) << ok;
  EXPECT_NE(ok.find("\r\nContent-Length: 9\r\n"), std::string::npos) << ok;
  EXPECT_NE(ok.find("\r\nConnection: close\r\n"), std::string::npos) << ok;
  EXPECT_TRUE(ok.ends_with("\r\n\r\ntlsp_x 1\n")) << ok;
  const std::string head = answer("HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_TRUE(head.starts_with("HTTP/1.1 200 OK\r\n"));
  EXPECT_TRUE(head.ends_with("Content-Length: 9\r\nConnection: close\r\n\r\n")) << head;
  const std::string post = answer("POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_TRUE(post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n")) << post;
  EXPECT_NE(post.find("\r\nAllow: GET, HEAD\r\n"), std::string::npos) << post;
  EXPECT_TRUE(answer("GET / HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 404 Not Found\r\n"));
  EXPECT_TRUE(answer("GET /metrics/ HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 404 "));
  EXPECT_TRUE(answer("GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 400 Bad Request\r\n"));
  const std::string failed = metrics_http_response(parse_http_request_head("GET /metrics HTTP/1.0\r\n\r\n"),
                                                   []() -> std::string { throw std::runtime_error("boom"); });
  EXPECT_TRUE(failed.starts_with("HTTP/1.1 500 ")) << failed;
}

// ------------------------------------------------------- the server

// A connection to the server; -1 (and a failure) when it cannot be made.
int connect_to(uint16_t port) {
  std::string error;
  const int fd = connect_tcp("127.0.0.1", port, 5000ms, error);
  EXPECT_GE(fd, 0) << error;
  return fd;
}

void send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return;  // the server may close early (an oversize head)
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

// Everything the server sends until it closes the connection (or 10 s pass).
std::string read_to_close(int fd) {
  std::string all;
  char buf[4096];
  while (true) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10000) <= 0) break;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    all.append(buf, static_cast<size_t>(n));
  }
  return all;
}

// One request, the whole answer.
std::string exchange(uint16_t port, const std::string& request) {
  const int fd = connect_to(port);
  if (fd < 0) return "";
  send_all(fd, request);
  std::string r = read_to_close(fd);
  ::close(fd);
  return r;
}

class MetricsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<MetricsServer>("127.0.0.1:0", [] { return std::string("tlsp_up 1\n"); }, 1500ms);
    server_->start();
    const std::string& a = server_->address();
    port_ = static_cast<uint16_t>(std::stoi(a.substr(a.rfind(':') + 1)));
  }
  std::unique_ptr<MetricsServer> server_;
  uint16_t port_ = 0;
};

TEST_F(MetricsServerTest, ServesAScrapeAndClosesTheConnection) {
  EXPECT_TRUE(server_->address().starts_with("127.0.0.1:"));
  const std::string r = exchange(port_, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 200 OK\r\n")) << r;
  EXPECT_TRUE(r.ends_with("\r\n\r\ntlsp_up 1\n")) << r;
}

TEST_F(MetricsServerTest, RefusesAnOversizeHeadWith431) {
  // Three times the bound, sent whole: the answer still arrives (the
  // server drains what it does not read instead of resetting).
  const std::string request =
      "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(3 * kMaxHttpRequestHeadBytes, 'b');
  const std::string r = exchange(port_, request);
  EXPECT_TRUE(r.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n")) << r;
}

TEST_F(MetricsServerTest, Answers404And405) {
  EXPECT_TRUE(exchange(port_, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 404 Not Found\r\n"));
  const std::string r = exchange(port_, "DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 405 Method Not Allowed\r\n")) << r;
  EXPECT_NE(r.find("\r\nAllow: GET, HEAD\r\n"), std::string::npos) << r;
}

TEST_F(MetricsServerTest, HeadsThatNeverEndGet408AndAScrapeBeyondTheSlotsWaitsForOne) {
  // Every slot held by a connection that sends half a head ...
  std::vector<int> idle;
  for (size_t i = 0; i < kMaxScrapeConnections; ++i) {
    idle.push_back(connect_to(port_));
    ASSERT_GE(idle.back(), 0);
    send_all(idle.back(), "GET /metrics HTTP/1.1\r\n");
  }
  // ... so one more scrape waits in the backlog until their time is up
  // (1.5 s here), and is then served.
  const auto began = std::chrono::steady_clock::now();
  const std::string r = exchange(port_, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 200 OK\r\n")) << r;
  EXPECT_GE(std::chrono::steady_clock::now() - began, 1s);
  for (int fd : idle) {
    EXPECT_TRUE(read_to_close(fd).starts_with("HTTP/1.1 408 Request Timeout\r\n"));
    ::close(fd);
  }
}

TEST_F(MetricsServerTest, StopEndsOpenConnectionsAndReturns) {
  const int fd = connect_to(port_);
  ASSERT_GE(fd, 0);
  send_all(fd, "GET /metr");
  // The connection is accepted before stop(): a scrape on another one is served after it.
  EXPECT_TRUE(exchange(port_, "GET /metrics HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 200 "));
  const auto began = std::chrono::steady_clock::now();
  server_->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - began, 1s);
  EXPECT_EQ(read_to_close(fd), "");  // closed without a reply
  ::close(fd);
}

TEST_F(MetricsServerTest, AnAddressInUseIsRefusedNamingIt) {
  try {
    MetricsServer again(server_->address(), [] { return std::string(); });
    FAIL() << "a second server on " << server_->address();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot listen for metrics on `" + server_->address() + "`"),
              std::string::npos)
        << e.what();
  }
}

// ------------------------------------------------------ the setting

TEST(MetricsListenSetting, OnlyALoopbackAddressIsAccepted) {
  auto problems = [](const std::string& listen) {
    RelayConfig c;
    c.table = "t";
    c.spool_dir = "s";
    c.metrics_listen = listen;
    std::vector<std::string> out;
    for (const ConfigProblem& p : relay_config_problems(c))
      if (p.setting == "metrics-listen") out.push_back(p.text);
    return out;
  };
  for (const char* ok : {"", "127.0.0.1:9100", "127.1.2.3:0", "[::1]:9100", "[::ffff:127.0.0.1]:9100"})
    EXPECT_EQ(problems(ok), std::vector<std::string>{}) << ok;
  for (const char* off : {"0.0.0.0:9100", "192.0.2.1:9100", "[::]:9100", "[2001:db8::1]:9100", "localhost:9100"}) {
    auto p = problems(off);
    ASSERT_EQ(p.size(), 1u) << off;
    EXPECT_NE(p[0].find("is not a loopback address (127.0.0.0/8 or ::1)"), std::string::npos) << p[0];
  }
  for (const char* bad : {"127.0.0.1", "127.0.0.1:99999", ":9100"}) {
    auto p = problems(bad);
    ASSERT_EQ(p.size(), 1u) << bad;
    EXPECT_NE(p[0].find("is not address:port"), std::string::npos) << p[0];
  }
}

}  // namespace
