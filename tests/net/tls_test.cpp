// tls_test.cpp — tlsp::Stream and the relay's TLS (tlsp/stream.h,
// tlsp/tls.h) with real handshakes on 127.0.0.1, certificates from the test
// PKI (tlsp/sim/test_pki.h).
//
// What is proved:
//  * every pair (client minimum x server version set), with and without
//    the legacy security level: the version agreed, or a refusal, exactly
//    as the sets predict; version_refused in both directions (server too
//    old, server too new) and not for other failures (a server that drops
//    the connection after the ClientHello);
//  * the WebPKI status for every CertKind, wildcards, a pinned time;
//  * DANE live in the handshake gives the same answer as verify_dane() on
//    the same chain, over a table of records (EE/TA match and mismatch,
//    names, dates, unusable records);
//  * the server sees the SNI;
//  * read_line() bounds, timeouts, eof; buffered()/discard_buffer().
// Every wait is bounded (kIoTimeout); nothing sleeps to wait for an event.
#include <gtest/gtest.h>

#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <thread>

#include "test_support.h"
#include "tlsp/dane.h"
#include "tlsp/sim/test_pki.h"
#include "tlsp/stream.h"
#include "tlsp/tls.h"

namespace {

using namespace tlsp;
using namespace std::chrono_literals;
using sim::CertKind;
using sim::TestCert;
using sim::TestPki;

constexpr std::chrono::milliseconds kIoTimeout = 5s;
constexpr const char* kHost = "mx.example.org";

// Each TempDir here is named tlsp-tls-test-XXXXXX.
struct TempDir : tlsp::testing_support::TempDir {
  TempDir() : tlsp::testing_support::TempDir("tlsp-tls-test") {}
};

// One PKI for the whole program: key generation is the slow part.
struct Shared {
  TempDir dir;
  TestPki pki{dir.path() + "/pki"};
  TestCert valid = pki.issue({kHost, "*.wild.example.org"});
};
Shared& shared() {
  static Shared s;
  return s;
}

// A server for one connection on 127.0.0.1: accepts (bounded), runs `body`
// on its own thread, joined by the destructor.
class OneConnectionServer {
 public:
  explicit OneConnectionServer(std::function<void(Stream&)> body) {
    std::string error;
    listen_fd_ = listen_tcp("127.0.0.1", 0, 4, error);
    if (listen_fd_ < 0) throw std::runtime_error(error);
    port_ = bound_port(listen_fd_);
    thread_ = std::thread([this, body = std::move(body)] {
      pollfd p{listen_fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(kIoTimeout.count())) != 1) return;
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      Stream s(fd);
      s.set_timeout(kIoTimeout);
      body(s);
    });
  }
  ~OneConnectionServer() {
    thread_.join();
    close(listen_fd_);
  }
  uint16_t port() const { return port_; }

 private:
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
};

Stream connect_to(uint16_t port) {
  std::string error;
  int fd = connect_tcp("127.0.0.1", port, kIoTimeout, error);
  if (fd < 0) throw std::runtime_error(error);
  Stream s(fd);
  s.set_timeout(kIoTimeout);
  return s;
}

// A TLS server that answers one line with the same line, and what it saw.
struct HandshakeRun {
  TlsServerResult server;
  TlsClientResult client;
  std::string echoed;
};

HandshakeRun handshake(SSL_CTX* server_ctx, const TlsClientParams& params) {
  HandshakeRun run;
  {
    OneConnectionServer server([&](Stream& s) {
      run.server = s.start_tls_server(server_ctx);
      if (!run.server.ok) return;
      std::string line;
      if (s.read_line(line, 100) == IoStatus::ok) s.write_all(line + "\r\n");
    });
    Stream c = connect_to(server.port());
    run.client = c.start_tls_client(params);
    if (run.client.ok && c.write_all("ping\r\n") == IoStatus::ok) c.read_line(run.echoed, 100);
  }
  return run;
}

TlsClientParams client_params(TlsVersion min, bool legacy) {
  TlsClientParams p;
  p.sni = kHost;
  p.min_version = min;
  p.legacy_security_level = legacy;
  p.timeout = kIoTimeout;
  return p;
}

constexpr TlsVersion kAll[] = {TlsVersion::tls1_0, TlsVersion::tls1_1, TlsVersion::tls1_2, TlsVersion::tls1_3};

