// tlsp/sim/smtp_peer.h — scripted SMTP peers for live tests: a server
// (the MX host a relay delivers to, or a next hop) and a sending client
// (a peer submitting to the relay). Both speak real SMTP over tlsp::Stream
// on loopback addresses (127.0.0.0/8).
//
// Contract, SmtpPeer:
//  * The constructor listens (port 0: a free port, port() tells which) and
//    serves each connection on its own thread until stop() (also run by
//    the destructor), which closes every connection and joins every
//    thread. Construction failures (address in use, unreadable
//    certificate) throw std::runtime_error.
//  * It speaks EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT, STARTTLS and
//    announces PIPELINING, SIZE, 8BITMIME, ENHANCEDSTATUSCODES (and
//    STARTTLS when offered and not yet in TLS). After STARTTLS it forgets
//    the EHLO, any transaction and any input that arrived with the
//    command (RFC 3207 §4.1, §4.2).
//  * Every line it reads is bounded (max_line_length); a longer command
//    gets 500, a longer DATA line fails the message with 500.
//  * It records every session when it ends and every message it accepted
//    (2xx after the dot): the data as received after dot-unstuffing, with
//    every line ending as CR LF. wait_for_messages() and wait_for_sessions()
//    block on a condition variable up to a deadline, never by polling.
//
// Contract, submit_message(): one connection, EHLO, STARTTLS when asked
// (the server must offer it, else the attempt fails at `starttls`), MAIL,
// RCPT (each recipient; DATA only when at least one was accepted), DATA
// with dot-stuffing, QUIT. The result names the stage that failed and the
// server's reply there. Never throws for network or protocol trouble.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tlsp/engine.h"
#include "tlsp/tls.h"

namespace tlsp::sim {

// Defaults for the peers' limits (RFC 5321 §4.5.3.1: 512 octets for a
// command line, 1000 for a text line; both include CR LF).
inline constexpr size_t kPeerMaxLineLength = 1000;
inline constexpr size_t kPeerMaxMessageBytes = 10 * 1024 * 1024;  // announced as SIZE
inline constexpr size_t kPeerMaxRecipients = 100;
inline constexpr size_t kPeerMaxReplyLines = 100;  // client: lines of one reply
inline constexpr std::chrono::milliseconds kPeerTimeout{10000};

inline constexpr std::string_view kPeerCloseScript = "<close>";

struct SmtpPeerConfig {
  std::string address = "127.0.0.1";
  uint16_t port = 0;                      // 0: any free port
  std::string hostname = "mx.peer.test";  // greeting and EHLO name
  bool offer_starttls = true;
  TlsVersionSet tls_versions = kAllTlsVersions;
  // STARTTLS is answered 220, then the connection is closed as soon as the
  // ClientHello arrives: a handshake that fails whatever the version.
  bool broken_tls = false;
  std::string cert_file;  // PEM chain (needed to offer STARTTLS)
  std::string key_file;
  bool require_tls = false;  // 530 to MAIL/RCPT/DATA before STARTTLS

  // Scripted replies, full reply lines such as "451 4.3.0 try again later"
  // (several lines may be joined with "\r\n"). Empty: the normal answer.
  // kPeerCloseScript instead of a reply: the connection is closed without
  // one (a peer that goes away mid-dialogue).
  std::string greeting;                             // instead of 220; a non-2xx greeting ends the session
  std::string mail_reply;                           // to MAIL instead of 250
  std::string rcpt_reply;                           // to every RCPT not in rcpt_replies
  std::map<std::string, std::string> rcpt_replies;  // by address, lower case, no <>
  std::string data_reply;                           // to DATA instead of 354
  std::string data_end_reply;                       // after the dot instead of 250

