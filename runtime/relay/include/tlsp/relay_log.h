// tlsp/relay_log.h — the relay log as a contract: the one owner of its
// schema, its two formats and its outputs. The relay writes every line
// through RelayLog below (format_log_line() / format_log_json()); the
// simulator, the benchmarks and the tests read lines only through
// parse_log_line(). Nobody else formats or splits a log line.
// docs/logs.md lists every event and field.
//
// The text format (`log-format text`, the default):
//
//   2026-11-28T20:14:41.967Z tlsp-relay EVENT key=value key="quoted \"value\"" ...
//
//  * The timestamp is UTC, milliseconds, always 24 bytes.
//  * EVENT is one of LogEvent; its fields are those log_schema() lists for
//    it, each at most once, in the schema's order (the writer puts them in
//    that order, whatever order its caller used). A field may be absent.
//  * A value is written as is when it is non-empty printable ASCII
//    (0x20-0x7E) without a space, `=`, `"` or `\`; otherwise it is quoted,
//    with `"` and `\` backslash-escaped and every byte outside printable
//    ASCII as `\xHH` (lower-case hex). This is the one place a value is
//    made safe for the log: a peer cannot forge a line, a field or a
//    terminal control with what it sends.
//
// The JSON format (`log-format json`): one object per line, no spaces,
//
//   {"time":"2026-11-28T20:14:41.967Z","event":"EVENT","fields":{"key":"value",...}}
//
// with the fields in the schema's order. A JSON string holds the value's
// bytes one character each: printable ASCII as is (`"` and `\` escaped
// as \" and \\), every other byte as \u00hh (lower-case hex), so a line
// is printable ASCII and any bytes round-trip (a UTF-8 é is \u00c3\u00a9).
//
// The parser accepts exactly the lines the writer can produce, in either
// format: for a line it accepts, formatting its result gives the same bytes
// back. Anything else (an unknown event or field, a field repeated or out
// of order, a raw control byte, a needless or broken quote or escape, a
// line longer than kMaxLogLineBytes) is refused with a reason, in one pass
// over the line.
//
// Outputs (RelayLog): standard error, files (reopened on reopen(), for
// logrotate), syslog (an RFC 3164 datagram as glibc's syslog(3) writes it,
// facility mail, `tlsp-relay[PID]: ` and the body, or the JSON object)
// and the systemd journal (sd_journal_sendv: MESSAGE, PRIORITY,
// SYSLOG_IDENTIFIER and each field as TLSP_<KEY>). A failed write is
// counted and dropped: the log never crashes the relay, and waits only
// for a full syslog queue (100 ms at most) or a journald that does not
// read (libsystemd's socket blocks).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tlsp::relay {

enum class LogEvent {
  start,    // listening, with the host name, resolver and entries recovered
  stop,     // stopping, then stopped with what was requeued
  accept,   // a message queued (one line per queue entry)
  reject,   // an inbound refusal (530), a relay denial (554), a bad address
  attempt,  // one delivery attempt: the rule, the engine's verdict, the action
  queue,    // what became of a queue entry after a delivery run
  bounce,   // a DSN queued for the sender
  spool,    // a spool problem
  limit,    // a limit hit
  stress,   // stress began or ended
  abort,    // a client left in the middle of DATA
  table,    // a table loaded or refused
  tls,      // a TLS session: an inbound STARTTLS, or one outbound session
  error,    // an exception that ended a session or a delivery run
  connect,     // an inbound session began (its session id)
  disconnect,  // an inbound session ended: its counts and how it ended
  tlsrpt,      // TLSRPT: a session the store did not take, a daily report, an https delivery
};
inline constexpr size_t kLogEventCount = static_cast<size_t>(LogEvent::tlsrpt) + 1;

struct LogEventSchema {
  LogEvent event;
  std::string_view name;
  std::span<const std::string_view> fields;  // in the order lines carry them
};

// Every event, in LogEvent order: the one table of events and field names.
std::span<const LogEventSchema> log_schema();
const LogEventSchema& schema_of(LogEvent event);
std::string_view log_event_name(LogEvent event);
std::optional<LogEvent> parse_log_event(std::string_view name);

using LogFields = std::vector<std::pair<std::string, std::string>>;

// Longer lines are refused by the parser. The writer does not cut lines:
// the longest it writes is an accept or attempt line naming every recipient
// (at most 256 bytes each, twice that quoted), far below this with any
// sensible max-recipients (30 000 recipients of the longest kind fit).
inline constexpr size_t kMaxLogLineBytes = size_t{16} << 20;

