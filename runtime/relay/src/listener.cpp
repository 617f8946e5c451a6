// relay.cpp — `tlsp relay` put together: configuration checks, the shared
// context, the listeners (connection limits, the per-client rate, stress,
// the waiting room and eviction of stalled sessions), the queue (a
// schedule over the spool, delivery workers, retries, bounces), table
// reloads and the clean shutdown. The SMTP dialogue lives in
// smtp_server.cpp, one delivery run in delivery.cpp.
//
// Queue rules (relay.h, SPEC §6):
//  * An entry leaves the spool only when every recipient is delivered or
//    bounced. A bounce is stored before the entry it reports on is
//    removed: a crash in between gives a duplicate bounce, never a loss.
//  * A temporary refusal sets next_attempt from the retry schedule; once
//    the queue lifetime is over the remaining recipients are bounced.
//  * A null-sender entry that fails is moved to the spool's failed area
//    with the reason, and logged (there is nobody to bounce to).
#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

#include "relay_context.h"
#include "tlsp/dsn.h"

namespace tlsp {

using namespace relay;

// ------------------------------------------------------------ addresses

namespace relay {

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

// ------------------------------------------------------------ context

bool RelayContext::in_submit_networks(std::string_view address) const {
  const auto a = base::parse_ip_address(address);
  if (!a) return false;
  for (const Cidr& n : submit_networks)
    if (base::contains(n, *a)) return true;
  return false;
}

const NextHop* RelayContext::next_hop(std::string_view domain) const {
  for (const NextHop& h : config.next_hops)
    if (h.domain == domain) return &h;
  return nullptr;
}

bool RelayContext::is_managed(std::string_view domain) const {
  if (next_hop(domain)) return true;
  auto t = table.get();
  return t && t->lookup(Direction::outbound, domain, "").domain_listed;
}

}  // namespace relay

// ------------------------------------------------------- configuration

namespace {

struct HostPort {
  std::string host;
  uint16_t port = 0;
};

std::optional<HostPort> parse_host_port(std::string_view s) {
  HostPort hp;
  std::string_view port;
  if (!s.empty() && s.front() == '[') {
    size_t close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') return std::nullopt;
    hp.host = std::string(s.substr(1, close - 1));
    port = s.substr(close + 2);
  } else {
    size_t colon = s.rfind(':');
    if (colon == std::string_view::npos || s.find(':') != colon) return std::nullopt;
    hp.host = std::string(s.substr(0, colon));
    port = s.substr(colon + 1);
  }
  if (hp.host.empty() || port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  int p = std::stoi(std::string(port));
  if (p < 0 || p > 65535) return std::nullopt;
  hp.port = static_cast<uint16_t>(p);
  return hp;
}

}  // namespace

std::vector<ConfigProblem> relay_config_problems(const RelayConfig& c) {
  std::vector<ConfigProblem> out;
  auto bad = [&](std::string setting, std::string value, std::string text) {
    out.push_back({std::move(setting), std::move(value), std::move(text)});
  };
  if (c.listen.empty()) bad("listen", "", "at least one address:port is needed");
  for (const std::string& l : c.listen)
    if (!parse_host_port(l)) bad("listen", l, "`" + l + "` is not address:port");
  if (c.table.empty()) bad("table", "", "a decision table is required (tlsp compile)");
  if (c.spool_dir.empty()) bad("spool", "", "a spool directory is required");
  if (c.tls_cert.empty() != c.tls_key.empty())
    bad(c.tls_cert.empty() ? "tls-key" : "tls-cert", "", "tls-cert and tls-key go together");
  for (const std::string& n : c.submit_networks) {
    const base::CidrParse p = base::parse_cidr(n);
    if (p.problem == base::CidrProblem::host_bits)
      bad("submit-network", n, "`" + n + "` has host bits set; did you mean `" + base::cidr_text(p.cidr) + "`?");
    else if (!p.ok())
      bad("submit-network", n, "`" + n + "` is not an address or CIDR");
  }
  for (const NextHop& h : c.next_hops) {
    if (h.domain.empty() || h.host.empty()) bad("next-hop", h.domain, "needs domain=host:port");
    else if (h.domain != lower(h.domain)) bad("next-hop", h.domain, "domain `" + h.domain + "` must be lower case");
  }
  if (!RetrySchedule::parse(c.retry_schedule))
    bad("retry-schedule", "", "`" + c.retry_schedule + "` is not a list of durations");
  if (c.queue_lifetime.count() <= 0) bad("queue-lifetime", "", "must be positive");
  if (c.delivery_workers == 0 || c.delivery_workers > 256) bad("delivery-workers", "", "must be 1..256");
  const RelayLimits& l = c.limits;
  if (l.max_connections == 0) bad("max-connections", "", "must be positive");
  if (l.max_line_length < 512) bad("max-line-length", "", "must be at least 512 (RFC 5321 §4.5.3.1.4)");
  if (l.max_recipients < 1) bad("max-recipients", "", "must be at least 1");
  if (l.max_message_size < 1024) bad("max-message-size", "", "must be at least 1024");
  if (l.stress_threshold_percent > 100)
    bad("stress-threshold", "", "must be 0..100 (percent of max-connections; 0 disables)");
  if (l.idle_timeout.count() <= 0) bad("idle-timeout", "", "must be positive");
  if (l.stress_idle_timeout.count() <= 0) bad("stress-idle-timeout", "", "must be positive");
  if (l.data_phase_timeout.count() <= 0) bad("data-phase-timeout", "", "must be positive");
  if (l.session_timeout.count() <= 0) bad("session-timeout", "", "must be positive");
  if (l.max_connection_rate_per_client > 0 && l.connection_rate_time_unit.count() <= 0)
    bad("connection-rate-time-unit", "", "must be positive");
  return out;
}

void validate_relay_config(const RelayConfig& c, std::initializer_list<std::string_view> not_needed) {
  std::string all;
  for (const ConfigProblem& p : relay_config_problems(c))
    if (std::find(not_needed.begin(), not_needed.end(), p.setting) == not_needed.end())
      all += (all.empty() ? "" : "\n") + p.setting + ": " + p.text;
  if (!all.empty()) throw std::invalid_argument(all);
}

std::string relay::relay_hostname(const RelayConfig& c) {
  if (!c.hostname.empty()) return c.hostname;
  char buf[256] = {};
  ::gethostname(buf, sizeof buf - 1);
  return buf[0] ? buf : "localhost";
}

// ---------------------------------------------------------------- Relay

struct Relay::Impl : std::enable_shared_from_this<Relay::Impl> {
  RelayContext ctx;
  std::vector<int> listeners;
  std::vector<uint16_t> ports;
  int wake[2] = {-1, -1};
  std::atomic<bool> stopping{false};
  std::atomic<bool> reload_requested{false};

