// tlsp/relay_log.h — the relay log as a contract: the one owner of its
// schema. The relay writes every line through format_log_line() (RelayLog
// below); the simulator, the benchmarks and the tests read lines only
// through parse_log_line(). Nobody else formats or splits a log line.
//
// A line (docs/relay.md "The log"):
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
// The parser accepts exactly the lines the writer can produce: for a line
// it accepts, formatting its result gives the same bytes back. Anything
// else (an unknown event or field, a field repeated or out of order, a raw
// control byte, a needless or broken quote or escape, a line longer than
// kMaxLogLineBytes) is refused with a reason, in one pass over the line.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdio>
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
  tls,      // an inbound STARTTLS
  error,    // an exception that ended a session or a delivery run
};

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

// One line (without its newline) -> its event and fields; nullopt for a
// line the writer cannot have produced, with the reason in *problem (plain
// text naming the byte offset, never the line's own bytes).
std::optional<LogLine> parse_log_line(std::string_view line, std::string* problem = nullptr);

// The relay's log: one formatted line per write(), to a file or standard
// error; thread-safe, flushed per line. Callers pass raw bytes.
class RelayLog {
 public:
  explicit RelayLog(const std::string& path);  // "" -> stderr; throws
  RelayLog(const RelayLog&) = delete;
  RelayLog& operator=(const RelayLog&) = delete;
  ~RelayLog();
  void write(LogEvent event, const LogFields& fields);

 private:
  std::mutex mu_;
  FILE* out_ = nullptr;
  bool own_ = false;
};

}  // namespace tlsp::relay