TlsVersionSet set_of(std::initializer_list<TlsVersion> vs) {
  TlsVersionSet s = 0;
  for (TlsVersion v : vs) s |= version_bit(v);
  return s;
}

std::string set_text(TlsVersionSet s) {
  std::string t;
  for (TlsVersion v : kAll)
    if (s & version_bit(v)) t += (t.empty() ? "" : ",") + std::string(to_string(v));
  return "{" + t + "}";
}

// ----------------------------------------------------------- versions

// Every client minimum against every server set, with and without the
// legacy level. Prediction: the client offers min..1.3; the highest common
// version is agreed; below TLS 1.2 only at the legacy level; no common
// version is version_refused.
TEST(TlsVersions, EveryPairAgreesWithThePrediction) {
  const TestCert& cert = shared().valid;
  const TlsVersionSet server_sets[] = {
      set_of({TlsVersion::tls1_0}),
      set_of({TlsVersion::tls1_1}),
      set_of({TlsVersion::tls1_2}),
      set_of({TlsVersion::tls1_3}),
      set_of({TlsVersion::tls1_0, TlsVersion::tls1_1}),
      set_of({TlsVersion::tls1_0, TlsVersion::tls1_3}),  // a hole
      kAllTlsVersions,
  };
  for (TlsVersionSet server_set : server_sets) {
    SslCtxPtr ctx = make_server_context(cert.cert_file, cert.key_file, server_set);
    for (TlsVersion min : kAll) {
      for (bool legacy : {false, true}) {
        SCOPED_TRACE("server " + set_text(server_set) + ", client min " + std::string(to_string(min)) +
                     (legacy ? ", legacy level" : ""));
        TlsVersionSet offer = 0;
        for (TlsVersion v : kAll)
          if (v >= min) offer |= version_bit(v);
        TlsVersion agreed = TlsVersion::none;
        for (TlsVersion v : kAll)
          if (offer & server_set & version_bit(v)) agreed = v;
        const bool expect_ok = agreed != TlsVersion::none && (agreed >= TlsVersion::tls1_2 || legacy);

        HandshakeRun run = handshake(ctx.get(), client_params(min, legacy));
        EXPECT_EQ(run.client.ok, expect_ok) << run.client.error;
        EXPECT_EQ(run.server.ok, expect_ok) << run.server.error;
        if (expect_ok) {
          EXPECT_EQ(run.client.version, agreed);
          EXPECT_EQ(run.server.version, agreed);
          EXPECT_EQ(run.echoed, "ping");
          EXPECT_FALSE(run.client.cipher.empty());
          EXPECT_EQ(run.client.cipher, run.server.cipher);
        } else {
          EXPECT_EQ(run.client.version, TlsVersion::none);
          EXPECT_TRUE(run.client.version_refused) << run.client.error;
        }
      }
    }
  }
}

// The client's own choice of versions (a test peer playing an old client):
// a server that is too new refuses it as surely as one too old.
TEST(TlsVersions, RefusedBothDirections) {
  const TestCert& cert = shared().valid;
  {
    SCOPED_TRACE("server too old");
    SslCtxPtr ctx =
        make_server_context(cert.cert_file, cert.key_file, set_of({TlsVersion::tls1_0, TlsVersion::tls1_1}));
    HandshakeRun run = handshake(ctx.get(), client_params(TlsVersion::tls1_2, false));
    EXPECT_FALSE(run.client.ok);
    EXPECT_TRUE(run.client.version_refused) << run.client.error;
    EXPECT_FALSE(run.server.ok);
  }
  {
    SCOPED_TRACE("server too new");
    SslCtxPtr ctx =
        make_server_context(cert.cert_file, cert.key_file, set_of({TlsVersion::tls1_2, TlsVersion::tls1_3}));
    TlsClientParams p = client_params(TlsVersion::tls1_0, true);
    p.offer_versions = set_of({TlsVersion::tls1_0, TlsVersion::tls1_1});
    HandshakeRun run = handshake(ctx.get(), p);
    EXPECT_FALSE(run.client.ok);
    EXPECT_TRUE(run.client.version_refused) << run.client.error;
    EXPECT_FALSE(run.server.ok);
  }
  {
    SCOPED_TRACE("client offers a hole the server sits in");
    SslCtxPtr ctx = make_server_context(cert.cert_file, cert.key_file, set_of({TlsVersion::tls1_2}));
    TlsClientParams p = client_params(TlsVersion::tls1_0, true);
    p.offer_versions = set_of({TlsVersion::tls1_1, TlsVersion::tls1_3});
    HandshakeRun run = handshake(ctx.get(), p);
    EXPECT_FALSE(run.client.ok);
    EXPECT_TRUE(run.client.version_refused) << run.client.error;
  }
  {
    SCOPED_TRACE("an old client at the legacy level completes");
    SslCtxPtr ctx = make_server_context(cert.cert_file, cert.key_file);
    TlsClientParams p = client_params(TlsVersion::tls1_0, true);
    p.offer_versions = set_of({TlsVersion::tls1_0});
    HandshakeRun run = handshake(ctx.get(), p);
    EXPECT_TRUE(run.client.ok) << run.client.error;
    EXPECT_EQ(run.server.version, TlsVersion::tls1_0);
    EXPECT_EQ(run.echoed, "ping");
  }
}

