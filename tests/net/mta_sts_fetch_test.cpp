// mta_sts_fetch_test.cpp — MTA-STS discovery (tlsp/mta_sts_fetch.h) for
// real on the loopback: the libcurl policy fetch against the scripted HTTPS
// server (tlsp/sim/https_server.h) with certificates from the test PKI,
// discovery (with the on-disk cache; mta_sts_cache_test.cpp tests the
// cache itself) through the relay's DNS client against the
// scripted DNS responder, and the conformance scenarios of
// postfix-mta-sts-resolver (../shared/conformance/mtasts/).
//
// The policy host listens on kPolicyAddress, an address no DNS anywhere
// names: every fetch that succeeds proves the address pin (libcurl never
// resolved the name itself). Time for the cache is injected (`now`), never
// waited for. Each test makes its own temp dir and removes it.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"
#include "tlsp/dns.h"
#include "tlsp/engine.h"
#include "tlsp/mta_sts.h"
#include "tlsp/mta_sts_fetch.h"
#include "tlsp/sim/dns_responder.h"
#include "tlsp/sim/https_server.h"
#include "tlsp/sim/test_pki.h"

namespace {

using namespace std::chrono_literals;
using namespace tlsp;
using namespace tlsp::sim;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr char kPolicyPath[] = "/.well-known/mta-sts.txt";
constexpr char kPolicyAddress[] = "127.0.0.41";
constexpr char kDomain[] = "example.test";
constexpr char kPolicyHost[] = "mta-sts.example.test";
constexpr int64_t kNow = 1700000000;
const std::string kEnforce = "version: STSv1\nmode: enforce\nmx: mail.example.test\nmx: *.backup.example.test\nmax_age: 86400\n";
const std::string kTesting = "version: STSv1\nmode: testing\nmx: mail.example.test\nmax_age: 3600\n";

// A body of exactly `size` bytes that is a valid policy: padded with an
// extension field, which RFC 8461 §3.2 says to ignore.
std::string policy_of_size(size_t size) {
  std::string body = "version: STSv1\nmode: enforce\nmx: mail.example.test\nmax_age: 86400\n";
  constexpr size_t kLine = 1000;  // "pad: " + filler + "\n"
  while (body.size() + kLine <= size) body += "pad: " + std::string(kLine - 6, 'a') + "\n";
  size_t rest = size - body.size();
  if (rest >= 7) body += "pad: " + std::string(rest - 6, 'b') + "\n";
  else body.append(rest, '\n');  // never reached for the sizes used here
  return body;
}

// Each TempDir here is named tlsp-sts-test-XXXXXX.
struct TempDir : tlsp::testing_support::TempDir {
  TempDir() : tlsp::testing_support::TempDir("tlsp-sts-test") {}
};

// A port on kPolicyAddress where nothing listens: bound, then released.
uint16_t closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  inet_pton(AF_INET, kPolicyAddress, &a.sin_addr);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("cannot bind");
  ::close(fd);
  return ntohs(a.sin_port);
}

class StsTest : public ::testing::Test {
 protected:
  StsTest() : pki(tmp.path() + "/pki") {
    TestCert fallback = pki.issue({"default.invalid"});
    server.start(fallback.cert_file, fallback.key_file, kPolicyAddress, 0);
    config.ca_file = pki.ca_file();
    config.https_port = server.port();
    config.timeout = 5000ms;
  }

  // Serves `response` as https://mta-sts.<domain>/.well-known/mta-sts.txt.
  void serve(const std::string& domain, HttpsResponse response, CertKind kind = CertKind::valid,
             std::vector<std::string> names = {}) {
    const std::string host = mta_sts_policy_host(domain);
    if (names.empty()) names = {host};
    TestCert cert = pki.issue(names, kind);
    server.add_certificate(host, cert.cert_file, cert.key_file);
    server.set_response(host, kPolicyPath, std::move(response));
  }
  void serve_body(const std::string& domain, std::string body, CertKind kind = CertKind::valid) {
    HttpsResponse r;
    r.body = std::move(body);
    serve(domain, std::move(r), kind);
  }

  StsFetchResult fetch(const std::string& domain = kDomain) {
    return fetch_mta_sts_policy(domain, {kPolicyAddress}, config);
  }

