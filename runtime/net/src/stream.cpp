// stream.cpp — tlsp::Stream (tlsp/stream.h): one TCP connection with
// bounded line reads and per-operation timeouts, plaintext or TLS; and the
// socket helpers connect_tcp(), listen_tcp(), bound_port().
//
// Every operation gets one deadline (now + the stream's timeout) when it
// starts, and each wait inside it (poll) uses what is left of that
// deadline: a peer trickling one byte at a time cannot stretch a line read
// past the timeout.
//
// Writes on a socket whose peer has gone raise SIGPIPE in the writer; for
// plaintext send(MSG_NOSIGNAL) avoids it, but OpenSSL's socket BIO uses
// write(), so the first Stream made sets SIGPIPE to ignored
// (tlsp/base/sigpipe.h).
#include "stream_impl.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "tlsp/base/sigpipe.h"

namespace tlsp {
namespace {

using Clock = std::chrono::steady_clock;

// One read asks the kernel (or OpenSSL) for this much; a line longer than
// a read is assembled over several.
constexpr size_t kReadChunk = 16384;
// Consumed bytes are dropped from the front of the input buffer once this
// many have piled up (sooner when everything was consumed).
constexpr size_t kCompactThreshold = 65536;

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  if (left <= 0) return 0;
  return left > INT32_MAX ? INT32_MAX : static_cast<int>(left);
}

std::string errno_text(int e) {
  return std::strerror(e);
}

std::string address_text(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
  } else if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    // A v4 client on a dual-stack socket is shown as the v4 address it is.
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr))
      inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], buf, sizeof buf);
    else
      inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
  }
  return buf;
}

uint16_t port_of(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port);
  return 0;
}

struct AddrInfoFree {
  void operator()(addrinfo* p) const { freeaddrinfo(p); }
};
using AddrInfoPtr = std::unique_ptr<addrinfo, AddrInfoFree>;

// Resolves a numeric address (or a name, for "localhost") to socket
// addresses. Returns "" or the problem.
std::string resolve(const std::string& address, uint16_t port, int flags, AddrInfoPtr& out) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = flags | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  int rc = getaddrinfo(address.empty() ? nullptr : address.c_str(), service.c_str(), &hints, &res);
  if (rc != 0) return "cannot resolve `" + address + "`: " + gai_strerror(rc);
  out.reset(res);
  return "";
}

bool set_nonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL, 0);
  return flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

}  // namespace

std::string_view to_string(IoStatus s) {
  switch (s) {
    case IoStatus::ok:
      return "ok";
    case IoStatus::eof:
      return "eof";
    case IoStatus::timeout:
      return "timeout";
    case IoStatus::too_long:
      return "too-long";
    case IoStatus::error:
      return "error";
  }
  return "error";
}

// ------------------------------------------------------------------ Impl

IoStatus Stream::Impl::wait_for(short events, Clock::time_point deadline) const {
  while (true) {
    pollfd p{fd, events, 0};
    int rc = poll(&p, 1, remaining_ms(deadline));
    if (rc > 0) {
      // POLLHUP/POLLERR with the wanted event absent: the next read or
      // write reports what happened (eof or the socket error).
      return IoStatus::ok;
    }
    if (rc == 0) return IoStatus::timeout;
    if (errno != EINTR) return IoStatus::error;
  }
}

