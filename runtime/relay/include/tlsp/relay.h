// tlsp/relay.h — `tlsp relay`: a real SMTP relay that enforces a decision
// table (SPEC §4–6). It accepts mail over SMTP, keeps it in a crash-safe
// spool, and delivers it host by host, asking the enforcement engine
// (tlsp/engine.h) at every step; it never decides on its own.
//
// Contract:
//  * Direction (never an open relay): a client in `submit_networks` whose
//    envelope sender is in a managed domain sends outbound; a recipient in a
//    managed domain with a next hop receives inbound; every other recipient
//    gets 554 5.7.1.
//  * A 250 after DATA means the message is on disk, fsync'd (tlsp/spool.h);
//    it is then delivered, bounced (RFC 3464) or, for a null sender, kept in
//    the spool's failed area, also across a crash or restart.
//  * Every limit is a field of RelayLimits with a documented default; a
//    limit hit gives its RFC reply code and a log line, never a crash.
//  * reload() swaps in a new decision table between transactions; a table
//    that fails validation is refused with a log line and the old one stays.
//  * One log line per recipient and delivery attempt, as Postfix's
//    (tlsp/relay_log.h, docs/logs.md).
//
// Threads: one per listening socket (accept, connection limits, the
// waiting room, eviction), one per SMTP session (at most max_connections,
// plus evicted ones writing their 421), a scheduler and `delivery_workers`
// delivery threads.
// Blocking I/O with a deadline on every operation keeps each session a
// straight-line program, as Postfix's smtpd/smtp processes are.
#pragma once

#include <initializer_list>
#include <string_view>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace tlsp {

struct RelayLimits {
  size_t max_connections = 100;           // concurrent SMTP sessions (421 4.3.2 beyond)
  size_t max_connections_per_client = 20; // from one client address (421 4.7.0)
  size_t max_line_length = 1000;          // command line, octets with CRLF (RFC 5321 §4.5.3.1.4): 500 5.5.2
  size_t max_data_line_length = 65536;    // one message line: 554 5.6.0 at the end of DATA
  size_t max_commands = 1000;             // per session: 421 4.7.0 and close
  size_t max_errors = 20;                 // bad commands per session: 421 4.7.0 and close
  size_t max_recipients = 100;            // per message: 452 4.5.3
  size_t max_message_size = 10 * 1024 * 1024;  // octets: 552 5.3.4 (SIZE announces it)
  std::chrono::seconds idle_timeout{300};       // to read one whole command or message line: 421 4.4.2
  std::chrono::seconds session_timeout{1800};   // a whole session: 421 4.4.2
  std::chrono::seconds data_phase_timeout{600}; // inbound: from the 354 to the final dot: 421 4.4.2
  // Stress (Postfix's stress-adaptive behaviour, STRESS_README): while the
  // sessions in use are at least this percentage of max_connections, every
  // session, running or new, reads with stress_idle_timeout and ends after
  // stress_max_errors bad commands. 0 disables.
  size_t stress_threshold_percent = 80;
  std::chrono::seconds stress_idle_timeout{10}; // Postfix: smtpd_timeout 10s under stress
  size_t stress_max_errors = 1;                 // Postfix: smtpd_hard_error_limit 1 under stress
  // When every slot is taken, a new client waits this long for one before
  // its greeting (at most max_connections wait, one per client address),
  // then 421 4.3.2; 0 refuses at once.
  std::chrono::seconds admission_wait{10};
  // When every slot is taken and a client waits, the session that has
  // waited longest for a command line gives up its slot (421 4.7.0) once
  // it has waited this long; 0 disables.
  std::chrono::seconds evict_stalled_after{5};
  // Connections from one client address per time unit (Postfix's anvil):
  // 421 4.7.0 beyond; submit_networks are exempt (as Postfix exempts
  // $mynetworks). 0 disables.
  size_t max_connection_rate_per_client = 60;
  std::chrono::seconds connection_rate_time_unit{60};
  std::chrono::seconds connect_timeout{30};     // outbound TCP connect
  std::chrono::seconds command_timeout{300};    // outbound: each reply (RFC 5321 §4.5.3.2)
  std::chrono::seconds data_timeout{600};       // outbound: the reply to the final dot
  std::chrono::milliseconds dns_timeout{10000};        // one lookup
  std::chrono::milliseconds sts_fetch_timeout{20000};  // one MTA-STS policy fetch
  std::chrono::seconds shutdown_grace{10};      // SIGTERM: sessions and deliveries may finish
  // Outbound connection reuse (as Postfix's connection cache): a session
  // that just delivered stays open this long for the next message to the
  // same destination under the same rule; 0 disables it.
  std::chrono::seconds connection_cache_time{2};
  size_t connection_reuse_limit = 100;          // messages per cached session
};

struct NextHop {
  std::string domain;  // a managed domain
  std::string host;    // address or name
  uint16_t port = 25;
  std::string text;    // as configured ("domain=host:port"), for problems; may be empty
};