  TempDir tmp;
  TestPki pki;
  HttpsServer server;
  StsFetchConfig config;
};

// ------------------------------------------------------------------ fetch

TEST_F(StsTest, FetchOkThroughThePinnedAddress) {
  serve_body(kDomain, kEnforce);
  StsFetchResult r = fetch();
  ASSERT_EQ(r.status, StsFetch::ok) << r.detail;
  ASSERT_TRUE(r.policy);
  EXPECT_EQ(r.policy->mode, StsMode::enforce);
  EXPECT_EQ(r.policy->max_age, 86400u);
  EXPECT_EQ(r.policy->mx, (std::vector<std::string>{"mail.example.test", "*.backup.example.test"}));
  EXPECT_EQ(r.body, kEnforce);
  auto log = server.requests();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].sni, kPolicyHost);
  EXPECT_EQ(log[0].host, kPolicyHost);
  EXPECT_EQ(log[0].method, "GET");
  EXPECT_EQ(log[0].path, kPolicyPath);
  EXPECT_EQ(log[0].peer, "127.0.0.1");
}

TEST_F(StsTest, FetchNormalisesTheDomain) {
  serve_body(kDomain, kEnforce);
  StsFetchResult r = fetch("Example.TEST.");
  EXPECT_EQ(r.status, StsFetch::ok) << r.detail;
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(server.requests()[0].sni, kPolicyHost);
}

TEST_F(StsTest, FetchIgnoresProxiesFromTheEnvironment) {
  serve_body(kDomain, kEnforce);
  // A proxy that does not exist: used, it would fail the fetch.
  const uint16_t dead = closed_port();
  const std::string proxy = "http://" + std::string(kPolicyAddress) + ":" + std::to_string(dead);
  ::setenv("https_proxy", proxy.c_str(), 1);
  ::setenv("HTTPS_PROXY", proxy.c_str(), 1);
  ::setenv("all_proxy", proxy.c_str(), 1);
  StsFetchResult r = fetch();
  ::unsetenv("https_proxy");
  ::unsetenv("HTTPS_PROXY");
  ::unsetenv("all_proxy");
  EXPECT_EQ(r.status, StsFetch::ok) << r.detail;
}

TEST_F(StsTest, FetchTriesTheNextAddress) {
  serve_body(kDomain, kEnforce);
  // Nothing listens on 127.0.0.42 at the server's port.
  StsFetchResult r = fetch_mta_sts_policy(kDomain, {"127.0.0.42", kPolicyAddress}, config);
  EXPECT_EQ(r.status, StsFetch::ok) << r.detail;
}

TEST_F(StsTest, FetchPinsAnIpv6Address) {
  HttpsServer v6;
  TestCert cert = pki.issue({kPolicyHost});
  try {
    v6.start(cert.cert_file, cert.key_file, "::1", 0);
  } catch (const std::runtime_error& e) {
    GTEST_SKIP() << "no IPv6 loopback: " << e.what();
  }
  HttpsResponse r;
  r.body = kEnforce;
  v6.set_response(kPolicyHost, kPolicyPath, r);
  config.https_port = v6.port();
  StsFetchResult f = fetch_mta_sts_policy(kDomain, {"::1"}, config);
  EXPECT_EQ(f.status, StsFetch::ok) << f.detail;
  ASSERT_EQ(v6.requests().size(), 1u);
  EXPECT_EQ(v6.requests()[0].peer, "::1");
  EXPECT_EQ(v6.requests()[0].sni, kPolicyHost);
}

TEST_F(StsTest, FetchStatus404IsHttpError) {
  HttpsResponse r;
  r.status = 404;
  r.body = kEnforce;
  serve(kDomain, r);
  StsFetchResult f = fetch();
  EXPECT_EQ(f.status, StsFetch::http_error) << f.detail;
  EXPECT_FALSE(f.policy);
  EXPECT_NE(f.detail.find("404"), std::string::npos) << f.detail;
}

TEST_F(StsTest, FetchUnscriptedPathIsHttpError) {
  TestCert cert = pki.issue({kPolicyHost});
  server.add_certificate(kPolicyHost, cert.cert_file, cert.key_file);
  EXPECT_EQ(fetch().status, StsFetch::http_error);
}

