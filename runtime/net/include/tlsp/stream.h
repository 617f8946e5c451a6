// tlsp/stream.h — one TCP connection, plaintext or upgraded to TLS, with
// bounded line reads and per-operation timeouts. The SMTP server, the SMTP
// client and the test peers all talk through it.
//
// Contract:
//  * The socket is non-blocking underneath; every read or write waits at
//    most the configured timeout (poll), whether TLS or not, and reports
//    timeout instead of blocking.
//  * read_line() never holds more than max_len bytes of one line: a longer
//    line is consumed and discarded up to its LF and reported as too_long.
//  * A read_line() that times out keeps the partial line buffered; the next
//    read_line() continues it (the deadline is per call, never per byte).
//  * buffered() tells whether the peer sent bytes beyond what was read;
//    after STARTTLS such plaintext must be discarded (RFC 3207 §4.1, the
//    command-injection attack), which discard_buffer() does.
//  * Stream owns the descriptor and the SSL; the destructor sends
//    close_notify without waiting and closes the socket.
#pragma once

#include <openssl/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace tlsp {

enum class IoStatus : uint8_t { ok, eof, timeout, too_long, error };
std::string_view to_string(IoStatus s);

struct TlsClientParams;
struct TlsClientResult;
struct TlsServerResult;

class Stream {
 public:
  explicit Stream(int fd);  // a connected socket; takes ownership
  Stream(Stream&&) noexcept;
  Stream& operator=(Stream&&) noexcept;
  Stream(const Stream&) = delete;
  ~Stream();

  int fd() const;
  void set_timeout(std::chrono::milliseconds t);
  std::chrono::milliseconds timeout() const;

  // One line, its CR LF (or bare LF) stripped; max_len counts the line
  // without them. At the end of input a partial line is not returned (eof).
  IoStatus read_line(std::string& line, size_t max_len);
  // The same, and whether the line ended in a bare LF (no CR before it):
  // SMTP DATA must tell `\r\n.\r\n` from `\n.\n` (SMTP smuggling).
  IoStatus read_line(std::string& line, size_t max_len, bool& bare_lf);
  // Up to max bytes (at least one unless not ok), replacing out.
  IoStatus read_some(std::string& out, size_t max);
  IoStatus write_all(std::string_view data);

  size_t buffered() const;
  void discard_buffer();

  // Ends the connection without a reset over the last reply: close_notify
  // (TLS), then FIN (shutdown SHUT_WR), then reads and drops what the peer
  // still sends until it closes, at most `drain` and `max_bytes`. Only
  // the destructor may follow.
  void close_gracefully(std::chrono::milliseconds drain, size_t max_bytes);

  bool is_tls() const;
  SSL* ssl() const;  // nullptr before TLS

  // The handshake, on a connection where STARTTLS was just accepted (or
  // announced): client side and server side. Both first discard anything
  // still buffered (RFC 3207 §4.1). On failure the stream is unusable and
  // should be closed (or, client side, a new connection made).
  TlsClientResult start_tls_client(const TlsClientParams& params);
  TlsServerResult start_tls_server(SSL_CTX* ctx);

  std::string peer_address() const;  // "127.0.0.1", "::1"
  uint16_t peer_port() const;
  std::string local_address() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// Connects with a timeout. Returns the socket, or -1 with `error` set.
// source_address: bind to it first (tests act as a given 127.0.0.x peer).
int connect_tcp(const std::string& address, uint16_t port, std::chrono::milliseconds timeout, std::string& error,
                const std::string& source_address = "");
// A listening socket (SO_REUSEADDR, close-on-exec). port 0: any free port;
// bound_port() tells which. Returns -1 with `error` set.
int listen_tcp(const std::string& address, uint16_t port, int backlog, std::string& error);
uint16_t bound_port(int fd);

}  // namespace tlsp