// A server that reads the ClientHello and hangs up: a failure, but not a
// version refusal.
TEST(TlsVersions, BrokenServerIsNotAVersionRefusal) {
  OneConnectionServer server([](Stream& s) {
    std::string hello;
    s.read_some(hello, 5);  // the record header of the ClientHello
  });
  Stream c = connect_to(server.port());
  TlsClientResult r = c.start_tls_client(client_params(TlsVersion::tls1_2, false));
  EXPECT_FALSE(r.ok);
  EXPECT_FALSE(r.version_refused) << r.error;
  EXPECT_FALSE(r.error.empty());
  EXPECT_FALSE(c.is_tls());
}

TEST(TlsVersions, ServerSeesSni) {
  SslCtxPtr ctx = make_server_context(shared().valid.cert_file, shared().valid.key_file);
  TlsClientParams p = client_params(TlsVersion::tls1_2, false);
  p.sni = "mx9.example.net";
  HandshakeRun run = handshake(ctx.get(), p);
  ASSERT_TRUE(run.client.ok) << run.client.error;
  EXPECT_EQ(run.server.sni, "mx9.example.net");
  p.min_version = TlsVersion::tls1_0;
  p.legacy_security_level = true;
  p.offer_versions = set_of({TlsVersion::tls1_1});
  run = handshake(ctx.get(), p);
  ASSERT_TRUE(run.client.ok) << run.client.error;
  EXPECT_EQ(run.server.sni, "mx9.example.net");
  p.sni = "127.0.0.1";  // an address is never sent as SNI
  p.offer_versions = 0;
  run = handshake(ctx.get(), p);
  ASSERT_TRUE(run.client.ok) << run.client.error;
  EXPECT_EQ(run.server.sni, "");
}

TEST(TlsServer, ContextErrorsNameTheFile) {
  try {
    make_server_context("/nonexistent/cert.pem", shared().valid.key_file);
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/cert.pem"), std::string::npos) << e.what();
  }
  EXPECT_THROW(make_server_context(shared().valid.cert_file, shared().valid.key_file, 0), std::runtime_error);
}

// Megabytes through TLS each way: writes that must wait for the socket
// (WANT_WRITE) while the peer drains it, reads that assemble lines over
// many records, and a read that times out inside TLS. (One SSL handle is
// never used by two threads at once.)
TEST(TlsStream, BulkTransferAndTimeout) {
  SslCtxPtr ctx = make_server_context(shared().valid.cert_file, shared().valid.key_file);
  constexpr size_t kLines = 20000;
  const std::string payload_line(100, 'p');
  std::string block;
  for (size_t i = 0; i < kLines; ++i) block += payload_line + "\r\n";
  block += "END\r\n";
  size_t server_lines = 0;
  IoStatus server_write = IoStatus::error;
  {
    OneConnectionServer server([&](Stream& s) {
      if (!s.start_tls_server(ctx.get()).ok) return;
      std::string line;
      while (s.read_line(line, 200) == IoStatus::ok && line != "END") server_lines += line == payload_line ? 1 : 0;
      server_write = s.write_all(block);
      // Then say nothing: the client's next read must time out.
      s.read_line(line, 200);
    });
    Stream c = connect_to(server.port());
    ASSERT_TRUE(c.start_tls_client(client_params(TlsVersion::tls1_2, false)).ok);
    EXPECT_EQ(c.write_all(block), IoStatus::ok);
    size_t echoed = 0;
    std::string line;
    while (c.read_line(line, 200) == IoStatus::ok && line != "END") echoed += line == payload_line ? 1 : 0;
    EXPECT_EQ(echoed, kLines);
    c.set_timeout(100ms);
    EXPECT_EQ(c.read_line(line, 200), IoStatus::timeout);
    c.write_all("BYE\r\n");
  }
  EXPECT_EQ(server_lines, kLines);
  EXPECT_EQ(server_write, IoStatus::ok);
}

