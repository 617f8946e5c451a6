// dns_test.cpp — the relay's DNS client (tlsp/dns.h) against the scripted
// DNS responder (tlsp/sim/dns_responder.h), both for real on 127.0.0.1 with
// a port picked by the kernel: every DnsStatus, record parsing per type,
// TCP fallback, CNAME chains, invalid names, concurrency, and the
// responder's robustness against garbage. Each test is bounded in time.
#include <arpa/inet.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "tlsp/dane.h"
#include "tlsp/dns.h"
#include "tlsp/sim/dns_responder.h"

namespace {

using namespace std::chrono_literals;
using tlsp::DnsStatus;
using tlsp::dns::Resolver;
using tlsp::dns::ResolverConfig;
using tlsp::sim::DnsBehaviour;
using tlsp::sim::DnsResponder;
using tlsp::sim::DnsRrset;
namespace T = tlsp::sim::dns_type;

// A generous bound for answers from the loopback; only the silence tests
// wait for a timeout, and they shorten it.
constexpr auto kTestTimeout = 3000ms;

class DnsTest : public ::testing::Test {
 protected:
  void SetUp() override { responder.start("127.0.0.1", 0); }

  Resolver resolver(std::chrono::milliseconds timeout = kTestTimeout, int attempts = 2) {
    ResolverConfig config;
    config.server = responder.server();
    config.timeout = timeout;
    config.attempts = attempts;
    return Resolver(config);
  }

  void set(const std::string& name, uint16_t type, std::vector<std::string> rdata, bool secure = true,
           DnsBehaviour behaviour = DnsBehaviour::answer) {
    DnsRrset r;
    r.name = name;
    r.type = type;
    r.rdata = std::move(rdata);
    r.secure = secure;
    r.behaviour = behaviour;
    responder.set(std::move(r));
  }

  size_t count_queries(const std::string& name, uint16_t type) const {
    size_t n = 0;
    for (const auto& q : responder.queries()) n += q.first == name && q.second == type;
    return n;
  }

