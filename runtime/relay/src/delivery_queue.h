// delivery_queue.h — the relay's queue: a schedule over the spool's
// entries, the delivery workers, retries and bounces. Not a public header.
//
// Queue rules (relay.h, SPEC §6):
//  * An entry leaves the spool only when every recipient is delivered or
//    bounced. A bounce is stored before the entry it reports on is
//    removed: a crash in between gives a duplicate bounce, never a loss.
//  * A temporary refusal sets next_attempt from the retry schedule; once
//    the queue lifetime is over the remaining recipients are bounced.
//  * A null-sender entry that fails is moved to the spool's failed area
//    with the reason, and logged (there is nobody to bounce to).
// Workers hold the queue (and so the context) while they run.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "relay_context.h"
#include "tlsp/dsn.h"

namespace tlsp::relay {

class DeliveryQueue {
 public:
  explicit DeliveryQueue(std::shared_ptr<RelayContext> ctx) : ctx_(std::move(ctx)) {}

  // Entries freshly stored (or recovered): each is tried at its next_attempt.
  void enqueue(std::vector<QueueEntry> entries);
  // One delivery worker: takes due entries until ctx.stopping.
  void worker();
  // Wakes the workers (after ctx.stopping was set).
  void wake_workers() { queue_cv_.notify_all(); }
  // Waits until `deadline` for the deliveries in flight; returns how many
  // are still running (their entries stay queued on disk).
  size_t wait_idle(std::chrono::steady_clock::time_point deadline);
  // What the queue holds now, for a metrics scrape: one pass over it under
  // the queue's lock.
  QueueGauges gauges();

 private:
  void log(LogEvent event, const LogFields& fields) { ctx_->log->write(event, fields); }
  // One delivery run for `entry` and what the queue does with its report.
  void process(QueueEntry& entry);
  void forget(const std::string& id);
  BounceRecipient bounce_recipient(const QueueEntry& e, const std::string& addr, const std::string& reply,
                                   bool permanent, int64_t now);
  // Stores and enqueues the bounce; false when it could not be stored.
  bool send_bounce(const QueueEntry& entry, const std::string& data, const std::vector<BounceRecipient>& rcpts,
                   int64_t now);

  std::shared_ptr<RelayContext> ctx_;
  // Entries by id, and the schedule by next attempt.
  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::map<std::string, QueueEntry> queue_;
  std::set<std::pair<int64_t, std::string>> schedule_;
  size_t in_flight_ = 0;
};

}  // namespace tlsp::relay
