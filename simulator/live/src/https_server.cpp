// https_server.cpp — the scripted HTTPS server of tlsp/sim/https_server.h.
//
// OpenSSL directly on blocking sockets with SO_RCVTIMEO/SO_SNDTIMEO, one
// thread per connection: the server answers one request per connection and
// test traffic is a handful of connections, so simple threads beat an event
// loop here. The accept thread polls the listener and an eventfd that
// stop() signals; stop() then shuts every open connection socket down so
// that blocked reads and writes return at once, and wakes threads waiting
// out a scripted delay through a condition variable.
//
// SIGPIPE: a client that hangs up while we write (the relay aborting an
// oversized policy) would raise it through OpenSSL's write(2). It is
// blocked in the server's threads only, so write(2) returns EPIPE there
// and the rest of the process keeps its own signal handling.
#include "tlsp/sim/https_server.h"

#include "tlsp/base/address.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

namespace tlsp::sim {
namespace {

constexpr int kListenBacklog = 64;

struct CtxDeleter {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using CtxPtr = std::unique_ptr<SSL_CTX, CtxDeleter>;
struct SslDeleter {
  void operator()(SSL* s) const { SSL_free(s); }
};

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  char buf[256] = {0};
  if (e) ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return e ? buf : "unknown error";
}

CtxPtr make_context(const std::string& cert_file, const std::string& key_file) {
  CtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) throw std::runtime_error("cannot create an SSL_CTX: " + openssl_error());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), cert_file.c_str()) != 1)
    throw std::runtime_error("cannot load the certificate `" + cert_file + "`: " + openssl_error());
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), key_file.c_str(), SSL_FILETYPE_PEM) != 1)
    throw std::runtime_error("cannot load the key `" + key_file + "`: " + openssl_error());
  if (SSL_CTX_check_private_key(ctx.get()) != 1)
    throw std::runtime_error("the key `" + key_file + "` does not match `" + cert_file + "`");
  return ctx;
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

void block_sigpipe_in_this_thread() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return std::string(s);
}

// "mta-sts.example:8443" -> "mta-sts.example"; "[::1]:443" -> "::1".
std::string host_without_port(std::string h) {
  if (!h.empty() && h.front() == '[') {
    size_t close = h.find(']');
    return close == std::string::npos ? h : h.substr(1, close - 1);
  }
  size_t colon = h.find(':');
  return colon == std::string::npos ? h : h.substr(0, colon);
}

}  // namespace

struct HttpsServer::State {
  mutable std::mutex mutex;
  std::condition_variable wake;  // delays end early on stop
  bool running = false;
  bool stopping = false;
  int listen_fd = -1;
  int event_fd = -1;
  std::string address;
  uint16_t port = 0;
  CtxPtr default_ctx;
  std::map<std::string, std::shared_ptr<SSL_CTX>> host_ctx;
  std::map<std::pair<std::string, std::string>, HttpsResponse> responses;
  std::vector<HttpsRequest> log;
  size_t request_count = 0;
  size_t connection_count = 0;
  std::thread acceptor;

  struct Connection {
    int fd = -1;  // -1 once closed; guarded by mutex
    std::thread thread;
    std::atomic<bool> done{false};
  };
  std::list<Connection> connections;