  DnsResponder responder;
};

TEST_F(DnsTest, SecureMxSortedByPreferenceLowerCaseNoDot) {
  set("example.com", T::MX, {"20 MX2.Example.COM.", "10 mx1.example.com.", "20 mx3.example.com", "5 mx0.example.com."});
  auto r = resolver().mx("Example.COM.");
  EXPECT_EQ(r.status, DnsStatus::secure) << r.detail;
  EXPECT_TRUE(r.authenticated);
  ASSERT_EQ(r.records.size(), 4u);
  EXPECT_EQ(r.records[0].preference, 5);
  EXPECT_EQ(r.records[0].host, "mx0.example.com");
  EXPECT_EQ(r.records[1].host, "mx1.example.com");
  // Equal preferences keep the answer order.
  EXPECT_EQ(r.records[2].host, "mx2.example.com");
  EXPECT_EQ(r.records[3].host, "mx3.example.com");
  EXPECT_EQ(r.records[3].preference, 20);
}

TEST_F(DnsTest, InsecureAnswerHasNoAd) {
  set("insecure.example", T::MX, {"10 mx.insecure.example."}, false);
  auto r = resolver().mx("insecure.example");
  EXPECT_EQ(r.status, DnsStatus::insecure) << r.detail;
  EXPECT_FALSE(r.authenticated);
  ASSERT_EQ(r.records.size(), 1u);
  EXPECT_EQ(r.records[0].host, "mx.insecure.example");
}

TEST_F(DnsTest, NullMx) {
  set("nomail.example", T::MX, {"0 ."});
  auto r = resolver().mx("nomail.example");
  EXPECT_EQ(r.status, DnsStatus::secure);
  ASSERT_EQ(r.records.size(), 1u);
  EXPECT_EQ(r.records[0].preference, 0);
  EXPECT_EQ(r.records[0].host, "");
}

TEST_F(DnsTest, NxdomainWithAndWithoutAd) {
  auto r = resolver().mx("unknown.example");
  EXPECT_EQ(r.status, DnsStatus::nxdomain);
  EXPECT_TRUE(r.authenticated);
  EXPECT_TRUE(r.records.empty());
  EXPECT_NE(r.detail.find("NXDOMAIN"), std::string::npos) << r.detail;

  responder.set_default_secure(false);
  r = resolver().mx("unknown.example");
  EXPECT_EQ(r.status, DnsStatus::nxdomain);
  EXPECT_FALSE(r.authenticated);
}

TEST_F(DnsTest, NodataIsADenialWithTheNamesAd) {
  set("host.example", T::A, {"192.0.2.1"});
  auto r = resolver().mx("host.example");
  EXPECT_EQ(r.status, DnsStatus::nxdomain);
  EXPECT_TRUE(r.authenticated);
  EXPECT_NE(r.detail.find("NODATA"), std::string::npos) << r.detail;

  responder.set_name("empty.example", DnsBehaviour::answer, false);
  auto t = resolver().tlsa("empty.example");
  EXPECT_EQ(t.status, DnsStatus::nxdomain);
  EXPECT_FALSE(t.authenticated);
}

TEST_F(DnsTest, BogusFoundByTheCdRequery) {
  set("bogus.example", T::MX, {"10 mx.bogus.example."}, true, DnsBehaviour::bogus);
  auto r = resolver().mx("bogus.example");
  EXPECT_EQ(r.status, DnsStatus::bogus) << r.detail;
  EXPECT_FALSE(r.authenticated);
  EXPECT_TRUE(r.records.empty());
  EXPECT_EQ(count_queries("bogus.example", T::MX), 2u);  // plain, then CD

  // A whole name gone bogus: its denials fail validation too.
  responder.set_name("badsig.example", DnsBehaviour::bogus);
  EXPECT_EQ(resolver().txt("badsig.example").status, DnsStatus::bogus);
}

TEST_F(DnsTest, ServfailEvenWithCd) {
  responder.set_name("broken.example", DnsBehaviour::servfail);
  auto r = resolver().mx("broken.example");
  EXPECT_EQ(r.status, DnsStatus::servfail);
  EXPECT_NE(r.detail.find("SERVFAIL"), std::string::npos) << r.detail;
  EXPECT_EQ(count_queries("broken.example", T::MX), 2u);
}

TEST_F(DnsTest, RefusedIsServfailWithoutCdRequery) {
  responder.set_name("refused.example", DnsBehaviour::refused);
  auto r = resolver().mx("refused.example");
  EXPECT_EQ(r.status, DnsStatus::servfail);
  EXPECT_NE(r.detail.find("REFUSED"), std::string::npos) << r.detail;
  EXPECT_EQ(count_queries("refused.example", T::MX), 1u);
}

TEST_F(DnsTest, SilenceTimesOutWithinTheConfiguredTime) {
  responder.set_name("silent.example", DnsBehaviour::silence);
  constexpr auto kTimeout = 300ms;
  auto start = std::chrono::steady_clock::now();
  auto r = resolver(kTimeout, 2).mx("silent.example");
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.status, DnsStatus::timeout) << r.detail;
  EXPECT_GE(elapsed, kTimeout - 20ms);
  EXPECT_LT(elapsed, kTimeout + 500ms);
  EXPECT_EQ(count_queries("silent.example", T::MX), 2u);  // both attempts sent
}

TEST_F(DnsTest, NoServerIsATimeout) {
  ResolverConfig config;
  config.server = responder.server();
  config.timeout = 200ms;
  responder.stop();
  auto r = Resolver(config).mx("example.com");
  EXPECT_EQ(r.status, DnsStatus::timeout) << r.detail;
}