namespace {

// Reads more bytes into impl.in: ok (at least one byte), eof, timeout or
// error.
IoStatus fill(Stream::Impl& m, Clock::time_point deadline) {
  if (m.in_pos == m.in.size()) {
    m.in.clear();
    m.in_pos = 0;
  } else if (m.in_pos >= kCompactThreshold) {
    m.in.erase(0, m.in_pos);
    m.in_pos = 0;
  }
  const size_t old = m.in.size();
  m.in.resize(old + kReadChunk);
  char* dst = m.in.data() + old;

  if (m.ssl != nullptr) {
    size_t got = 0;
    int ssl_error = 0;
    IoStatus s = m.ssl_call([&] { return SSL_read_ex(m.ssl, dst, kReadChunk, &got); }, deadline, ssl_error);
    if (s == IoStatus::ok) {
      m.in.resize(old + got);
      return IoStatus::ok;
    }
    m.in.resize(old);
    if (s != IoStatus::error) return s;
    if (ssl_error == SSL_ERROR_ZERO_RETURN) return IoStatus::eof;
    // A peer that closes the TCP connection without close_notify: for SMTP
    // the dialogue itself says whether it was complete, so this is an end
    // of input like any other.
    if (ssl_error == SSL_ERROR_SYSCALL && errno == 0) return IoStatus::eof;
    unsigned long e = ERR_peek_error();
    if (ssl_error == SSL_ERROR_SSL && ERR_GET_LIB(e) == ERR_LIB_SSL &&
        ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
      return IoStatus::eof;
    return IoStatus::error;
  }

  while (true) {
    ssize_t n = recv(m.fd, dst, kReadChunk, 0);
    if (n > 0) {
      m.in.resize(old + static_cast<size_t>(n));
      return IoStatus::ok;
    }
    if (n == 0) {
      m.in.resize(old);
      return IoStatus::eof;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      IoStatus w = m.wait_for(POLLIN, deadline);
      if (w == IoStatus::ok) continue;
      m.in.resize(old);
      return w;
    }
    m.in.resize(old);
    // A reset peer has gone as surely as a closed one.
    return errno == ECONNRESET ? IoStatus::eof : IoStatus::error;
  }
}

}  // namespace

// ---------------------------------------------------------------- Stream

Stream::Stream(int fd) : impl_(std::make_unique<Impl>()) {
  base::ignore_sigpipe_once();
  impl_->fd = fd;
  set_nonblocking(fd);
  // SMTP is a dialogue of short lines: without this, Nagle's algorithm and
  // delayed ACKs hold pipelined replies back by tens of milliseconds.
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

Stream::Stream(Stream&&) noexcept = default;
Stream& Stream::operator=(Stream&& other) noexcept {
  if (this != &other) {
    Stream old(std::move(*this));
    impl_ = std::move(other.impl_);
  }
  return *this;
}

Stream::~Stream() {
  if (!impl_) return;
  if (impl_->ssl != nullptr) {
    // close_notify once, without waiting for the peer's: the connection is
    // being dropped either way.
    if (SSL_is_init_finished(impl_->ssl) && !impl_->shutdown_sent) {
      ERR_clear_error();
      SSL_shutdown(impl_->ssl);
    }
    SSL_free(impl_->ssl);
    ERR_clear_error();
  }
  if (impl_->fd >= 0) close(impl_->fd);
}

int Stream::fd() const {
  return impl_ ? impl_->fd : -1;
}
void Stream::set_timeout(std::chrono::milliseconds t) {
  impl_->timeout = t;
}
std::chrono::milliseconds Stream::timeout() const {
  return impl_->timeout;
}

IoStatus Stream::read_line(std::string& line, size_t max_len) {
  bool bare_lf = false;
  return read_line(line, max_len, bare_lf);
}

IoStatus Stream::read_line(std::string& line, size_t max_len, bool& bare_lf) {
  line.clear();
  bare_lf = false;
  Impl& m = *impl_;
  const auto deadline = m.deadline();
  bool overflow = m.discarding_line;  // the line outgrew max_len: dropping it up to its LF
  m.discarding_line = false;
  size_t scan_from = m.in_pos;
  while (true) {
    const size_t lf = m.in.find('\n', scan_from);
    if (lf != std::string::npos) {
      size_t end = lf;
      if (end > m.in_pos && m.in[end - 1] == '\r')
        --end;
      else
        bare_lf = true;
      const bool fits = !overflow && end - m.in_pos <= max_len;
      if (fits) line.assign(m.in, m.in_pos, end - m.in_pos);
      m.in_pos = lf + 1;
      return fits ? IoStatus::ok : IoStatus::too_long;
    }
    // No LF yet. More than max_len bytes (and a CR) cannot become a line
    // that fits: drop them now so the buffer stays bounded.
    if (m.unread() > max_len && m.unread() - max_len > 1) {  // (no max_len + 1: it may overflow)
      overflow = true;
      m.drop_unread();
    }
    scan_from = m.in.size();
    const size_t before = m.in_pos;
    IoStatus s = fill(m, deadline);
    if (s != IoStatus::ok) {
      // A partial line stays buffered for the next call (a caller that reads
      // in slices to look at the clock in between loses nothing).
      m.discarding_line = overflow;
      return s;
    }
    // fill() may have compacted the buffer.
    scan_from = scan_from - before + m.in_pos;
  }
}

IoStatus Stream::read_some(std::string& out, size_t max) {
  out.clear();
  Impl& m = *impl_;
  if (max == 0) return IoStatus::ok;
  if (m.unread() == 0) {
    IoStatus s = fill(m, m.deadline());
    if (s != IoStatus::ok) return s;
  }
  const size_t n = std::min(max, m.unread());
  out.assign(m.in, m.in_pos, n);
  m.in_pos += n;
  return IoStatus::ok;
}

IoStatus Stream::write_all(std::string_view data) {
  Impl& m = *impl_;
  const auto deadline = m.deadline();
  if (m.ssl != nullptr) {
    if (data.empty()) return IoStatus::ok;
    size_t written = 0;
    int ssl_error = 0;
    // Without SSL_MODE_ENABLE_PARTIAL_WRITE, SSL_write_ex() completes the
    // whole buffer or is retried with the same arguments, which ssl_call
    // does.
    IoStatus s =
        m.ssl_call([&] { return SSL_write_ex(m.ssl, data.data(), data.size(), &written); }, deadline, ssl_error);
    if (s == IoStatus::error && (ssl_error == SSL_ERROR_ZERO_RETURN)) return IoStatus::eof;
    return s;
  }
  while (!data.empty()) {
    ssize_t n = send(m.fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      IoStatus w = m.wait_for(POLLOUT, deadline);
      if (w != IoStatus::ok) return w;
      continue;
    }
    return n < 0 && (errno == EPIPE || errno == ECONNRESET) ? IoStatus::eof : IoStatus::error;
  }
  return IoStatus::ok;
}

void Stream::close_gracefully(std::chrono::milliseconds drain, size_t max_bytes) {
  Impl& m = *impl_;
  if (m.fd < 0) return;
  if (m.ssl != nullptr && SSL_is_init_finished(m.ssl) && !m.shutdown_sent) {
    ERR_clear_error();
    SSL_shutdown(m.ssl);  // close_notify, without waiting for the peer's
    ERR_clear_error();
    m.shutdown_sent = true;
  }
  ::shutdown(m.fd, SHUT_WR);
  // What the peer still sends is read (raw: under TLS it is ciphertext
  // nobody needs) and dropped until it closes or the time is up: closing
  // with unread input would make the kernel answer with a reset, which can
  // overtake the last reply (RFC 1122 §4.2.2.13).
  const auto deadline = Clock::now() + drain;
  char buf[4096];
  size_t total = 0;
  while (total < max_bytes) {
    ssize_t n = recv(m.fd, buf, sizeof buf, 0);
    if (n > 0) {
      total += static_cast<size_t>(n);
      continue;
    }
    if (n == 0) break;
    if (errno == EINTR) continue;
    if ((errno == EAGAIN || errno == EWOULDBLOCK) && m.wait_for(POLLIN, deadline) == IoStatus::ok) continue;
    break;
  }
  m.drop_unread();
}

size_t Stream::buffered() const {
  const Impl& m = *impl_;
  size_t n = m.unread();
  if (m.ssl != nullptr) n += static_cast<size_t>(SSL_pending(m.ssl));
  return n;
}

void Stream::discard_buffer() {
  impl_->drop_unread();
}

bool Stream::is_tls() const {
  return impl_ && impl_->ssl != nullptr;
}
SSL* Stream::ssl() const {
  return impl_ ? impl_->ssl : nullptr;
}

std::string Stream::peer_address() const {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getpeername(impl_->fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "";
  return address_text(ss);
}

uint16_t Stream::peer_port() const {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getpeername(impl_->fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  return port_of(ss);
}

std::string Stream::local_address() const {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(impl_->fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "";
  return address_text(ss);
}

// --------------------------------------------------------------- sockets

int connect_tcp(const std::string& address, uint16_t port, std::chrono::milliseconds timeout, std::string& error,
                const std::string& source_address) {
  const auto deadline = Clock::now() + timeout;
  AddrInfoPtr targets;
  error = resolve(address, port, 0, targets);
  if (!error.empty()) return -1;
  AddrInfoPtr sources;
  if (!source_address.empty()) {
    error = resolve(source_address, 0, AI_NUMERICHOST | AI_PASSIVE, sources);
    if (!error.empty()) return -1;
  }
  const std::string where = "`" + address + "` port " + std::to_string(port);
  error = "no address for " + where;
  for (addrinfo* ai = targets.get(); ai != nullptr; ai = ai->ai_next) {
    const addrinfo* src = nullptr;
    for (addrinfo* s = sources.get(); s != nullptr; s = s->ai_next)
      if (s->ai_family == ai->ai_family) {
        src = s;
        break;
      }
    if (sources && src == nullptr) {
      error = "source address `" + source_address + "` is not of the same family as " + where;
      continue;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      error = "cannot create a socket: " + errno_text(errno);
      continue;
    }
    if (src != nullptr && bind(fd, src->ai_addr, src->ai_addrlen) != 0) {
      error = "cannot bind to source address `" + source_address + "`: " + errno_text(errno);
      close(fd);
      continue;
    }
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno != EINPROGRESS) {
      error = "cannot connect to " + where + ": " + errno_text(errno);
      close(fd);
      continue;
    }
    if (rc != 0) {
      pollfd p{fd, POLLOUT, 0};
      int prc;
      do prc = poll(&p, 1, remaining_ms(deadline));
      while (prc < 0 && errno == EINTR);
      if (prc == 0) {
        error = "timed out connecting to " + where;
        close(fd);
        return -1;  // the deadline covers every address: no time left
      }
      int so_error = 0;
      socklen_t len = sizeof so_error;
      if (prc < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0 || so_error != 0) {
        error = "cannot connect to " + where + ": " + errno_text(prc < 0 ? errno : so_error);
        close(fd);
        continue;
      }
    }
    error.clear();
    return fd;
  }
  return -1;
}

int listen_tcp(const std::string& address, uint16_t port, int backlog, std::string& error) {
  AddrInfoPtr addrs;
  error = resolve(address, port, AI_NUMERICHOST | AI_PASSIVE, addrs);
  if (!error.empty()) return -1;
  const std::string where = "`" + address + "` port " + std::to_string(port);
  for (addrinfo* ai = addrs.get(); ai != nullptr; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      error = "cannot create a socket: " + errno_text(errno);
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, backlog) != 0) {
      error = "cannot listen on " + where + ": " + errno_text(errno);
      close(fd);
      continue;
    }
    error.clear();
    return fd;
  }
  if (error.empty()) error = "no address for " + where;
  return -1;
}

uint16_t bound_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  return port_of(ss);
}

}  // namespace tlsp
