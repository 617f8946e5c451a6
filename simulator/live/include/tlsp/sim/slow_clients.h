// tlsp/sim/slow_clients.h — a slow-client ("slowloris") attack on an SMTP
// server, for the relay's hardening test and benchmark: a fixed number of
// connections from given 127.0.0.x source addresses, each sending a script
// one byte per interval and opened again (at the next interval) whenever
// the server closes or refuses it.
//
// Contract: the constructor starts one thread that owns every socket; it
// paces itself by waiting on the sockets and a wake-up pipe with a
// deadline (no sleeping), so stop() returns at once. stats() may be read
// at any time. The destructor stops and closes everything.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace tlsp::sim {

struct SlowClientsConfig {
  std::string server = "127.0.0.1";
  uint16_t port = 25;
  std::vector<std::string> sources;  // source addresses, used in turn; empty: any
  size_t connections = 100;          // kept open (or re-opened) at all times
  std::chrono::milliseconds byte_interval{1000};
  // Sent from the start of each connection, one byte per interval; the
  // part after `repeat_from` repeats for ever.
  std::string script = "EHLO slow.example\r\nNOOP\r\n";
  size_t repeat_from = 19;
};

struct SlowClientsStats {
  size_t connects = 0;  // TCP connections made
  size_t greeted = 0;   // answered 220
  size_t refused = 0;   // answered 421 (or 5xx) instead of a greeting
  size_t cut = 0;       // greeted, later closed by the server (any reply)
};

class SlowClients {
 public:
  explicit SlowClients(SlowClientsConfig config);
  SlowClients(const SlowClients&) = delete;
  ~SlowClients();
  void stop();
  SlowClientsStats stats() const;

 private:
  void run();

  SlowClientsConfig config_;
  int wake_[2] = {-1, -1};
  std::atomic<bool> stopping_{false};
  std::atomic<size_t> connects_{0}, greeted_{0}, refused_{0}, cut_{0};
  std::thread thread_;
};

}  // namespace tlsp::sim