TEST_F(DnsTest, AddressesUnionAndStatus) {
  set("dual.example", T::A, {"192.0.2.1", "192.0.2.2"});
  set("dual.example", T::AAAA, {"2001:DB8::1"});
  auto r = resolver().addresses("dual.example");
  EXPECT_EQ(r.status, DnsStatus::secure) << r.detail;
  EXPECT_TRUE(r.authenticated);
  EXPECT_EQ(r.records, (std::vector<std::string>{"192.0.2.1", "192.0.2.2", "2001:db8::1"}));

  // One family only: the other's NODATA does not count against it.
  set("v4.example", T::A, {"192.0.2.3"});
  r = resolver().addresses("v4.example");
  EXPECT_EQ(r.status, DnsStatus::secure);
  EXPECT_EQ(r.records, (std::vector<std::string>{"192.0.2.3"}));

  // Every answer with records must have AD for secure.
  set("mixed.example", T::A, {"192.0.2.4"});
  set("mixed.example", T::AAAA, {"2001:db8::4"}, false);
  r = resolver().addresses("mixed.example");
  EXPECT_EQ(r.status, DnsStatus::insecure);
  EXPECT_FALSE(r.authenticated);
  EXPECT_EQ(r.records.size(), 2u);

  // Records beat a failure of the other family.
  set("half.example", T::A, {"192.0.2.5"});
  set("half.example", T::AAAA, {}, true, DnsBehaviour::servfail);
  r = resolver().addresses("half.example");
  EXPECT_EQ(r.status, DnsStatus::secure);
  EXPECT_EQ(r.records, (std::vector<std::string>{"192.0.2.5"}));
}

TEST_F(DnsTest, AddressesWithoutRecords) {
  auto r = resolver().addresses("nowhere.example");
  EXPECT_EQ(r.status, DnsStatus::nxdomain);
  EXPECT_TRUE(r.authenticated);

  // A denial and a failure: the failure.
  set("f1.example", T::A, {}, true, DnsBehaviour::servfail);
  set("f1.example", T::TXT, {"\"exists\""});
  EXPECT_EQ(resolver().addresses("f1.example").status, DnsStatus::servfail);

  // bogus is worse than servfail.
  set("f2.example", T::A, {"192.0.2.6"}, true, DnsBehaviour::bogus);
  set("f2.example", T::AAAA, {}, true, DnsBehaviour::servfail);
  EXPECT_EQ(resolver().addresses("f2.example").status, DnsStatus::bogus);

  // servfail is worse than timeout.
  set("f3.example", T::A, {}, true, DnsBehaviour::silence);
  set("f3.example", T::AAAA, {}, true, DnsBehaviour::servfail);
  EXPECT_EQ(resolver(300ms).addresses("f3.example").status, DnsStatus::servfail);

  // timeout is worse than a denial; A and AAAA run in parallel, so the
  // pair stays within one timeout.
  set("f4.example", T::A, {}, true, DnsBehaviour::silence);
  set("f4.example", T::TXT, {"\"exists\""});
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(resolver(300ms).addresses("f4.example").status, DnsStatus::timeout);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 800ms);
}

TEST_F(DnsTest, TlsaParsedIntoRecords) {
  const std::string ee = "3 1 1 " + std::string(64, 'A');
  const std::string ta = "2 0 2 " + std::string(128, '0') ;
  set("_25._tcp.mx.example", T::TLSA, {ee, ta});
  auto r = resolver().tlsa("_25._tcp.MX.example");
  EXPECT_EQ(r.status, DnsStatus::secure) << r.detail;
  ASSERT_EQ(r.records.size(), 2u);
  EXPECT_EQ(r.records[0], *tlsp::parse_tlsa_record(ee).value);
  EXPECT_EQ(r.records[1], *tlsp::parse_tlsa_record(ta).value);
  EXPECT_EQ(r.records[0].data.size(), 32u);
  EXPECT_EQ(r.records[0].data[0], 0xAA);
  EXPECT_EQ(tlsp::format_tlsa_record(r.records[0]), "3 1 1 " + std::string(64, 'A'));
}

TEST_F(DnsTest, TxtStringsConcatenatedPerRecord) {
  set("_mta-sts.example", T::TXT, {"\"v=STSv1; \" \"id=20240101T000000\"", "\"other\""});
  auto r = resolver().txt("_mta-sts.example");
  EXPECT_EQ(r.status, DnsStatus::secure) << r.detail;
  EXPECT_EQ(r.records, (std::vector<std::string>{"v=STSv1; id=20240101T000000", "other"}));
}

