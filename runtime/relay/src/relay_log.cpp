// relay_log.cpp — the relay log's schema, writer and parser (see
// tlsp/relay_log.h). The field lists below are the whole schema: a field
// that is not listed here cannot be written or read.
#include "tlsp/relay_log.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <stdexcept>

namespace tlsp::relay {
namespace {

using F = std::string_view;

// The order of each list is the order of the fields on a line; every place
// that writes the event passes a subsequence of it (the writer checks).
constexpr F kStart[] = {"listen", "hostname", "starttls", "resolver", "recovered", "metrics"};
constexpr F kStop[] = {"result", "in_flight_requeued", "queued"};
// `rule` .. `reason`: inbound only, the rule and verdict its recipients were
// accepted under (the names the attempt line uses).
constexpr F kAccept[] = {"client", "queue_id", "from", "to", "direction", "size", "tls",
                         "rule", "min_tls", "source", "applied", "channel", "reason"};
constexpr F kReject[] = {"client", "direction", "domain", "sender", "recipient", "rule", "min_tls",
                         "source", "applied", "tls", "reason", "role", "address", "reply"};
constexpr F kAttempt[] = {"queue_id", "from", "to", "direction", "peer", "mx", "addr",
                          "rule", "min_tls", "source", "outcome", "applied", "channel", "tls",
                          "cipher", "auth", "reason", "action", "smtp", "detail"};
constexpr F kQueue[] = {"queue_id", "result", "attempts", "next_attempt_in", "pending",
                        "delivered", "bounced", "reason", "error"};
constexpr F kBounce[] = {"queue_id", "bounce_id", "result", "to", "recipients", "error"};
constexpr F kSpool[] = {"client", "queue_id", "result", "detail", "error"};
constexpr F kLimit[] = {"client", "limit", "phase", "declared", "max", "refused",
                        "window", "waited", "discarded", "reply"};
constexpr F kStress[] = {"result", "sessions", "max_connections"};
constexpr F kAbort[] = {"client", "phase", "sender", "recipients", "received", "reason"};
constexpr F kTable[] = {"result", "why", "path", "policy", "version", "domains", "peers", "error", "kept"};
constexpr F kTls[] = {"client", "result", "tls", "cipher", "error"};
constexpr F kError[] = {"where", "queue_id", "error"};

constexpr LogEventSchema kSchema[] = {
    {LogEvent::start, "start", kStart},    {LogEvent::stop, "stop", kStop},
    {LogEvent::accept, "accept", kAccept}, {LogEvent::reject, "reject", kReject},
    {LogEvent::attempt, "attempt", kAttempt}, {LogEvent::queue, "queue", kQueue},
    {LogEvent::bounce, "bounce", kBounce}, {LogEvent::spool, "spool", kSpool},
    {LogEvent::limit, "limit", kLimit},    {LogEvent::stress, "stress", kStress},
    {LogEvent::abort, "abort", kAbort},    {LogEvent::table, "table", kTable},
    {LogEvent::tls, "tls", kTls},          {LogEvent::error, "error", kError},
};

constexpr bool schema_in_enum_order() {
  for (size_t i = 0; i < std::size(kSchema); ++i)
    if (static_cast<size_t>(kSchema[i].event) != i) return false;
  return true;
}
static_assert(schema_in_enum_order(), "kSchema lists the events in LogEvent order");
static_assert(std::size(kSchema) == static_cast<size_t>(LogEvent::error) + 1, "every event has a schema");

constexpr size_t kMaxFields = 32;
constexpr bool schema_fits() {
  for (const LogEventSchema& s : kSchema)
    if (s.fields.size() > kMaxFields) return false;
  return true;
}
static_assert(schema_fits(), "format_log_line has room for every event's fields");

constexpr std::string_view kTag = " tlsp-relay ";
constexpr size_t kStampLength = 24;  // 2026-11-28T20:14:41.967Z

bool printable(unsigned char u) { return u >= 0x20 && u <= 0x7e; }

// Whether the writer quotes this value: empty, or with a byte it must
// escape or that would end or split the field.
bool needs_quotes(std::string_view v) {
  return v.empty() || std::any_of(v.begin(), v.end(), [](char c) {
           return !printable(static_cast<unsigned char>(c)) || c == ' ' || c == '"' || c == '=' || c == '\\';
         });
}

void append_value(std::string& line, std::string_view v) {
  static constexpr char kHex[] = "0123456789abcdef";
  const bool quote = needs_quotes(v);
  if (quote) line.push_back('"');
  for (char c : v) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      line.push_back('\\');
      line.push_back(c);
    } else if (!printable(u)) {
      line += "\\x";
      line.push_back(kHex[u >> 4]);
      line.push_back(kHex[u & 0xf]);
    } else {
      line.push_back(c);
    }
  }
  if (quote) line.push_back('"');
}

