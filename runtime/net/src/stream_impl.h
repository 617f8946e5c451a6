// stream_impl.h — the inside of tlsp::Stream, shared by stream.cpp (the
// socket and line I/O) and tls.cpp (the handshakes). Nothing outside those
// two files includes it.
//
// Contract: `fd` is non-blocking; every wait goes through wait_for() with
// an absolute deadline, so no call blocks past the stream's timeout.
// `in` holds bytes read from the connection (plaintext, or decrypted once
// `ssl` is set) that no read has returned yet, from `in_pos` on.
#pragma once

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>

#include <cerrno>
#include <chrono>
#include <string>

#include "tlsp/stream.h"

namespace tlsp {

// The per-operation timeout until set_timeout() says otherwise: RFC 5321
// §4.5.3.2 asks for minutes per command; half a minute bounds a stuck peer
// without failing a slow one.
inline constexpr std::chrono::milliseconds kDefaultStreamTimeout{30000};

struct Stream::Impl {
  using Clock = std::chrono::steady_clock;

  int fd = -1;
  SSL* ssl = nullptr;
  std::chrono::milliseconds timeout = kDefaultStreamTimeout;
  std::string in;
  size_t in_pos = 0;
  // read_line() gave up (timeout) in the middle of a line it was already
  // discarding as too long: the next read_line() goes on discarding it, so
  // its tail is never mistaken for a line of its own.
  bool discarding_line = false;
  bool shutdown_sent = false;  // close_gracefully() sent close_notify already

  Clock::time_point deadline() const { return Clock::now() + timeout; }

  // Waits until the socket is ready for `events` (POLLIN / POLLOUT).
  // ok, timeout, or error (poll failed, the socket is in error).
  IoStatus wait_for(short events, Clock::time_point deadline) const;

  // Runs an SSL operation (handshake, read, write, shutdown) until it
  // completes, waiting for the socket as OpenSSL asks. `op` returns
  // OpenSSL's return value (> 0 success). On failure `ssl_error` holds
  // SSL_get_error()'s answer and OpenSSL's error queue is left for the
  // caller to read. The error queue is cleared before each attempt, as
  // SSL_get_error() requires.
  template <typename Op>
  IoStatus ssl_call(Op op, Clock::time_point deadline, int& ssl_error) {
    while (true) {
      ERR_clear_error();
      errno = 0;  // SSL_ERROR_SYSCALL with errno 0 means the peer closed
      int rc = op();
      if (rc > 0) return IoStatus::ok;
      ssl_error = SSL_get_error(ssl, rc);
      short events = 0;
      if (ssl_error == SSL_ERROR_WANT_READ)
        events = POLLIN;
      else if (ssl_error == SSL_ERROR_WANT_WRITE)
        events = POLLOUT;
      else
        return IoStatus::error;
      IoStatus w = wait_for(events, deadline);
      if (w != IoStatus::ok) return w;
    }
  }

  // The plaintext left in `in` (unread) and dropping it.
  size_t unread() const { return in.size() - in_pos; }
  void drop_unread() {
    in.clear();
    in_pos = 0;
  }
};

}  // namespace tlsp