TEST_F(DnsTest, LargeAnswerFallsBackToTcp) {
  std::vector<std::string> rdata;
  for (int i = 0; i < 30; ++i) rdata.push_back("\"" + std::to_string(i) + std::string(200, 'x') + "\"");
  set("big.example", T::TXT, rdata);
  auto r = resolver().txt("big.example");
  EXPECT_EQ(r.status, DnsStatus::secure) << r.detail;
  ASSERT_EQ(r.records.size(), 30u);
  EXPECT_EQ(r.records[29], "29" + std::string(200, 'x'));
  // Once over UDP (truncated), once over TCP.
  EXPECT_EQ(count_queries("big.example", T::TXT), 2u);
}

TEST_F(DnsTest, CnameChainInTheAnswerIsFollowed) {
  set("alias.example", T::CNAME, {"middle.example."});
  set("middle.example", T::CNAME, {"target.example."});
  set("target.example", T::A, {"192.0.2.9"});
  set("target.example", T::MX, {"10 mx.target.example."});
  set("unrelated.example", T::A, {"192.0.2.99"});
  auto r = resolver().addresses("alias.example");
  EXPECT_EQ(r.status, DnsStatus::secure) << r.detail;
  EXPECT_EQ(r.records, (std::vector<std::string>{"192.0.2.9"}));
  auto m = resolver().mx("alias.example");
  ASSERT_EQ(m.records.size(), 1u);
  EXPECT_EQ(m.records[0].host, "mx.target.example");

  // An insecure link makes the whole answer insecure.
  set("middle.example", T::CNAME, {"target.example."}, false);
  EXPECT_EQ(resolver().mx("alias.example").status, DnsStatus::insecure);
}

TEST_F(DnsTest, InvalidNamesNeverQueried) {
  const std::vector<std::string> bad = {
      "", ".", "a..b", "bad name.example", "exa`mple.com", "a\\046b.example", std::string(64, 'a') + ".example",
      std::string(250, 'a').insert(50, ".").insert(100, ".").insert(150, ".").insert(200, "."), "tab\t.example",
      // one rule with the rest of tlsp (tlsp/base/domain_name.h): `_` only
      // in leading underscore labels, no hyphen at a label's ends, valid
      // A-labels only, no U-labels, no numeric last label
      "a_b.example", "mx._tcp.example", "mx-.example", "-mx.example", "xn--a.example", "b\xc3\xbc" "cher.example",
      "192.0.2.1"};
  for (const auto& name : bad) {
    auto r = resolver().mx(name);
    EXPECT_EQ(r.status, DnsStatus::servfail) << name;
    EXPECT_NE(r.detail.find("invalid name"), std::string::npos) << r.detail;
    EXPECT_EQ(resolver().addresses(name).status, DnsStatus::servfail);
  }
  EXPECT_EQ(responder.query_count(), 0u);
}

TEST_F(DnsTest, ServerSyntax) {
  EXPECT_EQ(resolver().server_text(), responder.server());
  ResolverConfig c;
  c.server = "[::1]:5353";
  EXPECT_EQ(Resolver(c).server_text(), "[::1]:5353");
  c.server = "192.0.2.53";
  EXPECT_EQ(Resolver(c).server_text(), "192.0.2.53:53");
  for (std::string bad : {"300.1.1.1", "127.0.0.1:0", "127.0.0.1:65536", "[::1", "[::1]53", "dns.example:53",
                          "127.0.0.1:", "127.0.0.1:5x"}) {
    c.server = bad;
    EXPECT_THROW(Resolver{c}, std::invalid_argument) << bad;
  }
}

TEST_F(DnsTest, ConcurrentLookups) {
  set("c.example", T::MX, {"10 mx.c.example."});
  set("mx.c.example", T::A, {"192.0.2.10"});
  set("mx.c.example", T::AAAA, {"2001:db8::10"}, false);
  const Resolver r = resolver();
  constexpr int kThreads = 6;
  constexpr int kRounds = 15;
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < kRounds; ++i) {
        auto m = r.mx("c.example");
        auto a = r.addresses("mx.c.example");
        if (m.status == DnsStatus::secure && m.records.size() == 1 && m.records[0].host == "mx.c.example" &&
            a.status == DnsStatus::insecure && a.records.size() == 2)
          ++good;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.load(), kThreads * kRounds);
}

