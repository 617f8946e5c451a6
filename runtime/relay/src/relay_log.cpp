// relay_log.cpp — the relay log's schema, its two formats (writer and
// parser) and its outputs (see tlsp/relay_log.h, docs/logs.md). The field
// lists below are the whole schema: a field that is not listed here cannot
// be written or read.
#include "tlsp/relay_log.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

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
constexpr F kStart[] = {"listen", "hostname", "starttls", "resolver", "recovered", "tlsrpt_store", "metrics"};
constexpr F kStop[] = {"result", "in_flight_requeued", "queued"};
// `session`: the inbound session a line belongs to (connect .. disconnect).
// `rule` .. `reason`: inbound only, the rule and verdict its recipients were
// accepted under (the names the attempt line uses).
constexpr F kAccept[] = {"session", "client", "queue_id", "from", "to", "direction", "size", "tls",
                         "rule", "min_tls", "source", "applied", "channel", "reason"};
constexpr F kReject[] = {"session", "client", "direction", "domain", "sender", "recipient", "rule", "min_tls",
                         "source", "applied", "tls", "reason", "role", "address", "reply"};
// One line per recipient and attempt. `to` .. `status`: as Postfix's
// delivery lines (to=<...>, relay=host[addr]:port, delay=, delays=, dsn=,
// status=); `sts`: what MTA-STS discovery did (fetched, cached, a cache
// that could not store it), on the lines of an mta-sts rule; the TLS
// details of the session at the end.
constexpr F kAttempt[] = {"queue_id", "from", "to", "relay", "delay", "delays", "dsn", "status",
                          "direction", "peer", "mx", "addr", "rule", "min_tls", "source", "outcome",
                          "applied", "channel", "tls", "cipher", "group", "trust", "auth", "reason",
                          "action", "smtp", "detail", "sts", "peer_subject", "peer_issuer", "peer_fingerprint"};
constexpr F kQueue[] = {"queue_id", "result", "attempts", "next_attempt_in", "pending",
                        "delivered", "bounced", "reason", "error"};
constexpr F kBounce[] = {"queue_id", "bounce_id", "result", "to", "recipients", "error"};
constexpr F kSpool[] = {"session", "client", "queue_id", "result", "detail", "error"};
constexpr F kLimit[] = {"session", "client", "limit", "phase", "declared", "max", "refused",
                        "window", "waited", "discarded", "reply"};
constexpr F kStress[] = {"result", "sessions", "max_connections"};
constexpr F kAbort[] = {"session", "client", "phase", "sender", "recipients", "received", "reason"};
constexpr F kTable[] = {"result", "why", "path", "policy", "version", "domains", "peers", "error", "kept"};
// Inbound (a STARTTLS: session, client) or outbound (one per TLS session:
// queue_id, relay); `summary` is Postfix's sentence ("Verified TLS
// connection established to host[addr]:port: TLSv1.3 with cipher ...").
constexpr F kTls[] = {"session", "client", "direction", "queue_id", "relay", "result", "trust",
                      "tls", "cipher", "group", "peer_subject", "peer_issuer", "peer_fingerprint",
                      "summary", "error"};
constexpr F kError[] = {"where", "session", "queue_id", "error"};
// TLSRPT (docs/tlsrpt.md): a session record the store did not take
// (`result=record-failed`), the daily reports (`report-*`), the https
// outbox (`post-*`).
constexpr F kTlsrpt[] = {"result", "queue_id", "session_id", "day", "domain", "report_id", "uri",
                         "queue_id_report", "attempts", "next_attempt_in", "detail", "error"};
constexpr F kConnect[] = {"session", "client"};
// `end`: how the session ended (quit, eof, shutdown, a limit's name, ...).
constexpr F kDisconnect[] = {"session", "client", "end", "duration", "commands", "errors",
                             "messages", "recipients", "rejected", "tls"};

