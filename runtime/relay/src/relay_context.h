// relay_internal.h — the pieces of `tlsp relay` shared by its translation
// units: the state every thread reads (RelayContext), the SMTP
// server session, and one delivery attempt. Not a public header.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tlsp/base/address.h"
#include "tlsp/base/domain_name.h"
#include "tlsp/decision_table.h"
#include "tlsp/dns.h"
#include "tlsp/engine.h"
#include "tlsp/mta_sts_fetch.h"
#include "tlsp/relay.h"
#include "tlsp/relay_log.h"
#include "tlsp/retry.h"
#include "tlsp/spool.h"
#include "tlsp/stream.h"
#include "tlsp/tls.h"

namespace tlsp::relay {

// ------------------------------------------------------------ addresses

// Submit networks are read and matched by tlsp/base/address.h, as policy
// CIDRs are (host bits set is an error, an IPv4-mapped client is IPv4).
using base::Cidr;

// The domain of an address: domain_of_address() (tlsp/base/domain_name.h).
std::string lower(std::string_view s);

// ---------------------------------------------------------- the context

// The name in the greeting, EHLO, Received: and bounces: the configured
// one, else the system's (else "localhost").
std::string relay_hostname(const RelayConfig& config);

class TableHolder {
 public:
  explicit TableHolder(std::shared_ptr<const DecisionTable> t) : table_(std::move(t)) {}
  std::shared_ptr<const DecisionTable> get() const {
    std::lock_guard lock(mu_);
    return table_;
  }
  // Which table: bumped by every set(), so state derived from one table
  // (a cached connection) is not used under another.
  uint64_t generation() const {
    std::lock_guard lock(mu_);
    return generation_;
  }
  void set(std::shared_ptr<const DecisionTable> t) {
    std::lock_guard lock(mu_);
    table_ = std::move(t);
    ++generation_;
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const DecisionTable> table_;
  uint64_t generation_ = 0;
};

// An outbound SMTP session that has just delivered, kept for the next
// message to the same destination under the same rule. The key holds the
// destination, the managed domain, the rule and the table generation; the
// outcome is the engine's verdict for this very session, so a reuse sends
// exactly what was approved.
struct CachedConnection {
  std::unique_ptr<Stream> stream;
  std::string host, address, cipher, auth;
  Outcome outcome;
  bool eightbitmime = false, size_ext = false;
  size_t uses = 0;
  std::chrono::steady_clock::time_point idle_since;
};

class ConnectionCache {
 public:
  std::optional<CachedConnection> take(const std::string& key);
  void put(const std::string& key, CachedConnection c);
  // Closes (QUIT) sessions idle for longer than `idle`; all of them when 0.
  void expire(std::chrono::seconds idle);

 private:
  std::mutex mu_;
  std::multimap<std::string, CachedConnection> idle_;
};

// Everything sessions and deliveries share. Immutable after start except
// through its own synchronisation (table, log, spool).
struct RelayContext {
  RelayConfig config;
  std::string hostname;
  std::vector<Cidr> submit_networks;
  TableHolder table{nullptr};
  std::unique_ptr<RelayLog> log;
  std::unique_ptr<Spool> spool;
  std::unique_ptr<dns::Resolver> resolver;
  std::unique_ptr<MtaStsCache> sts_cache;
  StsFetchConfig sts_fetch;
  SslCtxPtr server_tls;  // null: STARTTLS not offered
  RetrySchedule retry;
  ConnectionCache connections;
  // Called with freshly stored entries (the queue takes them).
  std::function<void(std::vector<QueueEntry>)> enqueue;
  // Stress (RelayLimits::stress_threshold_percent): set and cleared by the
  // listener as sessions come and go, read by every session before each
  // read, so running sessions adapt too.
  std::atomic<bool> stress{false};

  bool in_submit_networks(std::string_view address) const;
  const NextHop* next_hop(std::string_view domain) const;
  // A managed domain: listed in the table, or given a next hop.
  bool is_managed(std::string_view domain) const;
};

// ------------------------------------------------------- SMTP server side

// The inbound rule for one (managed domain, client, sender domain): the
// table's two lookups combined by the engine (combine_inbound_rules(),
// SPEC §5), as one Decision whose parts and sources come from the lookup
// that set them.
struct InboundRule {
  Decision decision;
};
InboundRule stricter_inbound_rule(const DecisionTable& table, std::string_view domain, std::string_view client,
                                  std::string_view sender_domain);

// What the listener and one session share. The session publishes when it
// started waiting for a command line (0: it is not waiting for one); the
// listener, to free a slot for a new client, sets `evicted` and shuts the
// socket's read side, which wakes the session's blocking read: the session
// thread itself then replies 421 and logs it.
struct SessionSlot {
  int fd = -1;
  std::atomic<int64_t> waiting_since_ns{0};  // steady_clock, since its epoch
  std::atomic<bool> evicted{false};
};

// Serves one accepted connection to the end (QUIT, a limit, a timeout,
// eviction or the shutdown flag). Never throws.
void serve_smtp_session(RelayContext& ctx, Stream& stream, const std::atomic<bool>& stopping, SessionSlot& slot);

// ----------------------------------------------------------- delivery

// The result of one delivery run for a queue entry (all its recipients).
struct DeliveryReport {
  std::vector<std::string> delivered;
  std::vector<std::pair<std::string, std::string>> failed;     // permanent: address, reply
  std::vector<std::pair<std::string, std::string>> deferred;   // temporary: address, reason
  std::string summary;  // the last refusal, for the queue and the bounce
};

// Tries every MX host (or the next hop) once, as SPEC §4 orders, logging one
// line per attempt. Never throws.
DeliveryReport deliver_entry(RelayContext& ctx, const QueueEntry& entry, const std::string& data);

}  // namespace tlsp::relay