// A hand-made query (no ldns in the test): id 0x1234, RD plus `flags`
// (0x0020: AD), and with `dnssec_ok` an EDNS0 OPT asking for DNSSEC
// records with a 1232-byte UDP size.
std::string raw_query(const std::string& name, uint16_t type = T::A, uint8_t flags = 0, bool dnssec_ok = false) {
  std::string q = {0x12, 0x34, 0x01, static_cast<char>(flags), 0, 1, 0, 0, 0, 0, 0, static_cast<char>(dnssec_ok)};
  size_t start = 0;
  while (start <= name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    q.push_back(static_cast<char>(dot - start));
    q += name.substr(start, dot - start);
    start = dot + 1;
  }
  q += std::string{0, static_cast<char>(type >> 8), static_cast<char>(type & 0xFF), 0, 1};
  if (dnssec_ok) q += std::string{0, 0, 41, 0x04, static_cast<char>(0xD0), 0, 0, static_cast<char>(0x80), 0, 0, 0};
  return q;
}

// A UDP socket aimed at the responder, for raw exchanges.
class RawClient {
 public:
  explicit RawClient(uint16_t port) : fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
    to_.sin_family = AF_INET;
    to_.sin_port = htons(port);
    ::inet_pton(AF_INET, "127.0.0.1", &to_.sin_addr);
  }
  ~RawClient() { ::close(fd_); }
  void send(const std::string& bytes) {
    ::sendto(fd_, bytes.data(), bytes.size(), 0, reinterpret_cast<const sockaddr*>(&to_), sizeof to_);
  }
  // The next datagram, or "" after two seconds.
  std::string receive() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 2000) != 1) return {};
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  }
  const sockaddr_in& address() const { return to_; }

 private:
  int fd_;
  sockaddr_in to_{};
};

struct Header {
  uint16_t id, ancount;
  bool aa, tc, ad;
  int rcode;
};
Header header(const std::string& m) {
  auto u = [&](size_t i) { return static_cast<uint8_t>(m[i]); };
  return Header{static_cast<uint16_t>(u(0) << 8 | u(1)), static_cast<uint16_t>(u(6) << 8 | u(7)),
                (u(2) & 0x04) != 0, (u(2) & 0x02) != 0, (u(3) & 0x20) != 0, u(3) & 0x0F};
}

TEST_F(DnsTest, ResponderWireDetails) {
  set("ok.example", T::A, {"192.0.2.20"});
  std::vector<std::string> big;
  for (int i = 0; i < 5; ++i) big.push_back("\"" + std::string(200, 'y') + "\"");
  set("big.example", T::TXT, big);
  RawClient c(responder.port());

  // No DO, no AD: never AD, and no RRSIG.
  c.send(raw_query("ok.example"));
  std::string m = c.receive();
  ASSERT_GE(m.size(), 12u);
  Header h = header(m);
  EXPECT_EQ(h.id, 0x1234);
  EXPECT_EQ(h.rcode, 0);
  EXPECT_TRUE(h.aa);
  EXPECT_FALSE(h.ad);
  EXPECT_EQ(h.ancount, 1);

  // AD in the query: AD in the answer (RFC 6840 §5.7), still no RRSIG.
  c.send(raw_query("ok.example", T::A, 0x20));
  h = header(c.receive());
  EXPECT_TRUE(h.ad);
  EXPECT_EQ(h.ancount, 1);

  // DO: AD and the record's RRSIG.
  c.send(raw_query("ok.example", T::A, 0, true));
  h = header(c.receive());
  EXPECT_TRUE(h.ad);
  EXPECT_EQ(h.ancount, 2);

  // Without EDNS the limit is 512 octets: 1 kB of TXT comes back truncated.
  c.send(raw_query("big.example", T::TXT));
  m = c.receive();
  ASSERT_GE(m.size(), 12u);
  h = header(m);
  EXPECT_TRUE(h.tc);
  EXPECT_EQ(h.ancount, 0);
  EXPECT_LE(m.size(), 512u);
  // With EDNS (1232) it fits.
  c.send(raw_query("big.example", T::TXT, 0, true));
  h = header(c.receive());
  EXPECT_FALSE(h.tc);
  EXPECT_EQ(h.ancount, 6);
}

