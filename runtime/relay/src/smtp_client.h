// smtp_client.h — the relay's SMTP client session, one connection at a
// time: the reply reader, the opening (connect, greeting, EHLO or HELO,
// STARTTLS and the handshake, EHLO again) and one mail transaction (MAIL,
// RCPT for each recipient, DATA with dot-stuffing). It reports what it saw
// and what each recipient's replies were; what to do about them (the
// engine's decision, the queue's bookkeeping) is delivery.cpp's.
// Not a public header.
//
// Bounds: a reply has at most kMaxReplyLines lines of kMaxReplyLine octets
// (a hostile peer cannot make us hold more); every command waits at most
// command_timeout, the final dot data_timeout, the connect connect_timeout
// (RelayLimits).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tlsp/relay.h"
#include "tlsp/stream.h"
#include "tlsp/tls.h"

namespace tlsp::relay {

struct Reply {
  int code = 0;          // 0: no valid reply (timeout, eof, garbage)
  std::string text;      // every line, joined by " / "
  std::vector<std::string> lines;
  std::string problem;   // why code is 0
};

Reply read_reply(Stream& s, std::chrono::milliseconds timeout);
// Writes `cmd` and CRLF, then reads the reply.
Reply command(Stream& s, const std::string& cmd, std::chrono::milliseconds timeout);

// How one connection handles STARTTLS.
enum class TlsMode {
  authenticate,  // offer >= max(floor, 1.2); DANE records or WebPKI checked
  encrypt,       // offer >= the rule's floor; certificate not checked
  none,          // do not use STARTTLS (the last-resort plaintext retry)
};

// What opening a connection saw.
struct Observation {
  bool connected = false;
  std::string address;
  std::string problem;           // connection-level failure (no facts)
  bool starttls = false;         // offered
  bool tls_attempted = false;
  TlsClientResult tls;
  std::optional<Stream> stream;  // ready for MAIL when the outcome sends
  bool eightbitmime = false;
  bool size_ext = false;
  // For the log's delays=: TCP connect, greeting and EHLO; STARTTLS, the
  // handshake and EHLO again (zero without STARTTLS).
  std::chrono::steady_clock::duration connect_time{};
  std::chrono::steady_clock::duration tls_time{};
};

// The message of one transaction, as the envelope gives it.
struct OutgoingMessage {
  std::string_view mail_from;
  bool body_8bit = false;
  std::string_view data;  // LF or CRLF lines; dot-stuffed on the way out
};

// What one transaction did with the recipients it was for.
struct Transaction {
  std::vector<std::string> offered;    // the recipients it was for
  std::vector<std::string> delivered;  // the final dot was accepted for these
  std::vector<std::pair<std::string, std::string>> failed;  // 5xx: address, reply "(from MX)"
  std::vector<std::string> pending;    // still to deliver (a 4xx, a broken session), in order
  std::string temporary;               // the last temporary failure, "" when none
  std::string smtp;                    // the last reply (or why there was none)
  bool kept_open = false;              // asked to, and every recipient delivered: no QUIT sent
};

class SmtpClient {
 public:
  // `helo_name`: the argument of EHLO and HELO (relay_hostname()).
  SmtpClient(std::string helo_name, const RelayLimits& limits) : helo_name_(std::move(helo_name)), limits_(limits) {}

  // Connects to one address and runs greeting + EHLO (+ STARTTLS per mode,
  // with `params` for the handshake). A refused STARTTLS or a failed
  // handshake is reported in `tls` with the connection still counted as
  // made (it is a fact for the engine); a failure before that in `problem`.
  Observation open(const std::string& address, uint16_t port, TlsMode mode, const TlsClientParams& params) const;

  // One transaction on the open session `o` for `recipients`; `mx` names
  // the peer in the replies kept. With `keep_open` the session is left
  // open when every recipient was delivered (kept_open), else closed.
  Transaction send(Observation& o, const OutgoingMessage& message, const std::vector<std::string>& recipients,
                   const std::string& mx, bool keep_open) const;

 private:
  Observation open_session(const std::string& address, uint16_t port, TlsMode mode, const TlsClientParams& params,
                           std::chrono::steady_clock::time_point begin) const;
  Reply ehlo_or_helo(Stream& s, Observation& o) const;
  std::chrono::milliseconds command_timeout() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(limits_.command_timeout);
  }

  std::string helo_name_;
  const RelayLimits& limits_;
};

}  // namespace tlsp::relay