constexpr LogEventSchema kSchema[] = {
    {LogEvent::start, "start", kStart},    {LogEvent::stop, "stop", kStop},
    {LogEvent::accept, "accept", kAccept}, {LogEvent::reject, "reject", kReject},
    {LogEvent::attempt, "attempt", kAttempt}, {LogEvent::queue, "queue", kQueue},
    {LogEvent::bounce, "bounce", kBounce}, {LogEvent::spool, "spool", kSpool},
    {LogEvent::limit, "limit", kLimit},    {LogEvent::stress, "stress", kStress},
    {LogEvent::abort, "abort", kAbort},    {LogEvent::table, "table", kTable},
    {LogEvent::tls, "tls", kTls},          {LogEvent::error, "error", kError},
    {LogEvent::connect, "connect", kConnect}, {LogEvent::disconnect, "disconnect", kDisconnect},
    {LogEvent::tlsrpt, "tlsrpt", kTlsrpt},
};

constexpr bool schema_in_enum_order() {
  for (size_t i = 0; i < std::size(kSchema); ++i)
    if (static_cast<size_t>(kSchema[i].event) != i) return false;
  return true;
}
static_assert(schema_in_enum_order(), "kSchema lists the events in LogEvent order");
static_assert(std::size(kSchema) == kLogEventCount, "every event has a schema");

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

// Each field's place in the schema; a place taken twice or none is a bug.
using Placed = std::array<const std::string*, kMaxFields>;

Placed place_fields(const LogEventSchema& s, const LogFields& fields) {
  Placed at{};
  for (const auto& [k, v] : fields) {
    const size_t i = field_index(s, k);
    if (i == std::string_view::npos)
      throw std::logic_error("internal error: the relay log has no field `" + k + "` in `" + std::string(s.name) +
                             "` lines");
    if (at[i]) throw std::logic_error("internal error: field `" + k + "` given twice for a `" + std::string(s.name) +
                                      "` line");
    at[i] = &v;
  }
  return at;
}

void append_body(std::string& line, const LogEventSchema& s, const Placed& at) {
  line += s.name;
  for (size_t i = 0; i < s.fields.size(); ++i) {
    if (!at[i]) continue;
    line.push_back(' ');
    line += s.fields[i];
    line.push_back('=');
    append_value(line, *at[i]);
  }
}

// A JSON string of the value's bytes, one character each (relay_log.h).
void append_json_string(std::string& line, std::string_view v) {
  static constexpr char kHex[] = "0123456789abcdef";
  line.push_back('"');
  for (char c : v) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      line.push_back('\\');
      line.push_back(c);
    } else if (!printable(u)) {
      line += "\\u00";
      line.push_back(kHex[u >> 4]);
      line.push_back(kHex[u & 0xf]);
    } else {
      line.push_back(c);
    }
  }
  line.push_back('"');
}

// The parsers' one way to say no: the reason, naming the byte offset.
bool note(std::string* problem, size_t at, const std::string& why) {
  if (problem) *problem = "byte " + std::to_string(at) + ": " + why;
  return false;
}

std::optional<LogLine> refuse(std::string* problem, size_t at, const std::string& why) {
  note(problem, at, why);
  return std::nullopt;
}

