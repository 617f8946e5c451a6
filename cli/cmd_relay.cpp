// cmd_relay.cpp — `tlsp relay`: run the SMTP relay (tlsp/relay.h). Every
// setting is a flag and may also be given in a config file
// (`--config FILE`, `name = value` lines, the flag names without `--`);
// flags win over the file. README "Running the relay" has an example.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>

#include "cli_common.h"
#include "commands.h"
#include "tlsp/base/domain_name.h"
#include "tlsp/relay.h"
#include "tlsp/retry.h"
#include "tlsp/diagnostic_text.h"
#include "tlsp/tls.h"

namespace tlsp::cli {
namespace {

// Where each setting came from and what is wrong with them. A mistake is
// reported as `FILE:LINE: name: ...` when the setting came from the
// configuration file, as `--name: ...` when it came from a flag, and every
// mistake of one run is reported, not only the first, each with the one
// prefix `tlsp relay: error: `.
class Settings {
 public:
  static constexpr size_t kFlag = SIZE_MAX;  // the line of a mistake made by a flag: after the file's

  Settings(const po::variables_map& vm, std::string path) : vm_(vm), path_(std::move(path)) {}

  // The command line's settings, recorded before the file is read: flags
  // win over the file, so a flag's value is never the file's.
  void note_flags() {
    for (const auto& [name, v] : vm_) flags_.insert(name);
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

  const std::string* text(const char* name) const {
    return vm_.count(name) ? &vm_[name].as<std::string>() : nullptr;
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

  const po::variables_map& vm_;
  std::string path_;
  std::set<std::string> flags_;
  std::set<std::string> repeatable_;
  std::map<std::string, std::vector<std::pair<std::string, size_t>>> file_;
  std::vector<std::pair<size_t, std::string>> errors_;
};

template <class Duration>
Duration duration_option(Settings& s, const char* name, Duration dflt) {
  const std::string* text = s.text(name);
  if (!text) return dflt;
  auto d = parse_duration(*text);
  if (!d) {
    s.error_at(name, "", "`" + display_text(*text) + "` is not a duration (e.g. 30s, 5m, 2h, 5d)");
    return dflt;
  }
  return *d;
}

// Like duration_option, also taking milliseconds ("500ms"): DNS and HTTPS
// timeouts below a second are useful on a local network and in tests.
std::chrono::milliseconds millis_option(Settings& s, const char* name, std::chrono::milliseconds dflt) {
  const std::string* text = s.text(name);
  if (!text) return dflt;
  if (text->size() > 2 && text->compare(text->size() - 2, 2, "ms") == 0) {
    const std::string n = text->substr(0, text->size() - 2);
    if (n.size() <= 9 && std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
        std::stoul(n) > 0)
      return std::chrono::milliseconds(std::stoul(n));
    s.error_at(name, "", "`" + display_text(*text) + "` is not a duration (e.g. 500ms, 10s)");
    return dflt;
  }
  return duration_option<std::chrono::milliseconds>(s, name, dflt);
}

// A duration where 0 means "off".
std::chrono::seconds duration_or_zero_option(Settings& s, const char* name, std::chrono::seconds dflt) {
  if (const std::string* text = s.text(name); text && *text == "0") return std::chrono::seconds(0);
  return duration_option(s, name, dflt);
}

// A whole number from 0 to `max`, digits only. Boost's own conversion
// would take `-1` for a size_t as 18446744073709551615, and a port is
// checked against 65535 rather than wrapped into 16 bits.
template <class Number>
void number_option(Settings& s, const char* name, Number& out, uint64_t max) {
  const std::string* text = s.text(name);
  if (!text) return;
  uint64_t n = 0;
  bool ok = !text->empty() && text->size() <= 20;
  for (char ch : *text) {
    if (!ok) break;
    const unsigned digit = static_cast<unsigned char>(ch) - '0';
    ok = digit <= 9 && n <= (max - digit) / 10;
    n = n * 10 + digit;
  }
  if (!ok)
    s.error_at(name, "", "`" + display_text(*text) + "` is not a whole number from 0 to " + std::to_string(max));
  else
    out = static_cast<Number>(n);
}

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

std::string read_config_file(const std::string& path, const po::options_description& opts, Settings& s) {
  const std::string shown = "`" + display_text(path) + "`";
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
    const po::option_description* o = opts.find_nothrow(key, false);
    if (o == nullptr || key == "config" || key == "check-config") {
      s.error(where, "unknown setting `" + display_text(name) + "`", line_no + 1);
      continue;
    }
    std::string_view value = line.substr(eq + 1);
    while (!value.empty() && blank(value.front())) value.remove_prefix(1);
    if (s.in_file(key) && !o->semantic()->is_composing()) {
      s.error(where, key + ": given more than once in the file", line_no + 1);
      continue;
    }
    s.note_file_line(key, std::string(value), line_no + 1, o->semantic()->is_composing());
    good.append(line).append("\n");
  }
  return good;
}

std::optional<NextHop> parse_next_hop(const std::string& text, Settings& s) {
  const std::string shown = "`" + display_text(text) + "`";
  size_t eq = text.find('=');
  std::string hp = eq == std::string::npos ? "" : text.substr(eq + 1);
  size_t colon = hp.rfind(':');
  if (eq == std::string::npos || colon == std::string::npos || colon + 1 == hp.size()) {
    s.error_at("next-hop", text, shown + " is not domain=host:port");
    return std::nullopt;
  }
  NextHop h;
  h.text = text;  // a problem found later names the line it came from
  // The managed domain is compared with recipients' domains: the same
  // rule and normal form (tlsp/base/domain_name.h).
  NameCheck domain = check_host_name(std::string_view(text).substr(0, eq));
  if (!domain.ok()) {
    s.error_at("next-hop", text, shown + ": " + domain.problem);
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
    s.error_at("next-hop", text, shown + " has no valid port");
    return std::nullopt;
  }
  h.port = static_cast<uint16_t>(p);
  return h;
}

}  // namespace

int cmd_relay(const Args& args) {
  RelayConfig c;
  const RelayLimits d;
  po::options_description opts("options (also `name = value` in --config)");
  // clang-format off
  opts.add_options()
    ("config", po::value<std::string>(), "configuration file")
    ("check-config", "check the settings, the table and the TLS key pair, then exit (0: fine)")
    ("listen", po::value<std::vector<std::string>>()->composing(), "address:port to accept SMTP on (repeatable; default 127.0.0.1:2525)")
    ("hostname", po::value<std::string>(), "name in the greeting, EHLO, Received: and bounces (default: the system's)")
    ("tls-cert", po::value<std::string>(), "PEM certificate chain for inbound STARTTLS")
    ("tls-key", po::value<std::string>(), "PEM private key for inbound STARTTLS")
    ("table", po::value<std::string>(), "decision table (tlsp compile); reloaded on SIGHUP and when the file changes")
    ("spool", po::value<std::string>(), "spool directory")
    ("resolver", po::value<std::string>(), "DNS resolver address:port; must validate DNSSEC (default: /etc/resolv.conf)")
    ("smtp-port", po::value<std::string>(), "outbound SMTP port (default 25)")
    ("ca-file", po::value<std::string>(), "CA bundle for MTA-STS / WebPKI checks (default /etc/ssl/certs/ca-certificates.crt)")
    ("mta-sts-port", po::value<std::string>(), "HTTPS port of MTA-STS policy hosts (default 443)")
    ("mta-sts-cache", po::value<std::string>(), "MTA-STS policy cache directory (default <spool>/mta-sts)")
    ("submit-network", po::value<std::vector<std::string>>()->composing(), "client network allowed to send outbound (repeatable; default 127.0.0.0/8 and ::1)")
    ("next-hop", po::value<std::vector<std::string>>()->composing(), "managed domain's inbound next hop: domain=host:port (repeatable)")
    ("queue-lifetime", po::value<std::string>(), "bounce after this long in the queue (default 5d)")
    ("retry-schedule", po::value<std::string>(), "delays between attempts, the last repeats (default 1m,5m,15m,30m,1h,2h,4h)")
    ("delivery-workers", po::value<std::string>(), "concurrent deliveries (default 8)")
    ("log-file", po::value<std::string>(), "log file (default: standard error)")
    ("user", po::value<std::string>(), "account to run as once the sockets are bound, when started as root (required then)")
    ("max-connections", po::value<std::string>(), "concurrent SMTP sessions (default 100)")
    ("max-connections-per-client", po::value<std::string>(), "concurrent sessions from one address (default 20)")
    ("max-line-length", po::value<std::string>(), "command line length in octets (default 1000)")
    ("max-data-line-length", po::value<std::string>(), "message line length in octets (default 65536)")
    ("max-commands", po::value<std::string>(), "commands per session (default 1000)")
    ("max-errors", po::value<std::string>(), "bad commands per session (default 20)")
    ("max-recipients", po::value<std::string>(), "recipients per message (default 100)")
    ("max-message-size", po::value<std::string>(), "message size in octets (default 10485760)")
    ("idle-timeout", po::value<std::string>(), "read one whole client command or message line (default 5m)")
    ("session-timeout", po::value<std::string>(), "one whole SMTP session (default 30m)")
    ("data-phase-timeout", po::value<std::string>(), "inbound: from the 354 to the final dot (default 10m)")
    ("stress-threshold", po::value<std::string>(), "sessions in use, percent of max-connections, from which stress timeouts apply (default 80; 0 disables)")
    ("stress-idle-timeout", po::value<std::string>(), "idle-timeout under stress (default 10s)")
    ("stress-max-errors", po::value<std::string>(), "max-errors under stress (default 1)")
    ("admission-wait", po::value<std::string>(), "all slots taken: how long a new client waits for one before 421 (default 10s; 0 refuses at once)")
    ("evict-stalled-after", po::value<std::string>(), "all slots taken: a new client displaces the session waiting longest for a command, once it waited this long (default 5s; 0 disables)")
    ("max-connection-rate-per-client", po::value<std::string>(), "connections per connection-rate-time-unit from one address outside submit-network (default 60; 0 disables)")
    ("connection-rate-time-unit", po::value<std::string>(), "the time unit of max-connection-rate-per-client (default 60s)")
    ("connect-timeout", po::value<std::string>(), "outbound TCP connect (default 30s)")
    ("command-timeout", po::value<std::string>(), "outbound: each SMTP reply (default 5m)")
    ("data-timeout", po::value<std::string>(), "outbound: the reply to the final dot (default 10m)")
    ("dns-timeout", po::value<std::string>(), "one DNS lookup (default 10s; ms allowed, e.g. 500ms)")
    ("sts-fetch-timeout", po::value<std::string>(), "one MTA-STS policy fetch (default 20s; ms allowed)")
    ("shutdown-grace", po::value<std::string>(), "SIGTERM: time for sessions and deliveries to finish (default 10s)")
    ("table-check-interval", po::value<std::string>(), "how often the table file is checked for changes (default 2s)")
    ("connection-cache-time", po::value<std::string>(), "keep a delivering outbound session open this long for the next message to the same destination (default 2s; 0 disables)")
    ("connection-reuse-limit", po::value<std::string>(), "messages per cached outbound session (default 100)");
  // clang-format on
  po::variables_map vm;
  if (!parse_options("relay", "[--config FILE] [options]",
                     "Runs the SMTP relay: accepts mail, spools it (fsync'd before 250), and delivers it under the\n"
                     "decision table's rules. SIGHUP reloads the table; SIGTERM shuts down cleanly.",
                     opts, nullptr, args, vm))
    return kExitOk;
  auto report = [](const std::vector<std::string>& errors) {
    for (const std::string& e : errors) std::cerr << "tlsp relay: error: " << e << "\n";
    if (errors.size() > 1) std::cerr << "tlsp relay: " << errors.size() << " errors in the configuration\n";
  };
  const std::string path = vm.count("config") ? vm["config"].as<std::string>() : "";
  Settings s(vm, path);
  s.note_flags();
  if (!path.empty()) {
    std::string text;
    try {
      text = read_config_file(path, opts, s);
    } catch (const ConfigFileError& e) {
      report({e.what()});
      return kExitUsage;
    }
    std::istringstream in(text);
    try {
      po::store(po::parse_config_file(in, opts), vm);
      po::notify(vm);
    } catch (const po::error& e) {
      s.error(display_text(path), display_text(e.what()));
    }
  }
  auto str = [&](const char* n, std::string& out) {
    if (vm.count(n)) out = vm[n].as<std::string>();
  };
  auto size = [&](const char* n, size_t& out) { number_option(s, n, out, SIZE_MAX); };
  if (vm.count("listen")) c.listen = vm["listen"].as<std::vector<std::string>>();
  str("hostname", c.hostname);
  str("tls-cert", c.tls_cert);
  str("tls-key", c.tls_key);
  str("table", c.table);
  str("spool", c.spool_dir);
  str("resolver", c.resolver);
  str("ca-file", c.ca_file);
  str("mta-sts-cache", c.mta_sts_cache);
  str("log-file", c.log_file);
  str("user", c.user);
  str("retry-schedule", c.retry_schedule);
  number_option(s, "smtp-port", c.smtp_port, 65535);
  number_option(s, "mta-sts-port", c.mta_sts_port, 65535);
  number_option(s, "delivery-workers", c.delivery_workers, 1024);
  if (vm.count("submit-network")) c.submit_networks = vm["submit-network"].as<std::vector<std::string>>();
  if (vm.count("next-hop"))
    for (const std::string& h : vm["next-hop"].as<std::vector<std::string>>())
      if (auto hop = parse_next_hop(h, s)) c.next_hops.push_back(*hop);
  c.queue_lifetime = duration_option(s, "queue-lifetime", c.queue_lifetime);
  RelayLimits& l = c.limits;
  size("max-connections", l.max_connections);
  size("max-connections-per-client", l.max_connections_per_client);
  size("max-line-length", l.max_line_length);
  size("max-data-line-length", l.max_data_line_length);
  size("max-commands", l.max_commands);
  size("max-errors", l.max_errors);
  size("max-recipients", l.max_recipients);
  size("max-message-size", l.max_message_size);
  l.idle_timeout = duration_option(s, "idle-timeout", d.idle_timeout);
  l.session_timeout = duration_option(s, "session-timeout", d.session_timeout);
  l.data_phase_timeout = duration_option(s, "data-phase-timeout", d.data_phase_timeout);
  size("stress-threshold", l.stress_threshold_percent);
  l.stress_idle_timeout = duration_option(s, "stress-idle-timeout", d.stress_idle_timeout);
  size("stress-max-errors", l.stress_max_errors);
  l.admission_wait = duration_or_zero_option(s, "admission-wait", d.admission_wait);
  l.evict_stalled_after = duration_or_zero_option(s, "evict-stalled-after", d.evict_stalled_after);
  size("max-connection-rate-per-client", l.max_connection_rate_per_client);
  l.connection_rate_time_unit = duration_option(s, "connection-rate-time-unit", d.connection_rate_time_unit);
  l.connect_timeout = duration_option(s, "connect-timeout", d.connect_timeout);
  l.command_timeout = duration_option(s, "command-timeout", d.command_timeout);
  l.data_timeout = duration_option(s, "data-timeout", d.data_timeout);
  l.dns_timeout = millis_option(s, "dns-timeout", d.dns_timeout);
  l.sts_fetch_timeout = millis_option(s, "sts-fetch-timeout", d.sts_fetch_timeout);
  l.shutdown_grace = duration_option(s, "shutdown-grace", d.shutdown_grace);
  l.connection_cache_time = duration_or_zero_option(s, "connection-cache-time", d.connection_cache_time);
  size("connection-reuse-limit", l.connection_reuse_limit);
  c.table_check_interval = duration_option<std::chrono::milliseconds>(s, "table-check-interval", c.table_check_interval);
  for (const ConfigProblem& p : relay_config_problems(c)) s.error_at(p.setting, p.value, p.text);
  std::vector<std::string> errors = s.errors();
  // --check-config also opens the table and the key pair, and says what is
  // wrong with them in the same run.
  if (vm.count("check-config")) {
    std::optional<DecisionTable> t;
    if (!c.table.empty()) {
      try {
        t.emplace(DecisionTable::open(c.table));
      } catch (const std::exception& e) {
        errors.push_back(s.origin("table") + ": " + e.what());  // after the settings' own mistakes
      }
    }
    if (!c.tls_cert.empty() && !c.tls_key.empty()) {
      try {
        make_server_context(c.tls_cert, c.tls_key);
      } catch (const std::exception& e) {
        errors.push_back(s.origin("tls-cert") + ": " + e.what());
      }
    }
    if (!errors.empty()) {
      report(errors);
      return kExitUsage;
    }
    std::cout << "relay configuration ok: table `" << c.table << "` (" << t->policy_name() << " "
              << t->policy_version() << ", " << t->domain_count() << " domains), " << c.listen.size()
              << " listen address(es), " << c.next_hops.size() << " next hop(s)\n";
    return kExitOk;
  }
  if (!errors.empty()) {
    report(errors);
    return kExitUsage;
  }
  block_relay_signals();
  std::unique_ptr<Relay> relay;
  try {
    relay = std::make_unique<Relay>(c);
  } catch (const std::exception& e) {
    std::cerr << "tlsp relay: error: " << e.what() << "\n";
    return kExitUsage;
  }
  return run_relay_with_signals(*relay) == 0 ? kExitOk : kExitErrors;
}

}  // namespace tlsp::cli
