// metrics_server.cpp — the metrics endpoint's HTTP: the request head
// parser, the response, and the one-thread poll loop that serves them
// (metrics_server.h has the contract).
#include "metrics_server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <vector>

#include "relay_config.h"
#include "tlsp/stream.h"

namespace tlsp::relay {
namespace {

using Clock = std::chrono::steady_clock;

// After the response: how long, and how much, a connection is read and
// dropped before it is closed, so that unread input (an oversize head)
// does not make the kernel answer with a reset that destroys the response.
constexpr std::chrono::milliseconds kDrainTime{1000};
constexpr size_t kDrainBytes = 64 * 1024;
// accept() failing for want of descriptors (EMFILE, ENFILE) or memory
// leaves the connection in the backlog: wait this long before trying again
// rather than spin on a listening socket that stays readable.
constexpr std::chrono::milliseconds kAcceptBackoff{100};

// RFC 9110 §5.6.2: tchar.
bool is_tchar(char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar); }

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x >= 'A' && x <= 'Z' ? x + 32 : x) == (y >= 'A' && y <= 'Z' ? y + 32 : y);
         });
}

HttpRequestHead refused(int status, std::string problem) {
  HttpRequestHead h;
  h.state = HttpRequestHead::State::refused;
  h.status = status;
  h.problem = std::move(problem);
  return h;
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
  }
  return "Error";
}

std::string response(int status, std::string_view content_type, const std::string& body, bool send_body,
                     std::string_view extra_header = {}) {
  std::string r = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason_phrase(status)) + "\r\n";
  r += "Content-Type: " + std::string(content_type) + "\r\n";
  r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  if (!extra_header.empty()) r += std::string(extra_header) + "\r\n";
  r += "Connection: close\r\n\r\n";
  if (send_body) r += body;
  return r;
}

std::string error_response(int status, const std::string& problem, std::string_view extra_header = {}) {
  return response(status, "text/plain; charset=utf-8",
                  std::to_string(status) + " " + std::string(reason_phrase(status)) +
                      (problem.empty() ? "" : ": " + problem) + "\n",
                  true, extra_header);
}

}  // namespace

HttpRequestHead parse_http_request_head(std::string_view received) {
  const std::string_view window = received.substr(0, kMaxHttpRequestHeadBytes);
  // Lines end in CR LF only (RFC 9112 §2.2); a bare LF is refused at once
  // rather than waited on until the timeout.
  for (size_t i = window.find('\n'); i != std::string_view::npos; i = window.find('\n', i + 1))
    if (i == 0 || window[i - 1] != '\r') return refused(400, "a line ends in a bare LF");
  const size_t end = window.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (received.size() >= kMaxHttpRequestHeadBytes)
      return refused(431, "the request head is longer than " + std::to_string(kMaxHttpRequestHeadBytes) + " bytes");
    return {};
  }
  std::string_view head = window.substr(0, end + 2);  // every line with its CR LF

  // The request line: method SP request-target SP HTTP-version.
  size_t eol = head.find("\r\n");
  const std::string_view line = head.substr(0, eol);
  head.remove_prefix(eol + 2);
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
    return refused(400, "the request line is not `METHOD /path HTTP/1.1`");
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!is_token(method)) return refused(400, "the method is not a token");
  if (target.empty() || target.front() != '/' ||
      !std::all_of(target.begin(), target.end(), [](char c) { return c > 0x20 && c < 0x7f; }))
    return refused(400, "the request target is not an absolute path");
  if (version.size() != 8 || !version.starts_with("HTTP/") || version[6] != '.' || version[5] < '0' ||
      version[5] > '9' || version[7] < '0' || version[7] > '9')
    return refused(400, "the HTTP version is malformed");
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return refused(505, "only HTTP/1.0 and HTTP/1.1 are served");

  // The header fields: name ":" OWS value OWS, no obs-fold (RFC 9112 §5).
  size_t hosts = 0;
  while (!head.empty()) {
    eol = head.find("\r\n");
    const std::string_view field = head.substr(0, eol);
    head.remove_prefix(eol + 2);
    const size_t colon = field.find(':');
    if (colon == std::string_view::npos || !is_token(field.substr(0, colon)))
      return refused(400, "a header field is not `name: value`");
    const std::string_view name = field.substr(0, colon);
    std::string_view value = field.substr(colon + 1);
    for (char c : value) {
      const unsigned char u = static_cast<unsigned char>(c);
      if ((u < 0x20 && c != '\t') || u == 0x7f) return refused(400, "a header field value has a control byte");
    }
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (iequals(name, "Host")) ++hosts;
    if (iequals(name, "Transfer-Encoding") || (iequals(name, "Content-Length") && value != "0"))
      return refused(400, "a scrape request has no body");
  }
  if (hosts > 1 || (hosts == 0 && version == "HTTP/1.1"))
    return refused(400, "an HTTP/1.1 request needs exactly one Host field");

  HttpRequestHead h;
  h.state = HttpRequestHead::State::complete;
  h.method = std::string(method);
  h.path = std::string(target.substr(0, target.find('?')));
  h.length = end + 4;
  return h;
}