// One line, without its newline, for `event` at `when`. The fields are put
// in the schema's order; one the schema does not list for the event, or one
// given twice, is the caller's bug: std::logic_error.
std::string format_log_line(std::chrono::system_clock::time_point when, LogEvent event, const LogFields& fields);
// The same line in the JSON format.
std::string format_log_json(std::chrono::system_clock::time_point when, LogEvent event, const LogFields& fields);
// The text line without its timestamp and tag: `EVENT key=value ...`, the
// message of a syslog datagram and of a journal entry.
std::string format_log_body(LogEvent event, const LogFields& fields);

// A duration as the log writes it (delay=, delays=, duration=), as
// Postfix does: two decimals below 10 s, one below 100 s, whole seconds
// above, trailing zeros dropped ("0.29", "0", "1.5", "312").
std::string log_seconds(std::chrono::duration<double> d);

enum class LogFormat { text, json };
// The formats' names, in LogFormat's order (the settings table offers them).
inline constexpr std::string_view kLogFormatNames[] = {"text", "json"};
std::optional<LogFormat> parse_log_format(std::string_view name);  // one of kLogFormatNames

// The syslog severity (RFC 5424 §6.2.1) of a line: err for `error` and
// `spool`, warning for `stress` and a refused table, notice for `reject`,
// `limit` and `abort`, info for the rest.
int log_severity(LogEvent event, const LogFields& fields);
inline constexpr int kLogFacilityMail = 2;  // RFC 5424 facility 2, LOG_MAIL

// A parsed line: what format_log_line() was given (fields in the schema's
// order).
struct LogLine {
  std::string time;  // as written: YYYY-MM-DDTHH:MM:SS.mmmZ
  LogEvent event = LogEvent::start;
  LogFields fields;

  // The value of `key`, nullptr when the line does not carry it.
  const std::string* find(std::string_view key) const;
  // The value of `key`, "" when the line does not carry it.
  const std::string& get(std::string_view key) const;
  // This event, carrying every one of `want` with exactly that value.
  bool matches(LogEvent e, const LogFields& want = {}) const;
};

// One line (without its newline), text or JSON (a line starting with `{`)
// -> its event and fields; nullopt for a line the writer cannot have
// produced, with the reason in *problem (plain text naming the byte
// offset, never the line's own bytes).
std::optional<LogLine> parse_log_line(std::string_view line, std::string* problem = nullptr);
// A body as format_log_body() writes it (a syslog or journal message);
// `time` is left empty.
std::optional<LogLine> parse_log_body(std::string_view body, std::string* problem = nullptr);

// Where lines go: the `log` setting's values.
struct LogOutput {
  enum class Kind { standard_error, file, syslog, journal };
  Kind kind = Kind::standard_error;
  std::string path;  // file: the file; syslog: the socket (kDefaultSyslogSocket)
};
inline constexpr std::string_view kDefaultSyslogSocket = "/dev/log";
// Longer syslog messages are cut here (the file output keeps them whole):
// rsyslog's default maximum is 8 KiB, journald takes more.
inline constexpr size_t kMaxSyslogMessageBytes = 16 * 1024;
// "stderr", "file:PATH", "syslog", "syslog:SOCKET", "journal"; nullopt with
// the reason in *problem otherwise (a path must be absolute for syslog,
// non-empty for a file).
std::optional<LogOutput> parse_log_output(std::string_view spec, std::string* problem = nullptr);

// The relay's log: one line per write() to every output, in one format;
// thread-safe, flushed per line, in the order of the writes on every
// output. Callers pass raw bytes.
class RelayLog {
 public:
  explicit RelayLog(const std::string& path);  // "" -> stderr, else that file, text; throws
  // Opens every output (files, the syslog socket); throws
  // std::runtime_error naming the one that cannot be opened. No outputs:
  // standard error.
  RelayLog(const std::vector<LogOutput>& outputs, LogFormat format);
  RelayLog(const RelayLog&) = delete;
  RelayLog& operator=(const RelayLog&) = delete;
  ~RelayLog();
  // Never throws for I/O: a line an output cannot take is dropped and
  // counted. A field the schema does not allow is still a logic_error.
  void write(LogEvent event, const LogFields& fields);
  // Opens every file output again by its name (SIGHUP, after logrotate
  // renamed it). A file that cannot be opened keeps its old descriptor and
  // is reported in an `error where=log` line.
  void reopen();
  // Lines an output could not take, since the start.
  uint64_t dropped() const;

  struct Sink;

 private:
  void write_locked(LogEvent event, const LogFields& fields);
  mutable std::mutex mu_;
  LogFormat format_ = LogFormat::text;
  bool needs_body_ = false;  // a syslog (text) or journal output
  std::vector<std::unique_ptr<Sink>> sinks_;
  uint64_t dropped_ = 0;
};

}  // namespace tlsp::relay