TEST_F(StsTest, FetchDoesNotFollowRedirects) {
  HttpsResponse r;
  r.status = 301;
  r.location = "https://mta-sts.example.test/policy.txt";
  serve(kDomain, r);
  HttpsResponse target;
  target.body = kEnforce;
  server.set_response(kPolicyHost, "/policy.txt", target);
  StsFetchResult f = fetch();
  EXPECT_EQ(f.status, StsFetch::http_error) << f.detail;
  EXPECT_NE(f.detail.find("redirect"), std::string::npos) << f.detail;
  EXPECT_EQ(server.request_count(), 1u);
  // 302/307 with a body are no different.
  r.status = 307;
  r.body = kEnforce;
  serve(kDomain, r);
  EXPECT_EQ(fetch().status, StsFetch::http_error);
  EXPECT_EQ(server.request_count(), 2u);
}

TEST_F(StsTest, FetchContentTypeMustBeTextPlain) {
  HttpsResponse r;
  r.body = kEnforce;
  r.content_type = "text/html";
  serve(kDomain, r);
  EXPECT_EQ(fetch().status, StsFetch::http_error);
  r.content_type = "";
  serve(kDomain, r);
  EXPECT_EQ(fetch().status, StsFetch::http_error);
  r.content_type = "Text/Plain; charset=utf-8";
  serve(kDomain, r);
  EXPECT_EQ(fetch().status, StsFetch::ok);
}

TEST_F(StsTest, FetchBodyAtTheLimitIsAccepted) {
  const std::string body = policy_of_size(kMaxStsPolicyBytes);
  ASSERT_EQ(body.size(), kMaxStsPolicyBytes);
  serve_body(kDomain, body);
  EXPECT_EQ(fetch().status, StsFetch::ok);
  HttpsResponse chunked;
  chunked.body = body;
  chunked.framing = HttpsFraming::chunked;
  chunked.chunk_bytes = 1000;
  serve(kDomain, chunked);
  StsFetchResult r = fetch();
  EXPECT_EQ(r.status, StsFetch::ok) << r.detail;
}

TEST_F(StsTest, FetchOverlengthByContentLength) {
  serve_body(kDomain, policy_of_size(kMaxStsPolicyBytes + 1));
  StsFetchResult r = fetch();
  EXPECT_EQ(r.status, StsFetch::http_error) << r.detail;
  EXPECT_NE(r.detail.find("larger than 65536"), std::string::npos) << r.detail;
}

TEST_F(StsTest, FetchHugeAnnouncedLengthAbortsAtOnce) {
  // A short body under an announced terabyte: the announcement decides, and
  // nothing waits for bytes that will never come.
  HttpsResponse r;
  r.body = kEnforce;
  r.content_length = 1ull << 40;
  serve(kDomain, r);
  const auto start = Clock::now();
  StsFetchResult f = fetch();
  EXPECT_EQ(f.status, StsFetch::http_error) << f.detail;
  EXPECT_LT(Clock::now() - start, 2s);
}

TEST_F(StsTest, FetchOverlengthByChunkedGrowth) {
  // No length announced: the limit is enforced on the bytes as they come.
  HttpsResponse r;
  r.body = kEnforce + std::string(4 * kMaxStsPolicyBytes, 'a');
  r.framing = HttpsFraming::chunked;
  r.chunk_bytes = 64;
  serve(kDomain, r);
  StsFetchResult f = fetch();
  EXPECT_EQ(f.status, StsFetch::http_error) << f.detail;
  EXPECT_NE(f.detail.find("larger than"), std::string::npos) << f.detail;
}

TEST_F(StsTest, FetchSmallerLimitFromTheConfig) {
  serve_body(kDomain, kEnforce);
  config.max_body = kEnforce.size() - 1;
  EXPECT_EQ(fetch().status, StsFetch::http_error);
  config.max_body = kEnforce.size();
  EXPECT_EQ(fetch().status, StsFetch::ok);
}

TEST_F(StsTest, FetchInvalidBody) {
  serve_body(kDomain, "version: STSv1\nmode: enforce\nmax_age: 86400\n");  // no mx
  StsFetchResult r = fetch();
  EXPECT_EQ(r.status, StsFetch::invalid) << r.detail;
  EXPECT_NE(r.detail.find("mx"), std::string::npos) << r.detail;
}