// ------------------------------------------------------------- WebPKI

TEST(TlsWebPki, EveryCertKind) {
  struct Case {
    CertKind kind;
    CertStatus want;
  };
  const Case cases[] = {{CertKind::valid, CertStatus::valid},
                        {CertKind::expired, CertStatus::expired},
                        {CertKind::wrong_name, CertStatus::wrong_name},
                        {CertKind::self_signed, CertStatus::self_signed},
                        {CertKind::untrusted, CertStatus::untrusted}};
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(to_string(c.want)));
    TestCert cert = shared().pki.issue({kHost}, c.kind);
    SslCtxPtr ctx = make_server_context(cert.cert_file, cert.key_file);
    TlsClientParams p = client_params(TlsVersion::tls1_2, false);
    p.ca_file = shared().pki.ca_file();
    HandshakeRun run = handshake(ctx.get(), p);
    ASSERT_TRUE(run.client.ok) << run.client.error;  // never fails on the certificate
    EXPECT_EQ(run.client.webpki, c.want) << run.client.webpki_detail;
    EXPECT_EQ(run.client.webpki_detail.empty(), false);
    EXPECT_NE(run.client.peer_subject.find("CN="), std::string::npos) << run.client.peer_subject;
  }
}

TEST(TlsWebPki, WildcardsAndPinnedTime) {
  SslCtxPtr ctx = make_server_context(shared().valid.cert_file, shared().valid.key_file);
  TlsClientParams p = client_params(TlsVersion::tls1_2, false);
  p.ca_file = shared().pki.ca_file();
  p.sni = "a.wild.example.org";
  EXPECT_EQ(handshake(ctx.get(), p).client.webpki, CertStatus::valid);
  p.sni = "a.b.wild.example.org";  // one label only
  EXPECT_EQ(handshake(ctx.get(), p).client.webpki, CertStatus::wrong_name);
  p.sni = kHost;
  p.verify_time = static_cast<int64_t>(std::time(nullptr)) + 400LL * 86400;  // after notAfter
  EXPECT_EQ(handshake(ctx.get(), p).client.webpki, CertStatus::expired);
  p.verify_time.reset();
  p.ca_file = shared().dir.path() + "/missing.pem";
  HandshakeRun run = handshake(ctx.get(), p);
  EXPECT_TRUE(run.client.ok);
  EXPECT_EQ(run.client.webpki, CertStatus::untrusted);
  EXPECT_NE(run.client.webpki_detail.find("missing.pem"), std::string::npos) << run.client.webpki_detail;
}

// --------------------------------------------------------------- DANE

