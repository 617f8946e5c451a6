// relay_settings.cpp — the table of `tlsp relay` settings (relay_settings.h),
// the configuration file reader, and the configuration as a file again
// (`--print-config`).
#include "relay_settings.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <sstream>
#include <type_traits>

#include "tlsp/base/domain_name.h"
#include "tlsp/base/quote.h"
#include "tlsp/relay_log.h"
#include "tlsp/retry.h"

namespace tlsp::cli {

namespace po = boost::program_options;
using base::display_text;

std::string setting_placeholder(const RelaySetting& setting) {
  if (setting.kind != ValueKind::choice) return std::string(value_placeholder(setting.kind));
  std::string out;
  for (const std::string& w : setting.choices) out += (out.empty() ? "" : "|") + w;
  return out;
}

std::string_view value_placeholder(ValueKind kind) {
  switch (kind) {
    case ValueKind::text: return "TEXT";
    case ValueKind::file: return "FILE";
    case ValueKind::directory: return "DIR";
    case ValueKind::host_port: return "ADDR:PORT";
    case ValueKind::network: return "NETWORK";
    case ValueKind::next_hop: return "DOMAIN=HOST:PORT";
    case ValueKind::duration: return "DURATION";
    case ValueKind::ms_duration: return "DURATION";
    case ValueKind::duration_or_zero: return "DURATION";
    case ValueKind::duration_list: return "DURATION,...";
    case ValueKind::number: return "N";
    case ValueKind::port: return "PORT";
    case ValueKind::choice: return "WORD";
  }
  return "VALUE";
}

std::string_view section_title(SettingSection section) {
  switch (section) {
    case SettingSection::service: return "service";
    case SettingSection::tls: return "TLS";
    case SettingSection::table: return "decision table";
    case SettingSection::queue: return "spool and queue";
    case SettingSection::routing: return "who may send, and where inbound mail goes";
    case SettingSection::outbound: return "outbound delivery";
    case SettingSection::limits: return "inbound limits";
    case SettingSection::stress: return "slow clients and floods";
    case SettingSection::logging: return "logging and metrics";
    case SettingSection::tlsrpt: return "TLS reports (RFC 8460)";
  }
  return "other";
}

namespace {

// ------------------------------------------------------- value bindings

// How one kind of value is read into a field and shown from it. A field
// is a member of RelayConfig or of its RelayLimits.
struct Binding {
  ValueKind kind;
  bool repeatable = false;
  uint64_t max = 0;
  std::function<void(RelayConfig&, const std::vector<std::string>&, const SettingProblem&)> read;
  std::function<std::optional<std::vector<std::string>>(const RelayConfig&)> show;
};

template <class Owner, class M>
M& field(RelayConfig& c, M Owner::*m) {
  if constexpr (std::is_same_v<Owner, RelayLimits>)
    return c.limits.*m;
  else
    return c.*m;
}
template <class Owner, class M>
const M& field(const RelayConfig& c, M Owner::*m) {
  if constexpr (std::is_same_v<Owner, RelayLimits>)
    return c.limits.*m;
  else
    return c.*m;
}

using Shown = std::optional<std::vector<std::string>>;

std::string quoted(const std::string& text) { return "`" + display_text(text) + "`"; }

template <class Owner>
Binding text(std::string Owner::*m, ValueKind kind = ValueKind::text) {
  return {kind, false, 0,
          [m](RelayConfig& c, const std::vector<std::string>& v, const SettingProblem&) { field(c, m) = v.back(); },
          [m](const RelayConfig& c) -> Shown { return std::vector<std::string>{field(c, m)}; }};
}

template <class Owner>
Binding list(std::vector<std::string> Owner::*m, ValueKind kind) {
  return {kind, true, 0,
          [m](RelayConfig& c, const std::vector<std::string>& v, const SettingProblem&) { field(c, m) = v; },
          [m](const RelayConfig& c) -> Shown { return field(c, m); }};
}

// Seconds (or milliseconds that are whole seconds): parse_duration()'s
// syntax, tlsp/retry.h.
template <class Owner, class Rep, class Period>
Binding duration(std::chrono::duration<Rep, Period> Owner::*m) {
  using D = std::chrono::duration<Rep, Period>;
  return {ValueKind::duration, false, 0,
          [m](RelayConfig& c, const std::vector<std::string>& v, const SettingProblem& problem) {
            if (auto d = parse_duration(v.back()))
              field(c, m) = std::chrono::duration_cast<D>(*d);
            else
              problem(v.back(), quoted(v.back()) + " is not a duration (e.g. 30s, 5m, 2h, 5d)");
          },
          [m](const RelayConfig& c) -> Shown {
            const D d = field(c, m);
            const auto s = std::chrono::duration_cast<std::chrono::seconds>(d);
            if (D(s) != d || s.count() < 0 || s > kMaxDuration) return std::nullopt;
            return std::vector<std::string>{format_duration(s)};
          }};
}

// A duration that may also be given in milliseconds ("500ms"): DNS and
// HTTPS timeouts below a second are useful on a local network and in tests.
constexpr size_t kMaxMillisDigits = 9;

template <class Owner>
Binding ms_duration(std::chrono::milliseconds Owner::*m) {
  Binding b = duration(m);
  b.kind = ValueKind::ms_duration;
  b.read = [m, seconds = b.read](RelayConfig& c, const std::vector<std::string>& v, const SettingProblem& problem) {
    const std::string& text = v.back();
    if (text.size() > 2 && text.compare(text.size() - 2, 2, "ms") == 0) {
      const std::string n = text.substr(0, text.size() - 2);
      if (n.size() <= kMaxMillisDigits &&
          std::all_of(n.begin(), n.end(), [](char ch) { return ch >= '0' && ch <= '9'; }) && std::stoul(n) > 0)
        field(c, m) = std::chrono::milliseconds(std::stoul(n));
      else
        problem(text, quoted(text) + " is not a duration (e.g. 500ms, 10s)");
      return;
    }
    seconds(c, v, problem);
  };
  b.show = [m, seconds = b.show](const RelayConfig& c) -> Shown {
    const int64_t ms = field(c, m).count();
    if (ms % 1000 == 0) return seconds(c);
    if (ms <= 0 || std::to_string(ms).size() > kMaxMillisDigits) return std::nullopt;
    return std::vector<std::string>{std::to_string(ms) + "ms"};
  };
  return b;
}

// A duration where 0 means "off".
template <class Owner>
Binding duration_or_zero(std::chrono::seconds Owner::*m) {
  Binding b = duration(m);
  b.kind = ValueKind::duration_or_zero;
  b.read = [m, any = b.read](RelayConfig& c, const std::vector<std::string>& v, const SettingProblem& problem) {
    if (v.back() == "0")
      field(c, m) = std::chrono::seconds(0);
    else
      any(c, v, problem);
  };
  b.show = [m, any = b.show](const RelayConfig& c) -> Shown {
    if (field(c, m).count() == 0) return std::vector<std::string>{"0"};
    return any(c);
  };
  return b;
}

// A whole number from 0 to `max`, digits only. Boost's own conversion
// would take `-1` for a size_t as 18446744073709551615, and a port is
// checked against 65535 rather than wrapped into 16 bits.
template <class Owner, class Number>
Binding number(Number Owner::*m, uint64_t max = std::numeric_limits<Number>::max(),
               ValueKind kind = ValueKind::number) {
  return {kind, false, max,
          [m, max](RelayConfig& c, const std::vector<std::string>& v, const SettingProblem& problem) {
            const std::string& text = v.back();
            uint64_t n = 0;
            bool ok = !text.empty() && text.size() <= 20;
            for (char ch : text) {
              if (!ok) break;
              const unsigned digit = static_cast<unsigned char>(ch) - '0';
              ok = digit <= 9 && n <= (max - digit) / 10;
              n = n * 10 + digit;
            }
            if (!ok)
              problem(text, quoted(text) + " is not a whole number from 0 to " + std::to_string(max));
            else
              field(c, m) = static_cast<Number>(n);
          },
          [m, max](const RelayConfig& c) -> Shown {
            const uint64_t n = field(c, m);
            if (n > max) return std::nullopt;
            return std::vector<std::string>{std::to_string(n)};
          }};
}

template <class Owner>
Binding port(uint16_t Owner::*m) {
  return number(m, 65535, ValueKind::port);
}

// domain=host:port, the managed domain in the normal form recipients'
// domains are compared in (tlsp/base/domain_name.h).
std::optional<NextHop> parse_next_hop(const std::string& text, const SettingProblem& problem) {
  const std::string shown = quoted(text);
  size_t eq = text.find('=');
  std::string hp = eq == std::string::npos ? "" : text.substr(eq + 1);
  size_t colon = hp.rfind(':');
  if (eq == std::string::npos || colon == std::string::npos || colon + 1 == hp.size()) {
    problem(text, shown + " is not domain=host:port");
    return std::nullopt;
  }
  NextHop h;
  h.text = text;  // a problem found later names the line it came from
  NameCheck domain = check_host_name(std::string_view(text).substr(0, eq));
  if (!domain.ok()) {
    problem(text, shown + ": " + domain.problem);
    return std::nullopt;
  }
  h.domain = std::move(domain.name);
  h.host = hp.substr(0, colon);
  if (h.host.size() > 2 && h.host.front() == '[') h.host = h.host.substr(1, h.host.size() - 2);
  const std::string port = hp.substr(colon + 1);
  unsigned p = 0;
  bool ok = port.size() <= 5;
  for (char c : port) ok = ok && c >= '0' && c <= '9' && (p = p * 10 + static_cast<unsigned>(c - '0'), true);
  if (!ok || p == 0 || p > 65535) {
    problem(text, shown + " has no valid port");
    return std::nullopt;
  }
  h.port = static_cast<uint16_t>(p);
  return h;
}

Binding next_hops() {
  return {ValueKind::next_hop, true, 0,
          [](RelayConfig& c, const std::vector<std::string>& v, const SettingProblem& problem) {
            c.next_hops.clear();
            for (const std::string& text : v)
              if (auto hop = parse_next_hop(text, problem)) c.next_hops.push_back(*hop);
          },
          [](const RelayConfig& c) -> Shown {
            std::vector<std::string> out;
            for (const NextHop& h : c.next_hops) {
              // An IPv6 next hop is written in brackets, as it is read.
              const bool v6 = h.host.find(':') != std::string::npos;
              out.push_back(h.domain + "=" + (v6 ? "[" + h.host + "]" : h.host) + ":" + std::to_string(h.port));
            }
            return out;
          }};
}

// ------------------------------------------------------------- the table

RelaySetting entry(std::string name, SettingSection section, std::string help, Binding b,
                   std::string when_empty = "") {
  return {std::move(name), b.kind, section, std::move(help), std::move(when_empty),
          b.repeatable, b.max, {}, std::move(b.read), std::move(b.show)};
}

// A setting that takes one of a fixed set of words (ValueKind::choice):
// whether a word is valid is its owner's check in relay_config_problems();
// the words here are what --help, the man page and the completion offer.
template <size_t N>
RelaySetting with_choices(RelaySetting s, const std::string_view (&words)[N]) {
  s.choices.assign(std::begin(words), std::end(words));
  return s;
}

std::vector<RelaySetting> make_relay_settings() {
  using S = SettingSection;
  using L = RelayLimits;
  using C = RelayConfig;
  using K = ValueKind;
  // clang-format off
  return {
    entry("listen", S::service, "address:port to accept SMTP on", list(&C::listen, K::host_port)),
    entry("hostname", S::service, "name in the greeting, EHLO, Received: and bounces", text(&C::hostname), "the system's"),
    entry("user", S::service, "account to run as once the sockets are bound, when started as root (required then: deliveries never run as root)", text(&C::user), "the account that started it"),
    entry("shutdown-grace", S::service, "SIGTERM: time for sessions and deliveries to finish", duration(&L::shutdown_grace)),

    entry("tls-cert", S::tls, "PEM certificate chain for inbound STARTTLS; without it STARTTLS is not offered", text(&C::tls_cert, K::file)),
    entry("tls-key", S::tls, "PEM private key for inbound STARTTLS", text(&C::tls_key, K::file)),
    entry("ca-file", S::tls, "CA bundle for MTA-STS / WebPKI checks", text(&C::ca_file, K::file)),

    entry("table", S::table, "decision table (tlsp compile); reloaded on SIGHUP and when the file changes", text(&C::table, K::file)),
    entry("table-check-interval", S::table, "how often the table file is checked for changes", duration(&C::table_check_interval)),

    entry("spool", S::queue, "spool directory", text(&C::spool_dir, K::directory)),
    entry("queue-lifetime", S::queue, "bounce after this long in the queue", duration(&C::queue_lifetime)),
    entry("retry-schedule", S::queue, "delays between attempts, the last repeats", text(&C::retry_schedule, K::duration_list)),
    entry("delivery-workers", S::queue, "concurrent deliveries", number(&C::delivery_workers, 1024)),

    entry("submit-network", S::routing, "client network allowed to send outbound", list(&C::submit_networks, K::network)),
    entry("next-hop", S::routing, "managed domain's inbound next hop: domain=host:port", next_hops()),

    entry("resolver", S::outbound, "DNS resolver address:port; must validate DNSSEC", text(&C::resolver, K::host_port), "/etc/resolv.conf"),
    entry("smtp-port", S::outbound, "outbound SMTP port", port(&C::smtp_port)),
    entry("mta-sts-port", S::outbound, "HTTPS port of MTA-STS policy hosts", port(&C::mta_sts_port)),
    entry("mta-sts-cache", S::outbound, "MTA-STS policy cache: a directory, or redis://HOST:PORT/DB shared by a fleet of relays (docs/relay.md)", text(&C::mta_sts_cache, K::directory), "<spool>/mta-sts"),
    entry("connect-timeout", S::outbound, "outbound TCP connect", duration(&L::connect_timeout)),
    entry("command-timeout", S::outbound, "outbound: each SMTP reply", duration(&L::command_timeout)),
    entry("data-timeout", S::outbound, "outbound: the reply to the final dot", duration(&L::data_timeout)),
    entry("dns-timeout", S::outbound, "one DNS lookup; also in milliseconds, e.g. 500ms", ms_duration(&L::dns_timeout)),
    entry("sts-fetch-timeout", S::outbound, "one MTA-STS policy fetch; also in milliseconds", ms_duration(&L::sts_fetch_timeout)),
    entry("connection-cache-time", S::outbound, "keep a delivering outbound session open this long for the next message to the same destination; 0 disables", duration_or_zero(&L::connection_cache_time)),
    entry("connection-reuse-limit", S::outbound, "messages per cached outbound session", number(&L::connection_reuse_limit)),

    entry("max-connections", S::limits, "concurrent SMTP sessions", number(&L::max_connections)),
    entry("max-connections-per-client", S::limits, "concurrent sessions from one address", number(&L::max_connections_per_client)),
    entry("max-line-length", S::limits, "command line length in octets", number(&L::max_line_length)),
    entry("max-data-line-length", S::limits, "message line length in octets", number(&L::max_data_line_length)),
    entry("max-commands", S::limits, "commands per session", number(&L::max_commands)),
    entry("max-errors", S::limits, "bad commands per session", number(&L::max_errors)),
    entry("max-recipients", S::limits, "recipients per message", number(&L::max_recipients)),
    entry("max-message-size", S::limits, "message size in octets", number(&L::max_message_size)),
    entry("idle-timeout", S::limits, "read one whole client command or message line", duration(&L::idle_timeout)),
    entry("session-timeout", S::limits, "one whole SMTP session", duration(&L::session_timeout)),
    entry("data-phase-timeout", S::limits, "inbound: from the 354 to the final dot", duration(&L::data_phase_timeout)),

    entry("stress-threshold", S::stress, "sessions in use, percent of max-connections, from which stress timeouts apply; 0 disables", number(&L::stress_threshold_percent)),
    entry("stress-idle-timeout", S::stress, "idle-timeout under stress", duration(&L::stress_idle_timeout)),
    entry("stress-max-errors", S::stress, "max-errors under stress", number(&L::stress_max_errors)),
    entry("admission-wait", S::stress, "all slots taken: how long a new client waits for one before 421; 0 refuses at once", duration_or_zero(&L::admission_wait)),
    entry("evict-stalled-after", S::stress, "all slots taken: a new client displaces the session waiting longest for a command, once it waited this long; 0 disables", duration_or_zero(&L::evict_stalled_after)),
    entry("max-connection-rate-per-client", S::stress, "connections per connection-rate-time-unit from one address outside submit-network; 0 disables", number(&L::max_connection_rate_per_client)),
    entry("connection-rate-time-unit", S::stress, "the time unit of max-connection-rate-per-client", duration(&L::connection_rate_time_unit)),

    entry("log", S::logging, "log output: stderr, file:PATH, syslog[:SOCKET] or journal (docs/logs.md); every line goes to each", list(&C::log, K::text), "stderr"),
    with_choices(entry("log-format", S::logging, "log line format", text(&C::log_format, K::choice)), relay::kLogFormatNames),
    entry("log-file", S::logging, "log file, the same as log = file:PATH", text(&C::log_file, K::file), "standard error"),
    entry("metrics-listen", S::logging, "loopback address:port to serve Prometheus metrics on, GET /metrics (docs/metrics.md)", text(&C::metrics_listen, K::host_port), "off"),

    entry("tlsrpt-store", S::tlsrpt, "where outbound sessions are counted for TLSRPT: redis://HOST:PORT/DB (shared by a fleet) or a SQLite file", text(&C::tlsrpt_store, K::file), "<spool>/tlsrpt.db"),
    entry("tlsrpt-organization", S::tlsrpt, "organization-name of the TLSRPT reports", text(&C::tlsrpt_organization), "the submitter"),
    entry("tlsrpt-contact", S::tlsrpt, "contact-info of the TLSRPT reports: an address, or a mailto: or https: URI", text(&C::tlsrpt_contact), "mailto:postmaster@<submitter>"),
    entry("tlsrpt-submitter", S::tlsrpt, "the TLS-Report-Submitter domain of the reports (also in their ids)", text(&C::tlsrpt_submitter), "the hostname setting"),
    entry("tlsrpt-send-time", S::tlsrpt, "UTC time of day (HH:MM) the previous day's TLSRPT reports are sent at; empty: not sent (docs/tlsrpt.md)", text(&C::tlsrpt_send_time), "01:00"),
    entry("tlsrpt-from", S::tlsrpt, "From: and envelope sender of TLSRPT report mails", text(&C::tlsrpt_from), "tlsrpt@<hostname>"),
  };
  // clang-format on
}

}  // namespace

const std::vector<RelaySetting>& relay_settings() {
  static const std::vector<RelaySetting> table = [] {
    std::vector<RelaySetting> t = make_relay_settings();
    // Grouped by section, in kSettingSections' order, whatever the order
    // the entries were written in.
    std::stable_sort(t.begin(), t.end(), [](const RelaySetting& a, const RelaySetting& b) { return a.section < b.section; });
    return t;
  }();
  return table;
}

const RelaySetting* find_relay_setting(std::string_view name) {
  for (const RelaySetting& s : relay_settings())
    if (s.name == name) return &s;
  return nullptr;
}

std::string setting_default(const RelaySetting& s) {
  const Shown shown = s.show(RelayConfig{});
  if (!shown || shown->empty() || (shown->size() == 1 && shown->front().empty()))
    return s.when_empty.empty() ? "" : ": " + s.when_empty;
  std::string out;
  for (const std::string& v : *shown) out += (out.empty() ? " " : " and ") + v;
  return out;
}

std::string setting_help(const RelaySetting& s) {
  const std::string dflt = setting_default(s);
  if (dflt.empty()) return s.repeatable ? s.help + " (repeatable)" : s.help;
  return s.help + " (" + (s.repeatable ? "repeatable; " : "") + "default" + dflt + ")";
}

po::options_description relay_options() {
  po::options_description opts("options");
  opts.add_options()("config", po::value<std::string>()->value_name("FILE"),
                     "configuration file (tlsp.conf(5)): `name = value` lines, a setting on each; flags win over it")(
      "check-config", "check the settings, the table and the TLS key pair, then exit (0: fine)")(
      "print-config", "print the settings given in the file or by a flag, as a configuration file, then exit")(
      "print-config-all", "print every setting, given or default, as a configuration file, then exit");
  for (SettingSection section : kSettingSections) {
    po::options_description group("settings: " + std::string(section_title(section)));
    for (const RelaySetting& s : relay_settings()) {
      if (s.section != section) continue;
      const std::string placeholder = setting_placeholder(s);
      if (s.repeatable)
        group.add_options()(s.name.c_str(), po::value<std::vector<std::string>>()->composing()->value_name(placeholder),
                            setting_help(s).c_str());
      else
        group.add_options()(s.name.c_str(), po::value<std::string>()->value_name(placeholder), setting_help(s).c_str());
    }
    opts.add(group);
  }
  return opts;
}

// ------------------------------------------------- reading a configuration

namespace {

// Where each setting came from and what is wrong with them. A mistake is
// reported as `FILE:LINE: name: ...` when the setting came from the
// configuration file, as `--name: ...` when it came from a flag, and every
// mistake of one run is reported, not only the first.
class Settings {
 public:
  static constexpr size_t kFlag = SIZE_MAX;  // the line of a mistake made by a flag: after the file's