TEST_F(StsTest, FetchCertificateProblemsAreBadCert) {
  for (CertKind kind : {CertKind::untrusted, CertKind::wrong_name, CertKind::expired, CertKind::self_signed}) {
    serve_body(kDomain, kEnforce, kind);
    StsFetchResult r = fetch();
    EXPECT_EQ(r.status, StsFetch::bad_cert) << static_cast<int>(kind) << ": " << r.detail;
  }
  // A certificate for the policy domain itself, not mta-sts.<domain>.
  HttpsResponse ok;
  ok.body = kEnforce;
  serve(kDomain, ok, CertKind::valid, {kDomain});
  EXPECT_EQ(fetch().status, StsFetch::bad_cert);
  // Nothing was ever answered over an unverified connection.
  EXPECT_EQ(server.request_count(), 0u);
}

TEST_F(StsTest, FetchTimeoutIsBounded) {
  HttpsResponse r;
  r.body = kEnforce;
  r.delay = 10s;  // stop() cuts it short at the end of the test
  serve(kDomain, r);
  config.timeout = 300ms;
  const auto start = Clock::now();
  StsFetchResult f = fetch();
  EXPECT_EQ(f.status, StsFetch::timeout) << f.detail;
  EXPECT_LT(Clock::now() - start, 3s);
}

TEST_F(StsTest, FetchConnectionRefused) {
  config.https_port = closed_port();
  StsFetchResult f = fetch();
  EXPECT_EQ(f.status, StsFetch::timeout) << f.detail;
}

TEST_F(StsTest, FetchRejectsBadArguments) {
  serve_body(kDomain, kEnforce);
  EXPECT_EQ(fetch_mta_sts_policy(kDomain, {}, config).status, StsFetch::timeout);
  EXPECT_NE(fetch_mta_sts_policy(kDomain, {"mta-sts.example.test"}, config).status, StsFetch::ok);
  EXPECT_NE(fetch_mta_sts_policy(kDomain, {"127.0.0.41,127.0.0.1"}, config).status, StsFetch::ok);
  EXPECT_NE(fetch(".example.test").status, StsFetch::ok);
  EXPECT_NE(fetch("example..test").status, StsFetch::ok);
  EXPECT_NE(fetch("exa mple.test").status, StsFetch::ok);
  EXPECT_EQ(server.request_count(), 0u);
}

TEST_F(StsTest, FetchConcurrently) {
  serve_body(kDomain, kEnforce);
  constexpr int kThreads = 4, kEach = 3;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) ok += fetch().status == StsFetch::ok;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok, kThreads * kEach);
}

// The HTTPS server's own bound on the request head, seen by a raw client.
TEST_F(StsTest, ServerBoundsTheRequestHead) {
  serve_body(kDomain, kEnforce);
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  ASSERT_TRUE(ctx);
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(server.port());
  inet_pton(AF_INET, kPolicyAddress, &a.sin_addr);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), SSL_free);
  SSL_set_fd(ssl.get(), fd);
  SSL_set_tlsext_host_name(ssl.get(), kPolicyHost);
  ASSERT_EQ(SSL_connect(ssl.get()), 1);
  std::string request = std::string("GET ") + kPolicyPath + " HTTP/1.1\r\nHost: " + kPolicyHost + "\r\n";
  request += "X-Filler: " + std::string(kMaxHttpsRequestBytes, 'x') + "\r\n\r\n";
  ASSERT_EQ(SSL_write(ssl.get(), request.data(), static_cast<int>(request.size())), static_cast<int>(request.size()));
  std::string answer;
  char buf[4096];
  int n;
  while ((n = SSL_read(ssl.get(), buf, sizeof buf)) > 0) answer.append(buf, static_cast<size_t>(n));
  ssl.reset();
  ::close(fd);
  EXPECT_EQ(answer.rfind("HTTP/1.1 431 ", 0), 0u) << answer.substr(0, 80);
  EXPECT_EQ(server.request_count(), 0u);
}

// -------------------------------------------------------------- discovery

class DiscoveryTest : public StsTest {
 protected:
  DiscoveryTest() : cache(tmp.path() + "/cache") {
    dns.start("127.0.0.1", 0);
    dns::ResolverConfig rc;
    rc.server = dns.server();
    rc.timeout = 2000ms;
    resolver.emplace(rc);
    set_txt(kDomain, {"v=STSv1; id=id1"});
    set_a(kPolicyHost, kPolicyAddress);
  }