  static int on_servername(SSL* ssl, int*, void* arg) {
    auto* st = static_cast<State*>(arg);
    const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name) return SSL_TLSEXT_ERR_OK;
    std::lock_guard lock(st->mutex);
    auto it = st->host_ctx.find(lower(name));
    if (it != st->host_ctx.end()) SSL_set_SSL_CTX(ssl, it->second.get());
    return SSL_TLSEXT_ERR_OK;
  }

  void accept_loop() {
    block_sigpipe_in_this_thread();
    while (true) {
      pollfd fds[2] = {{listen_fd, POLLIN, 0}, {event_fd, POLLIN, 0}};
      int n = ::poll(fds, 2, -1);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 || (fds[1].revents & POLLIN)) return;
      if (!(fds[0].revents & POLLIN)) continue;
      int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      std::lock_guard lock(mutex);
      if (stopping) {
        ::close(fd);
        return;
      }
      // Reap finished connections so the list stays short.
      for (auto it = connections.begin(); it != connections.end();) {
        if (it->done) {
          it->thread.join();
          it = connections.erase(it);
        } else {
          ++it;
        }
      }
      if (connections.size() >= kMaxHttpsConnections) {
        ::close(fd);
        continue;
      }
      ++connection_count;
      timeval tv{};
      tv.tv_sec = kHttpsIoTimeout.count() / 1000;
      tv.tv_usec = (kHttpsIoTimeout.count() % 1000) * 1000;
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      Connection& c = connections.emplace_back();
      c.fd = fd;
      c.thread = std::thread([this, &c] {
        block_sigpipe_in_this_thread();
        serve(c);
        {
          std::lock_guard lock(mutex);
          ::close(c.fd);
          c.fd = -1;
        }
        c.done = true;
      });
    }
  }

  // Reads the request head (up to the empty line), which must fit in
  // kMaxHttpsRequestBytes. False: nothing usable.
  static bool read_head(SSL* ssl, std::string& head, bool& too_large) {
    char buf[2048];
    while (true) {
      size_t end = head.find("\r\n\r\n");
      if (end != std::string::npos && end + 4 <= kMaxHttpsRequestBytes) return true;
      if (end != std::string::npos || head.size() > kMaxHttpsRequestBytes) {
        too_large = true;
        return false;
      }
      int n = SSL_read(ssl, buf, sizeof buf);
      if (n <= 0) return false;
      head.append(buf, static_cast<size_t>(n));
    }
  }

  static bool write_all(SSL* ssl, std::string_view data) {
    while (!data.empty()) {
      int n = SSL_write(ssl, data.data(), static_cast<int>(std::min<size_t>(data.size(), 1 << 20)));
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  static bool send_response(SSL* ssl, const HttpsResponse& r) {
    std::string head = "HTTP/1.1 " + std::to_string(r.status) + " " + std::string(reason_phrase(r.status)) + "\r\n";
    if (!r.content_type.empty()) head += "Content-Type: " + r.content_type + "\r\n";
    if (!r.location.empty()) head += "Location: " + r.location + "\r\n";
    if (r.framing == HttpsFraming::chunked)
      head += "Transfer-Encoding: chunked\r\n";
    else
      head += "Content-Length: " + std::to_string(r.content_length.value_or(r.body.size())) + "\r\n";
    head += "Connection: close\r\n\r\n";
    if (!write_all(ssl, head)) return false;
    if (r.framing == HttpsFraming::content_length) return write_all(ssl, r.body);
    const size_t step = std::max<size_t>(1, r.chunk_bytes);
    char size_line[32];
    for (size_t pos = 0; pos < r.body.size(); pos += step) {
      std::string_view chunk = std::string_view(r.body).substr(pos, step);
      std::snprintf(size_line, sizeof size_line, "%zx\r\n", chunk.size());
      if (!write_all(ssl, size_line) || !write_all(ssl, chunk) || !write_all(ssl, "\r\n")) return false;
    }
    return write_all(ssl, "0\r\n\r\n");
  }

  void serve(Connection& c) {
    std::unique_ptr<SSL, SslDeleter> ssl(SSL_new(default_ctx.get()));
    if (!ssl) return;
    int fd;
    {
      std::lock_guard lock(mutex);
      fd = c.fd;
    }
    SSL_set_fd(ssl.get(), fd);
    if (SSL_accept(ssl.get()) != 1) {
      ERR_clear_error();
      return;
    }
    HttpsRequest req;
    if (const char* sni = SSL_get_servername(ssl.get(), TLSEXT_NAMETYPE_host_name)) req.sni = lower(sni);
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    char text[INET6_ADDRSTRLEN] = {0};
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0) {
      if (peer.ss_family == AF_INET)
        inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&peer)->sin_addr, text, sizeof text);
      else
        inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&peer)->sin6_addr, text, sizeof text);
      req.peer = text;
    }

    std::string head;
    bool too_large = false;
    if (!read_head(ssl.get(), head, too_large)) {
      if (too_large) {
        HttpsResponse r;
        r.status = 431;
        r.body = "request too large\n";
        send_response(ssl.get(), r);
      }
      ERR_clear_error();
      return;
    }
    // Request line: METHOD SP target SP version; then `Name: value` lines.
    size_t eol = head.find("\r\n");
    std::string_view line = std::string_view(head).substr(0, eol);
    size_t sp1 = line.find(' ');
    size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos) {
      HttpsResponse r;
      r.status = 400;
      r.body = "bad request\n";
      send_response(ssl.get(), r);
      return;
    }
    req.method = std::string(line.substr(0, sp1));
    req.path = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
    size_t pos = eol + 2;
    std::optional<size_t> content_length;
    bool bad_length = false;
    while (pos < head.size()) {
      size_t end = head.find("\r\n", pos);
      if (end == std::string::npos || end == pos) break;
      std::string_view h = std::string_view(head).substr(pos, end - pos);
      size_t colon = h.find(':');
      if (colon != std::string_view::npos) {
        const std::string name = lower(std::string(h.substr(0, colon)));
        const std::string value = trim(h.substr(colon + 1));
        if (name == "host") req.host = lower(host_without_port(value));
        if (name == "content-type") req.content_type = value;
        if (name == "content-length") {
          size_t n = 0;
          bad_length = value.empty() || value.size() > 9;
          for (char ch : value) {
            if (ch < '0' || ch > '9') bad_length = true;
            n = n * 10 + static_cast<size_t>(ch - '0');
          }
          content_length = n;
        }
      }
      pos = end + 2;
    }
    // The body: what came with the head, then the rest, up to its length.
    if (content_length) {
      if (bad_length || *content_length > kMaxHttpsRequestBodyBytes) {
        HttpsResponse r;
        r.status = 413;
        r.body = "request body too large\n";
        send_response(ssl.get(), r);
        return;
      }
      req.body = head.substr(std::min(head.size(), head.find("\r\n\r\n") + 4));
      char buf[8192];
      while (req.body.size() < *content_length) {
        int n = SSL_read(ssl.get(), buf, sizeof buf);
        if (n <= 0) {
          ERR_clear_error();
          return;
        }
        req.body.append(buf, static_cast<size_t>(n));
      }
      req.body.resize(*content_length);
    }
    const std::string key_host = req.host.empty() ? req.sni : req.host;

    HttpsResponse response;
    {
      std::unique_lock lock(mutex);
      ++request_count;
      if (log.size() < kMaxLoggedHttpsRequests) log.push_back(req);
      auto it = responses.find({key_host, req.path});
      if (it != responses.end()) {
        response = it->second;
      } else {
        response.status = 404;
        response.body = "not found\n";
      }
      if (response.delay.count() > 0 && wake.wait_for(lock, response.delay, [this] { return stopping; })) return;
      if (stopping) return;
    }
    if (send_response(ssl.get(), response)) SSL_shutdown(ssl.get());
    ERR_clear_error();
  }
};