// The text body `EVENT key=value ...` starting at line[i], to the end.
std::optional<LogLine> parse_body_at(std::string_view line, size_t i, std::string* problem) {
  auto fail = [&](size_t at, const std::string& why) { return refuse(problem, at, why); };
  LogLine out;
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

// A JSON string as append_json_string() writes it, at line[i] (the opening
// quote); moves i past the closing quote.
bool parse_json_string(std::string_view line, size_t& i, std::string& value, std::string* problem) {
  value.clear();
  if (i >= line.size() || line[i] != '"') return note(problem, i, "expected a JSON string");
  const size_t open = i++;
  while (true) {
    if (i == line.size()) return note(problem, open, "unterminated JSON string");
    const char c = line[i];
    if (c == '"') break;
    if (!printable(static_cast<unsigned char>(c))) return note(problem, i, "a byte outside printable ASCII");
    if (c != '\\') {
      value.push_back(c);
      ++i;
      continue;
    }
    if (i + 1 == line.size()) return note(problem, i, "unterminated escape");
    const char e = line[i + 1];
    if (e == '"' || e == '\\') {
      value.push_back(e);
      i += 2;
      continue;
    }
    if (e != 'u' || i + 5 >= line.size() || line[i + 2] != '0' || line[i + 3] != '0' || hex_digit(line[i + 4]) < 0 ||
        hex_digit(line[i + 5]) < 0)
      return note(problem, i, "an escape other than \\\", \\\\ or \\u00 with two lower-case hex digits");
    const unsigned char b = static_cast<unsigned char>(hex_digit(line[i + 4]) * 16 + hex_digit(line[i + 5]));
    if (printable(b)) return note(problem, i, "a printable byte written as \\u00");
    value.push_back(static_cast<char>(b));
    i += 6;
  }
  ++i;
  return true;
}

bool expect(std::string_view line, size_t& i, std::string_view text, std::string* problem) {
  if (line.substr(i, text.size()) != text) return note(problem, i, "expected `" + std::string(text) + "`");
  i += text.size();
  return true;
}

std::optional<LogLine> parse_json_line(std::string_view line, std::string* problem) {
  LogLine out;
  size_t i = 0;
  std::string text;
  if (!expect(line, i, "{\"time\":", problem) || !parse_json_string(line, i, text, problem)) return std::nullopt;
  if (!valid_time(text)) return refuse(problem, 8, "no timestamp (YYYY-MM-DDTHH:MM:SS.mmmZ)");
  out.time = text;
  if (!expect(line, i, ",\"event\":", problem)) return std::nullopt;
  const size_t event_at = i;
  if (!parse_json_string(line, i, text, problem)) return std::nullopt;
  const std::optional<LogEvent> event = parse_log_event(text);
  if (!event) return refuse(problem, event_at, "not an event of the relay log");
  out.event = *event;
  const LogEventSchema& s = schema_of(*event);
  if (!expect(line, i, ",\"fields\":{", problem)) return std::nullopt;
  size_t next = 0;
  bool first = true;
  while (i < line.size() && line[i] != '}') {
    if (!first && !expect(line, i, ",", problem)) return std::nullopt;
    first = false;
    const size_t key_at = i;
    std::string key, value;
    if (!parse_json_string(line, i, key, problem)) return std::nullopt;
    const size_t index = field_index(s, key);
    if (index == std::string_view::npos)
      return refuse(problem, key_at, "`" + std::string(s.name) + "` lines have no such field");
    if (index < next) return refuse(problem, key_at, "a field repeated or out of the schema's order");
    next = index + 1;
    if (!expect(line, i, ":", problem) || !parse_json_string(line, i, value, problem)) return std::nullopt;
    out.fields.emplace_back(std::move(key), std::move(value));
  }
  if (!expect(line, i, "}}", problem)) return std::nullopt;
  if (i != line.size()) return refuse(problem, i, "text after the object");
  return out;
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

std::string format_log_body(LogEvent event, const LogFields& fields) {
  const LogEventSchema& s = schema_of(event);
  std::string line;
  append_body(line, s, place_fields(s, fields));
  return line;
}

std::string format_log_line(std::chrono::system_clock::time_point when, LogEvent event, const LogFields& fields) {
  const LogEventSchema& s = schema_of(event);
  const Placed at = place_fields(s, fields);
  std::string line = format_time(when);
  line += kTag;
  append_body(line, s, at);
  return line;
}

std::string format_log_json(std::chrono::system_clock::time_point when, LogEvent event, const LogFields& fields) {
  const LogEventSchema& s = schema_of(event);
  const Placed at = place_fields(s, fields);
  std::string line = "{\"time\":\"" + format_time(when) + "\",\"event\":\"" + std::string(s.name) + "\",\"fields\":{";
  bool first = true;
  for (size_t i = 0; i < s.fields.size(); ++i) {
    if (!at[i]) continue;
    if (!first) line.push_back(',');
    first = false;
    append_json_string(line, s.fields[i]);
    line.push_back(':');
    append_json_string(line, *at[i]);
  }
  line += "}}";
  return line;
}

std::string log_seconds(std::chrono::duration<double> d) {
  const double s = std::max(0.0, d.count());
  char buf[32];
  std::snprintf(buf, sizeof buf, s < 10 ? "%.2f" : s < 100 ? "%.1f" : "%.0f", s);
  std::string t = buf;
  if (t.find('.') != std::string::npos) {
    while (t.back() == '0') t.pop_back();
    if (t.back() == '.') t.pop_back();
  }
  return t;
}

std::optional<LogFormat> parse_log_format(std::string_view name) {
  for (size_t i = 0; i < std::size(kLogFormatNames); ++i)
    if (name == kLogFormatNames[i]) return static_cast<LogFormat>(i);
  return std::nullopt;
}

int log_severity(LogEvent event, const LogFields& fields) {
  constexpr int kErr = 3, kWarning = 4, kNotice = 5, kInfo = 6;
  switch (event) {
    case LogEvent::error:
    case LogEvent::spool:
      return kErr;
    case LogEvent::stress:
      return kWarning;
    case LogEvent::table:
      for (const auto& [k, v] : fields)
        if (k == "result" && v == "refused") return kWarning;
      return kInfo;
    case LogEvent::reject:
    case LogEvent::limit:
    case LogEvent::abort:
      return kNotice;
    case LogEvent::tlsrpt:
      // Lost counts, a report that could not be made or was given up.
      for (const auto& [k, v] : fields)
        if (k == "result" && (v.ends_with("-failed") || v == "post-given-up" || v == "post-corrupt")) return kWarning;
      return kInfo;
    default:
      return kInfo;
  }
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
  if (line.size() > kMaxLogLineBytes)
    return refuse(problem, kMaxLogLineBytes, "the line is longer than " + std::to_string(kMaxLogLineBytes) + " bytes");
  if (!line.empty() && line.front() == '{') return parse_json_line(line, problem);
  if (line.size() < kStampLength || !valid_time(line.substr(0, kStampLength)))
    return refuse(problem, 0, "no timestamp (YYYY-MM-DDTHH:MM:SS.mmmZ)");
  if (line.substr(kStampLength, kTag.size()) != kTag)
    return refuse(problem, kStampLength, "no ` tlsp-relay ` after the timestamp");
  std::optional<LogLine> out = parse_body_at(line, kStampLength + kTag.size(), problem);
  if (out) out->time = std::string(line.substr(0, kStampLength));
  return out;
}

std::optional<LogLine> parse_log_body(std::string_view body, std::string* problem) {
  if (body.size() > kMaxLogLineBytes)
    return refuse(problem, kMaxLogLineBytes, "the line is longer than " + std::to_string(kMaxLogLineBytes) + " bytes");
  return parse_body_at(body, 0, problem);
}

std::optional<LogOutput> parse_log_output(std::string_view spec, std::string* problem) {
  auto fail = [&](std::string why) -> std::optional<LogOutput> {
    if (problem) *problem = std::move(why);
    return std::nullopt;
  };
  LogOutput o;
  if (spec == "stderr") return o;
  if (spec == "journal") {
    o.kind = LogOutput::Kind::journal;
    return o;
  }
  if (spec == "syslog" || spec.starts_with("syslog:")) {
    o.kind = LogOutput::Kind::syslog;
    o.path = spec == "syslog" ? std::string(kDefaultSyslogSocket) : std::string(spec.substr(7));
    if (o.path.empty() || o.path.front() != '/') return fail("a syslog socket is an absolute path (syslog:/dev/log)");
    if (o.path.size() >= sizeof(sockaddr_un::sun_path))
      return fail("the syslog socket path is longer than " + std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
                  " bytes");
    return o;
  }
  if (spec.starts_with("file:")) {
    o.kind = LogOutput::Kind::file;
    o.path = std::string(spec.substr(5));
    if (o.path.empty()) return fail("file: needs a path (file:/var/log/tlsp/relay.log)");
    return o;
  }
  return fail("not stderr, file:PATH, syslog, syslog:SOCKET or journal");
}

// ------------------------------------------------------------ outputs

// One output. take() returns false when the line could not be written.
struct RelayLog::Sink {
  virtual ~Sink() = default;
  virtual bool take(std::chrono::system_clock::time_point when, LogEvent event, const LogFields& fields,
                    const std::string& line, const std::string& body) = 0;
  // Files: open the name again; "" or why it failed.
  virtual std::string reopen() { return ""; }
};

namespace {

class StreamSink final : public RelayLog::Sink {
 public:
  explicit StreamSink(FILE* f) : out_(f) {}
  bool take(std::chrono::system_clock::time_point, LogEvent, const LogFields&, const std::string& line,
            const std::string&) override {
    const bool ok = std::fwrite(line.data(), 1, line.size(), out_) == line.size();
    return std::fflush(out_) == 0 && ok;
  }

 private:
  FILE* out_;
};

class FileSink final : public RelayLog::Sink {
 public:
  explicit FileSink(std::string path) : path_(std::move(path)) {
    out_ = std::fopen(path_.c_str(), "ae");
    if (!out_) throw std::runtime_error("cannot open log file `" + path_ + "`: " + std::strerror(errno));
  }
  ~FileSink() override { std::fclose(out_); }
  bool take(std::chrono::system_clock::time_point, LogEvent, const LogFields&, const std::string& line,
            const std::string&) override {
    const bool ok = std::fwrite(line.data(), 1, line.size(), out_) == line.size();
    if (std::fflush(out_) == 0 && ok) return true;
    std::clearerr(out_);  // the next line is tried afresh (a full disk may empty)
    return false;
  }
  std::string reopen() override {
    FILE* f = std::fopen(path_.c_str(), "ae");
    if (!f) return "cannot reopen log file `" + path_ + "`: " + std::strerror(errno) + "; still writing the old one";
    std::fclose(out_);
    out_ = f;
    return "";
  }

 private:
  std::string path_;
  FILE* out_ = nullptr;
};

// RFC 3164 as glibc's syslog(3) sends it to /dev/log:
// `<PRI>Mmm dd hh:mm:ss tlsp-relay[PID]: MESSAGE`, local time, no host
// name (the local daemon adds it). A daemon that does not keep up costs
// lines after a short wait (send_within), never a stalled relay.
class SyslogSink final : public RelayLog::Sink {
 public:
  SyslogSink(std::string path, LogFormat format) : path_(std::move(path)), format_(format) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd_ < 0) throw std::runtime_error(std::string("cannot make a syslog socket: ") + std::strerror(errno));
  }
  ~SyslogSink() override { ::close(fd_); }
  bool take(std::chrono::system_clock::time_point when, LogEvent event, const LogFields& fields,
            const std::string& line, const std::string& body) override {
    const std::time_t t = std::chrono::system_clock::to_time_t(when);
    std::tm tm{};
    localtime_r(&t, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%b %e %H:%M:%S", &tm);
    std::string msg = "<" + std::to_string(kLogFacilityMail * 8 + log_severity(event, fields)) + ">" + stamp +
                      " tlsp-relay[" + std::to_string(::getpid()) + "]: ";
    // JSON: the object, with its own time; text: the body (syslog stamps it).
    std::string_view text = format_ == LogFormat::json ? std::string_view(line) : std::string_view(body);
    if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
    msg += text.substr(0, kMaxSyslogMessageBytes);
    // A daemon restarted since: connect again once.
    for (int tries = 0; tries < 2; ++tries) {
      if (!connected_ && !connect()) return false;
      if (send_within(msg)) return true;
      if (errno != ECONNREFUSED && errno != ENOTCONN && errno != ENOENT) return false;
      connected_ = false;
    }
    return false;
  }

 private:
  bool connect() {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path_.c_str(), path_.size());
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
      // A failed connect on a datagram socket leaves it usable; a fresh
      // socket is still safer than a half-known state.
      ::close(fd_);
      fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      return false;
    }
    connected_ = true;
    return true;
  }

  // The daemon's queue may be full for a moment (Linux queues 10
  // datagrams per socket by default, net.unix.max_dgram_qlen): wait up to
  // kSyslogWait for room, then drop the line. A daemon that stays stuck
  // costs that wait once, not for every line, until a line gets through.
  bool send_within(const std::string& msg) {
    const auto deadline = std::chrono::steady_clock::now() + (congested_ ? std::chrono::milliseconds(0) : kSyslogWait);
    while (true) {
      if (::send(fd_, msg.data(), msg.size(), MSG_NOSIGNAL | MSG_DONTWAIT) == static_cast<ssize_t>(msg.size())) {
        congested_ = false;
        return true;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return false;
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd p{fd_, POLLOUT, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
        congested_ = true;
        errno = EAGAIN;
        return false;
      }
    }
  }

  static constexpr std::chrono::milliseconds kSyslogWait{100};
  std::string path_;
  LogFormat format_;
  int fd_ = -1;
  bool connected_ = false;
  bool congested_ = false;
};

// The journal's native protocol through libsystemd: MESSAGE (the text
// body, whatever log-format says: the journal keeps the fields itself),
// PRIORITY, SYSLOG_FACILITY, SYSLOG_IDENTIFIER, TLSP_EVENT and every field
// as TLSP_<KEY> with its raw bytes (the journal is binary-safe).
class JournalSink final : public RelayLog::Sink {
 public:
  bool take(std::chrono::system_clock::time_point, LogEvent event, const LogFields& fields, const std::string&,
            const std::string& body) override {
    std::vector<std::string> items;
    items.reserve(fields.size() + 5);
    items.push_back("MESSAGE=" + body);
    items.push_back("PRIORITY=" + std::to_string(log_severity(event, fields)));
    items.push_back("SYSLOG_FACILITY=" + std::to_string(kLogFacilityMail));
    items.push_back("SYSLOG_IDENTIFIER=tlsp-relay");
    items.push_back("TLSP_EVENT=" + std::string(log_event_name(event)));
    for (const auto& [k, v] : fields) {
      std::string item = "TLSP_";
      for (char c : k) item.push_back(c == '_' ? '_' : static_cast<char>(c - 'a' + 'A'));
      item.push_back('=');
      item += v;
      items.push_back(std::move(item));
    }
    std::vector<iovec> iov(items.size());
    for (size_t i = 0; i < items.size(); ++i) iov[i] = {items[i].data(), items[i].size()};
    return sd_journal_sendv(iov.data(), static_cast<int>(iov.size())) >= 0;
  }
};

}  // namespace