  void set_txt(const std::string& domain, const std::vector<std::string>& records,
               DnsBehaviour behaviour = DnsBehaviour::answer) {
    DnsRrset r;
    r.name = "_mta-sts." + domain;
    r.type = dns_type::TXT;
    for (const auto& t : records) r.rdata.push_back("\"" + t + "\"");
    r.behaviour = behaviour;
    r.secure = false;
    dns.set(std::move(r));
  }
  void set_a(const std::string& name, const std::string& address) {
    DnsRrset r;
    r.name = name;
    r.type = dns_type::A;
    r.rdata = {address};
    r.secure = false;
    dns.set(std::move(r));
  }

  StsDiscovery discover(int64_t now, const std::string& domain = kDomain, bool with_cache = true) {
    return discover_mta_sts(domain, *resolver, config, with_cache ? &cache : nullptr, now);
  }

  DnsResponder dns;
  std::optional<dns::Resolver> resolver;
  MtaStsCache cache;
};

TEST_F(DiscoveryTest, FetchesThenUsesTheCacheWhileTheIdHolds) {
  serve_body(kDomain, kEnforce);
  StsDiscovery d = discover(kNow);
  EXPECT_TRUE(d.txt) << d.detail;
  EXPECT_EQ(d.id, "id1");
  EXPECT_EQ(d.fetch, StsFetch::ok) << d.detail;
  ASSERT_TRUE(d.fetched);
  EXPECT_FALSE(d.cached);
  EXPECT_FALSE(d.from_cache);
  ASSERT_TRUE(cache.get(kDomain, kNow).entry);
  EXPECT_EQ(cache.get(kDomain, kNow).entry->id, "id1");
  EXPECT_EQ(server.request_count(), 1u);

  StsDiscovery again = discover(kNow + 100);
  EXPECT_TRUE(again.from_cache) << again.detail;
  EXPECT_EQ(again.fetch, StsFetch::ok);
  EXPECT_FALSE(again.fetched);
  ASSERT_TRUE(again.cached);
  EXPECT_EQ(server.request_count(), 1u);  // not fetched again
  MtaStsFacts f = sts_facts_for_mx(again, "mail.example.test");
  EXPECT_TRUE(f.txt);
  EXPECT_EQ(f.fetch, StsFetch::ok);
  EXPECT_EQ(f.mode, StsMode::enforce);
  EXPECT_TRUE(f.mx_match);
  EXPECT_EQ(f.cached, StsMode::enforce);
}

TEST_F(DiscoveryTest, MaxAgeExpiryRefetches) {
  serve_body(kDomain, kTesting);  // max_age 3600
  ASSERT_EQ(discover(kNow).fetch, StsFetch::ok);
  EXPECT_TRUE(discover(kNow + 3599).from_cache);
  EXPECT_EQ(server.request_count(), 1u);
  StsDiscovery d = discover(kNow + 3600);
  EXPECT_FALSE(d.from_cache);
  EXPECT_FALSE(d.cached);  // expired: not a fallback either
  EXPECT_TRUE(d.fetched);
  EXPECT_EQ(server.request_count(), 2u);
  EXPECT_EQ(cache.get(kDomain, kNow + 3600).entry->fetched_at, kNow + 3600);
}

TEST_F(DiscoveryTest, IdChangeRefetches) {
  serve_body(kDomain, kEnforce);
  ASSERT_EQ(discover(kNow).fetch, StsFetch::ok);
  set_txt(kDomain, {"v=STSv1; id=id2"});
  serve_body(kDomain, kTesting);
  StsDiscovery d = discover(kNow + 10);
  EXPECT_EQ(server.request_count(), 2u);
  ASSERT_TRUE(d.fetched) << d.detail;
  EXPECT_EQ(d.fetched->mode, StsMode::testing);
  ASSERT_TRUE(d.cached);
  EXPECT_EQ(d.cached->mode, StsMode::enforce);  // what was cached before
  auto entry = cache.get(kDomain, kNow + 10).entry;
  ASSERT_TRUE(entry);
  EXPECT_EQ(entry->id, "id2");
  EXPECT_EQ(entry->policy.mode, StsMode::testing);
  MtaStsFacts f = sts_facts_for_mx(d, "mail.example.test");
  EXPECT_EQ(f.mode, StsMode::testing);
}