TEST(TlsDane, LiveAgreesWithVerifyDane) {
  TestPki& pki = shared().pki;
  const TestCert valid = shared().valid;
  const TestCert other = pki.issue({"other.example.org"});
  const TestCert wrong = pki.issue({kHost}, CertKind::wrong_name);
  const TestCert expired = pki.issue({kHost}, CertKind::expired);
  const TestCert self = pki.issue({kHost}, CertKind::self_signed);
  const TestCert untrusted = pki.issue({kHost}, CertKind::untrusted);
  TlsaRecord bad_selector = TestPki::tlsa_for(valid, 3, 1, 1);
  bad_selector.selector = 7;
  TlsaRecord bad_length = TestPki::tlsa_for(valid, 3, 1, 1);
  bad_length.data.pop_back();
  TlsaRecord bad_full = TestPki::tlsa_for(valid, 3, 1, 0);
  bad_full.data.resize(bad_full.data.size() / 2);

  struct Case {
    const char* name;
    const TestCert* cert;
    std::vector<TlsaRecord> records;
    bool authenticated;
    TlsaKindSet kinds;
  };
  auto k = [](std::initializer_list<TlsaKind> ks) {
    TlsaKindSet s = 0;
    for (TlsaKind x : ks) s |= tlsa_bit(x);
    return s;
  };
  using K = TlsaKind;
  const std::vector<Case> cases = {
      {"ee spki sha256", &valid, {TestPki::tlsa_for(valid, 3, 1, 1)}, true, k({K::dane_ee_match})},
      {"ee cert sha512", &valid, {TestPki::tlsa_for(valid, 3, 0, 2)}, true, k({K::dane_ee_match})},
      {"ee full spki", &valid, {TestPki::tlsa_for(valid, 3, 1, 0)}, true, k({K::dane_ee_match})},
      {"ee mismatch", &valid, {TestPki::tlsa_for(other, 3, 1, 1)}, false, k({K::dane_ee_mismatch})},
      {"ee on self-signed", &self, {TestPki::tlsa_for(self, 3, 1, 1)}, true, k({K::dane_ee_match})},
      {"ee on expired", &expired, {TestPki::tlsa_for(expired, 3, 1, 1)}, true, k({K::dane_ee_match})},
      {"ee on wrong name", &wrong, {TestPki::tlsa_for(wrong, 3, 1, 1)}, true, k({K::dane_ee_match})},
      {"ta match", &valid, {TestPki::tlsa_for(valid, 2, 0, 1)}, true, k({K::dane_ta_match})},
      {"ta spki match", &valid, {TestPki::tlsa_for(valid, 2, 1, 1)}, true, k({K::dane_ta_match})},
      {"ta untrusted root", &untrusted, {TestPki::tlsa_for(untrusted, 2, 1, 1)}, true, k({K::dane_ta_match})},
      {"ta mismatch", &untrusted, {TestPki::tlsa_for(valid, 2, 1, 1)}, false, k({K::dane_ta_mismatch})},
      {"ta wrong name", &wrong, {TestPki::tlsa_for(wrong, 2, 1, 1)}, false, k({K::dane_ta_match})},
      {"ta expired", &expired, {TestPki::tlsa_for(expired, 2, 1, 1)}, false, k({K::dane_ta_match})},
      {"ee and ta, ee matches",
       &untrusted,
       {TestPki::tlsa_for(untrusted, 3, 1, 1), TestPki::tlsa_for(valid, 2, 1, 1)},
       true,
       k({K::dane_ee_match, K::dane_ta_mismatch})},
      {"unusable only",
       &valid,
       {TestPki::tlsa_for(valid, 0, 1, 1), TestPki::tlsa_for(valid, 1, 1, 1), bad_selector},
       false,
       k({K::pkix_ta, K::pkix_ee, K::bad_selector})},
      {"unusable and a match",
       &valid,
       {TestPki::tlsa_for(valid, 3, 1, 3), bad_length, bad_full, TestPki::tlsa_for(valid, 3, 1, 1)},
       true,
       k({K::bad_mtype, K::bad_length, K::dane_ee_match})},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    SslCtxPtr ctx = make_server_context(c.cert->cert_file, c.cert->key_file);
    TlsClientParams p = client_params(TlsVersion::tls1_2, false);
    p.tlsa = c.records;
    HandshakeRun run = handshake(ctx.get(), p);
    ASSERT_TRUE(run.client.ok) << run.client.error;
    const TlsClientResult& live = run.client;

    const std::vector<std::string> names = {kHost};
    DaneVerification offline = verify_dane_pem(c.cert->chain_pem, c.records, names);
    ASSERT_TRUE(offline.problem.empty()) << offline.problem;
    EXPECT_EQ(live.dane_authenticated, offline.dane_authenticated()) << live.dane_detail;
    EXPECT_EQ(live.dane_depth, offline.match_depth);
    EXPECT_EQ(live.tlsa_kinds, offline.kinds);
    EXPECT_EQ(live.dane_cert, offline.cert);
    // And both say what the table says.
    EXPECT_EQ(live.dane_authenticated, c.authenticated) << live.dane_detail;
    EXPECT_EQ(live.tlsa_kinds, c.kinds) << live.dane_detail;
  }
}