HttpsServer::HttpsServer() : state_(std::make_unique<State>()) {}

HttpsServer::~HttpsServer() { stop(); }

void HttpsServer::start(const std::string& cert_file, const std::string& key_file, const std::string& address,
                        uint16_t port) {
  State& s = *state_;
  {
    std::lock_guard lock(s.mutex);
    if (s.running) throw std::runtime_error("the https server is already running");
  }
  CtxPtr ctx = make_context(cert_file, key_file);
  SSL_CTX_set_tlsext_servername_callback(ctx.get(), &State::on_servername);
  SSL_CTX_set_tlsext_servername_arg(ctx.get(), &s);

  const auto ip = base::parse_ip_address(address);
  if (!ip) throw std::runtime_error("`" + address + "` is not an IP address");
  const base::SocketAddress ss = base::socket_address(*ip, port);
  int fd = ::socket(ss.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, ss.get(), ss.length) != 0 || ::listen(fd, kListenBacklog) != 0) {
    std::string why = std::strerror(errno);
    ::close(fd);
    throw std::runtime_error("cannot listen on `" + address + "` port " + std::to_string(port) + ": " + why);
  }
  sockaddr_storage bound{};
  socklen_t bound_len = sizeof bound;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_len);
  uint16_t bound_port = ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                                         : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  int efd = ::eventfd(0, EFD_CLOEXEC);
  if (efd < 0) {
    ::close(fd);
    throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
  }

  std::lock_guard lock(s.mutex);
  s.default_ctx = std::move(ctx);
  s.listen_fd = fd;
  s.event_fd = efd;
  s.address = address;
  s.port = bound_port;
  s.stopping = false;
  s.running = true;
  s.acceptor = std::thread([&s] { s.accept_loop(); });
}

void HttpsServer::stop() {
  State& s = *state_;
  {
    std::lock_guard lock(s.mutex);
    if (!s.running) return;
    s.stopping = true;
  }
  s.wake.notify_all();
  uint64_t one = 1;
  [[maybe_unused]] ssize_t w = ::write(s.event_fd, &one, sizeof one);
  s.acceptor.join();
  {
    // Blocked reads and writes return at once; the threads close their fds.
    std::lock_guard lock(s.mutex);
    for (auto& c : s.connections)
      if (c.fd >= 0) ::shutdown(c.fd, SHUT_RDWR);
  }
  s.wake.notify_all();
  for (auto& c : s.connections) c.thread.join();
  std::lock_guard lock(s.mutex);
  s.connections.clear();
  ::close(s.listen_fd);
  ::close(s.event_fd);
  s.listen_fd = s.event_fd = -1;
  s.default_ctx.reset();
  s.running = false;
}

uint16_t HttpsServer::port() const {
  std::lock_guard lock(state_->mutex);
  return state_->port;
}

std::string HttpsServer::address() const {
  std::lock_guard lock(state_->mutex);
  return state_->address;
}

void HttpsServer::add_certificate(const std::string& host, const std::string& cert_file,
                                  const std::string& key_file) {
  std::shared_ptr<SSL_CTX> ctx(make_context(cert_file, key_file).release(), CtxDeleter());
  std::lock_guard lock(state_->mutex);
  state_->host_ctx[lower(host)] = std::move(ctx);
}

void HttpsServer::set_response(const std::string& host, const std::string& path, HttpsResponse response) {
  std::lock_guard lock(state_->mutex);
  state_->responses[{lower(host), path}] = std::move(response);
}

void HttpsServer::clear_responses() {
  std::lock_guard lock(state_->mutex);
  state_->responses.clear();
}

std::vector<HttpsRequest> HttpsServer::requests() const {
  std::lock_guard lock(state_->mutex);
  return state_->log;
}

size_t HttpsServer::request_count() const {
  std::lock_guard lock(state_->mutex);
  return state_->request_count;
}

size_t HttpsServer::connection_count() const {
  std::lock_guard lock(state_->mutex);
  return state_->connection_count;
}

}  // namespace tlsp::sim
