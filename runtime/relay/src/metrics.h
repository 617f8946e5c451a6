// metrics.h — the relay's Prometheus metrics: a registry of the facts the
// relay already logs, counted where they are logged, and the text
// exposition format 0.0.4 that metrics_server.cpp serves on
// `metrics-listen`. docs/metrics.md lists every metric (a test compares
// that list with a scrape). Not a public header.
//
// Contract:
//  * Thread-safe: every part of the relay feeds it concurrently; one call
//    is a short critical section on one family's mutex (a map lookup keyed
//    by the label values), nothing on the delivery path waits for I/O.
//  * Label values are bounded: every one is a spelling from the engine's
//    name arrays (tlsp/engine.h, tlsp/policy_model.h) or one of the
//    relay's own fixed words (an action, a session end, a query type),
//    never text a peer sent; only the table's policy name and version come
//    from outside, one series at a time. A family also keeps at most
//    kMaxSeriesPerMetric series: a new one beyond it is not kept, counted
//    in tlsp_metrics_series_dropped_total and logged once (`limit
//    limit=max_metric_series`), so a bug cannot grow memory without bound.
//  * render() writes every family, in a fixed order, each with # HELP and
//    # TYPE, series sorted by their labels; label values escaped per the
//    format (\\, \", \n) and invalid UTF-8 replaced with U+FFFD. Gauges
//    that describe the present (the queue) are read by the caller when
//    scraped and passed in.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tlsp/engine.h"
#include "tlsp/relay_log.h"

namespace tlsp::relay {

// At most this many series per metric (docs/metrics.md "Bounds"): far above
// what the fixed label values give in practice (a few hundred deliveries
// series for a busy relay), far below what would matter for memory.
inline constexpr size_t kMaxSeriesPerMetric = 10000;

// How an SMTP session of the relay's server side ended (the `end` label).
enum class SessionEnd : uint8_t {
  quit,         // the client sent QUIT
  disconnect,   // the client went away (or a reply could not be written)
  timeout,      // a read ran out of time (idle, DATA phase, session)
  limit,        // a session-ending limit: commands, errors, bare line ending, eviction
  shutdown,     // the relay is stopping (421 4.3.2)
  tls_failure,  // the STARTTLS handshake failed
  error,        // an exception ended the session
};
inline constexpr std::array<std::string_view, 7> kSessionEndNames = {"quit",     "disconnect",  "timeout", "limit",
                                                                     "shutdown", "tls-failure", "error"};

// The lookups of a delivery whose failures are counted (the `query` label).
enum class DnsQuery : uint8_t { mx, address, tlsa };
inline constexpr std::array<std::string_view, 3> kDnsQueryNames = {"mx", "address", "tlsa"};

// Histogram buckets, in seconds (docs/metrics.md says why these).
// One delivery run: loopback deliveries take milliseconds, a TLS session
// on the Internet tens to hundreds of them, a run that waits out DNS or
// connect timeouts up to the relay's own (command 300 s, data 600 s).
inline constexpr std::array<double, 16> kRunDurationBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                                               2.5,   5,    10,    30,   60,  120,  300, 600};
// Arrival to delivery: the first attempt (seconds), then the default retry
// schedule's steps (1m, 5m, 15m, 30m, 1h, 2h, 4h) up to the queue
// lifetime (5 days).
inline constexpr std::array<double, 14> kDelayBuckets = {1,    5,     30,    60,    300,   900,    1800,
                                                         3600, 7200,  14400, 28800, 86400, 172800, 432000};

// What the queue holds at the moment of a scrape (DeliveryQueue::gauges()).
struct QueueGauges {
  size_t entries = 0;                     // queue entries (one per destination of a message), in flight included
  size_t recipients = 0;                  // their recipients still to deliver
  size_t in_flight = 0;                   // entries a delivery worker is running now
  std::optional<int64_t> oldest_arrival;  // seconds since the epoch; none when empty
};

class Metrics {
 public:
  Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Where a hit of kMaxSeriesPerMetric is said (once per metric); may stay null.
  void set_log(RelayLog* log) { log_ = log; }

  // ------------------------------------------------- the relay's facts

  // One delivery attempt, as its `attempt` log line: the rule's level, the
  // engine's verdict and what the relay did. `applied` is empty for a
  // failure below the engine (no SMTP session); `reason` is an engine
  // reason or the relay's `connection-failed`.
  void delivery_attempt(Direction direction, Level rule, std::optional<Level> applied, OutcomeKind outcome,
                        Channel channel, TlsVersion tls, std::string_view reason, std::string_view action);
  // One delivery run of a queue entry (every host tried once): its
  // duration, and when it delivered a recipient, the time since the
  // message arrived (`arrival`: seconds since the epoch, as the spool keeps it).
  void delivery_run(Direction direction, std::chrono::steady_clock::duration took, bool delivered, int64_t arrival);
  // One SMTP session served, when it ends. `verdict`: the strictest
  // outcome decide() gave on it that took effect (none: no inbound rule
  // decided anything in it).
  void session_end(std::optional<OutcomeKind> verdict, TlsVersion tls, SessionEnd end);
  // A connection refused before its session (421) by the admission limit
  // `limit` (its RelayLimits name, as the `limit` log line has it).
  void connection_refused(std::string_view limit);
  // A DNS lookup of a delivery: counted when it failed (bogus, servfail,
  // timeout); a denial (nxdomain) and an answer are not errors.
  void dns_lookup(DnsQuery query, DnsStatus status);
  // An MTA-STS policy fetch: counted when it failed (any status but ok).
  void sts_fetch(StsFetch status);
  // The table file was loaded (it is now in force) or refused.
  void table_loaded(std::string_view policy, std::string_view version, std::chrono::system_clock::time_point when);
  void table_refused();

  // ------------------------------------------------------- exposition

  // Every metric in the text format 0.0.4.
  std::string render(const QueueGauges& queue) const;

 private:
  // One metric with a fixed list of label names; series keyed by their
  // label values. A histogram has bucket bounds, a counter none.
  struct Family {
    Family(std::string_view name, std::string_view help, std::vector<std::string_view> labels,
           std::vector<double> bounds = {})
        : name(name), help(help), labels(std::move(labels)), bounds(std::move(bounds)) {}
    const std::string_view name, help;
    const std::vector<std::string_view> labels;
    const std::vector<double> bounds;
    struct Series {
      uint64_t count = 0;             // a counter's value; a histogram's observations
      std::vector<uint64_t> buckets;  // a histogram's, one per bound, not cumulative
      double sum = 0;
    };
    mutable std::mutex mu;
    std::map<std::vector<std::string>, Series> series;
    bool warned = false;  // the series bound was logged
  };
  // Adds `n` to a counter, or observes `value` in a histogram, for the
  // series of `values` (one per label, in the family's order).
  void count(Family& f, std::vector<std::string> values, uint64_t n = 1);
  void observe(Family& f, std::vector<std::string> values, double value);
  // The series of `values`, created when there is room; else null (counted
  // and logged). `f.mu` held.
  Family::Series* series_of(Family& f, std::vector<std::string>&& values);
  void render_family(std::string& out, const Family& f, std::string_view type) const;

  RelayLog* log_ = nullptr;
  const double start_time_;  // seconds since the epoch
  Family attempts_, runs_, delays_, sessions_, refused_, dns_errors_, sts_errors_, table_loads_;
  std::atomic<uint64_t> dropped_series_{0};
  mutable std::mutex table_mu_;
  std::optional<std::pair<std::string, std::string>> table_;  // policy name, version in force
  double table_loaded_at_ = 0;
};

}  // namespace tlsp::relay