RelayLog::RelayLog(const std::string& path)
    : RelayLog(path.empty() ? std::vector<LogOutput>{} : std::vector<LogOutput>{{LogOutput::Kind::file, path}},
               LogFormat::text) {}

RelayLog::RelayLog(const std::vector<LogOutput>& outputs, LogFormat format) : format_(format) {
  for (const LogOutput& o : outputs) {
    switch (o.kind) {
      case LogOutput::Kind::standard_error:
        sinks_.push_back(std::make_unique<StreamSink>(stderr));
        break;
      case LogOutput::Kind::file:
        sinks_.push_back(std::make_unique<FileSink>(o.path));
        break;
      case LogOutput::Kind::syslog:
        sinks_.push_back(std::make_unique<SyslogSink>(o.path, format));
        needs_body_ = needs_body_ || format == LogFormat::text;
        break;
      case LogOutput::Kind::journal:
        sinks_.push_back(std::make_unique<JournalSink>());
        needs_body_ = true;
        break;
    }
  }
  if (sinks_.empty()) sinks_.push_back(std::make_unique<StreamSink>(stderr));
}

RelayLog::~RelayLog() = default;

void RelayLog::write(LogEvent event, const LogFields& fields) {
  std::lock_guard lock(mu_);
  write_locked(event, fields);
}

void RelayLog::write_locked(LogEvent event, const LogFields& fields) {
  const auto when = std::chrono::system_clock::now();
  std::string line = format_ == LogFormat::json ? format_log_json(when, event, fields)
                                                : format_log_line(when, event, fields);
  line.push_back('\n');
  const std::string body = needs_body_ ? format_log_body(event, fields) : std::string();
  for (const auto& sink : sinks_)
    if (!sink->take(when, event, fields, line, body)) ++dropped_;
}

void RelayLog::reopen() {
  std::lock_guard lock(mu_);
  for (const auto& sink : sinks_) {
    const std::string problem = sink->reopen();
    if (!problem.empty()) write_locked(LogEvent::error, {{"where", "log"}, {"error", problem}});
  }
}

uint64_t RelayLog::dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

}  // namespace tlsp::relay
