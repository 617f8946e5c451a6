// listener.cpp — accepting SMTP clients: the connection limits, the
// per-client rate, stress, the waiting room and eviction of stalled
// sessions (listener.h has the contract). The dialogue itself is
// smtp_server.cpp's.
#include "listener.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <thread>

namespace tlsp::relay {

// The rate check counts every connection, refused ones too: a client
// hammering the port stays refused until its window is over. A flood of
// refusals is one log line when it starts and one with the count when
// its window ends, not a line per attempt. `first_refusal`: log this
// one. Called with sessions_mu_ held.
bool Listener::rate_allows(const std::string& client, std::chrono::steady_clock::time_point now, bool& first_refusal) {
  const RelayLimits& lim = ctx_->config.limits;
  const auto unit = lim.connection_rate_time_unit;
  if (now - rates_swept_ >= unit) {
    std::erase_if(rates_, [&](const auto& r) {
      if (now - r.second.start < unit) return false;
      log_refusals(r.first, r.second);
      return true;
    });
    rates_swept_ = now;
  }
  RateWindow& w = rates_[client];
  if (w.count == 0 || now - w.start >= unit) {
    log_refusals(client, w);
    w = {now, 0, 0};
  }
  if (++w.count <= lim.max_connection_rate_per_client) return true;
  first_refusal = ++w.refused == 1;
  return false;
}

void Listener::log_refusals(const std::string& client, const RateWindow& w) {
  if (w.refused < 2) return;
  log(LogEvent::limit, {{"client", client},
                {"limit", "max_connection_rate_per_client"},
                {"refused", std::to_string(w.refused)},
                {"window", std::to_string(ctx_->config.limits.connection_rate_time_unit.count()) + "s"}});
}

// All slots are taken: frees the one whose session has waited longest
// for a command line, if that is at least evict_stalled_after. The
// session is told through its slot and woken by shutting its socket's
// read side; it replies 421 and leaves on its own thread. Called with
// sessions_mu_ held.
bool Listener::evict_stalled(std::chrono::steady_clock::time_point now) {
  const auto min_wait = ctx_->config.limits.evict_stalled_after;
  if (min_wait.count() == 0) return false;
  const int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
  SessionSlot* longest = nullptr;
  int64_t longest_wait = 0;
  for (auto& [fd, slot] : sessions_) {
    if (slot->evicted) continue;
    int64_t since = slot->waiting_since_ns.load();
    if (since == 0) continue;
    if (now_ns - since > longest_wait) {
      longest_wait = now_ns - since;
      longest = slot.get();
    }
  }
  if (!longest || std::chrono::nanoseconds(longest_wait) < min_wait) return false;
  longest->evicted = true;
  ::shutdown(longest->fd, SHUT_RD);
  --sessions_active_;
  return true;
}

// Stress starts when the sessions in use reach the threshold and ends
// ten points below it, so it does not flap with every session that comes
// and goes. Called with sessions_mu_ held.
void Listener::update_stress() {
  const RelayLimits& lim = ctx_->config.limits;
  if (lim.stress_threshold_percent == 0) return;
  const size_t used = sessions_active_ * 100;
  const size_t off = lim.stress_threshold_percent > 10 ? lim.stress_threshold_percent - 10 : 0;
  bool on = ctx_->stress;
  if (!on && used >= lim.stress_threshold_percent * lim.max_connections) on = true;
  if (on && (used < off * lim.max_connections || sessions_active_ == 0)) on = false;
  if (on == ctx_->stress) return;
  ctx_->stress = on;
  log(LogEvent::stress, {{"result", on ? "on" : "off"},
                 {"sessions", std::to_string(sessions_active_)},
                 {"max_connections", std::to_string(lim.max_connections)}});
}

void Listener::refuse(Stream& stream, const std::string& client, const std::string& limit_name,
                      const std::string& text, std::vector<std::pair<std::string, std::string>> extra, bool logged) {
  std::vector<std::pair<std::string, std::string>> fields = {{"client", client}, {"limit", limit_name}};
  fields.insert(fields.end(), extra.begin(), extra.end());
  fields.push_back({"reply", text});
  if (logged) log(LogEvent::limit, std::move(fields));
  ctx_->metrics.connection_refused(limit_name);  // every refusal, logged or not
  stream.set_timeout(std::chrono::milliseconds(1000));
  stream.write_all(text + "\r\n");
}

std::string Listener::too_many_connections() const {
  return "421 4.3.2 " + ctx_->hostname + " Too many connections, try again later";
}

// Takes a slot for one more session: a free one, or one freed by
// evicting the longest-stalled session. Called with sessions_mu_ held.
bool Listener::take_slot(std::chrono::steady_clock::time_point now) {
  if (sessions_active_ >= ctx_->config.limits.max_connections && !evict_stalled(now)) return false;
  ++sessions_active_;
  update_stress();
  return true;
}

// Starts the session on its own thread; its slot is taken (take_slot)
// and the client counted in per_client_ already.
void Listener::start_session(Stream stream, const std::string& client) {
  auto slot = std::make_shared<SessionSlot>();
  slot->fd = stream.fd();
  {
    std::lock_guard lock(sessions_mu_);
    sessions_[slot->fd] = slot;
  }
  auto self = shared_from_this();
  std::thread([self, s = std::move(stream), slot, client]() mutable {
    serve_smtp_session(*self->ctx_, s, self->ctx_->stopping, *slot);
    {
      // Before `s` closes the socket: see `sessions_`.
      std::lock_guard lock(self->sessions_mu_);
      self->sessions_.erase(slot->fd);
      if (!slot->evicted) --self->sessions_active_;
      self->leave(client);
      self->update_stress();
    }
    self->sessions_cv_.notify_all();
  }).detach();
}

// Called with sessions_mu_ held.
void Listener::leave(const std::string& client) {
  auto it = per_client_.find(client);
  if (it != per_client_.end() && --it->second == 0) per_client_.erase(it);
}

// The waiting room, oldest first: admits while slots can be had, and
// refuses those that waited admission_wait.
void Listener::admit_waiting(std::deque<Waiting>& waiting) {
  const auto now = std::chrono::steady_clock::now();
  while (!waiting.empty()) {
    bool admit = false, expired = false;
    {
      std::lock_guard lock(sessions_mu_);
      admit = take_slot(now);
      expired = !admit && now - waiting.front().since >= ctx_->config.limits.admission_wait;
      if (expired) leave(waiting.front().client);
    }
    if (!admit && !expired) return;
    Waiting w = std::move(waiting.front());
    waiting.pop_front();
    if (admit) {
      start_session(std::move(w.stream), w.client);
    } else {
      auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(now - w.since);
      refuse(w.stream, w.client, "max_connections", too_many_connections(),
             {{"waited", std::to_string(waited.count()) + "ms"}});
    }
  }
}

void Listener::accept_loop(int lfd, int wake_fd) {
  const RelayLimits& lim = ctx_->config.limits;
  std::deque<Waiting> waiting;
  while (!ctx_->stopping) {
    pollfd fds[2] = {{lfd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    // With clients waiting, look again soon: a slot frees, or a session
    // becomes evictable, without an event of its own here.
    int n = ::poll(fds, 2, waiting.empty() ? 1000 : 50);
    if (ctx_->stopping) break;
    admit_waiting(waiting);
    if (n <= 0 || !(fds[0].revents & POLLIN)) continue;
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int fd = ::accept4(lfd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC);
    if (fd < 0) continue;
    Stream stream(fd);
    std::string client = stream.peer_address();
    const auto now = std::chrono::steady_clock::now();
    std::string refusal, limit_name;
    bool admit = false, log_refusal = true;
    {
      std::lock_guard lock(sessions_mu_);
      auto pc = per_client_.find(client);
      if (lim.max_connection_rate_per_client > 0 && !ctx_->in_submit_networks(client) &&
          !rate_allows(client, now, log_refusal)) {
        limit_name = "max_connection_rate_per_client";
        refusal = "421 4.7.0 " + ctx_->hostname + " Error: too many connections from " + client;
      } else if ((pc == per_client_.end() ? 0 : pc->second) >= lim.max_connections_per_client) {
        limit_name = "max_connections_per_client";
        refusal = "421 4.7.0 " + ctx_->hostname + " Too many connections from your address";
      } else if (waiting.empty() && take_slot(now)) {
        admit = true;
      } else if (lim.admission_wait.count() == 0 || waiting.size() >= lim.max_connections ||
                 std::any_of(waiting.begin(), waiting.end(), [&](const Waiting& w) { return w.client == client; })) {
        // One place in the queue per client address: many connections
        // from one address must not crowd out everybody else.
        limit_name = "max_connections";
        refusal = too_many_connections();
      }
      if (refusal.empty()) per_client_[client]++;  // a session, or waiting for one
    }
    if (!refusal.empty())
      refuse(stream, client, limit_name, refusal, {}, log_refusal);
    else if (admit)
      start_session(std::move(stream), client);
    else
      waiting.push_back({std::move(stream), client, now});  // behind those already waiting
  }
  std::lock_guard lock(sessions_mu_);
  for (Waiting& w : waiting) leave(w.client);  // closed unanswered: they never had a greeting
  for (const auto& [client, w] : rates_) log_refusals(client, w);
  rates_.clear();
}

void Listener::end_sessions(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(sessions_mu_);
  sessions_cv_.wait_until(lock, deadline, [&] { return sessions_.empty(); });
  for (auto& [fd, slot] : sessions_) ::shutdown(fd, SHUT_RDWR);
  sessions_cv_.wait_for(lock, std::chrono::seconds(2), [&] { return sessions_.empty(); });
}

}  // namespace tlsp::relay
