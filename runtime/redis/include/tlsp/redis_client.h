// tlsp/redis_client.h — the one Redis client of tlsp: how a `redis://`
// setting is read (parse_redis_url) and one connection to the server it
// names (RedisClient), shared by the TLSRPT store and the MTA-STS policy
// cache when they live in Redis.
//
// The URL, read strictly (anything else is refused with one line saying
// what is wrong):
//
//     redis://[[USER]:PASSWORD@]HOST:PORT/DB
//
// - HOST: a host name (tlsp::check_host_name, domain_name.h), an IPv4
//   literal, or an IPv6 literal in brackets (`[::1]`); as base/address.h
//   reads them. No zone, no empty host.
// - PORT: decimal 1..65535, no sign, no leading zero; required.
// - DB: the database number, decimal 0..kMaxRedisDb, no leading zero;
//   required (redis://h:6379/0), so that two settings naming the same
//   server and different databases cannot be mistaken for each other.
// - USER and PASSWORD: optional (`redis://:secret@h:6379/0`; with USER the
//   Redis 6 ACL form `AUTH USER PASSWORD`); printable ASCII without
//   `@ / : %` and space, or %XX for any byte but NUL.
// - No query, fragment or trailing text. At most kMaxRedisUrlLength bytes.
//   The parser is linear in the input and allocates only its result.
//
// RedisClient contract:
// - Connecting waits at most `connect_timeout` (the TCP connect, then
//   AUTH and SELECT each within `command_timeout`); a command's write and
//   its reply's read each wait at most `command_timeout` (SO_SNDTIMEO and
//   SO_RCVTIMEO on the socket). A host name is resolved by getaddrinfo(3)
//   first, which the timeouts do not bound: name the server by address
//   where a hung resolver matters.
// - Every failure is a result, never an exception or a crash: a
//   connection failure (refused, timed out, closed, a protocol error)
//   is `Status::connection_error`, a Redis error reply (`-ERR ...`,
//   `-NOSCRIPT ...`) is `Status::server_error`; `error` says which, in one
//   line naming the server.
// - After a connection error the connection is dropped (its state is
//   unknown: a reply may still be on its way) and the NEXT call connects
//   again; nothing reconnects in the background and nothing retries a
//   command by itself (the caller knows whether its command may run twice).
// - Thread-safe: one connection, one mutex held for the whole of a call
//   (connect included). Calls from several threads are served one at a
//   time; a slow server holds the others up to the timeouts above.
// - Writes on a socket the server has closed would raise SIGPIPE: the
//   first client made sets SIGPIPE to ignored when it still has the
//   default disposition (as tlsp::Stream does).
// - Replies are those of RESP2 (hiredis 0.14, Debian 12). A reply is held
//   whole in memory: callers send commands whose replies they bound.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tlsp::redis {

inline constexpr size_t kMaxRedisUrlLength = 1024;
inline constexpr int64_t kMaxRedisDb = 1000000;

struct RedisUrl {
  std::string host;         // a host name's normal form, or an address literal (IPv6 without brackets)
  bool host_is_ipv6 = false;
  uint16_t port = 0;
  int64_t db = 0;
  std::string user;         // empty: none (AUTH PASSWORD)
  std::string password;     // empty: no AUTH
  bool has_password = false;

  bool operator==(const RedisUrl&) const = default;
};

struct RedisUrlParse {
  std::optional<RedisUrl> url;
  std::string problem;      // when !url: one line, user text in backticks
};

// True when `spec` is meant as a Redis URL (it starts with `redis://`,
// case-insensitively): a setting that holds a path or a URL asks this
// first, then parse_redis_url() decides whether it is a valid one.
bool looks_like_redis_url(std::string_view spec);

RedisUrlParse parse_redis_url(std::string_view spec);

// The URL again, for logs and `--print-config`: the password is written as
// `***`, never in clear. Hosts are in their normal form, IPv6 in brackets.
std::string redacted_url(const RedisUrl& url);

// One RESP2 reply.
struct Reply {
  enum class Type : uint8_t { nil, integer, string, status, array, error };
  Type type = Type::nil;
  int64_t integer = 0;
  std::string str;                // string, status, error
  std::vector<Reply> elements;    // array
};

struct Result {
  enum class Status : uint8_t { ok, server_error, connection_error };
  Status status = Status::connection_error;
  Reply reply;                    // when ok (and server_error: the error reply)
  std::string error;              // when !ok(): one line, names the server

  bool ok() const { return status == Status::ok; }
};

struct ClientOptions {
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds command_timeout{1000};
};

class RedisClient {
 public:
  // Does not connect: the first call does.
  explicit RedisClient(RedisUrl url, ClientOptions options = {});
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // One command, its arguments as binary-safe strings: {"SET", key, value}.
  Result command(const std::vector<std::string>& argv);

  // A Lua script by EVALSHA: the first call loads it (SCRIPT LOAD, which
  // gives its SHA-1; the client keeps it), and a NOSCRIPT reply (the server
  // restarted, SCRIPT FLUSH) loads it again and repeats the EVALSHA once.
  // The script runs at most once per call: NOSCRIPT means it did not run.
  Result eval(std::string_view script, const std::vector<std::string>& keys, const std::vector<std::string>& args);

  // Connects now when not connected (a check at start-up); the result of
  // PING.
  Result ping();

  const RedisUrl& url() const;
  std::string describe() const;   // redacted_url()

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tlsp::redis
