// smtp_peer_test.cpp — the scripted SMTP peers (tlsp/sim/smtp_peer.h)
// against each other on loopback: SmtpPeer as the server, submit_message()
// as the client, and a raw Stream where a test needs to misbehave.
//
// What is proved: a message arrives intact in plaintext and over every TLS
// version (dot-stuffing both ways, the client address a source bind gives,
// EHLO name, SNI); STARTTLS failures are reported at the starttls stage
// (version refused, broken_tls) with the peer's record of them; require_tls
// gives 530; scripted replies fail the stage they script; several messages
// share one connection; input pipelined after STARTTLS is discarded; long
// lines are bounded; stop() ends idle sessions at once.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>

#include "test_support.h"
#include "tlsp/sim/smtp_peer.h"
#include "tlsp/sim/test_pki.h"
#include "tlsp/stream.h"

namespace {

using namespace tlsp;
using namespace tlsp::sim;
using namespace std::chrono_literals;

constexpr std::chrono::milliseconds kWait = 5s;

// Each TempDir here is named tlsp-peer-test-XXXXXX.
struct TempDir : tlsp::testing_support::TempDir {
  TempDir() : tlsp::testing_support::TempDir("tlsp-peer-test") {}
};

struct Shared {
  TempDir dir;
  TestPki pki{dir.path() + "/pki"};
  TestCert cert = pki.issue({"mx.peer.test"});
};
Shared& shared() {
  static Shared s;
  return s;
}

SmtpPeerConfig peer_config() {
  SmtpPeerConfig c;
  c.cert_file = shared().cert.cert_file;
  c.key_file = shared().cert.key_file;
  c.timeout = kWait;
  return c;
}

SubmitOptions submit_to(const SmtpPeer& peer) {
  SubmitOptions o;
  o.address = peer.address();
  o.port = peer.port();
  o.timeout = kWait;
  o.message.mail_from = "alice@sender.test";
  o.message.rcpts = {"bob@peer.test"};
  o.message.data = "Subject: hi\r\n\r\n.leading dot\r\n..two dots\nbare LF line\r\n.\r\nend\r\n";
  return o;
}

// What the server must hold after unstuffing: every line CR LF, the lone
// dot line of the body kept as a line with one dot.
const std::string kExpectedData = "Subject: hi\r\n\r\n.leading dot\r\n..two dots\r\nbare LF line\r\n.\r\nend\r\n";

TEST(SmtpPeer, PlaintextMessage) {
  SmtpPeerConfig c = peer_config();
  c.address = "127.0.0.3";
  SmtpPeer peer(c);
  SubmitOptions o = submit_to(peer);
  o.source_address = "127.0.0.9";
  o.ehlo_name = "sender.example";
  SubmitResult r = submit_message(o);
  ASSERT_TRUE(r.accepted) << to_string(r.failed_stage) << " " << r.reply << " " << r.error;
  EXPECT_EQ(r.code, 250);
  EXPECT_EQ(r.tls, TlsVersion::none);
  ASSERT_TRUE(peer.wait_for_messages(1, kWait));
  const PeerMessage m = peer.messages().at(0);
  EXPECT_EQ(m.mail_from, "alice@sender.test");
  EXPECT_EQ(m.rcpts, std::vector<std::string>{"bob@peer.test"});
  EXPECT_EQ(m.data, kExpectedData);
  EXPECT_EQ(m.tls, TlsVersion::none);
  EXPECT_EQ(m.client_address, "127.0.0.9");
  EXPECT_EQ(m.ehlo, "sender.example");
  ASSERT_TRUE(peer.wait_for_sessions(1, kWait));
  const PeerSession s = peer.sessions().at(0);
  EXPECT_FALSE(s.starttls);
  EXPECT_EQ(s.messages, 1u);
  EXPECT_EQ(s.commands, (std::vector<std::string>{"EHLO", "MAIL", "RCPT", "DATA", "QUIT"}));
}

TEST(SmtpPeer, MessageOverEveryTlsVersion) {
  SmtpPeer peer(peer_config());
  const TlsVersion versions[] = {TlsVersion::tls1_0, TlsVersion::tls1_1, TlsVersion::tls1_2, TlsVersion::tls1_3};
  for (TlsVersion v : versions) {
    SCOPED_TRACE(std::string(to_string(v)));
    SubmitOptions o = submit_to(peer);
    o.starttls = true;
    o.tls_versions = version_bit(v);
    o.sni = "mx.peer.test";
    SubmitResult r = submit_message(o);
    ASSERT_TRUE(r.accepted) << to_string(r.failed_stage) << " " << r.reply << " " << r.error;
    EXPECT_EQ(r.tls, v);
  }
  ASSERT_TRUE(peer.wait_for_messages(4, kWait));
  ASSERT_TRUE(peer.wait_for_sessions(4, kWait));
  const auto messages = peer.messages();
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(messages[i].tls, versions[i]);
    EXPECT_EQ(messages[i].sni, "mx.peer.test");
    EXPECT_EQ(messages[i].data, kExpectedData);
  }
  for (const PeerSession& s : peer.sessions()) {
    EXPECT_TRUE(s.starttls);
    EXPECT_FALSE(s.cipher.empty());
    // EHLO is asked again after the handshake.
    EXPECT_EQ(s.commands, (std::vector<std::string>{"EHLO", "STARTTLS", "EHLO", "MAIL", "RCPT", "DATA", "QUIT"}));
  }
}

