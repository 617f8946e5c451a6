// tlsp/sim/https_server.h — a scripted HTTPS/1.1 server for tests and live
// simulation: it plays MTA-STS policy hosts (https://mta-sts.<domain>/…),
// well-behaved or not, on the loopback.
//
// Contract:
//  * start() listens on `address` (an IPv4 or IPv6 literal, normally
//    127.0.0.x) and `port` (0: a free one) and accepts from one background
//    thread; each connection is served by a thread of its own, at most
//    kMaxHttpsConnections at once (more are closed at accept). stop() or
//    the destructor wakes every thread (also one waiting out a scripted
//    delay), closes every socket and joins. start() throws
//    std::runtime_error when it cannot listen or load the certificate.
//  * TLS 1.2 and 1.3 (OpenSSL). The certificate is chosen by SNI among
//    those given to add_certificate() (host names compared in lower case);
//    any other SNI, or none, gets the default certificate given to start().
//  * One request per connection (`Connection: close`). The request head
//    is bounded (kMaxHttpsRequestBytes: larger gets 431 and the connection
//    closed), every read and write by kHttpsIoTimeout.
//  * The response for (host, path) is the one scripted with set_response();
//    the host is the Host header without its port (the SNI when there is no
//    Host header); unscripted requests get 404 `text/plain`. A response can
//    lie: an announced Content-Length other than the body's size, a
//    chunked body of any size, a redirect, any Content-Type or none.
//  * A request body (a POST: a TLSRPT report) is read when it comes with a
//    Content-Length of at most kMaxHttpsRequestBodyBytes (larger gets 413
//    and the connection closed; chunked request bodies are not read) and
//    recorded with its Content-Type.
//  * Every request is recorded (SNI, Host, method, path, body), the first
//    kMaxLoggedHttpsRequests of them. All methods are thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace tlsp::sim {

// Limits, with their defaults.
inline constexpr size_t kMaxHttpsRequestBytes = 8192;  // request line and headers
inline constexpr size_t kMaxHttpsRequestBodyBytes = 1024 * 1024;  // a POST's body
inline constexpr std::chrono::milliseconds kHttpsIoTimeout{5000};
inline constexpr size_t kMaxHttpsConnections = 64;
inline constexpr size_t kMaxLoggedHttpsRequests = 10000;
inline constexpr size_t kDefaultHttpsChunkBytes = 4096;

enum class HttpsFraming : uint8_t { content_length, chunked };

struct HttpsResponse {
  int status = 200;
  std::string content_type = "text/plain";  // empty: no Content-Type header
  std::string body;
  std::string location;                     // non-empty: a Location header (redirects)
  HttpsFraming framing = HttpsFraming::content_length;
  // content_length framing: the Content-Length announced instead of the
  // body's size (a lie, or a huge announcement); the body is sent as is.
  std::optional<uint64_t> content_length;
  size_t chunk_bytes = kDefaultHttpsChunkBytes;  // chunked: the size of each chunk
  std::chrono::milliseconds delay{0};            // wait after the request, before answering
};

struct HttpsRequest {
  std::string sni;     // "" when the client sent none
  std::string host;    // the Host header without its port, lower case
  std::string method;
  std::string path;
  std::string peer;    // the client's address
  std::string content_type;  // the request's Content-Type, as sent
  std::string body;          // the request body (POST), as received
};

class HttpsServer {
 public:
  HttpsServer();
  ~HttpsServer();
  HttpsServer(const HttpsServer&) = delete;
  HttpsServer& operator=(const HttpsServer&) = delete;

  // cert_file: PEM chain, leaf first; key_file: its key. Throws
  // std::runtime_error when it cannot load them or listen, or when running.
  void start(const std::string& cert_file, const std::string& key_file, const std::string& address = "127.0.0.1",
             uint16_t port = 0);
  void stop();  // idempotent
  uint16_t port() const;
  std::string address() const;

  // The certificate for SNI `host`. Throws std::runtime_error naming the
  // file when it cannot be loaded. Takes effect for the next handshake.
  void add_certificate(const std::string& host, const std::string& cert_file, const std::string& key_file);
  void set_response(const std::string& host, const std::string& path, HttpsResponse response);
  void clear_responses();

  std::vector<HttpsRequest> requests() const;
  size_t request_count() const;
  size_t connection_count() const;  // connections accepted

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace tlsp::sim