  Settings(const po::variables_map& vm, std::string path) : path_(std::move(path)) {
    // The command line's settings, recorded before the file is read: flags
    // win over the file, so a flag's value is never the file's.
    for (const auto& [name, v] : vm) flags_.insert(name);
  }

  void note_file_line(const std::string& name, std::string value, size_t line, bool repeatable) {
    file_[name].push_back({std::move(value), line});
    if (repeatable) repeatable_.insert(name);
  }
  bool in_file(const std::string& name) const { return file_.count(name) != 0; }

  // "FILE:LINE: name" or "--name". A repeatable setting's value is looked
  // for among the file's lines of that setting.
  std::string origin(const std::string& name, const std::string& value = "") const {
    return locate(name, value).first;
  }

  // Mistakes are reported in the file's order, then the flags'.
  void error(const std::string& where, const std::string& text, size_t line = kFlag) {
    errors_.push_back({line, where + ": " + text});
  }
  void error_at(const std::string& name, const std::string& value, const std::string& text) {
    auto [where, line] = locate(name, value);
    error(where, text, line);
  }
  std::vector<std::string> errors() const {
    std::vector<std::pair<size_t, std::string>> sorted = errors_;
    std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<std::string> out;
    for (auto& e : sorted) out.push_back(std::move(e.second));
    return out;
  }