TEST_F(DiscoveryTest, RefetchFailureFallsBackToTheCache) {
  serve_body(kDomain, kEnforce);
  ASSERT_EQ(discover(kNow).fetch, StsFetch::ok);
  set_txt(kDomain, {"v=STSv1; id=id2"});
  HttpsResponse broken;
  broken.status = 500;
  serve(kDomain, broken);
  StsDiscovery d = discover(kNow + 10);
  EXPECT_TRUE(d.txt);
  EXPECT_EQ(d.fetch, StsFetch::http_error);
  ASSERT_TRUE(d.cached);
  EXPECT_EQ(cache.get(kDomain, kNow + 10).entry->id, "id1");  // kept
  MtaStsFacts f = sts_facts_for_mx(d, "mx1.backup.example.test");
  EXPECT_EQ(f.cached, StsMode::enforce);
  EXPECT_TRUE(f.mx_match);
  EXPECT_FALSE(sts_facts_for_mx(d, "evil.example.test").mx_match);

  // The engine enforces the cached policy: a matching host delivers
  // authenticated, another one is refused.
  PeerFacts peer;
  peer.starttls = true;
  peer.peer_tls = kAllTlsVersions;
  peer.sts = f;
  RuleInput rule{Level::mta_sts, MinTls::tls1_2};
  Outcome o = decide(Direction::outbound, rule, peer);
  EXPECT_EQ(o.kind, OutcomeKind::deliver);
  EXPECT_EQ(o.channel, Channel::authenticated);
  peer.sts = sts_facts_for_mx(d, "evil.example.test");
  EXPECT_EQ(decide(Direction::outbound, rule, peer).kind, OutcomeKind::refuse);
}

TEST_F(DiscoveryTest, MissingOrFailingTxtFallsBackToTheCache) {
  serve_body(kDomain, kEnforce);
  ASSERT_EQ(discover(kNow).fetch, StsFetch::ok);
  dns.erase("_mta-sts." + std::string(kDomain), dns_type::TXT);
  StsDiscovery d = discover(kNow + 10);
  EXPECT_FALSE(d.txt);
  ASSERT_TRUE(d.cached);
  MtaStsFacts f = sts_facts_for_mx(d, "mail.example.test");
  EXPECT_FALSE(f.txt);
  EXPECT_EQ(f.cached, StsMode::enforce);
  EXPECT_TRUE(f.mx_match);
  set_txt(kDomain, {"v=STSv1; id=id9"}, DnsBehaviour::servfail);
  d = discover(kNow + 20);
  EXPECT_FALSE(d.txt);
  EXPECT_TRUE(d.cached);
  EXPECT_EQ(server.request_count(), 1u);
  // No TXT and nothing cached: no policy at all.
  d = discover(kNow + 20, kDomain, false);
  EXPECT_FALSE(sts_facts_for_mx(d, "mail.example.test").cached);
}

TEST_F(DiscoveryTest, TxtRecordSelection) {
  serve_body(kDomain, kEnforce);
  // Other TXT records are discarded (RFC 8461 §3.1)...
  set_txt(kDomain, {"some other text", "v=STSv1; id=id1", "v=STSv12; id=x"});
  EXPECT_EQ(discover(kNow, kDomain, false).fetch, StsFetch::ok);
  // ...but two STS records mean no policy, as does an invalid one.
  for (const auto& records : std::vector<std::vector<std::string>>{
           {"v=STSv1; id=id1", "v=STSv1; id=id2"}, {"v=STSv1; id=id1", "v=STSv1; id=id1"}, {"id=1; v=STSv1"},
           {"v=STSv1; id=bad!"}, {"v=STSv1"}}) {
    set_txt(kDomain, records);
    StsDiscovery d = discover(kNow, kDomain, false);
    EXPECT_FALSE(d.txt) << records[0];
    EXPECT_FALSE(d.fetched) << records[0];
  }
  EXPECT_EQ(server.request_count(), 1u);
}

