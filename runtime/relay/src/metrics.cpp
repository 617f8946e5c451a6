// metrics.cpp — the relay's metrics registry and its text exposition
// (metrics.h has the contract; docs/metrics.md the list, which a test holds
// to a scrape). The format: https://prometheus.io/docs/instrumenting/exposition_formats/
// ("Text-based format", version 0.0.4).
#include "metrics.h"

#include <openssl/crypto.h>

#include <charconv>
#include <cmath>
#include <ctime>
#include <system_error>

#ifndef TLSP_VERSION
#error "TLSP_VERSION (the CMake project version) is defined for this file in runtime/relay/CMakeLists.txt"
#endif

namespace tlsp::relay {
namespace {

double seconds_since_epoch(std::chrono::system_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

// A sample value in the shortest fixed-point form that reads back to the
// same double (the format takes Go's float syntax): 1700000000.25, 0.005,
// never an exponent a reader has to decode.
void append_number(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
    return;
  }
  char buf[400];  // the longest fixed form of a double is about 330 characters
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  if (ec != std::errc()) {
    out += "NaN";
    return;
  }
  out.append(buf, end);
}

void append_number(std::string& out, uint64_t v) { out += std::to_string(v); }

// The code point at s[i] when it is well-formed UTF-8 (its length in *n),
// else 0 with *n = 0. The check the compiler makes of policy files
// (find_invalid_utf8), for the two label values that come from the table.
bool utf8_unit(std::string_view s, size_t i, size_t* n) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  const size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  *n = 0;
  if (len == 0 || i + len > s.size()) return false;
  uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
  for (size_t k = 1; k < len; ++k) {
    const unsigned char cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return false;
    cp = (cp << 6) | (cc & 0x3F);
  }
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
  *n = len;
  return true;
}

// A label value as the format wants it: `\`, `"` and line feed escaped;
// a byte that does not start well-formed UTF-8 becomes U+FFFD, so a
// scrape is always valid UTF-8 whatever a table's header holds.
void append_label_value(std::string& out, std::string_view v) {
  for (size_t i = 0; i < v.size();) {
    size_t n = 0;
    if (!utf8_unit(v, i, &n)) {
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    if (n == 1 && (v[i] == '\\' || v[i] == '"')) {
      out += '\\';
      out += v[i];
    } else if (n == 1 && v[i] == '\n') {
      out += "\\n";
    } else {
      out.append(v.substr(i, n));
    }
    i += n;
  }
}

void append_labels(std::string& out, const std::vector<std::string_view>& names, const std::vector<std::string>& values,
                   std::string_view extra_name = {}, std::string_view extra_value = {}) {
  bool any = false;
  for (size_t i = 0; i < names.size(); ++i) {
    // An empty value is the same as no label (the format's rule); leave it out.
    if (values[i].empty()) continue;
    out += any ? "," : "{";
    any = true;
    out += names[i];
    out += "=\"";
    append_label_value(out, values[i]);
    out += '"';
  }
  if (!extra_name.empty()) {
    out += any ? "," : "{";
    any = true;
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  if (any) out += '}';
}

void append_header(std::string& out, std::string_view name, std::string_view help, std::string_view type) {
  // HELP texts are ours: no `\` or line feed to escape.
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

template <typename T>
void append_gauge(std::string& out, std::string_view name, std::string_view help, T value) {
  append_header(out, name, help, "gauge");
  out += name;
  out += ' ';
  append_number(out, value);
  out += '\n';
}

std::string str(std::string_view s) { return std::string(s); }

}  // namespace

Metrics::Metrics()
    : start_time_(seconds_since_epoch(std::chrono::system_clock::now())),
      attempts_(
          "tlsp_delivery_attempts_total",
          "Delivery attempts, one per attempt log line: the rule's level, the engine's verdict, what the relay did.",
          {"direction", "level", "applied", "outcome", "channel", "tls", "reason", "action"}),
      runs_("tlsp_delivery_run_duration_seconds",
            "Duration of one delivery run of a queue entry (every MX host or the next hop tried once).", {"direction"},
            {kRunDurationBuckets.begin(), kRunDurationBuckets.end()}),
      delays_("tlsp_delivery_delay_seconds",
              "Time from a message's arrival to the delivery run that delivered it (one-second resolution).",
              {"direction"}, {kDelayBuckets.begin(), kDelayBuckets.end()}),
      sessions_("tlsp_inbound_sessions_total",
                "SMTP sessions served, by the strictest outcome decide() gave on them, their TLS version and how "
                "they ended.",
                {"outcome", "tls", "end"}),
      refused_("tlsp_smtp_connections_refused_total",
               "Connections refused with 421 before their session, by the admission limit that refused them.",
               {"limit"}),
      dns_errors_("tlsp_dns_errors_total", "Failed DNS lookups of deliveries (bogus, servfail, timeout).",
                  {"query", "status"}),
      sts_errors_("tlsp_mta_sts_fetch_errors_total", "Failed MTA-STS policy fetches, by kind.", {"kind"}),
      table_loads_("tlsp_table_loads_total", "Loads of the decision table file: loaded (now in force) or refused.",
                   {"result"}) {
  // Series whose label values are few and known start at 0, so that a
  // rate over them exists before the first event.
  for (Direction d : {Direction::outbound, Direction::inbound}) {
    series_of(runs_, {str(to_string(d))});
    series_of(delays_, {str(to_string(d))});
  }
  for (std::string_view q : kDnsQueryNames)
    for (DnsStatus s : {DnsStatus::bogus, DnsStatus::servfail, DnsStatus::timeout})
      series_of(dns_errors_, {str(q), str(to_string(s))});
  for (size_t k = 1; k < kStsFetchNames.size(); ++k) series_of(sts_errors_, {str(kStsFetchNames[k])});
  for (const char* l : {"max_connections", "max_connections_per_client", "max_connection_rate_per_client"})
    series_of(refused_, {l});
  series_of(table_loads_, {"loaded"});
  series_of(table_loads_, {"refused"});
}

Metrics::Family::Series* Metrics::series_of(Family& f, std::vector<std::string>&& values) {
  auto it = f.series.find(values);
  if (it != f.series.end()) return &it->second;
  if (f.series.size() >= kMaxSeriesPerMetric) {
    dropped_series_.fetch_add(1, std::memory_order_relaxed);
    if (!f.warned && log_) {
      f.warned = true;
      log_->write(LogEvent::limit, {{"limit", "max_metric_series"}, {"max", std::to_string(kMaxSeriesPerMetric)}});
    }
    return nullptr;
  }
  Family::Series s;
  s.buckets.assign(f.bounds.size(), 0);
  return &f.series.emplace(std::move(values), std::move(s)).first->second;
}

void Metrics::count(Family& f, std::vector<std::string> values, uint64_t n) {
  std::lock_guard lock(f.mu);
  if (Family::Series* s = series_of(f, std::move(values))) s->count += n;
}

void Metrics::observe(Family& f, std::vector<std::string> values, double value) {
  std::lock_guard lock(f.mu);
  Family::Series* s = series_of(f, std::move(values));
  if (!s) return;
  ++s->count;
  s->sum += value;
  for (size_t i = 0; i < f.bounds.size(); ++i)
    if (value <= f.bounds[i]) {
      ++s->buckets[i];
      break;
    }
}

void Metrics::delivery_attempt(Direction direction, Level rule, std::optional<Level> applied, OutcomeKind outcome,
                               Channel channel, TlsVersion tls, std::string_view reason, std::string_view action) {
  count(attempts_, {str(to_string(direction)), str(to_string(rule)), applied ? str(to_string(*applied)) : "",
                    str(to_string(outcome)), str(to_string(channel)), str(to_string(tls)), str(reason), str(action)});
}

void Metrics::delivery_run(Direction direction, std::chrono::steady_clock::duration took, bool delivered,
                           int64_t arrival) {
  observe(runs_, {str(to_string(direction))}, std::chrono::duration<double>(took).count());
  if (!delivered) return;
  const double since = seconds_since_epoch(std::chrono::system_clock::now()) - static_cast<double>(arrival);
  observe(delays_, {str(to_string(direction))}, since < 0 ? 0 : since);
}

void Metrics::session_end(std::optional<OutcomeKind> verdict, TlsVersion tls, SessionEnd end) {
  count(sessions_, {verdict ? str(to_string(*verdict)) : "none", str(to_string(tls)),
                    str(kSessionEndNames[static_cast<size_t>(end)])});
}

void Metrics::connection_refused(std::string_view limit) { count(refused_, {str(limit)}); }

void Metrics::dns_lookup(DnsQuery query, DnsStatus status) {
  if (status != DnsStatus::bogus && status != DnsStatus::servfail && status != DnsStatus::timeout) return;
  count(dns_errors_, {str(kDnsQueryNames[static_cast<size_t>(query)]), str(to_string(status))});
}

void Metrics::sts_fetch(StsFetch status) {
  if (status != StsFetch::ok) count(sts_errors_, {str(to_string(status))});
}

void Metrics::table_loaded(std::string_view policy, std::string_view version,
                           std::chrono::system_clock::time_point when) {
  {
    std::lock_guard lock(table_mu_);
    table_.emplace(std::string(policy), std::string(version));
    table_loaded_at_ = seconds_since_epoch(when);
  }
  count(table_loads_, {"loaded"});
}

void Metrics::table_refused() { count(table_loads_, {"refused"}); }

// ------------------------------------------------------------ exposition

void Metrics::render_family(std::string& out, const Family& f, std::string_view type) const {
  append_header(out, f.name, f.help, type);
  std::lock_guard lock(f.mu);
  for (const auto& [values, s] : f.series) {
    // One sample line: the family's name and `suffix`, its labels (and
    // `le` for a bucket), the value.
    auto sample = [&, &values = values](std::string_view suffix, auto value, std::string_view le = {}) {
      out += f.name;
      out += suffix;
      if (le.empty())
        append_labels(out, f.labels, values);
      else
        append_labels(out, f.labels, values, "le", le);
      out += ' ';
      append_number(out, value);
      out += '\n';
    };
    if (f.bounds.empty()) {
      sample("", s.count);
      continue;
    }
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= f.bounds.size(); ++i) {
      std::string le;
      if (i < f.bounds.size()) {
        cumulative += s.buckets[i];
        append_number(le, f.bounds[i]);
      } else {
        cumulative = s.count;
        le = "+Inf";
      }
      sample("_bucket", cumulative, le);
    }
    sample("_sum", s.sum);
    sample("_count", s.count);
  }
}

std::string Metrics::render(const QueueGauges& queue) const {
  std::string out;
  out.reserve(16384);
  append_header(out, "tlsp_build_info", "The tlsp build serving these metrics (always 1).", "gauge");
  out += "tlsp_build_info";
  append_labels(out, {"version", "openssl"}, {TLSP_VERSION, OpenSSL_version(OPENSSL_VERSION_STRING)});
  out += " 1\n";
  append_gauge(out, "process_start_time_seconds", "When the relay started, in seconds since the epoch.", start_time_);

  {
    std::lock_guard lock(table_mu_);
    append_header(out, "tlsp_table_info", "The decision table in force: its policy name and version (always 1).",
                  "gauge");
    if (table_) {
      out += "tlsp_table_info";
      append_labels(out, {"policy", "version"}, {table_->first, table_->second});
      out += " 1\n";
    }
    append_gauge(out, "tlsp_table_loaded_timestamp_seconds",
                 "When the decision table in force was loaded, in seconds since the epoch.", table_loaded_at_);
  }
  render_family(out, table_loads_, "counter");

  render_family(out, attempts_, "counter");
  render_family(out, runs_, "histogram");
  render_family(out, delays_, "histogram");

  append_gauge(out, "tlsp_queue_entries", "Queue entries (one per destination of a message), in flight included.",
               uint64_t{queue.entries});
  append_gauge(out, "tlsp_queue_recipients", "Recipients of the queue entries still to be delivered.",
               uint64_t{queue.recipients});
  append_gauge(out, "tlsp_queue_deliveries_in_flight", "Queue entries a delivery worker is running now.",
               uint64_t{queue.in_flight});
  double oldest = 0;
  if (queue.oldest_arrival) {
    oldest = seconds_since_epoch(std::chrono::system_clock::now()) - static_cast<double>(*queue.oldest_arrival);
    if (oldest < 0) oldest = 0;
  }
  append_gauge(out, "tlsp_queue_oldest_entry_age_seconds",
               "Age of the oldest queue entry since its message arrived (0 when the queue is empty).", oldest);

  render_family(out, sessions_, "counter");
  render_family(out, refused_, "counter");
  render_family(out, dns_errors_, "counter");
  render_family(out, sts_errors_, "counter");

  append_header(out, "tlsp_metrics_series_dropped_total",
                "Series not kept because their metric had reached its bound (a bug: please report).", "counter");
  out += "tlsp_metrics_series_dropped_total ";
  append_number(out, dropped_series_.load(std::memory_order_relaxed));
  out += '\n';
  return out;
}

}  // namespace tlsp::relay