TEST(TlsDane, TaNameCheckUsesDaneNames) {
  // A DANE-TA match on a leaf named for the next-hop domain, not the MX
  // host: accepted only when that domain is a reference name.
  const TestCert cert = shared().pki.issue({"example.net"});
  SslCtxPtr ctx = make_server_context(cert.cert_file, cert.key_file);
  TlsClientParams p = client_params(TlsVersion::tls1_2, false);
  p.tlsa = {TestPki::tlsa_for(cert, 2, 1, 1)};
  HandshakeRun run = handshake(ctx.get(), p);
  ASSERT_TRUE(run.client.ok);
  EXPECT_FALSE(run.client.dane_authenticated);
  EXPECT_EQ(run.client.dane_cert, CertStatus::wrong_name);
  EXPECT_EQ(run.client.tlsa_kinds, tlsa_bit(TlsaKind::dane_ta_match));
  p.dane_names = {"example.net"};
  run = handshake(ctx.get(), p);
  ASSERT_TRUE(run.client.ok);
  EXPECT_TRUE(run.client.dane_authenticated) << run.client.dane_detail;
  EXPECT_EQ(run.client.dane_depth, 1);
  EXPECT_EQ(run.client.dane_cert, CertStatus::valid);
  const std::vector<std::string> names = {kHost, "example.net"};
  EXPECT_TRUE(verify_dane_pem(cert.chain_pem, p.tlsa, names).dane_authenticated());
}

TEST(TlsDane, PinnedTimeExpiresTheChain) {
  const TestCert& cert = shared().valid;
  SslCtxPtr ctx = make_server_context(cert.cert_file, cert.key_file);
  TlsClientParams p = client_params(TlsVersion::tls1_2, false);
  p.tlsa = {TestPki::tlsa_for(cert, 2, 1, 1)};
  p.verify_time = static_cast<int64_t>(std::time(nullptr)) + 400LL * 86400;
  HandshakeRun run = handshake(ctx.get(), p);
  ASSERT_TRUE(run.client.ok);
  EXPECT_FALSE(run.client.dane_authenticated);
  EXPECT_EQ(run.client.dane_cert, CertStatus::expired);
  DaneVerifyOptions o;
  o.verify_time = p.verify_time;
  const std::vector<std::string> names = {kHost};
  EXPECT_EQ(verify_dane_pem(cert.chain_pem, p.tlsa, names, o).cert, CertStatus::expired);
}

// ------------------------------------------------------------- Stream

// A connected pair of sockets; the test writes on one end and reads
// through a Stream on the other.
struct Pair {
  Stream reader{-1};
  int writer = -1;
  Pair() {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw std::runtime_error("socketpair");
    reader = Stream(sv[0]);
    reader.set_timeout(kIoTimeout);
    writer = sv[1];
  }
  ~Pair() {
    if (writer >= 0) close(writer);
  }
  void send(const std::string& s) const {
    ASSERT_EQ(::send(writer, s.data(), s.size(), 0), static_cast<ssize_t>(s.size()));
  }
  void close_writer() {
    close(writer);
    writer = -1;
  }
};

TEST(StreamLines, BoundsAndEndings) {
  Pair p;
  p.send("HELO a\r\nNOOP\n12345\r\n123456\r\n");
  std::string line;
  EXPECT_EQ(p.reader.read_line(line, 10), IoStatus::ok);
  EXPECT_EQ(line, "HELO a");
  EXPECT_EQ(p.reader.read_line(line, 10), IoStatus::ok);
  EXPECT_EQ(line, "NOOP");  // a bare LF ends a line too
  EXPECT_EQ(p.reader.read_line(line, 5), IoStatus::ok);
  EXPECT_EQ(line, "12345");  // exactly max_len fits
  EXPECT_EQ(p.reader.read_line(line, 5), IoStatus::too_long);
  EXPECT_EQ(line, "");

  // A line far longer than the bound and than one read: consumed to its
  // LF, and the next line is intact.
  const std::string huge(200000, 'x');
  std::thread writer([&] { p.send(huge + "\r\nQUIT\r\n"); });
  EXPECT_EQ(p.reader.read_line(line, 1000), IoStatus::too_long);
  EXPECT_EQ(p.reader.read_line(line, 1000), IoStatus::ok);
  EXPECT_EQ(line, "QUIT");
  writer.join();

  p.send("tail without end");
  p.close_writer();
  EXPECT_EQ(p.reader.read_line(line, 1000), IoStatus::eof);
}