TEST(SmtpPeer, StartTlsFailures) {
  {
    SCOPED_TRACE("no common version");
    SmtpPeerConfig c = peer_config();
    c.tls_versions = version_bit(TlsVersion::tls1_2) | version_bit(TlsVersion::tls1_3);
    SmtpPeer peer(c);
    SubmitOptions o = submit_to(peer);
    o.starttls = true;
    o.tls_versions = version_bit(TlsVersion::tls1_0) | version_bit(TlsVersion::tls1_1);
    SubmitResult r = submit_message(o);
    EXPECT_FALSE(r.accepted);
    EXPECT_EQ(r.failed_stage, SubmitStage::starttls);
    EXPECT_TRUE(r.version_refused) << r.error;
    ASSERT_TRUE(peer.wait_for_sessions(1, kWait));
    EXPECT_TRUE(peer.sessions()[0].starttls);
    EXPECT_FALSE(peer.sessions()[0].tls_error.empty());
    EXPECT_TRUE(peer.messages().empty());
  }
  {
    SCOPED_TRACE("broken tls");
    SmtpPeerConfig c = peer_config();
    c.broken_tls = true;
    SmtpPeer peer(c);
    SubmitOptions o = submit_to(peer);
    o.starttls = true;
    SubmitResult r = submit_message(o);
    EXPECT_EQ(r.failed_stage, SubmitStage::starttls);
    EXPECT_FALSE(r.version_refused) << r.error;
    ASSERT_TRUE(peer.wait_for_sessions(1, kWait));
    EXPECT_NE(peer.sessions()[0].tls_error.find("broken_tls"), std::string::npos);
  }
  {
    SCOPED_TRACE("not offered");
    SmtpPeerConfig c = peer_config();
    c.offer_starttls = false;
    SmtpPeer peer(c);
    SubmitOptions o = submit_to(peer);
    o.starttls = true;
    SubmitResult r = submit_message(o);
    EXPECT_EQ(r.failed_stage, SubmitStage::starttls);
    EXPECT_NE(r.error.find("does not offer"), std::string::npos) << r.error;
  }
}

TEST(SmtpPeer, RequireTls) {
  SmtpPeerConfig c = peer_config();
  c.require_tls = true;
  SmtpPeer peer(c);
  SubmitOptions o = submit_to(peer);
  SubmitResult r = submit_message(o);
  EXPECT_FALSE(r.accepted);
  EXPECT_EQ(r.failed_stage, SubmitStage::mail);
  EXPECT_EQ(r.code, 530);
  o.starttls = true;
  r = submit_message(o);
  EXPECT_TRUE(r.accepted) << r.reply << r.error;
  EXPECT_EQ(r.tls, TlsVersion::tls1_3);
}