TEST_F(DnsTest, ResponderIgnoresGarbage) {
  set("ok.example", T::A, {"192.0.2.20"});
  RawClient c(responder.port());
  std::string response = raw_query("ok.example");
  response[2] = static_cast<char>(0x81);  // QR: an answer, not a query
  c.send(std::string(3, '\x01'));
  c.send(std::string(600, '\xff'));
  c.send(raw_query("ok.example").substr(0, 20));
  c.send(response);
  c.send(raw_query("ok.example"));
  // Datagrams are served in order: the first reply is to the last query.
  std::string m = c.receive();
  ASSERT_GE(m.size(), 12u);
  EXPECT_EQ(header(m).id, 0x1234);
  EXPECT_EQ(header(m).rcode, 0);
  EXPECT_EQ(responder.query_count(), 1u);

  // Over TCP, a message above the limit closes the connection.
  const sockaddr_in& to = c.address();
  int tcp = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(::connect(tcp, reinterpret_cast<const sockaddr*>(&to), sizeof to), 0);
  std::string huge = {'\xff', '\xff'};
  huge += std::string(100, 'z');
  ::send(tcp, huge.data(), huge.size(), MSG_NOSIGNAL);
  pollfd t{tcp, POLLIN, 0};
  ASSERT_EQ(::poll(&t, 1, 2000), 1);
  char buf[64];
  EXPECT_LE(::recv(tcp, buf, sizeof buf, 0), 0);
  ::close(tcp);

  // And it still answers.
  EXPECT_EQ(resolver().addresses("ok.example").status, DnsStatus::secure);
}

TEST_F(DnsTest, TcpConnectionsAreCapped) {
  std::vector<std::string> rdata;
  for (int i = 0; i < 10; ++i) rdata.push_back("\"" + std::string(200, 'z') + "\"");
  set("big.example", T::TXT, rdata);
  RawClient c(responder.port());
  const sockaddr_in& to = c.address();
  std::vector<int> open;
  for (size_t i = 0; i <= tlsp::sim::kMaxTcpConnections; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_EQ(::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to), 0);
    open.push_back(fd);
  }
  // The one over the limit is closed at once.
  pollfd p{open.back(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 2000), 1);
  char buf[16];
  EXPECT_LE(::recv(open.back(), buf, sizeof buf, 0), 0);
  // While the others are held, TCP fallback has no room; once they are
  // gone it works again.
  for (int fd : open) ::close(fd);
  auto r = resolver().txt("big.example");
  EXPECT_EQ(r.status, DnsStatus::secure) << r.detail;
  EXPECT_EQ(r.records.size(), 10u);
}

TEST_F(DnsTest, BadRdataRejectedBySet) {
  EXPECT_THROW(set("x.example", T::A, {"not-an-address"}), std::invalid_argument);
  EXPECT_THROW(set("x.example", T::MX, {"ten mx.example."}), std::invalid_argument);
  EXPECT_EQ(resolver().addresses("x.example").status, DnsStatus::nxdomain);
}

size_t open_fds() {
  size_t n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (::readdir(d)) ++n;
    ::closedir(d);
  }
  return n;
}

TEST(DnsResponderLifecycle, StopClosesEverythingAndRestarts) {
  const size_t before = open_fds();
  {
    DnsResponder r;
    r.start();
    EXPECT_NE(r.port(), 0);
    EXPECT_THROW(r.start(), std::runtime_error);
    // A TCP client left connected must not keep the responder alive.
    int tcp = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(r.port());
    ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    ASSERT_EQ(::connect(tcp, reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
    r.stop();
    r.stop();
    ::close(tcp);
    r.start("127.0.0.1", 0);
    DnsRrset a;
    a.name = "again.example";
    a.type = T::A;
    a.rdata = {"192.0.2.30"};
    r.set(a);
    ResolverConfig c;
    c.server = r.server();
    EXPECT_EQ(Resolver(c).addresses("again.example").records, (std::vector<std::string>{"192.0.2.30"}));
  }  // the destructor stops it
  EXPECT_EQ(open_fds(), before);
  EXPECT_THROW(DnsResponder().start("not-an-ip"), std::runtime_error);
}

}  // namespace