TEST(StreamLines, TimeoutThenCompletes) {
  Pair p;
  p.reader.set_timeout(100ms);
  p.send("partial");
  std::string line;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(p.reader.read_line(line, 100), IoStatus::timeout);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, 90ms);
  EXPECT_LT(took, 2s);
  p.send(" line\r\n");
  EXPECT_EQ(p.reader.read_line(line, 100), IoStatus::ok);
  EXPECT_EQ(line, "partial line");
}

// A caller reading in slices (the relay looks at the clock and the stress
// flag between them) must get the same lines as one long read: a line
// being dropped as too long stays dropped across a timeout, and its tail is
// not a line of its own.
TEST(StreamLines, ATimeoutInsideAnOverlongLineKeepsDiscardingIt) {
  Pair p;
  p.reader.set_timeout(100ms);
  p.send(std::string(300, 'x'));
  std::string line;
  EXPECT_EQ(p.reader.read_line(line, 100), IoStatus::timeout);
  p.send("tail\r\nNEXT\r\n");
  EXPECT_EQ(p.reader.read_line(line, 100), IoStatus::too_long);
  ASSERT_EQ(p.reader.read_line(line, 100), IoStatus::ok);
  EXPECT_EQ(line, "NEXT");
}

// close_gracefully() sends FIN (the peer reads the last bytes, then EOF) and
// drops what the peer still sends, for a bounded time.
TEST(StreamLines, CloseGracefullyHalfClosesAndDrains) {
  Pair p;
  p.send("unread input\r\n");
  ASSERT_EQ(p.reader.write_all("421 bye\r\n"), IoStatus::ok);
  const auto start = std::chrono::steady_clock::now();
  p.reader.close_gracefully(200ms, 1 << 20);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  char buf[64];
  ssize_t n = ::recv(p.writer, buf, sizeof buf, 0);
  ASSERT_EQ(n, 9);
  EXPECT_EQ(std::string(buf, 9), "421 bye\r\n");
  EXPECT_EQ(::recv(p.writer, buf, sizeof buf, 0), 0);  // FIN
}

TEST(StreamLines, BufferedAndDiscard) {
  Pair p;
  p.send("STARTTLS\r\nMAIL FROM:<x@y>\r\n");
  std::string line;
  ASSERT_EQ(p.reader.read_line(line, 100), IoStatus::ok);
  EXPECT_EQ(line, "STARTTLS");
  EXPECT_EQ(p.reader.buffered(), std::string("MAIL FROM:<x@y>\r\n").size());
  p.reader.discard_buffer();
  EXPECT_EQ(p.reader.buffered(), 0u);
  p.send("EHLO b\r\n");
  ASSERT_EQ(p.reader.read_line(line, 100), IoStatus::ok);
  EXPECT_EQ(line, "EHLO b");
  std::string some;
  p.send("abcdef");
  ASSERT_EQ(p.reader.read_some(some, 4), IoStatus::ok);
  EXPECT_EQ(some, "abcd");
  EXPECT_EQ(p.reader.buffered(), 2u);
}

TEST(StreamSockets, ConnectErrorsAndAddresses) {
  std::string error;
  // A port nobody listens on (bound, then closed).
  int l = listen_tcp("127.0.0.1", 0, 1, error);
  ASSERT_GE(l, 0) << error;
  uint16_t port = bound_port(l);
  close(l);
  EXPECT_EQ(connect_tcp("127.0.0.1", port, kIoTimeout, error), -1);
  EXPECT_NE(error.find("127.0.0.1"), std::string::npos) << error;
  EXPECT_EQ(listen_tcp("not an address", 0, 1, error), -1);
  EXPECT_NE(error.find("`not an address`"), std::string::npos) << error;

  // A source address makes the server see that client.
  std::string seen;
  {
    OneConnectionServer server([&](Stream& s) { seen = s.peer_address(); });
    int fd = connect_tcp("127.0.0.1", server.port(), kIoTimeout, error, "127.0.0.7");
    ASSERT_GE(fd, 0) << error;
    Stream c(fd);
    EXPECT_EQ(c.local_address(), "127.0.0.7");
    EXPECT_EQ(c.peer_address(), "127.0.0.1");
    EXPECT_EQ(c.peer_port(), server.port());
  }
  EXPECT_EQ(seen, "127.0.0.7");
}

}  // namespace