TEST_F(DiscoveryTest, PolicyHostWithoutAddressIsAFetchFailure) {
  dns.erase(kPolicyHost, dns_type::A);
  StsDiscovery d = discover(kNow);
  EXPECT_TRUE(d.txt);
  EXPECT_NE(d.fetch, StsFetch::ok);
  EXPECT_NE(d.detail.find("no address"), std::string::npos) << d.detail;
  EXPECT_EQ(server.request_count(), 0u);
  MtaStsFacts f = sts_facts_for_mx(d, "mail.example.test");
  EXPECT_TRUE(f.txt);
  EXPECT_FALSE(f.mx_match);
}

TEST_F(DiscoveryTest, InvalidDomainsSendNoQuery) {
  for (const char* bad : {".example.test", ".example.test.", "example..test", "", "-a.test", "a_b.test"}) {
    const size_t before = dns.query_count();
    StsDiscovery d = discover(kNow, bad);
    EXPECT_FALSE(d.txt) << bad;
    EXPECT_EQ(dns.query_count(), before) << bad;
  }
}

TEST_F(DiscoveryTest, CorruptCacheIsRefetchedNotTrusted) {
  serve_body(kDomain, kEnforce);
  ASSERT_EQ(discover(kNow).fetch, StsFetch::ok);
  {
    std::ofstream out(cache.path_for(kDomain), std::ios::trunc);
    out << "tlsp-mta-sts-cache 1\ndomain: example.test\nid: id1\n";
  }
  StsDiscovery d = discover(kNow + 5);
  EXPECT_FALSE(d.from_cache);
  EXPECT_FALSE(d.cached);
  EXPECT_TRUE(d.fetched);
  EXPECT_NE(d.detail.find("corrupt"), std::string::npos) << d.detail;
  EXPECT_EQ(server.request_count(), 2u);
  EXPECT_TRUE(cache.get(kDomain, kNow + 5).entry);  // repaired by the fetch
}

TEST(StsFactsTest, MappingForTheEngine) {
  MtaStsPolicy enforce{StsMode::enforce, 86400, {"mail.example.test"}};
  MtaStsPolicy testing{StsMode::testing, 86400, {"*.example.test"}};
  StsDiscovery none;
  MtaStsFacts f = sts_facts_for_mx(none, "mail.example.test");
  EXPECT_FALSE(f.txt);
  EXPECT_FALSE(f.cached);
  EXPECT_FALSE(f.mx_match);

  StsDiscovery fetched;
  fetched.txt = true;
  fetched.fetch = StsFetch::ok;
  fetched.fetched = enforce;
  fetched.cached = testing;
  f = sts_facts_for_mx(fetched, "MAIL.example.test.");
  EXPECT_EQ(f.mode, StsMode::enforce);
  EXPECT_EQ(f.cached, StsMode::testing);
  EXPECT_TRUE(f.mx_match);
  EXPECT_FALSE(sts_facts_for_mx(fetched, "other.example.test").mx_match);  // the fetched policy rules

  StsDiscovery failed = fetched;
  failed.fetch = StsFetch::bad_cert;
  failed.fetched.reset();
  f = sts_facts_for_mx(failed, "other.example.test");
  EXPECT_EQ(f.fetch, StsFetch::bad_cert);
  EXPECT_TRUE(f.mx_match);  // the cached testing policy is in force
}

// ------------------------------------------------------------ conformance

// The expected status of resolver-scenarios.json in our terms:
//   VALID        the TXT record was usable and a valid policy was fetched
//   NONE         no usable TXT record, so nothing was fetched
//   FETCH_ERROR  the TXT record was usable, the fetch was not ok
std::string conformance_status(const StsDiscovery& d) {
  if (!d.txt) return "NONE";
  return d.fetch == StsFetch::ok && d.fetched ? "VALID" : "FETCH_ERROR";
}