 private:
  std::pair<std::string, size_t> locate(const std::string& name, const std::string& value) const {
    auto it = file_.find(name);
    const bool repeatable = repeatable_.count(name) != 0;
    if (it != file_.end() && (!flags_.count(name) || repeatable)) {
      for (auto v = it->second.rbegin(); v != it->second.rend(); ++v)
        if (!repeatable || v->first == value || (value.empty() && !flags_.count(name)))
          return {display_text(path_) + ":" + std::to_string(v->second) + ": " + name, v->second};
    }
    return {"--" + name, kFlag};
  }

  std::string path_;
  std::set<std::string> flags_;
  std::set<std::string> repeatable_;
  std::map<std::string, std::vector<std::pair<std::string, size_t>>> file_;
  std::vector<std::pair<size_t, std::string>> errors_;
};

// The configuration file, checked line by line before Boost reads it: every
// line is blank, a `#` comment or `name = value` with a known setting, and
// a mistake is reported as FILE:LINE with the text escaped. Boost would
// take `[x]` as a section, and its messages substitute `%...%` tokens in
// the option name it quotes, which loops forever on a name such as
// `%canonical_option%x` (found by relay_config_fuzz). Only a regular file
// of at most kMaxConfigFileBytes is read. Returns the good lines only, so
// that the settings on them are checked too in the same run; a setting
// that takes one value and is given twice is a mistake on the second line.
constexpr size_t kMaxConfigFileBytes = 1 << 20;

struct ConfigFileError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string read_config_file(const std::string& path, Settings& s) {
  const std::string shown = quoted(path);
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    const int err = errno;
    if (fd >= 0) ::close(fd);
    throw ConfigFileError("cannot read config file " + shown +
                          (fd >= 0 ? ": not a regular file" : ": " + std::string(std::strerror(err))));
  }
  std::string text;
  char buf[65536];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || text.size() + static_cast<size_t>(n) > kMaxConfigFileBytes) {
      ::close(fd);
      throw ConfigFileError("cannot read config file " + shown +
                            (n < 0 ? ": " + std::string(std::strerror(errno))
                                   : ": larger than " + std::to_string(kMaxConfigFileBytes) + " bytes"));
    }
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  std::string good;
  size_t line_no = 0;
  for (size_t start = 0; start < text.size(); ++line_no) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string_view line = std::string_view(text).substr(start, end - start);
    start = end + 1;
    const std::string where = display_text(path) + ":" + std::to_string(line_no + 1);
    if (const size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
    while (!line.empty() && blank(line.front())) line.remove_prefix(1);
    while (!line.empty() && blank(line.back())) line.remove_suffix(1);
    if (line.empty()) continue;
    const size_t eq = line.find('=');
    std::string_view name = line.substr(0, eq);
    while (!name.empty() && blank(name.back())) name.remove_suffix(1);
    const bool word = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    });
    if (eq == std::string_view::npos || !word) {
      s.error(where, "expected `name = value`, found `" + display_text(line) + "`", line_no + 1);
      continue;
    }
    const std::string key(name);
    const RelaySetting* setting = find_relay_setting(key);
    if (setting == nullptr) {
      s.error(where, "unknown setting `" + display_text(name) + "`", line_no + 1);
      continue;
    }
    std::string_view value = line.substr(eq + 1);
    while (!value.empty() && blank(value.front())) value.remove_prefix(1);
    if (s.in_file(key) && !setting->repeatable) {
      s.error(where, key + ": given more than once in the file", line_no + 1);
      continue;
    }
    s.note_file_line(key, std::string(value), line_no + 1, setting->repeatable);
    good.append(line).append("\n");
  }
  return good;
}

}  // namespace