  // Sessions, by socket. A session leaves `sessions` before its socket is
  // closed, so a descriptor found here is always that session's.
  std::mutex sessions_mu;
  std::condition_variable sessions_cv;
  std::map<int, std::shared_ptr<SessionSlot>> sessions;
  size_t sessions_active = 0;  // not evicted: the ones that hold a slot
  std::map<std::string, size_t> per_client;
  // Connections per client per time unit (anvil's fixed windows). Entries
  // whose window is over are swept once per time unit, so the map holds at
  // most the clients of the last two units.
  struct RateWindow {
    std::chrono::steady_clock::time_point start;
    size_t count = 0;
    size_t refused = 0;  // only the first refusal of a window is logged as it happens
  };
  std::map<std::string, RateWindow> rates;
  std::chrono::steady_clock::time_point rates_swept{};

  // The queue: entries by id, and the schedule by next attempt.
  std::mutex queue_mu;
  std::condition_variable queue_cv;
  std::map<std::string, QueueEntry> queue;
  std::set<std::pair<int64_t, std::string>> schedule;
  size_t in_flight = 0;

  struct stat table_stat {};

  ~Impl() {
    for (int fd : listeners) ::close(fd);
    for (int fd : wake)
      if (fd >= 0) ::close(fd);
  }

  void log(LogEvent event, const LogFields& fields) {
    ctx.log->write(event, fields);
  }

