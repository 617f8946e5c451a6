// redis_server.h — a real redis-server for a test: started on a free
// loopback port (127.0.0.1) in a temporary directory of its own with its
// own configuration (no persistence: `save ""`, no AOF), killed at the end.
// The tests of the Redis client, the TLSRPT store and the MTA-STS cache
// share it.
//
// Contract:
// - The constructor returns once the server answers PING (at most
//   kRedisStartTimeout), else throws std::runtime_error with the server's
//   log; a port another process took between the probe and the server's
//   bind is retried with a new port (kRedisStartAttempts).
// - The server dies with the test: it gets SIGKILL when the test process
//   ends (PR_SET_PDEATHSIG), and the destructor kills and reaps it and
//   removes its directory. Nothing is left running.
// - kill() stops it at once (SIGKILL, reaped: connections are refused);
//   start() brings it back on the same port, empty. pause() and resume()
//   (SIGSTOP, SIGCONT) make a server that accepts connections (the kernel
//   does) but answers nothing: a hung server, for timeouts.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace tlsp::testing_support {

inline constexpr std::chrono::seconds kRedisStartTimeout{10};
inline constexpr int kRedisStartAttempts = 5;

class TempDir;

class RedisServer {
 public:
  struct Options {
    std::string password;  // requirepass; empty: none
  };
  RedisServer();
  explicit RedisServer(Options options);
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  uint16_t port() const { return port_; }
  // redis://127.0.0.1:PORT/DB (with :PASSWORD@ when the server has one).
  std::string url(int db = 0) const;
  const std::string& dir() const;

  void kill();
  void start();
  void pause();
  void resume();
  bool running() const { return pid_ > 0; }

 private:
  bool launch();  // one attempt on port_; true once it answers
  Options options_;
  std::unique_ptr<TempDir> dir_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace tlsp::testing_support
