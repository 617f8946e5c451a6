// relay_context.h — what every thread of `tlsp relay` shares: the
// configuration as validated, the table in force, the log, the spool, the
// resolver and MTA-STS cache, the inbound TLS context, the connection
// cache, the metrics, the stress and stopping flags. Not a public header.
//
// Each concern that uses it has its own internal header: listener.h
// (admission), smtp_session.h (the SMTP server side), delivery.h (one
// delivery run), delivery_queue.h (the queue), table_reload.h (the table
// in force), connection_cache.h (outbound reuse), relay_config.h.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "connection_cache.h"
#include "metrics.h"
#include "table_reload.h"
#include "tlsp/base/address.h"
#include "tlsp/base/domain_name.h"
#include "tlsp/dns.h"
#include "tlsp/engine.h"
#include "tlsp/mta_sts_fetch.h"
#include "tlsp/relay.h"
#include "tlsp/relay_log.h"
#include "tlsp/retry.h"
#include "tlsp/spool.h"
#include "tlsp/tls.h"
#include "tlsp/tlsrpt_store.h"

namespace tlsp::relay {

// ------------------------------------------------------------ addresses

// Submit networks are read and matched by tlsp/base/address.h, as policy
// CIDRs are (host bits set is an error, an IPv4-mapped client is IPv4).
using base::Cidr;

// The domain of an address: domain_of_address() (tlsp/base/domain_name.h).
std::string lower(std::string_view s);

// ---------------------------------------------------------- the context

// Everything sessions and deliveries share. Immutable after start except
// through its own synchronisation (table, log, spool, flags).
struct RelayContext {
  RelayConfig config;
  std::string hostname;
  std::vector<Cidr> submit_networks;
  TableHolder table{nullptr};
  std::unique_ptr<RelayLog> log;
  std::unique_ptr<Spool> spool;
  std::optional<SpoolLock> spool_lock;  // held while the relay (or a worker left running) lives
  std::unique_ptr<dns::Resolver> resolver;
  std::unique_ptr<MtaStsCache> sts_cache;
  StsFetchConfig sts_fetch;
  // Where outbound sessions are counted for TLSRPT (tlsrpt-store, opened at
  // start; tlsp/tlsrpt_store.h: its calls are thread-safe).
  std::unique_ptr<tlsrpt::Store> tlsrpt_store;
  SslCtxPtr server_tls;  // null: STARTTLS not offered
  RetrySchedule retry;
  ConnectionCache connections;
  // Counted as the facts are logged; served when metrics-listen is set.
  Metrics metrics;
  // Called with freshly stored entries (the queue takes them).
  std::function<void(std::vector<QueueEntry>)> enqueue;
  // Stress (RelayLimits::stress_threshold_percent): set and cleared by the
  // listener as sessions come and go, read by every session before each
  // read, so running sessions adapt too.
  std::atomic<bool> stress{false};
  // Set once by Relay::stop(): listeners, sessions and workers wind down.
  std::atomic<bool> stopping{false};

  // Inbound session ids for the log: `<start, ms, hex>-<pid, hex>-<n>`,
  // unique per relay process and start.
  const std::string session_prefix = make_session_prefix();
  std::atomic<uint64_t> sessions{0};
  std::string next_session_id() { return session_prefix + std::to_string(++sessions); }
  static std::string make_session_prefix();

  bool in_submit_networks(std::string_view address) const;
  const NextHop* next_hop(std::string_view domain) const;
  // A managed domain: listed in the table, or given a next hop.
  bool is_managed(std::string_view domain) const;
};

}  // namespace tlsp::relay