// The position of `key` in the schema's list, or npos.
size_t field_index(const LogEventSchema& s, std::string_view key) {
  for (size_t i = 0; i < s.fields.size(); ++i)
    if (s.fields[i] == key) return i;
  return std::string_view::npos;
}

std::string format_time(std::chrono::system_clock::time_point when) {
  const auto ms = std::chrono::floor<std::chrono::milliseconds>(when);
  const auto secs = std::chrono::floor<std::chrono::seconds>(ms);
  const std::time_t t = std::chrono::system_clock::to_time_t(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char stamp[40];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  char frac[16];
  std::snprintf(frac, sizeof frac, ".%03dZ", static_cast<int>((ms - secs).count()));
  return std::string(stamp) + frac;
}

bool digits(std::string_view s, size_t at, size_t n, int lo, int hi) {
  int v = 0;
  for (size_t i = at; i < at + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  return v >= lo && v <= hi;
}

bool valid_time(std::string_view s) {
  return s.size() == kStampLength && digits(s, 0, 4, 0, 9999) && s[4] == '-' && digits(s, 5, 2, 1, 12) &&
         s[7] == '-' && digits(s, 8, 2, 1, 31) && s[10] == 'T' && digits(s, 11, 2, 0, 23) && s[13] == ':' &&
         digits(s, 14, 2, 0, 59) && s[16] == ':' && digits(s, 17, 2, 0, 60) && s[19] == '.' &&
         digits(s, 20, 3, 0, 999) && s[23] == 'Z';
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // upper case is not what the writer writes
}

}  // namespace

std::span<const LogEventSchema> log_schema() { return kSchema; }

const LogEventSchema& schema_of(LogEvent event) { return kSchema[static_cast<size_t>(event)]; }

std::string_view log_event_name(LogEvent event) { return schema_of(event).name; }

std::optional<LogEvent> parse_log_event(std::string_view name) {
  for (const LogEventSchema& s : kSchema)
    if (s.name == name) return s.event;
  return std::nullopt;
}

std::string format_log_line(std::chrono::system_clock::time_point when, LogEvent event, const LogFields& fields) {
  const LogEventSchema& s = schema_of(event);
  // Each field's place in the schema; a place taken twice or none is a bug.
  std::array<const std::string*, kMaxFields> at{};
  for (const auto& [k, v] : fields) {
    const size_t i = field_index(s, k);
    if (i == std::string_view::npos)
      throw std::logic_error("internal error: the relay log has no field `" + k + "` in `" + std::string(s.name) +
                             "` lines");
    if (at[i]) throw std::logic_error("internal error: field `" + k + "` given twice for a `" + std::string(s.name) +
                                      "` line");
    at[i] = &v;
  }
  std::string line = format_time(when);
  line += kTag;
  line += s.name;
  for (size_t i = 0; i < s.fields.size(); ++i) {
    if (!at[i]) continue;
    line.push_back(' ');
    line += s.fields[i];
    line.push_back('=');
    append_value(line, *at[i]);
  }
  return line;
}

const std::string* LogLine::find(std::string_view key) const {
  for (const auto& [k, v] : fields)
    if (k == key) return &v;
  return nullptr;
}

const std::string& LogLine::get(std::string_view key) const {
  static const std::string kNone;
  const std::string* v = find(key);
  return v ? *v : kNone;
}

bool LogLine::matches(LogEvent e, const LogFields& want) const {
  if (event != e) return false;
  for (const auto& [k, v] : want) {
    const std::string* got = find(k);
    if (!got || *got != v) return false;
  }
  return true;
}

std::optional<LogLine> parse_log_line(std::string_view line, std::string* problem) {
  auto fail = [&](size_t at, std::string why) -> std::optional<LogLine> {
    if (problem) *problem = "byte " + std::to_string(at) + ": " + why;
    return std::nullopt;
  };
  if (line.size() > kMaxLogLineBytes)
    return fail(kMaxLogLineBytes, "the line is longer than " + std::to_string(kMaxLogLineBytes) + " bytes");
  if (line.size() < kStampLength || !valid_time(line.substr(0, kStampLength)))
    return fail(0, "no timestamp (YYYY-MM-DDTHH:MM:SS.mmmZ)");
  if (line.substr(kStampLength, kTag.size()) != kTag) return fail(kStampLength, "no ` tlsp-relay ` after the timestamp");
  LogLine out;
  out.time = std::string(line.substr(0, kStampLength));
  size_t i = kStampLength + kTag.size();
  const size_t name_end = std::min(line.find(' ', i), line.size());
  const std::optional<LogEvent> event = parse_log_event(line.substr(i, name_end - i));
  if (!event) return fail(i, "not an event of the relay log");
  out.event = *event;
  const LogEventSchema& s = schema_of(*event);
  size_t next = 0;  // fields come in the schema's order: the next may be at or after this
  i = name_end;
  while (i < line.size()) {
    ++i;  // the space
    const size_t key_at = i;
    while (i < line.size() && ((line[i] >= 'a' && line[i] <= 'z') || line[i] == '_')) ++i;
    if (i == line.size() || line[i] != '=') return fail(i, "expected `key=value`");
    const std::string_view key = line.substr(key_at, i - key_at);
    const size_t index = field_index(s, key);
    if (index == std::string_view::npos)
      return fail(key_at, "`" + std::string(s.name) + "` lines have no such field");
    if (index < next) return fail(key_at, "a field repeated or out of the schema's order");
    next = index + 1;
    ++i;  // the `=`
    std::string value;
    if (i < line.size() && line[i] == '"') {
      const size_t open = i++;
      while (true) {
        if (i == line.size()) return fail(open, "unterminated quoted value");
        const char c = line[i];
        if (c == '"') break;
        if (!printable(static_cast<unsigned char>(c))) return fail(i, "a byte outside printable ASCII");
        if (c != '\\') {
          value.push_back(c);
          ++i;
          continue;
        }
        if (i + 1 == line.size()) return fail(i, "unterminated escape");
        const char e = line[i + 1];
        if (e == '"' || e == '\\') {
          value.push_back(e);
          i += 2;
          continue;
        }
        if (e != 'x' || i + 3 >= line.size() || hex_digit(line[i + 2]) < 0 || hex_digit(line[i + 3]) < 0)
          return fail(i, "an escape other than \\\", \\\\ or \\x with two lower-case hex digits");
        const unsigned char b = static_cast<unsigned char>(hex_digit(line[i + 2]) * 16 + hex_digit(line[i + 3]));
        if (printable(b)) return fail(i, "a printable byte written as \\x");
        value.push_back(static_cast<char>(b));
        i += 4;
      }
      ++i;  // the closing quote
      if (!needs_quotes(value)) return fail(open, "a quoted value that needs no quotes");
      if (i < line.size() && line[i] != ' ') return fail(i, "text after a quoted value");
    } else {
      const size_t value_at = i;
      for (; i < line.size() && line[i] != ' '; ++i) {
        const char c = line[i];
        if (!printable(static_cast<unsigned char>(c)) || c == '"' || c == '=' || c == '\\')
          return fail(i, "a byte that must be quoted in a value");
      }
      if (i == value_at) return fail(i, "an empty value that is not quoted");
      value.assign(line.substr(value_at, i - value_at));
    }
    out.fields.emplace_back(std::string(key), std::move(value));
  }
  return out;
}

RelayLog::RelayLog(const std::string& path) {
  if (path.empty()) {
    out_ = stderr;
    return;
  }
  out_ = std::fopen(path.c_str(), "a");
  if (!out_) throw std::runtime_error("cannot open log file `" + path + "`: " + std::strerror(errno));
  own_ = true;
}

RelayLog::~RelayLog() {
  if (own_) std::fclose(out_);
}

void RelayLog::write(LogEvent event, const LogFields& fields) {
  std::string line = format_log_line(std::chrono::system_clock::now(), event, fields);
  line.push_back('\n');
  std::lock_guard lock(mu_);
  std::fwrite(line.data(), 1, line.size(), out_);
  std::fflush(out_);
}

}  // namespace tlsp::relay
