// delivery_queue.cpp — the schedule over the spool, the delivery workers,
// and what a delivery report does to its entry: removed, deferred with the
// retry schedule, bounced (RFC 3464) or moved to the failed area
// (delivery_queue.h has the rules). One delivery run is delivery.cpp's.
#include "delivery_queue.h"

#include <algorithm>
#include <chrono>
#include <ctime>

#include "delivery.h"

namespace tlsp::relay {

void DeliveryQueue::enqueue(std::vector<QueueEntry> entries) {
  {
    std::lock_guard lock(queue_mu_);
    for (QueueEntry& e : entries) {
      if (!e.held) schedule_.insert({e.next_attempt, e.id});
      queue_[e.id] = std::move(e);
    }
  }
  queue_cv_.notify_all();
}

void DeliveryQueue::worker() {
  while (true) {
    QueueEntry entry;
    {
      std::unique_lock lock(queue_mu_);
      while (true) {
        if (ctx_->stopping) return;
        if (!schedule_.empty()) {
          int64_t now = std::time(nullptr);
          auto first = schedule_.begin();
          if (first->first <= now) {
            entry = queue_[first->second];
            active_.insert(first->second);
            schedule_.erase(first);
            ++in_flight_;
            break;
          }
          queue_cv_.wait_for(lock, std::chrono::seconds(std::min<int64_t>(first->first - now, 1)));
        } else {
          queue_cv_.wait(lock);
        }
      }
    }
    process(entry);
    {
      std::lock_guard lock(queue_mu_);
      --in_flight_;
    }
    queue_cv_.notify_all();
  }
}

void DeliveryQueue::process(QueueEntry& entry) {
  std::string data;
  try {
    data = ctx_->spool->read_data(entry.id);
  } catch (const std::exception& e) {
    log(LogEvent::queue, {{"queue_id", entry.id}, {"result", "unreadable"}, {"error", e.what()}});
    try {
      ctx_->spool->move_to_failed(entry.id, e.what());
    } catch (...) {
    }
    forget(entry.id);
    return;
  }
  DeliveryReport report = deliver_entry(*ctx_, entry, data);
  const int64_t now = std::time(nullptr);
  entry.recipients.clear();
  for (auto& [addr, why] : report.deferred) entry.recipients.push_back(addr);
  if (!report.summary.empty()) entry.last_error = report.summary;
  std::vector<BounceRecipient> bounce;
  for (auto& [addr, reply] : report.failed) bounce.push_back(bounce_recipient(entry, addr, reply, true, now));
  if (!entry.recipients.empty()) {
    entry.attempts++;
    if (expired(entry.arrival, now, ctx_->config.queue_lifetime)) {
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
        ctx_->spool->move_to_failed(entry.id, reason);
        log(LogEvent::queue, {{"queue_id", entry.id}, {"result", "failed"}, {"reason", reason}});
      } else {
        ctx_->spool->remove(entry.id);
        log(LogEvent::queue, {{"queue_id", entry.id}, {"result", "removed"},
                      {"delivered", std::to_string(report.delivered.size())},
                      {"bounced", std::to_string(bounce.size())}});
      }
      forget(entry.id);
      return;
    }
    entry.next_attempt = ctx_->retry.next_attempt(entry.attempts, now, entry.id);
    ctx_->spool->update(entry);
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
  std::lock_guard lock(queue_mu_);
  active_.erase(entry.id);
  schedule_.insert({entry.next_attempt, entry.id});
  queue_[entry.id] = std::move(entry);
}

void DeliveryQueue::forget(const std::string& id) {
  std::lock_guard lock(queue_mu_);
  active_.erase(id);
  queue_.erase(id);
}

std::vector<QueueEntryStatus> DeliveryQueue::snapshot() {
  std::vector<QueueEntryStatus> out;
  {
    std::lock_guard lock(queue_mu_);
    out.reserve(queue_.size());
    for (const auto& [id, e] : queue_) out.push_back({e, active_.count(id) > 0});
  }
  std::sort(out.begin(), out.end(), [](const QueueEntryStatus& a, const QueueEntryStatus& b) {
    return a.entry.arrival != b.entry.arrival ? a.entry.arrival < b.entry.arrival : a.entry.id < b.entry.id;
  });
  return out;
}

std::optional<QueueEntryStatus> DeliveryQueue::find(const std::string& id) {
  std::lock_guard lock(queue_mu_);
  auto it = queue_.find(id);
  if (it == queue_.end()) return std::nullopt;
  return QueueEntryStatus{it->second, active_.count(id) > 0};
}

size_t DeliveryQueue::make_due(const std::function<bool(const QueueEntry&)>& match, int64_t now,
                               std::vector<std::string>& notes) {
  size_t n = 0;
  {
    std::lock_guard lock(queue_mu_);
    for (auto& [id, e] : queue_) {
      if (!match(e)) continue;
      if (e.held) {
        notes.push_back("entry `" + id + "` is held: release it first");
      } else if (active_.count(id)) {
        notes.push_back("entry `" + id + "` is being delivered right now");
      } else {
        schedule_.erase({e.next_attempt, id});
        e.next_attempt = std::min(e.next_attempt, now);
        schedule_.insert({e.next_attempt, id});
        ++n;
      }
    }
  }
  queue_cv_.notify_all();
  return n;
}

std::optional<QueueEntry> DeliveryQueue::claim(const std::string& id, std::string& why) {
  std::lock_guard lock(queue_mu_);
  auto it = queue_.find(id);
  if (it == queue_.end()) {
    why = "no queued entry `" + id + "`";
    return std::nullopt;
  }
  if (active_.count(id)) {
    why = "entry `" + id + "` is being delivered right now; try again when the attempt ends";
    return std::nullopt;
  }
  schedule_.erase({it->second.next_attempt, id});
  active_.insert(id);
  return it->second;
}

void DeliveryQueue::unclaim(const std::string& id, std::optional<QueueEntry> entry) {
  {
    std::lock_guard lock(queue_mu_);
    active_.erase(id);
    if (!entry) {
      queue_.erase(id);
      return;
    }
    if (!entry->held) schedule_.insert({entry->next_attempt, id});
    queue_[id] = std::move(*entry);
  }
  queue_cv_.notify_all();
}

BounceRecipient DeliveryQueue::bounce_recipient(const QueueEntry& e, const std::string& addr,
                                                const std::string& reply, bool permanent, int64_t now) {
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

bool DeliveryQueue::send_bounce(const QueueEntry& entry, const std::string& data,
                                const std::vector<BounceRecipient>& rcpts, int64_t now) {
  BounceInput in;
  in.reporting_host = ctx_->hostname;
  in.original_sender = entry.mail_from;
  in.arrival = entry.arrival;
  in.now = now;
  in.recipients = rcpts;
  in.original_message = data;
  QueueEntry b;
  b.mail_from = "";
  b.recipients = {entry.mail_from};
  std::string domain = domain_of_address(entry.mail_from);
  if (const NextHop* hop = ctx_->next_hop(domain)) {
    b.direction = Direction::inbound;
    b.managed_domain = domain;
    b.destination = hop->host + ":" + std::to_string(hop->port);
  } else {
    b.direction = Direction::outbound;
    b.managed_domain = entry.managed_domain;
    b.destination = domain;
  }
  b.client_address = "127.0.0.1";
  b.client_helo = ctx_->hostname;
  b.arrival = now;
  b.arrival_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::system_clock::now().time_since_epoch()).count();
  b.next_attempt = now;
  try {
    auto stored = ctx_->spool->store({b}, make_bounce(in));
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

QueueGauges DeliveryQueue::gauges() {
  QueueGauges g;
  std::lock_guard lock(queue_mu_);
  g.entries = queue_.size();
  g.in_flight = in_flight_;
  for (const auto& [id, e] : queue_) {
    g.recipients += e.recipients.size();
    if (!g.oldest_arrival || e.arrival < *g.oldest_arrival) g.oldest_arrival = e.arrival;
  }
  return g;
}

size_t DeliveryQueue::wait_idle(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(queue_mu_);
  queue_cv_.wait_until(lock, deadline, [&] { return in_flight_ == 0; });
  return in_flight_;
}

}  // namespace tlsp::relay