  // ------------------------------------------------------------ table

  // The file-change check. A rename gives a new inode; a write in place
  // (`cp` over the table) changes the size or the times. The change time
  // counts too: `cp -p` puts the old modification time back, and the
  // kernel cannot set the change time back.
  static bool same_file(const struct stat& a, const struct stat& b) {
    return a.st_ino == b.st_ino && a.st_dev == b.st_dev && a.st_size == b.st_size &&
           a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec &&
           a.st_ctim.tv_sec == b.st_ctim.tv_sec && a.st_ctim.tv_nsec == b.st_ctim.tv_nsec;
  }

  // The table in force changes only here, and only to a table that
  // DecisionTable::open() read into its own memory and validated: a
  // refused file, or one rewritten later, has no effect on the table in
  // force (the log line's `kept` is the truth).
  void load_table(std::string_view why) {
    struct stat st {};
    ::stat(ctx.config.table.c_str(), &st);
    // Taken before the read, so a write still going on during it (a
    // half-written file, refused) shows as a change at the next check,
    // and a refused file is not retried until it changes.
    table_stat = st;
    std::shared_ptr<const DecisionTable> t;
    try {
      t = std::make_shared<const DecisionTable>(DecisionTable::open(ctx.config.table));
    } catch (const std::exception& e) {
      if (!ctx.table.get()) throw;
      log(LogEvent::table, {{"result", "refused"},
                    {"why", std::string(why)},
                    {"path", ctx.config.table},
                    {"error", e.what()},
                    {"kept", "previous table stays in force"}});
      return;
    }
    // In force before the line says so: whoever acts on the line (an
    // operator's script, a test) meets the new table.
    ctx.table.set(t);
    log(LogEvent::table, {{"result", "loaded"},
                  {"why", std::string(why)},
                  {"path", ctx.config.table},
                  {"policy", std::string(t->policy_name())},
                  {"version", std::string(t->policy_version())},
                  {"domains", std::to_string(t->domain_count())},
                  {"peers", std::to_string(t->peer_count())}});
  }

  void check_table_file() {
    struct stat st {};
    if (::stat(ctx.config.table.c_str(), &st) != 0) return;
    if (!same_file(st, table_stat)) load_table("file changed");
  }

  // ------------------------------------------------------------ queue

  void enqueue(std::vector<QueueEntry> entries) {
    {
      std::lock_guard lock(queue_mu);
      for (QueueEntry& e : entries) {
        schedule.insert({e.next_attempt, e.id});
        queue[e.id] = std::move(e);
      }
    }
    queue_cv.notify_all();
  }

  void worker() {
    while (true) {
      QueueEntry entry;
      {
        std::unique_lock lock(queue_mu);
        while (true) {
          if (stopping) return;
          if (!schedule.empty()) {
            int64_t now = std::time(nullptr);
            auto first = schedule.begin();
            if (first->first <= now) {
              entry = queue[first->second];
              schedule.erase(first);
              ++in_flight;
              break;
            }
            queue_cv.wait_for(lock, std::chrono::seconds(std::min<int64_t>(first->first - now, 1)));
          } else {
            queue_cv.wait(lock);
          }
        }
      }
      process(entry);
      {
        std::lock_guard lock(queue_mu);
        --in_flight;
      }
      queue_cv.notify_all();
    }
  }