RelayConfigRead read_relay_config(const po::options_description& opts, po::variables_map& vm,
                                  const std::string& path, bool check_problems) {
  RelayConfigRead r;
  auto s = std::make_shared<Settings>(vm, path);
  r.origin = [s](const std::string& name) { return s->origin(name); };
  if (!path.empty()) {
    std::string text;
    try {
      text = read_config_file(path, *s);
    } catch (const ConfigFileError& e) {
      r.errors = {e.what()};  // nothing else can be said about a file not read
      return r;
    }
    std::istringstream in(text);
    try {
      po::store(po::parse_config_file(in, opts), vm);
      po::notify(vm);
    } catch (const po::error& e) {
      s->error(display_text(path), display_text(e.what()));
    }
  }
  for (const RelaySetting& setting : relay_settings()) {
    if (!vm.count(setting.name)) continue;
    r.given.insert(setting.name);
    const std::vector<std::string> values = setting.repeatable
                                                ? vm[setting.name].as<std::vector<std::string>>()
                                                : std::vector<std::string>{vm[setting.name].as<std::string>()};
    setting.read(r.config, values, [&](const std::string& value, const std::string& text) {
      s->error_at(setting.name, value, text);
    });
  }
  if (check_problems)
    for (const ConfigProblem& p : relay_config_problems(r.config)) s->error_at(p.setting, p.value, p.text);
  r.errors = s->errors();
  return r;
}

