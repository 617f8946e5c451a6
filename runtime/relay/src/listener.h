// listener.h — the relay's front door: accepting SMTP clients on the
// listening sockets and giving each admitted one its session thread.
// Not a public header.
//
// Contract (the limits are RelayLimits' fields, each refusal a log line):
//  * Admission: a client is refused (421) beyond its connection rate
//    (submit networks exempt) or its concurrent connections; when every
//    slot is taken it waits before its greeting, at most admission_wait
//    and one place per client address, then gets 421 4.3.2.
//  * Eviction: a waiting client frees the slot of the session that has
//    waited longest for a command line, once that is evict_stalled_after.
//  * Stress: ctx.stress is set and cleared here as sessions come and go.
//  * Shutdown: accept_loop() returns once ctx.stopping is set (the wake
//    descriptor becomes readable); end_sessions() then waits for the
//    sessions and shuts the sockets of those still running.
// One Listener serves every listening socket (the limits count across
// them); each socket runs accept_loop() on its own thread. Session threads
// hold the Listener (and so the context) until they end.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "relay_context.h"
#include "smtp_session.h"

namespace tlsp::relay {

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  explicit Listener(std::shared_ptr<RelayContext> ctx) : ctx_(std::move(ctx)) {}

  // Accepts on `lfd` until ctx.stopping; `wake_fd` becomes readable when
  // that is asked. Clients still waiting for a slot are closed unanswered.
  void accept_loop(int lfd, int wake_fd);
  // Waits until `deadline` for the sessions to end, then shuts the sockets
  // of those left and gives them two more seconds.
  void end_sessions(std::chrono::steady_clock::time_point deadline);

 private:
  // Connections per client per time unit (anvil's fixed windows).
  struct RateWindow {
    std::chrono::steady_clock::time_point start;
    size_t count = 0;
    size_t refused = 0;  // only the first refusal of a window is logged as it happens
  };
  // A connection accepted while every slot is taken: it waits (before its
  // greeting) for a slot, as a client waits in Postfix's listen queue,
  // for at most admission_wait.
  struct Waiting {
    Stream stream;
    std::string client;
    std::chrono::steady_clock::time_point since;
  };

  void log(LogEvent event, const LogFields& fields) { ctx_->log->write(event, fields); }
  bool rate_allows(const std::string& client, std::chrono::steady_clock::time_point now, bool& first_refusal);
  void log_refusals(const std::string& client, const RateWindow& w);
  bool evict_stalled(std::chrono::steady_clock::time_point now);
  void update_stress();
  void refuse(Stream& stream, const std::string& client, const std::string& limit_name, const std::string& text,
              std::vector<std::pair<std::string, std::string>> extra = {}, bool logged = true);
  std::string too_many_connections() const;
  bool take_slot(std::chrono::steady_clock::time_point now);
  void start_session(Stream stream, const std::string& client);
  void leave(const std::string& client);
  void admit_waiting(std::deque<Waiting>& waiting);

  std::shared_ptr<RelayContext> ctx_;
  // Sessions, by socket. A session leaves `sessions_` before its socket is
  // closed, so a descriptor found here is always that session's.
  std::mutex sessions_mu_;
  std::condition_variable sessions_cv_;
  std::map<int, std::shared_ptr<SessionSlot>> sessions_;
  size_t sessions_active_ = 0;  // not evicted: the ones that hold a slot
  std::map<std::string, size_t> per_client_;
  // Entries whose window is over are swept once per time unit, so the map
  // holds at most the clients of the last two units.
  std::map<std::string, RateWindow> rates_;
  std::chrono::steady_clock::time_point rates_swept_{};
};

}  // namespace tlsp::relay