  void process(QueueEntry& entry) {
    std::string data;
    try {
      data = ctx.spool->read_data(entry.id);
    } catch (const std::exception& e) {
      log(LogEvent::queue, {{"queue_id", entry.id}, {"result", "unreadable"}, {"error", e.what()}});
      try {
        ctx.spool->move_to_failed(entry.id, e.what());
      } catch (...) {
      }
      forget(entry.id);
      return;
    }
    DeliveryReport report = deliver_entry(ctx, entry, data);
    const int64_t now = std::time(nullptr);
    entry.recipients.clear();
    for (auto& [addr, why] : report.deferred) entry.recipients.push_back(addr);
    if (!report.summary.empty()) entry.last_error = report.summary;
    std::vector<BounceRecipient> bounce;
    for (auto& [addr, reply] : report.failed) bounce.push_back(bounce_recipient(entry, addr, reply, true, now));
    if (!entry.recipients.empty()) {
      entry.attempts++;
      if (expired(entry.arrival, now, ctx.config.queue_lifetime)) {
        for (auto& [addr, why] : report.deferred)
          bounce.push_back(bounce_recipient(entry, addr, why.empty() ? "delivery time expired" : why, false, now));
        entry.recipients.clear();
        log(LogEvent::queue, {{"queue_id", entry.id}, {"result", "expired"}, {"attempts", std::to_string(entry.attempts)}});
      }
    }
    if (!bounce.empty()) {
      if (entry.mail_from.empty()) {
        // Nobody to tell: keep the failures with the entry; it goes to the
        // failed area once nothing is pending.
        for (const BounceRecipient& b : bounce) entry.failed_recipients.push_back({b.address, b.reply});
      } else if (!send_bounce(entry, data, bounce, now)) {
        // The bounce could not be stored: keep the recipients queued so the
        // failure is reported later rather than lost.
        for (const BounceRecipient& b : bounce) entry.recipients.push_back(b.address);
      }
    }
    try {
      if (entry.recipients.empty()) {
        if (!entry.failed_recipients.empty()) {
          std::string reason = "undeliverable, no sender to notify:";
          for (auto& [a, r] : entry.failed_recipients) reason += " <" + a + "> " + r + ";";
          ctx.spool->move_to_failed(entry.id, reason);
          log(LogEvent::queue, {{"queue_id", entry.id}, {"result", "failed"}, {"reason", reason}});
        } else {
          ctx.spool->remove(entry.id);
          log(LogEvent::queue, {{"queue_id", entry.id}, {"result", "removed"},
                        {"delivered", std::to_string(report.delivered.size())},
                        {"bounced", std::to_string(bounce.size())}});
        }
        forget(entry.id);
        return;
      }
      entry.next_attempt = ctx.retry.next_attempt(entry.attempts, now, entry.id);
      ctx.spool->update(entry);
      log(LogEvent::queue, {{"queue_id", entry.id},
                    {"result", "deferred"},
                    {"attempts", std::to_string(entry.attempts)},
                    {"next_attempt_in", std::to_string(entry.next_attempt - now) + "s"},
                    {"pending", std::to_string(entry.recipients.size())},
                    {"reason", entry.last_error}});
    } catch (const std::exception& e) {
      log(LogEvent::spool, {{"queue_id", entry.id}, {"result", "error"}, {"error", e.what()}});
      entry.next_attempt = now + 60;
    }
    std::lock_guard lock(queue_mu);
    schedule.insert({entry.next_attempt, entry.id});
    queue[entry.id] = std::move(entry);
  }

  void forget(const std::string& id) {
    std::lock_guard lock(queue_mu);
    queue.erase(id);
  }

  BounceRecipient bounce_recipient(const QueueEntry& e, const std::string& addr, const std::string& reply,
                                   bool permanent, int64_t now) {
    BounceRecipient b;
    b.address = addr;
    b.orcpt = e.orcpt_of(addr);
    b.reply = reply;
    b.permanent = permanent;
    size_t from = reply.rfind("(from ");
    if (from != std::string::npos && reply.back() == ')') b.remote_mta = reply.substr(from + 6, reply.size() - from - 7);
    b.last_attempt = now;
    return b;
  }

