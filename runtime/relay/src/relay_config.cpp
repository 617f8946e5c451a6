// relay_config.cpp — the rules of a relay configuration: every problem
// of a RelayConfig, in the order of its settings (tlsp/relay.h), how a
// listen address is read, and the relay's host name (relay_config.h).
#include "relay_config.h"

#include <unistd.h>

#include <algorithm>
#include <stdexcept>

#include "privileges.h"
#include "relay_context.h"
#include "tlsp/redis_client.h"

namespace tlsp {

using relay::lookup_service_user;
using relay::lower;
using relay::ServiceUserLookup;
using relay::parse_host_port;

namespace {

// 127.0.0.0/8 or ::1 (an IPv4-mapped loopback address counts as IPv4).
bool is_loopback(const base::IpAddress& a) {
  static const base::Cidr v4 = base::parse_cidr("127.0.0.0/8").cidr;
  static const base::Cidr v6 = base::parse_cidr("::1/128").cidr;
  return base::contains(v4, a) || base::contains(v6, a);
}

}  // namespace

std::optional<relay::HostPort> relay::parse_host_port(std::string_view s) {
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

std::optional<int> parse_time_of_day(std::string_view s) {
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (s.size() != 5 || s[2] != ':' || !digit(s[0]) || !digit(s[1]) || !digit(s[3]) || !digit(s[4]))
    return std::nullopt;
  const int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
  if (h > 23 || m > 59) return std::nullopt;
  return h * 60 + m;
}

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
  // A Redis cache must be a valid URL (the one parser of them); a
  // directory is checked when the relay opens it.
  if (redis::looks_like_redis_url(c.mta_sts_cache)) {
    const redis::RedisUrlParse p = redis::parse_redis_url(c.mta_sts_cache);
    if (!p.url) bad("mta-sts-cache", c.mta_sts_cache, p.problem);
  }
  if (redis::looks_like_redis_url(c.tlsrpt_store)) {
    const redis::RedisUrlParse p = redis::parse_redis_url(c.tlsrpt_store);
    if (!p.url) bad("tlsrpt-store", c.tlsrpt_store, p.problem);
  }
  for (const std::string& n : c.submit_networks) {
    const base::CidrParse p = base::parse_cidr(n);
    if (p.problem == base::CidrProblem::host_bits)
      bad("submit-network", n, "`" + n + "` has host bits set; did you mean `" + base::cidr_text(p.cidr) + "`?");
    else if (!p.ok())
      bad("submit-network", n, "`" + n + "` is not an address or CIDR");
  }
  for (const NextHop& h : c.next_hops) {
    const std::string& as_given = h.text.empty() ? h.domain : h.text;
    if (h.domain.empty() || h.host.empty()) bad("next-hop", as_given, "needs domain=host:port");
    else if (h.domain != lower(h.domain)) bad("next-hop", as_given, "domain `" + h.domain + "` must be lower case");
  }
  if (!c.metrics_listen.empty()) {
    // Served without authentication, so never beyond this host: a scraper
    // elsewhere goes through a proxy or tunnel the operator secures.
    const std::optional<relay::HostPort> hp = parse_host_port(c.metrics_listen);
    const std::optional<base::IpAddress> a = hp ? base::parse_ip_address(hp->host) : std::nullopt;
    if (!hp)
      bad("metrics-listen", c.metrics_listen, "`" + c.metrics_listen + "` is not address:port");
    else if (!a || !is_loopback(*a))
      bad("metrics-listen", c.metrics_listen,
          "`" + hp->host + "` is not a loopback address (127.0.0.0/8 or ::1): metrics are served without "
          "authentication");
  }
  if (!c.user.empty())
    if (ServiceUserLookup u = lookup_service_user(c.user); !u.user) bad("user", "", u.problem);
  // TLSRPT: the texts go into every report, and the submitter into mail
  // headers (RFC 8460 §5.3): no control characters, a real domain.
  const auto printable = [](const std::string& t) {
    return std::none_of(t.begin(), t.end(), [](char ch) { return static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f; });
  };
  if (!printable(c.tlsrpt_organization) || c.tlsrpt_organization.size() > 256)
    bad("tlsrpt-organization", c.tlsrpt_organization, "must be at most 256 characters, without control characters");
  if (!c.tlsrpt_submitter.empty()) {
    const NameCheck n = check_host_name(c.tlsrpt_submitter);
    if (!n.ok())
      bad("tlsrpt-submitter", c.tlsrpt_submitter, n.problem);
    else if (n.name != c.tlsrpt_submitter)
      bad("tlsrpt-submitter", c.tlsrpt_submitter, "write it as `" + n.name + "` (lower case, no trailing dot)");
  }
  if (!c.tlsrpt_contact.empty()) {
    const std::string& t = c.tlsrpt_contact;
    const bool blank = std::any_of(t.begin(), t.end(), [](char ch) {
      return static_cast<unsigned char>(ch) <= 0x20 || ch == 0x7f;
    });
    std::string address = t.rfind("mailto:", 0) == 0 ? t.substr(7) : t;
    const size_t at = address.rfind('@');
    const bool https = t.rfind("https://", 0) == 0 && t.size() > 8;
    const bool mail = !https && at != std::string::npos && at > 0 && check_host_name(address.substr(at + 1)).ok();
    if (blank || (!https && !mail))
      bad("tlsrpt-contact", t, "`" + t + "` is not an e-mail address, a mailto: or an https: URI");
  }
  if (!c.tlsrpt_send_time.empty() && !parse_time_of_day(c.tlsrpt_send_time))
    bad("tlsrpt-send-time", "", "`" + c.tlsrpt_send_time + "` is not a UTC time of day HH:MM (00:00 to 23:59)");
  if (!c.tlsrpt_from.empty()) {
    // It is written into a From: header and a MAIL FROM: an address
    // `local@domain` without anything a header or a path would take apart.
    const std::string& a = c.tlsrpt_from;
    const size_t at = a.rfind('@');
    const bool plain = std::none_of(a.begin(), a.end(), [](char ch) {
      return static_cast<unsigned char>(ch) <= 0x20 || static_cast<unsigned char>(ch) >= 0x7F ||
             std::string_view("<>()[]\\,;:\"").find(ch) != std::string_view::npos;
    });
    if (!plain || at == 0 || at == std::string::npos || domain_of_address(a).empty())
      bad("tlsrpt-from", "", "`" + a + "` is not an address local@domain");
  }
  if (!RetrySchedule::parse(c.retry_schedule))
    bad("retry-schedule", "", "`" + c.retry_schedule + "` is not a list of durations");
  if (c.queue_lifetime.count() <= 0) bad("queue-lifetime", "", "must be positive");
  if (c.delivery_workers == 0 || c.delivery_workers > 256) bad("delivery-workers", "", "must be 1..256");
  // Each output once: a second would write every line twice.
  std::vector<std::pair<relay::LogOutput::Kind, std::string>> outputs;
  if (!c.log_file.empty()) outputs.push_back({relay::LogOutput::Kind::file, c.log_file});
  for (const std::string& o : c.log) {
    std::string why;
    const std::optional<relay::LogOutput> out = relay::parse_log_output(o, &why);
    if (!out) {
      bad("log", o, "`" + o + "`: " + why);
    } else if (std::find(outputs.begin(), outputs.end(), std::pair{out->kind, out->path}) != outputs.end()) {
      bad("log", o, "`" + o + "` is given twice (log-file counts as file:PATH)");
    } else {
      outputs.push_back({out->kind, out->path});
    }
  }
  if (!relay::parse_log_format(c.log_format)) bad("log-format", "", "`" + c.log_format + "` is not text or json");
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

std::string mta_sts_cache_dir(const RelayConfig& c) {
  return c.mta_sts_cache.empty() ? c.spool_dir + "/mta-sts" : c.mta_sts_cache;
}

std::string tlsrpt_store_spec(const RelayConfig& c) {
  return c.tlsrpt_store.empty() ? c.spool_dir + "/tlsrpt.db" : c.tlsrpt_store;
}

TlsrptIdentity tlsrpt_identity(const RelayConfig& c) {
  TlsrptIdentity id;
  id.submitter = c.tlsrpt_submitter.empty() ? lower(relay::relay_hostname(c)) : c.tlsrpt_submitter;
  id.organization = c.tlsrpt_organization.empty() ? id.submitter : c.tlsrpt_organization;
  id.contact = c.tlsrpt_contact.empty() ? "mailto:postmaster@" + id.submitter : c.tlsrpt_contact;
  id.from = c.tlsrpt_from.empty() ? "tlsrpt@" + relay::relay_hostname(c) : c.tlsrpt_from;
  return id;
}

std::string relay::relay_hostname(const RelayConfig& c) {
  if (!c.hostname.empty()) return c.hostname;
  char buf[256] = {};
  ::gethostname(buf, sizeof buf - 1);
  return buf[0] ? buf : "localhost";
}

std::unique_ptr<relay::RelayLog> relay::open_relay_log(const RelayConfig& c) {
  std::vector<LogOutput> outputs;
  for (const std::string& o : c.log) outputs.push_back(*parse_log_output(o));
  if (!c.log_file.empty()) outputs.push_back({LogOutput::Kind::file, c.log_file});
  return std::make_unique<RelayLog>(outputs, *parse_log_format(c.log_format));
}

}  // namespace tlsp