TEST_F(DiscoveryTest, ConformanceResolverScenarios) {
  TLSP_CONFORMANCE_DIR(mtasts, "mtasts");
  const std::string base = mtasts.string() + "/";
  std::ifstream in(base + "resolver-scenarios.json");
  ASSERT_TRUE(in) << "missing " << base << "resolver-scenarios.json";
  nlohmann::json doc = nlohmann::json::parse(in);
  const auto& scenarios = doc.at("scenarios");
  ASSERT_EQ(scenarios.size(), 23u);

  // Names the raw dnsmasq configuration gives an address of their own
  // besides mta-sts.* (no-data.loc: `_mta-sts` exists, without TXT).
  std::set<std::string> named;
  {
    std::ifstream conf(base + "postfix-mta-sts-resolver/dnsmasq.conf.appendix");
    ASSERT_TRUE(conf);
    std::string line;
    while (std::getline(conf, line)) {
      if (line.rfind("address=/_mta-sts.", 0) != 0) continue;
      named.insert(line.substr(9, line.find('/', 9) - 9));
    }
  }
  // The certificates the nginx configuration serves that are not valid for
  // mta-sts.<domain>: bad-cert1 comes from another CA, bad-cert2 names the
  // policy domain only.
  const std::map<std::string, CertKind> kind_of = {{"bad-cert1.loc", CertKind::untrusted}};
  const std::map<std::string, std::string> name_of = {{"bad-cert2.loc", "bad-cert2.loc"}};

  dns.clear();
  for (const auto& s : scenarios) {
    std::string domain = s.at("domain");
    if (domain.front() == '.') continue;  // never a valid policy domain
    if (domain.back() == '.') domain.pop_back();
    const std::string host = mta_sts_policy_host(domain);
    set_a(host, kPolicyAddress);
    if (s.at("txt_records").is_array() && !s.at("txt_records").empty())
      set_txt(domain, s.at("txt_records").get<std::vector<std::string>>());
    if (named.count("_mta-sts." + domain)) set_a("_mta-sts." + domain, "127.0.0.1");
    if (s.at("policy_http").is_null()) continue;
    const auto& p = s.at("policy_http");
    HttpsResponse r;
    r.status = p.at("http_status");
    r.content_type = p.at("content_type");
    if (p.value("lua", false)) {
      // nginx's lua: four policy lines, then 2049 x 64 bytes, flushed.
      r.body = "version: STSv1\nmode: enforce\nmax_age: 86400\nmx: mail.loc\n";
      for (int i = 0; i <= 2048; ++i) r.body += std::string(64, 'a');
      if (s.at("note").get<std::string>().find("chunked") != std::string::npos) {
        r.framing = HttpsFraming::chunked;
        r.chunk_bytes = 64;
      } else {
        EXPECT_EQ(r.body.size(), 131193u);  // the announced Content-Length
      }
    } else {
      r.body = p.at("body");
    }
    auto kind = kind_of.count(domain) ? kind_of.at(domain) : CertKind::valid;
    std::vector<std::string> names = {name_of.count(domain) ? name_of.at(domain) : host};
    serve(domain, r, kind, names);
  }

  int checked = 0;
  for (const auto& s : scenarios) {
    const std::string domain = s.at("domain");
    const std::string expected = s.at("expected_fetch_status");
    const size_t queries = dns.query_count();
    const size_t requests = server.request_count();
    StsDiscovery d = discover(kNow, domain, false);
    const std::string got = conformance_status(d);
    EXPECT_EQ(got, expected) << domain << " (" << s.at("note").get<std::string>() << "): " << d.detail;
    if (expected == "NONE") {
      EXPECT_EQ(server.request_count(), requests) << domain;
    }
    if (domain.front() == '.') {
      EXPECT_EQ(dns.query_count(), queries) << domain << " sent a DNS query";
    }
    // The failures happen for the reason the scenario names.
    if (domain.rfind("bad-cert", 0) == 0) {
      EXPECT_EQ(d.fetch, StsFetch::bad_cert) << domain << ": " << d.detail;
    }
    if (s.at("policy_http").is_object() && s.at("policy_http").value("lua", false)) {
      EXPECT_NE(d.detail.find("larger than"), std::string::npos) << domain << ": " << d.detail;
    }
    if (domain.rfind("bad-policy", 0) == 0 && s.at("policy_http").at("http_status") == 200 &&
        s.at("policy_http").at("content_type") == "text/plain") {
      EXPECT_EQ(d.fetch, StsFetch::invalid) << domain << ": " << d.detail;
    }
    if (got == "VALID") {
      std::string body = s.at("policy_http").at("body");
      EXPECT_EQ(d.fetched->mode, parse_mta_sts_policy(body).value->mode) << domain;
    }
    ++checked;
  }
  EXPECT_EQ(checked, 23);
}

}  // namespace