  bool send_bounce(const QueueEntry& entry, const std::string& data, const std::vector<BounceRecipient>& rcpts,
                   int64_t now) {
    BounceInput in;
    in.reporting_host = ctx.hostname;
    in.original_sender = entry.mail_from;
    in.arrival = entry.arrival;
    in.now = now;
    in.recipients = rcpts;
    in.original_message = data;
    QueueEntry b;
    b.mail_from = "";
    b.recipients = {entry.mail_from};
    std::string domain = domain_of_address(entry.mail_from);
    if (const NextHop* hop = ctx.next_hop(domain)) {
      b.direction = Direction::inbound;
      b.managed_domain = domain;
      b.destination = hop->host + ":" + std::to_string(hop->port);
    } else {
      b.direction = Direction::outbound;
      b.managed_domain = entry.managed_domain;
      b.destination = domain;
    }
    b.client_address = "127.0.0.1";
    b.client_helo = ctx.hostname;
    b.arrival = now;
    b.next_attempt = now;
    try {
      auto stored = ctx.spool->store({b}, make_bounce(in));
      std::string list;
      for (const BounceRecipient& r : rcpts) list += (list.empty() ? "" : ",") + r.address;
      log(LogEvent::bounce, {{"queue_id", entry.id}, {"bounce_id", stored.front().id}, {"to", entry.mail_from},
                     {"recipients", list}});
      enqueue(std::move(stored));
      return true;
    } catch (const std::exception& e) {
      log(LogEvent::bounce, {{"queue_id", entry.id}, {"result", "error"}, {"error", e.what()}});
      return false;
    }
  }

  // -------------------------------------------------------- listeners

  // The rate check counts every connection, refused ones too: a client
  // hammering the port stays refused until its window is over. A flood of
  // refusals is one log line when it starts and one with the count when
  // its window ends, not a line per attempt. `first_refusal`: log this
  // one. Called with sessions_mu held.
  bool rate_allows(const std::string& client, std::chrono::steady_clock::time_point now, bool& first_refusal) {
    const RelayLimits& lim = ctx.config.limits;
    const auto unit = lim.connection_rate_time_unit;
    if (now - rates_swept >= unit) {
      std::erase_if(rates, [&](const auto& r) {
        if (now - r.second.start < unit) return false;
        log_refusals(r.first, r.second);
        return true;
      });
      rates_swept = now;
    }
    RateWindow& w = rates[client];
    if (w.count == 0 || now - w.start >= unit) {
      log_refusals(client, w);
      w = {now, 0, 0};
    }
    if (++w.count <= lim.max_connection_rate_per_client) return true;
    first_refusal = ++w.refused == 1;
    return false;
  }

  void log_refusals(const std::string& client, const RateWindow& w) {
    if (w.refused < 2) return;
    log(LogEvent::limit, {{"client", client},
                  {"limit", "max_connection_rate_per_client"},
                  {"refused", std::to_string(w.refused)},
                  {"window", std::to_string(ctx.config.limits.connection_rate_time_unit.count()) + "s"}});
  }