std::string metrics_http_response(const HttpRequestHead& head, const std::function<std::string()>& render) {
  if (head.state != HttpRequestHead::State::complete)
    return error_response(head.state == HttpRequestHead::State::refused ? head.status : 400, head.problem);
  if (head.method != "GET" && head.method != "HEAD")
    return error_response(405, "only GET and HEAD are served", "Allow: GET, HEAD");
  if (head.path != "/metrics") return error_response(404, "the metrics are at /metrics");
  std::string body;
  try {
    body = render();
  } catch (const std::exception& e) {
    return error_response(500, e.what());
  }
  return response(200, "text/plain; version=0.0.4; charset=utf-8", body, head.method == "GET");
}

// ---------------------------------------------------------------- server

MetricsServer::MetricsServer(const std::string& listen, std::function<std::string()> render,
                             std::chrono::milliseconds timeout)
    : render_(std::move(render)), timeout_(timeout) {
  const std::optional<HostPort> hp = parse_host_port(listen);
  if (!hp) throw std::runtime_error("metrics-listen `" + listen + "` is not address:port");
  std::string error;
  listen_fd_ = listen_tcp(hp->host, hp->port, 16, error);
  if (listen_fd_ < 0) throw std::runtime_error("cannot listen for metrics on `" + listen + "`: " + error);
  if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
    const std::string why = std::strerror(errno);
    ::close(listen_fd_);
    throw std::runtime_error("pipe: " + why);
  }
  ::fcntl(listen_fd_, F_SETFL, ::fcntl(listen_fd_, F_GETFL) | O_NONBLOCK);
  const bool v6 = hp->host.find(':') != std::string::npos;
  address_ = (v6 ? "[" + hp->host + "]" : hp->host) + ":" + std::to_string(bound_port(listen_fd_));
}

MetricsServer::~MetricsServer() {
  stop();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  for (int fd : wake_)
    if (fd >= 0) ::close(fd);
}

void MetricsServer::start() {
  thread_ = std::thread([this] { serve(); });
}

void MetricsServer::stop() {
  stopping_ = true;
  if (wake_[1] >= 0) {
    char b = 's';
    [[maybe_unused]] ssize_t n = ::write(wake_[1], &b, 1);
  }
  if (thread_.joinable()) thread_.join();
}

namespace {

// One scrape connection: reading its head, writing the response, then
// draining what it still sends until it closes (or the drain bounds).
struct ScrapeConnection {
  enum class Phase { reading, writing, draining };
  int fd = -1;
  Phase phase = Phase::reading;
  std::string in, out;
  size_t sent = 0, drained = 0;
  Clock::time_point deadline;
};

// Sends what the socket takes now; the rest waits for POLLOUT.
// Returns false when the connection is gone.
bool send_some(ScrapeConnection& c) {
  while (c.sent < c.out.size()) {
    const ssize_t n = ::send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
    if (n > 0) {
      c.sent += static_cast<size_t>(n);
      continue;
    }
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
  }
  ::shutdown(c.fd, SHUT_WR);
  c.phase = ScrapeConnection::Phase::draining;
  c.deadline = std::min(c.deadline, Clock::now() + kDrainTime);
  return true;
}

void respond(ScrapeConnection& c, std::string bytes) {
  c.out = std::move(bytes);
  c.sent = 0;
  c.phase = ScrapeConnection::Phase::writing;
}

}  // namespace

