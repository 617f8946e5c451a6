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
//  * A held entry (tlsp/queue_control.h) stays in memory but never in the
//    schedule: no worker takes it until it is released.
// Workers hold the queue (and so the context) while they run.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "relay_context.h"
#include "tlsp/dsn.h"
#include "tlsp/queue_control.h"

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

  // ---- for the control socket (control_socket.cpp) ----
  // Every entry in memory (held ones too), oldest first, and whether an
  // attempt runs for it now.
  std::vector<QueueEntryStatus> snapshot();
  std::optional<QueueEntryStatus> find(const std::string& id);
  // Makes the matching entries due now (in memory only: a restart makes
  // every entry due anyway). Held and delivering ones are skipped, each a
  // note. Returns how many were made due.
  size_t make_due(const std::function<bool(const QueueEntry&)>& match, int64_t now,
                  std::vector<std::string>& notes);
  // Takes a queued entry out of the schedule for a change, as a worker
  // takes one for a delivery, so no attempt starts meanwhile; nullopt with
  // the reason when it is not queued or is being delivered right now.
  std::optional<QueueEntry> claim(const std::string& id, std::string& why);
  // Gives a claimed entry back: as changed (scheduled unless held), or
  // gone from the spool (nullopt).
  void unclaim(const std::string& id, std::optional<QueueEntry> entry);

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
  // Entries a worker delivers or the control socket changes right now:
  // in queue_, not in schedule_.
  std::set<std::string> active_;
  size_t in_flight_ = 0;
};

}  // namespace tlsp::relay