  // All slots are taken: frees the one whose session has waited longest
  // for a command line, if that is at least evict_stalled_after. The
  // session is told through its slot and woken by shutting its socket's
  // read side; it replies 421 and leaves on its own thread. Called with
  // sessions_mu held.
  bool evict_stalled(std::chrono::steady_clock::time_point now) {
    const auto min_wait = ctx.config.limits.evict_stalled_after;
    if (min_wait.count() == 0) return false;
    const int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
    SessionSlot* longest = nullptr;
    int64_t longest_wait = 0;
    for (auto& [fd, slot] : sessions) {
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
    --sessions_active;
    return true;
  }

  // Stress starts when the sessions in use reach the threshold and ends
  // ten points below it, so it does not flap with every session that comes
  // and goes. Called with sessions_mu held.
  void update_stress() {
    const RelayLimits& lim = ctx.config.limits;
    if (lim.stress_threshold_percent == 0) return;
    const size_t used = sessions_active * 100;
    const size_t off = lim.stress_threshold_percent > 10 ? lim.stress_threshold_percent - 10 : 0;
    bool on = ctx.stress;
    if (!on && used >= lim.stress_threshold_percent * lim.max_connections) on = true;
    if (on && (used < off * lim.max_connections || sessions_active == 0)) on = false;
    if (on == ctx.stress) return;
    ctx.stress = on;
    log(LogEvent::stress, {{"result", on ? "on" : "off"},
                   {"sessions", std::to_string(sessions_active)},
                   {"max_connections", std::to_string(lim.max_connections)}});
  }

  // A connection accepted while every slot is taken: it waits (before its
  // greeting) for a slot, as a client waits in Postfix's listen queue,
  // for at most admission_wait.
  struct Waiting {
    Stream stream;
    std::string client;
    std::chrono::steady_clock::time_point since;
  };

  void refuse(Stream& stream, const std::string& client, const std::string& limit_name, const std::string& text,
              std::vector<std::pair<std::string, std::string>> extra = {}, bool logged = true) {
    std::vector<std::pair<std::string, std::string>> fields = {{"client", client}, {"limit", limit_name}};
    fields.insert(fields.end(), extra.begin(), extra.end());
    fields.push_back({"reply", text});
    if (logged) log(LogEvent::limit, std::move(fields));
    stream.set_timeout(std::chrono::milliseconds(1000));
    stream.write_all(text + "\r\n");
  }

  std::string too_many_connections() const {
    return "421 4.3.2 " + ctx.hostname + " Too many connections, try again later";
  }

  // Takes a slot for one more session: a free one, or one freed by
  // evicting the longest-stalled session. Called with sessions_mu held.
  bool take_slot(std::chrono::steady_clock::time_point now) {
    if (sessions_active >= ctx.config.limits.max_connections && !evict_stalled(now)) return false;
    ++sessions_active;
    update_stress();
    return true;
  }

  // Starts the session on its own thread; its slot is taken (take_slot)
  // and the client counted in per_client already.
  void start_session(Stream stream, const std::string& client) {
    auto slot = std::make_shared<SessionSlot>();
    slot->fd = stream.fd();
    {
      std::lock_guard lock(sessions_mu);
      sessions[slot->fd] = slot;
    }
    auto self = shared_from_this();
    std::thread([self, s = std::move(stream), slot, client]() mutable {
      serve_smtp_session(self->ctx, s, self->stopping, *slot);
      {
        // Before `s` closes the socket: see `sessions`.
        std::lock_guard lock(self->sessions_mu);
        self->sessions.erase(slot->fd);
        if (!slot->evicted) --self->sessions_active;
        self->leave(client);
        self->update_stress();
      }
      self->sessions_cv.notify_all();
    }).detach();
  }

  // Called with sessions_mu held.
  void leave(const std::string& client) {
    auto it = per_client.find(client);
    if (it != per_client.end() && --it->second == 0) per_client.erase(it);
  }

  // The waiting room, oldest first: admits while slots can be had, and
  // refuses those that waited admission_wait.
  void admit_waiting(std::deque<Waiting>& waiting) {
    const auto now = std::chrono::steady_clock::now();
    while (!waiting.empty()) {
      bool admit = false, expired = false;
      {
        std::lock_guard lock(sessions_mu);
        admit = take_slot(now);
        expired = !admit && now - waiting.front().since >= ctx.config.limits.admission_wait;
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

  void accept_loop(int lfd) {
    const RelayLimits& lim = ctx.config.limits;
    std::deque<Waiting> waiting;
    while (!stopping) {
      pollfd fds[2] = {{lfd, POLLIN, 0}, {wake[0], POLLIN, 0}};
      // With clients waiting, look again soon: a slot frees, or a session
      // becomes evictable, without an event of its own here.
      int n = ::poll(fds, 2, waiting.empty() ? 1000 : 50);
      if (stopping) break;
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
        std::lock_guard lock(sessions_mu);
        auto pc = per_client.find(client);
        if (lim.max_connection_rate_per_client > 0 && !ctx.in_submit_networks(client) &&
            !rate_allows(client, now, log_refusal)) {
          limit_name = "max_connection_rate_per_client";
          refusal = "421 4.7.0 " + ctx.hostname + " Error: too many connections from " + client;
        } else if ((pc == per_client.end() ? 0 : pc->second) >= lim.max_connections_per_client) {
          limit_name = "max_connections_per_client";
          refusal = "421 4.7.0 " + ctx.hostname + " Too many connections from your address";
        } else if (waiting.empty() && take_slot(now)) {
          admit = true;
        } else if (lim.admission_wait.count() == 0 || waiting.size() >= lim.max_connections ||
                   std::any_of(waiting.begin(), waiting.end(), [&](const Waiting& w) { return w.client == client; })) {
          // One place in the queue per client address: many connections
          // from one address must not crowd out everybody else.
          limit_name = "max_connections";
          refusal = too_many_connections();
        }
        if (refusal.empty()) per_client[client]++;  // a session, or waiting for one
      }
      if (!refusal.empty())
        refuse(stream, client, limit_name, refusal, {}, log_refusal);
      else if (admit)
        start_session(std::move(stream), client);
      else
        waiting.push_back({std::move(stream), client, now});  // behind those already waiting
    }
    std::lock_guard lock(sessions_mu);
    for (Waiting& w : waiting) leave(w.client);  // closed unanswered: they never had a greeting
    for (const auto& [client, w] : rates) log_refusals(client, w);
    rates.clear();
  }
};

Relay::Relay(RelayConfig config) : impl_(std::make_shared<Impl>()) {
  validate_relay_config(config);
  Impl& I = *impl_;
  RelayContext& c = I.ctx;
  c.config = std::move(config);
  c.log = std::make_unique<RelayLog>(c.config.log_file);
  c.hostname = relay_hostname(c.config);
  for (const std::string& n : c.config.submit_networks) c.submit_networks.push_back(base::parse_cidr(n).cidr);
  I.load_table("start");
  c.spool = std::make_unique<Spool>(c.config.spool_dir);
  dns::ResolverConfig rc;
  rc.server = c.config.resolver;
  rc.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(c.config.limits.dns_timeout);
  c.resolver = std::make_unique<dns::Resolver>(rc);
  std::string cache_dir = c.config.mta_sts_cache.empty() ? c.config.spool_dir + "/mta-sts" : c.config.mta_sts_cache;
  c.sts_cache = std::make_unique<MtaStsCache>(cache_dir);
  c.sts_fetch.ca_file = c.config.ca_file;
  c.sts_fetch.https_port = c.config.mta_sts_port;
  c.sts_fetch.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(c.config.limits.sts_fetch_timeout);
  if (!c.config.tls_cert.empty()) c.server_tls = make_server_context(c.config.tls_cert, c.config.tls_key);
  c.retry = *RetrySchedule::parse(c.config.retry_schedule);
  std::weak_ptr<Impl> weak = impl_;
  c.enqueue = [weak](std::vector<QueueEntry> e) {
    if (auto s = weak.lock()) s->enqueue(std::move(e));
  };
  if (::pipe2(I.wake, O_CLOEXEC | O_NONBLOCK) != 0) throw std::runtime_error("pipe: " + std::string(std::strerror(errno)));
  for (const std::string& l : c.config.listen) {
    HostPort hp = *parse_host_port(l);
    std::string error;
    int fd = listen_tcp(hp.host, hp.port, 128, error);
    if (fd < 0) throw std::runtime_error("cannot listen on `" + l + "`: " + error);
    I.listeners.push_back(fd);
    I.ports.push_back(bound_port(fd));
  }
  std::vector<std::string> problems;
  std::vector<QueueEntry> recovered = c.spool->recover(&problems);
  for (const std::string& p : problems) I.log(LogEvent::spool, {{"result", "recovery-problem"}, {"detail", p}});
  I.log(LogEvent::start, {{"listen", [&] {
                     std::string s;
                     for (size_t i = 0; i < c.config.listen.size(); ++i)
                       s += (i ? "," : "") + c.config.listen[i].substr(0, c.config.listen[i].rfind(':')) + ":" +
                            std::to_string(I.ports[i]);
                     return s;
                   }()},
                  {"hostname", c.hostname},
                  {"starttls", c.server_tls ? "yes" : "no"},
                  {"resolver", c.resolver->server_text()},
                  {"recovered", std::to_string(recovered.size())}});
  for (QueueEntry& e : recovered) e.next_attempt = std::min<int64_t>(e.next_attempt, std::time(nullptr));
  I.enqueue(std::move(recovered));
}

Relay::~Relay() { stop(); }

std::vector<uint16_t> Relay::listening_ports() const { return impl_->ports; }

void Relay::stop() {
  impl_->stopping = true;
  if (impl_->wake[1] >= 0) {
    char b = 's';
    [[maybe_unused]] ssize_t n = ::write(impl_->wake[1], &b, 1);
  }
  impl_->queue_cv.notify_all();
}

void Relay::reload() {
  impl_->reload_requested = true;
  if (impl_->wake[1] >= 0) {
    char b = 'r';
    [[maybe_unused]] ssize_t n = ::write(impl_->wake[1], &b, 1);
  }
}

void Relay::run() {
  std::shared_ptr<Impl> I = impl_;
  std::vector<std::thread> acceptors, workers;
  for (int fd : I->listeners) acceptors.emplace_back([I, fd] { I->accept_loop(fd); });
  for (size_t i = 0; i < I->ctx.config.delivery_workers; ++i) workers.emplace_back([I] { I->worker(); });

  // The scheduler's own duties: reloads and the table file watch.
  auto next_check = std::chrono::steady_clock::now();
  while (!I->stopping) {
    pollfd p{I->wake[0], POLLIN, 0};
    int timeout = static_cast<int>(std::max<int64_t>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(next_check - std::chrono::steady_clock::now()).count()));
    ::poll(&p, 1, std::min(timeout, 1000));
    char buf[64];
    while (::read(I->wake[0], buf, sizeof buf) > 0) {
    }
    if (I->stopping) break;
    if (I->reload_requested.exchange(false)) I->load_table("SIGHUP");
    I->ctx.connections.expire(I->ctx.config.limits.connection_cache_time);
    if (std::chrono::steady_clock::now() >= next_check) {
      I->check_table_file();
      next_check = std::chrono::steady_clock::now() + I->ctx.config.table_check_interval;
    }
  }

  // Clean shutdown: stop accepting, let sessions and deliveries finish
  // within the grace period, then close what is left (queued mail stays in
  // the spool and is resumed at the next start).
  I->log(LogEvent::stop, {{"result", "stopping"}});
  for (std::thread& t : acceptors) t.join();
  for (int fd : I->listeners) ::close(fd);
  I->listeners.clear();
  const auto deadline = std::chrono::steady_clock::now() + I->ctx.config.limits.shutdown_grace;
  {
    std::unique_lock lock(I->sessions_mu);
    I->sessions_cv.wait_until(lock, deadline, [&] { return I->sessions.empty(); });
    for (auto& [fd, slot] : I->sessions) ::shutdown(fd, SHUT_RDWR);
    I->sessions_cv.wait_for(lock, std::chrono::seconds(2), [&] { return I->sessions.empty(); });
  }
  size_t unfinished = 0;
  {
    std::unique_lock lock(I->queue_mu);
    I->queue_cv.wait_until(lock, deadline, [&] { return I->in_flight == 0; });
    unfinished = I->in_flight;
  }
  I->ctx.connections.expire(std::chrono::seconds(0));
  for (std::thread& t : workers) {
    if (unfinished == 0)
      t.join();
    else
      t.detach();  // holds a reference to Impl; its entry stays queued on disk
  }
  I->log(LogEvent::stop, {{"result", "stopped"},
                  {"in_flight_requeued", std::to_string(unfinished)},
                  {"queued", std::to_string(I->ctx.spool->queued_count())}});
}

namespace {
sigset_t relay_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}
}  // namespace

void block_relay_signals() {
  sigset_t set = relay_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // A peer that closes early must not kill the relay.
  ::signal(SIGPIPE, SIG_IGN);
}

int run_relay_with_signals(Relay& relay) {
  block_relay_signals();
  sigset_t set = relay_signals();
  std::atomic<bool> done{false};
  std::thread signals([&] {
    while (true) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      if (done) return;
      if (sig == SIGHUP) {
        relay.reload();
      } else {
        relay.stop();
        return;
      }
    }
  });
  int rc = 0;
  try {
    relay.run();
  } catch (...) {
    rc = 1;
  }
  done = true;
  ::kill(::getpid(), SIGTERM);  // wakes the signal thread if still waiting
  signals.join();
  return rc;
}

}  // namespace tlsp