  size_t max_line_length = kPeerMaxLineLength;
  size_t max_message_bytes = kPeerMaxMessageBytes;
  size_t max_recipients = kPeerMaxRecipients;
  std::chrono::milliseconds timeout = kPeerTimeout;  // per read or write
};

struct PeerSession {
  std::string client_address;
  std::string ehlo;       // the last EHLO/HELO name
  bool starttls = false;  // STARTTLS was accepted (the handshake may still have failed)
  TlsVersion tls = TlsVersion::none;
  std::string cipher;
  std::string sni;
  std::string tls_error;              // why the handshake failed
  std::vector<std::string> commands;  // the verbs, in order (at most kPeerMaxRecordedCommands)
  size_t messages = 0;                // messages accepted in this session
};
inline constexpr size_t kPeerMaxRecordedCommands = 1000;

struct PeerMessage {
  std::string mail_from;
  std::vector<std::string> rcpts;  // accepted recipients
  std::string data;                // dot-unstuffed, lines ending CR LF, without the final dot
  TlsVersion tls = TlsVersion::none;
  std::string sni;
  std::string client_address;
  std::string ehlo;
};

class SmtpPeer {
 public:
  explicit SmtpPeer(SmtpPeerConfig config);
  ~SmtpPeer();
  SmtpPeer(const SmtpPeer&) = delete;
  SmtpPeer& operator=(const SmtpPeer&) = delete;

  const std::string& address() const { return config_.address; }
  uint16_t port() const { return port_; }

  // True once at least n messages (sessions) were recorded; false when the
  // timeout passed first.
  bool wait_for_messages(size_t n, std::chrono::milliseconds timeout);
  bool wait_for_sessions(size_t n, std::chrono::milliseconds timeout);
  std::vector<PeerMessage> messages() const;
  std::vector<PeerSession> sessions() const;

  void stop();

 private:
  struct Connection;
  void accept_loop();
  void serve(int fd, Connection* self);
  void record(PeerSession session);
  void record(PeerMessage message);
  void reap_finished();

  SmtpPeerConfig config_;
  SslCtxPtr tls_ctx_;
  int listen_fd_ = -1;
  int wake_pipe_[2] = {-1, -1};  // stop() writes to end accept_loop's poll
  uint16_t port_ = 0;
  std::thread acceptor_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool stopping_ = false;
  std::vector<std::unique_ptr<Connection>> connections_;
  std::vector<PeerSession> sessions_;
  std::vector<PeerMessage> messages_;
};

// ------------------------------------------------------------- client

enum class SubmitStage : uint8_t { none, connect, greeting, ehlo, starttls, mail, rcpt, data };
std::string_view to_string(SubmitStage s);

struct SubmitMessage {
  std::string mail_from;  // without <>
  std::vector<std::string> rcpts;
  std::string data;  // the message; lines end LF or CR LF; dot-stuffed on the wire
};

struct SubmitOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 25;
  std::string source_address;  // bind to it first: the server sees this client address
  std::string ehlo_name = "client.peer.test";
  bool starttls = false;
  TlsVersionSet tls_versions = kAllTlsVersions;  // offered; below 1.2 at security level 0
  std::string sni;                               // empty: none
  SubmitMessage message;                         // for submit_message()
  std::chrono::milliseconds timeout = kPeerTimeout;
};

struct SubmitResult {
  bool accepted = false;  // 2xx after the dot
  SubmitStage failed_stage = SubmitStage::none;
  int code = 0;       // the last reply's code (0: none, e.g. connect failed)
  std::string reply;  // that reply's text, lines joined by "\n"
  std::string error;  // a local failure (connect, timeout, handshake)
  TlsVersion tls = TlsVersion::none;
  bool version_refused = false;  // the handshake failed for want of a common version
  std::vector<int> rcpt_codes;   // one per recipient
};

SubmitResult submit_message(const SubmitOptions& options);
// Several messages over one connection (RSET after a refused one); one
// result per message. A connection-level failure fails the rest alike.
std::vector<SubmitResult> submit_messages(const SubmitOptions& options, const std::vector<SubmitMessage>& messages);

}  // namespace tlsp::sim
