// metrics_server.h — the relay's metrics endpoint: `GET /metrics` over
// HTTP/1.1 on the `metrics-listen` address (loopback only: relay_config.cpp
// refuses any other), answered in the Prometheus text format 0.0.4
// (metrics.h), one request per connection (`Connection: close`). A small
// server of its own rather than a library: it needs one path and one
// method, and every byte of it stays bounded. Not a public header.
//
// Contract:
//  * One thread serves every connection from one poll(2) loop; at most
//    kMaxScrapeConnections at once (another waits in the listen backlog
//    until one ends, at the latest when its time is up).
//  * A request head (request line and header fields, through the empty
//    line) is at most kMaxHttpRequestHeadBytes: a longer one gets 431. A
//    connection has kScrapeTimeout from its accept to its last byte sent
//    (408 when the head did not arrive by then).
//  * parse_http_request_head() reads the head in one pass over at most
//    kMaxHttpRequestHeadBytes, and acts only on a head it validated in
//    whole (RFC 9112 §2-§5): a request line `METHOD SP /path SP
//    HTTP/1.x`, lines ending in CR LF only, field names that are tokens,
//    values without control bytes, no folded lines, exactly one Host for
//    HTTP/1.1, no body (a Content-Length other than 0 or a
//    Transfer-Encoding is refused). Anything else is 400, another HTTP
//    version 505.
//  * The answer: 200 with the metrics for GET or HEAD of /metrics (a query
//    string is ignored), 404 for another path, 405 (Allow: GET, HEAD) for
//    another method.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <thread>

namespace tlsp::relay {

inline constexpr size_t kMaxHttpRequestHeadBytes = 8192;
inline constexpr size_t kMaxScrapeConnections = 4;
inline constexpr std::chrono::seconds kScrapeTimeout{10};

struct HttpRequestHead {
  enum class State { incomplete, complete, refused };
  State state = State::incomplete;
  int status = 0;       // refused: 400, 431 or 505
  std::string problem;  // refused: why, in a few words (the response body says it)
  std::string method;   // complete
  std::string path;     // complete: the target without its query
  size_t length = 0;    // complete: the bytes of the head, through the empty line
};

// The head at the start of `received` (what a connection sent so far):
// incomplete while it may still become a valid head, else complete or
// refused. Looks at no more than kMaxHttpRequestHeadBytes of it.
HttpRequestHead parse_http_request_head(std::string_view received);

// The whole response to a complete or refused head: status line, header
// fields, and the body (none for HEAD). `render` gives the metrics text; it
// is called only for a 200, and a throw from it becomes a 500.
std::string metrics_http_response(const HttpRequestHead& head, const std::function<std::string()>& render);

class MetricsServer {
 public:
  // Binds `listen` ("127.0.0.1:9100", "[::1]:9100"; port 0: any free
  // port), already validated by relay_config_problems(). Throws
  // std::runtime_error naming the address when it cannot listen.
  // `timeout`: a connection's time from accept to its last byte (tests
  // shorten it).
  MetricsServer(const std::string& listen, std::function<std::string()> render,
                std::chrono::milliseconds timeout = kScrapeTimeout);
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;
  ~MetricsServer();  // stop()

  // The address as bound, "127.0.0.1:9100" (the port chosen for port 0).
  const std::string& address() const { return address_; }
  // Serves on a thread of its own until stop(), which closes every
  // connection and joins it. Both are called once, from one thread.
  void start();
  void stop();

 private:
  void serve();

  std::function<std::string()> render_;
  const std::chrono::milliseconds timeout_;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::string address_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace tlsp::relay