void MetricsServer::serve() {
  std::vector<ScrapeConnection> conns;
  Clock::time_point accept_again{};
  auto close_conn = [](ScrapeConnection& c) {
    ::close(c.fd);
    c.fd = -1;
  };
  while (!stopping_) {
    // With every slot taken, new connections wait in the listen backlog.
    auto now = Clock::now();
    const bool room = conns.size() < kMaxScrapeConnections && now >= accept_again;
    std::vector<pollfd> fds = {{room ? listen_fd_ : -1, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    int timeout = now < accept_again ? static_cast<int>(kAcceptBackoff.count()) : 1000;
    for (const ScrapeConnection& c : conns) {
      fds.push_back({c.fd, static_cast<short>(c.phase == ScrapeConnection::Phase::writing ? POLLOUT : POLLIN), 0});
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(c.deadline - now).count();
      timeout = static_cast<int>(std::clamp<int64_t>(left, 0, timeout));
    }
    if (::poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR) break;
    if (stopping_) break;
    now = Clock::now();
    for (size_t i = 0; i < conns.size(); ++i) {
      ScrapeConnection& c = conns[i];
      const short ev = fds[i + 2].revents;
      if (c.phase == ScrapeConnection::Phase::writing && (ev & (POLLOUT | POLLERR | POLLHUP))) {
        if (!send_some(c)) close_conn(c);
        continue;
      }
      if (!(ev & (POLLIN | POLLERR | POLLHUP))) continue;
      char buf[4096];
      const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
      if (n <= 0) {  // the client closed (or failed) before a complete head, or after the response
        close_conn(c);
        continue;
      }
      if (c.phase == ScrapeConnection::Phase::draining) {
        c.drained += static_cast<size_t>(n);
        if (c.drained > kDrainBytes) close_conn(c);
        continue;
      }
      // Never more than the bound is kept: the parser looks no further.
      const size_t room = c.in.size() <= kMaxHttpRequestHeadBytes ? kMaxHttpRequestHeadBytes + 1 - c.in.size() : 0;
      c.in.append(buf, std::min(static_cast<size_t>(n), room));
      const HttpRequestHead head = parse_http_request_head(c.in);
      if (head.state == HttpRequestHead::State::incomplete) continue;
      respond(c, metrics_http_response(head, render_));
      if (!send_some(c)) close_conn(c);
    }
    // Out of time: a head that never came gets 408 (best effort, the
    // socket may be full); anything else is closed.
    for (ScrapeConnection& c : conns) {
      if (c.fd < 0 || now < c.deadline) continue;
      if (c.phase == ScrapeConnection::Phase::reading) {
        const std::string r = error_response(408, "the request did not arrive in time");
        [[maybe_unused]] ssize_t n = ::send(c.fd, r.data(), r.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      }
      close_conn(c);
    }
    std::erase_if(conns, [](const ScrapeConnection& c) { return c.fd < 0; });
    if (fds[0].revents & POLLIN) {
      while (conns.size() < kMaxScrapeConnections) {
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
          if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
            accept_again = now + kAcceptBackoff;
          break;
        }
        ScrapeConnection c;
        c.fd = fd;
        c.deadline = now + timeout_;
        conns.push_back(std::move(c));
      }
    }
    if (fds[1].revents & POLLIN) {
      char b[64];
      while (::read(wake_[0], b, sizeof b) > 0) {
      }
    }
  }
  for (ScrapeConnection& c : conns)
    if (c.fd >= 0) ::close(c.fd);
}

}  // namespace tlsp::relay