TEST(SmtpPeer, ScriptedReplies) {
  {
    SmtpPeerConfig c = peer_config();
    c.rcpt_replies["nobody@peer.test"] = "550 5.1.1 no such user";
    SmtpPeer peer(c);
    SubmitOptions o = submit_to(peer);
    o.message.rcpts = {"Nobody@peer.test", "bob@peer.test"};
    SubmitResult r = submit_message(o);
    EXPECT_TRUE(r.accepted);
    EXPECT_EQ(r.rcpt_codes, (std::vector<int>{550, 250}));
    ASSERT_TRUE(peer.wait_for_messages(1, kWait));
    EXPECT_EQ(peer.messages()[0].rcpts, std::vector<std::string>{"bob@peer.test"});
    o.message.rcpts = {"nobody@peer.test"};
    r = submit_message(o);
    EXPECT_EQ(r.failed_stage, SubmitStage::rcpt);
    EXPECT_EQ(r.code, 550);
    EXPECT_NE(r.reply.find("5.1.1"), std::string::npos);
  }
  struct Case {
    std::string SmtpPeerConfig::*field;
    const char* reply;
    SubmitStage stage;
    int code;
  };
  const Case cases[] = {{&SmtpPeerConfig::greeting, "554 5.3.2 not accepting mail", SubmitStage::greeting, 554},
                        {&SmtpPeerConfig::mail_reply, "451 4.3.0 try again later", SubmitStage::mail, 451},
                        {&SmtpPeerConfig::rcpt_reply, "452 4.2.2 mailbox full", SubmitStage::rcpt, 452},
                        {&SmtpPeerConfig::data_reply, "554 5.3.0 no data today", SubmitStage::data, 554},
                        {&SmtpPeerConfig::data_end_reply, "554 5.7.1 rejected", SubmitStage::data, 554}};
  for (const Case& k : cases) {
    SCOPED_TRACE(k.reply);
    SmtpPeerConfig c = peer_config();
    c.*(k.field) = k.reply;
    SmtpPeer peer(c);
    SubmitResult r = submit_message(submit_to(peer));
    EXPECT_FALSE(r.accepted);
    EXPECT_EQ(r.failed_stage, k.stage);
    EXPECT_EQ(r.code, k.code);
    EXPECT_EQ(r.reply, k.reply);
    ASSERT_TRUE(peer.wait_for_sessions(1, kWait));
    EXPECT_TRUE(peer.messages().empty());
  }
}

TEST(SmtpPeer, SeveralMessagesOneConnection) {
  SmtpPeerConfig c = peer_config();
  c.rcpt_replies["bounce@peer.test"] = "550 5.1.1 no such user";
  SmtpPeer peer(c);
  SubmitOptions o = submit_to(peer);
  o.starttls = true;
  std::vector<SubmitMessage> ms = {{"a@s.test", {"x@peer.test"}, "one\r\n"},
                                   {"b@s.test", {"bounce@peer.test"}, "two\r\n"},
                                   {"c@s.test", {"y@peer.test", "z@peer.test"}, "three\r\n"}};
  std::vector<SubmitResult> rs = submit_messages(o, ms);
  ASSERT_EQ(rs.size(), 3u);
  EXPECT_TRUE(rs[0].accepted);
  EXPECT_EQ(rs[1].failed_stage, SubmitStage::rcpt);
  EXPECT_TRUE(rs[2].accepted);
  ASSERT_TRUE(peer.wait_for_sessions(1, kWait));
  EXPECT_EQ(peer.sessions().size(), 1u);
  EXPECT_EQ(peer.sessions()[0].messages, 2u);
  const auto m = peer.messages();
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[1].data, "three\r\n");
  EXPECT_EQ(m[1].rcpts.size(), 2u);
  EXPECT_EQ(m[1].tls, TlsVersion::tls1_3);
}