std::optional<RelayConfig> load_relay_config(const std::string& path, std::vector<std::string>& errors) {
  const po::options_description opts = relay_options();
  po::variables_map vm;
  RelayConfigRead r = read_relay_config(opts, vm, path);
  if (!r.errors.empty()) {
    errors.insert(errors.end(), r.errors.begin(), r.errors.end());
    return std::nullopt;
  }
  return std::move(r.config);
}

// ----------------------------------------------- a configuration as a file

namespace {

// Whether `value` can stand after `name = ` on a line and be read back as
// it is: no `#` (a comment), no line break, no blank at either end (the
// reader trims), and nothing a terminal would not show as itself.
bool writable(const std::string& value) {
  if (value.find_first_of("#\r\n") != std::string::npos) return false;
  if (!value.empty() && (value.front() == ' ' || value.back() == ' ')) return false;
  return display_text(value, value.size() + 1) == value;
}

}  // namespace

std::string format_relay_config(const RelayConfig& config, const std::set<std::string>& names, bool all,
                                std::vector<std::string>& errors) {
  std::string out;
  std::optional<SettingSection> section;
  for (const RelaySetting& s : relay_settings()) {
    if (!all && !names.count(s.name)) continue;
    if (all && section != s.section) {
      out += std::string(out.empty() ? "" : "\n") + "# " + std::string(section_title(s.section)) + "\n";
      section = s.section;
    }
    const Shown shown = s.show(config);
    // What is printed must read back as the same setting: read it back.
    bool ok = shown.has_value();
    if (ok) {
      RelayConfig probe;
      s.read(probe, shown->empty() ? std::vector<std::string>{} : *shown,
             [&](const std::string&, const std::string&) { ok = false; });
      ok = ok && s.show(probe) == shown;
      for (const std::string& v : *shown) ok = ok && writable(v);
    }
    if (!ok) {
      std::string values;
      for (const std::string& v : shown.value_or(std::vector<std::string>{})) values += " " + quoted(v);
      errors.push_back(s.name + ":" + (values.empty() ? " its value" : values) +
                       " cannot be written as a configuration line that reads back the same");
      continue;
    }
    // With `all`, a setting with no value where none is the default is a
    // comment saying what that means; read back, it is the default again.
    const bool unset = shown->empty() || (shown->size() == 1 && shown->front().empty());
    if (all && unset && s.show(RelayConfig{}) == shown) {
      out += "# " + s.name + " = (" + (s.when_empty.empty() ? "none" : s.when_empty) + ")\n";
      continue;
    }
    for (const std::string& v : *shown) out += s.name + (v.empty() ? " =" : " = " + v) + "\n";
  }
  return out;
}

}  // namespace tlsp::cli