struct RelayConfig {
  std::vector<std::string> listen{"127.0.0.1:2525"};  // "addr:port", "[v6]:port"
  std::string hostname;      // greeting, EHLO, Received:, bounces; default: the system's
  std::string tls_cert;      // inbound STARTTLS (PEM chain); empty: STARTTLS not offered
  std::string tls_key;
  std::string table;         // the decision table (tlsp compile)
  std::string spool_dir;
  std::string resolver;      // "addr:port"; empty: /etc/resolv.conf
  uint16_t smtp_port = 25;   // outbound SMTP port (tests use another)
  std::string ca_file = "/etc/ssl/certs/ca-certificates.crt";  // WebPKI (MTA-STS)
  uint16_t mta_sts_port = 443;
  std::string mta_sts_cache; // a directory or redis://HOST:PORT/DB; default: <spool_dir>/mta-sts
  std::vector<std::string> submit_networks{"127.0.0.0/8", "::1/128"};
  std::vector<NextHop> next_hops;
  std::chrono::seconds queue_lifetime{5 * 24 * 3600};
  std::string retry_schedule = "1m,5m,15m,30m,1h,2h,4h";
  size_t delivery_workers = 8;
  std::chrono::milliseconds table_check_interval{2000};  // table file changed?
  std::string log_file;      // the same as log = file:PATH; kept for the command line's --log-file
  // Log outputs (docs/logs.md): stderr, file:PATH, syslog[:SOCKET],
  // journal; every line goes to each. None (and no log_file): stderr.
  std::vector<std::string> log;
  std::string log_format = "text";  // text or json
  // Prometheus metrics (GET /metrics, docs/metrics.md) on this "addr:port",
  // a loopback address only (127.0.0.0/8, ::1); empty: not served.
  std::string metrics_listen;
  // The account the relay runs as once its sockets are bound, when started
  // as root (started as root without one, it refuses); empty when started
  // as an unprivileged user (privileges.h).
  std::string user;
  // TLSRPT (RFC 8460): who the relay's reports say they are from; empty:
  // the default tlsrpt_identity() gives.
  std::string tlsrpt_organization;  // organization-name
  std::string tlsrpt_contact;       // contact-info: an address, or a mailto: or https: URI
  std::string tlsrpt_submitter;     // the TLS-Report-Submitter domain
  // Where the sessions are counted (tlsp/tlsrpt_store.h): redis://HOST:PORT/DB
  // (a fleet's shared store) or a SQLite file; empty: <spool_dir>/tlsrpt.db.
  std::string tlsrpt_store;
  // TLSRPT (RFC 8460, docs/tlsrpt.md): the UTC time of day ("HH:MM") the
  // previous day's reports are sent at; empty: reports are not sent.
  std::string tlsrpt_send_time = "01:00";
  // The From: and envelope sender of report mails; empty: tlsrpt@<hostname>.
  std::string tlsrpt_from;
  RelayLimits limits;
};

// "HH:MM" (00:00 to 23:59, two digits each) as minutes after midnight;
// nothing for anything else. The rule of `tlsrpt-send-time`.
std::optional<int> parse_time_of_day(std::string_view hhmm);

// One thing wrong with a configuration: the setting (its flag name without
// `--`), the value at fault when the setting takes several (a `listen`
// address, a `next-hop`), and what is wrong, e.g. "`x` is not
// address:port". The caller says where the setting came from.
struct ConfigProblem {
  std::string setting;
  std::string value;
  std::string text;
};

// Every problem of the configuration, in the order of the settings; empty
// when it is fine.
std::vector<ConfigProblem> relay_config_problems(const RelayConfig& config);

// Throws std::invalid_argument listing every problem ("setting: text", one
// per line) when there is any, leaving out the settings the caller does not
// use (SmtpServer needs neither `listen` nor `table`).
void validate_relay_config(const RelayConfig& config, std::initializer_list<std::string_view> not_needed = {});

// The MTA-STS policy cache (MtaStsCache's location, tlsp/mta_sts_cache.h):
// the configured directory or redis://HOST:PORT/DB, else <spool_dir>/mta-sts.
// The relay and `tlsp mta-sts-cache` both ask here.
std::string mta_sts_cache_dir(const RelayConfig& config);

// The TLSRPT store (open_store()'s spec, tlsp/tlsrpt_store.h): the
// configured one, else <spool_dir>/tlsrpt.db. The relay and `tlsp tlsrpt`
// both ask here.
std::string tlsrpt_store_spec(const RelayConfig& config);

// Who the TLSRPT reports are from, each setting with its default: the
// submitter is tlsrpt-submitter, else the `hostname` setting, else the
// system's host name (lower case); the organisation is
// tlsrpt-organization, else the submitter; the contact is tlsrpt-contact,
// else mailto:postmaster@SUBMITTER (RFC 5321 §4.5.1: every domain has one);
// the report mails' sender (From: and MAIL FROM) is tlsrpt-from, else
// tlsrpt@ the relay's host name (relay::relay_hostname()).
struct TlsrptIdentity {
  std::string organization, contact, submitter, from;
};
TlsrptIdentity tlsrpt_identity(const RelayConfig& config);

namespace relay {
// The name in the greeting, EHLO, Received:, bounces and TLSRPT session
// ids: the configured one, else the system's (else "localhost"). The relay
// and `tlsp tlsrpt send` both ask here.
std::string relay_hostname(const RelayConfig& config);
}  // namespace relay

class Relay {
 public:
  // Opens the table, the spool and the listening sockets; recovers the
  // queue. Throws std::runtime_error naming what failed.
  explicit Relay(RelayConfig config);
  ~Relay();  // stop() and join

  // Serves until stop(); returns after the clean shutdown.
  void run();
  // Thread-safe and async-signal-safe: ask for a clean shutdown / a table
  // reload, which also reopens the log files (processed by the scheduler
  // thread).
  void stop();
  void reload();

  std::vector<uint16_t> listening_ports() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (and so in every
// thread it starts later). Call before constructing the Relay, so a signal
// that arrives while it starts is not lost or fatal.
void block_relay_signals();
// Runs `relay` and turns those signals into stop() / reload(). For the CLI.
int run_relay_with_signals(Relay& relay);

}  // namespace tlsp