// Helpers for a hand-driven client.
std::string reply_of(Stream& s) {
  std::string all, line;
  while (s.read_line(line, 1000) == IoStatus::ok) {
    all += line + "\n";
    if (line.size() < 4 || line[3] == ' ') break;
  }
  return all;
}

Stream raw_connect(const SmtpPeer& peer) {
  std::string error;
  int fd = connect_tcp(peer.address(), peer.port(), kWait, error);
  if (fd < 0) throw std::runtime_error(error);
  Stream s(fd);
  s.set_timeout(kWait);
  return s;
}

// RFC 3207 §4.1: a NOOP sent in the clear right behind STARTTLS must not be
// answered inside the TLS session.
TEST(SmtpPeer, PipelinedInputAfterStartTlsIsDiscarded) {
  SmtpPeer peer(peer_config());
  {
    Stream s = raw_connect(peer);
    EXPECT_EQ(reply_of(s).substr(0, 3), "220");
    s.write_all("EHLO x\r\n");
    EXPECT_NE(reply_of(s).find("STARTTLS"), std::string::npos);
    s.write_all("STARTTLS\r\nNOOP\r\n");
    EXPECT_EQ(reply_of(s).substr(0, 3), "220");
    TlsClientParams p;
    p.timeout = kWait;
    ASSERT_TRUE(s.start_tls_client(p).ok);
    s.write_all("QUIT\r\n");
    EXPECT_EQ(reply_of(s).substr(0, 3), "221");
  }
  ASSERT_TRUE(peer.wait_for_sessions(1, kWait));
  EXPECT_EQ(peer.sessions()[0].commands, (std::vector<std::string>{"EHLO", "STARTTLS", "QUIT"}));
}

TEST(SmtpPeer, LongLinesAndOrder) {
  SmtpPeerConfig c = peer_config();
  c.max_line_length = 100;
  SmtpPeer peer(c);
  Stream s = raw_connect(peer);
  reply_of(s);
  s.write_all("NOOP " + std::string(5000, 'a') + "\r\n");
  EXPECT_EQ(reply_of(s).substr(0, 3), "500");
  s.write_all("MAIL FROM:<a@b>\r\n");
  EXPECT_EQ(reply_of(s).substr(0, 3), "503");  // EHLO first
  s.write_all("HELO x\r\nRCPT TO:<a@b>\r\nMAIL FROM:<a@b>\r\nDATA\r\nRCPT TO:<c@d>\r\nDATA\r\n");
  EXPECT_EQ(reply_of(s).substr(0, 3), "250");
  EXPECT_EQ(reply_of(s).substr(0, 3), "503");  // RCPT before MAIL
  EXPECT_EQ(reply_of(s).substr(0, 3), "250");
  EXPECT_EQ(reply_of(s).substr(0, 3), "554");  // DATA without recipients
  EXPECT_EQ(reply_of(s).substr(0, 3), "250");
  EXPECT_EQ(reply_of(s).substr(0, 3), "354");
  s.write_all(std::string(300, 'b') + "\r\n.\r\n");
  EXPECT_EQ(reply_of(s).substr(0, 3), "500");  // a DATA line over the limit
  EXPECT_TRUE(peer.messages().empty());
}

TEST(SmtpPeer, StopEndsIdleSessions) {
  auto peer = std::make_unique<SmtpPeer>(peer_config());
  Stream s = raw_connect(*peer);
  reply_of(s);
  const auto start = std::chrono::steady_clock::now();
  peer->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_EQ(peer->sessions().size(), 1u);
  std::string line;
  EXPECT_EQ(s.read_line(line, 100), IoStatus::eof);
  peer.reset();
}

TEST(SmtpPeer, ConnectFailure) {
  SubmitOptions o;
  std::string error;
  int l = listen_tcp("127.0.0.1", 0, 1, error);
  o.port = bound_port(l);
  close(l);
  o.message.mail_from = "a@b";
  o.message.rcpts = {"c@d"};
  SubmitResult r = submit_message(o);
  EXPECT_EQ(r.failed_stage, SubmitStage::connect);
  EXPECT_FALSE(r.error.empty());
}

}  // namespace
