// relay_log_test.cpp — the relay log's schema, writers and parser
// (tlsp/relay_log.h): every event the writer emits reads back as written,
// byte for byte, in the text format, the JSON format and as a syslog or
// journal body, and lines the writer cannot produce are refused; the
// outputs (a file reopened after a rename, a syslog socket).
// tests/relay/relay_test.cpp and relay_log_outputs_test.cpp check the same
// for every line a real relay writes.
#include "tlsp/relay_log.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <fstream>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>

using namespace tlsp::relay;
using namespace std::chrono_literals;

namespace {

// 2026-11-28T20:14:41.967Z
const std::chrono::system_clock::time_point kWhen =
    std::chrono::sys_days{std::chrono::year{2026} / 11 / 28} + 20h + 14min + 41s + 967ms;

// Values a peer could send, each needing something else of the writer.
const std::vector<std::string> kValues = {
    "plain",
    "",
    "two words",
    "a=b",
    "say \"hi\"",
    "back\\slash",
    std::string("nul\0byte", 8),
    "line\r\nbreak 2026-11-28T20:14:41.967Z tlsp-relay attempt queue_id=forged",
    "csi\x9b"
    "2J nel\x85",
    "caf\xc3\xa9",
    "\x7f",
    "\\x41",
    "\"",
    "250 2.0.0 Ok",
    "mx1.partner.example",
};

std::string format(LogEvent e, const LogFields& f) { return format_log_line(kWhen, e, f); }

LogLine parse_ok(const std::string& line) {
  std::string problem;
  std::optional<LogLine> l = parse_log_line(line, &problem);
  EXPECT_TRUE(l.has_value()) << problem << ": " << line;
  return l.value_or(LogLine{});
}

TEST(RelayLogSchema, NamesAreUniqueAndRoundTrip) {
  std::set<std::string_view> names;
  for (const LogEventSchema& s : log_schema()) {
    EXPECT_TRUE(names.insert(s.name).second) << s.name;
    EXPECT_EQ(parse_log_event(s.name), s.event);
    EXPECT_EQ(log_event_name(s.event), s.name);
    EXPECT_EQ(&schema_of(s.event), &s);
    std::set<std::string_view> fields;
    for (std::string_view f : s.fields) {
      EXPECT_TRUE(fields.insert(f).second) << s.name << " lists " << f << " twice";
      EXPECT_FALSE(f.empty());
      for (char c : f) EXPECT_TRUE((c >= 'a' && c <= 'z') || c == '_') << f;
    }
  }
  EXPECT_EQ(names.size(), kLogEventCount);
  EXPECT_EQ(names.size(), 17u);
  EXPECT_FALSE(parse_log_event("Attempt"));
  EXPECT_FALSE(parse_log_event(""));
}

// Every event with every field, each value hostile in its own way; and
// with every other field only.
TEST(RelayLogWriter, EveryEventRoundTripsByteForByte) {
  for (const LogEventSchema& s : log_schema()) {
    for (size_t step : {1u, 2u}) {
      for (size_t shift = 0; shift < kValues.size(); ++shift) {
        LogFields fields;
        for (size_t i = 0; i < s.fields.size(); i += step)
          fields.emplace_back(std::string(s.fields[i]), kValues[(i + shift) % kValues.size()]);
        const std::string line = format(s.event, fields);
        SCOPED_TRACE(line);
        for (char c : line) {
          const unsigned char u = static_cast<unsigned char>(c);
          ASSERT_TRUE(u >= 0x20 && u <= 0x7e) << "raw byte " << int(u);
        }
        LogLine l = parse_ok(line);
        EXPECT_EQ(l.event, s.event);
        EXPECT_EQ(l.time, "2026-11-28T20:14:41.967Z");
        EXPECT_EQ(l.fields, fields);
        EXPECT_EQ(format(l.event, l.fields), line);
      }
    }
  }
}

TEST(RelayLogWriter, PutsFieldsInTheSchemasOrder) {
  const std::string line = format(LogEvent::limit, {{"reply", "421 4.7.0 bye"}, {"limit", "max_commands"},
                                                    {"client", "127.0.0.1"}});
  EXPECT_EQ(line,
            "2026-11-28T20:14:41.967Z tlsp-relay limit client=127.0.0.1 limit=max_commands reply=\"421 4.7.0 bye\"");
}

TEST(RelayLogWriter, RefusesAFieldOutsideTheSchemaOrGivenTwice) {
  EXPECT_THROW(format(LogEvent::accept, {{"queue_id", "1"}, {"outcome", "deliver"}}), std::logic_error);
  EXPECT_THROW(format(LogEvent::attempt, {{"mx", "a"}, {"mx", "b"}}), std::logic_error);
  EXPECT_THROW(format(LogEvent::stop, {{"", "x"}}), std::logic_error);
}

// An attempt line as the relay wrote it before the Postfix fields (one
// line for all recipients, `to` bare) still reads: its fields are a
// subsequence of today's schema.
TEST(RelayLogParser, AnOlderAttemptLineStillReads) {
  const std::string line =
      "2026-11-28T20:14:41.967Z tlsp-relay attempt queue_id=6615bdd8f4e58-e77-0.0 from=alice@acme.example "
      "to=bob@partner.example direction=outbound peer=partner.example mx=mx1.partner.example addr=127.0.0.2 "
      "rule=dane-only min_tls=tls1.2 source=policy.tlsp:8 outcome=deliver applied=dane-only channel=authenticated "
      "tls=tls1.3 cipher=TLS_AES_256_GCM_SHA384 auth=dane-ee reason=ok action=sent smtp=\"250 2.0.0 Ok\"";
  LogLine l = parse_ok(line);
  EXPECT_EQ(l.event, LogEvent::attempt);
  EXPECT_EQ(l.get("smtp"), "250 2.0.0 Ok");
  EXPECT_EQ(l.get("to"), "bob@partner.example");
  EXPECT_EQ(l.find("detail"), nullptr);
  EXPECT_EQ(l.get("detail"), "");
  EXPECT_TRUE(l.matches(LogEvent::attempt, {{"action", "sent"}, {"auth", "dane-ee"}}));
  EXPECT_FALSE(l.matches(LogEvent::attempt, {{"action", "sent"}, {"detail", ""}}));
  EXPECT_FALSE(l.matches(LogEvent::accept));
  EXPECT_EQ(format(l.event, l.fields), line);
}

TEST(RelayLogParser, UndoesTheEscaping) {
  LogLine l = parse_ok(
      R"(2026-11-28T20:14:41.967Z tlsp-relay reject client=127.0.0.1 reason=non-ascii-address role=sender )"
      R"(address="a\x9bb\x85c\xc2\x85d@acme.example" reply="553 5.6.7 say \"no\" \\ ok")");
  EXPECT_EQ(l.get("address"), "a\x9b" "b\x85" "c\xc2\x85" "d@acme.example");
  EXPECT_EQ(l.get("reply"), "553 5.6.7 say \"no\" \\ ok");
}

TEST(RelayLogParser, RefusesLinesTheWriterCannotProduce) {
  const std::string stamp = "2026-11-28T20:14:41.967Z tlsp-relay ";
  struct Case {
    std::string line, why;
  };
  const Case cases[] = {
      {"", "no timestamp"},
      {"hello", "no timestamp"},
      {"tlsp relay: error: cannot listen", "no timestamp"},
      {"2026-13-28T20:14:41.967Z tlsp-relay stop result=stopping", "no timestamp"},
      {"2026-11-28 20:14:41.967Z tlsp-relay stop result=stopping", "no timestamp"},
      {"2026-11-28T20:14:41Z tlsp-relay stop result=stopping", "no timestamp"},
      {"2026-11-28T20:14:41.967Z tlsp-relax stop result=stopping", "no ` tlsp-relay `"},
      {stamp, "not an event"},
      {stamp + "bogus a=b", "not an event"},
      {stamp + "Stop result=stopping", "not an event"},
      {stamp + "stop  result=stopping", "expected `key=value`"},
      {stamp + "stop result=stopping ", "expected `key=value`"},
      {stamp + "stop result", "expected `key=value`"},
      {stamp + "stop Result=stopping", "expected `key=value`"},
      {stamp + "stop =stopping", "no such field"},
      {stamp + "stop queue_id=1", "no such field"},
      {stamp + "stop result=a result=b", "repeated or out of"},
      {stamp + "stop queued=1 result=stopped", "repeated or out of"},
      {stamp + "stop result=", "an empty value"},
      {stamp + "stop result=a\"b", "must be quoted"},
      {stamp + "stop result=a=b", "must be quoted"},
      {stamp + "stop result=a\\b", "must be quoted"},
      {stamp + "stop result=caf\xc3\xa9", "must be quoted"},
      {stamp + "stop result=a\tb", "must be quoted"},
      {stamp + "stop result=a\nb", "must be quoted"},
      {stamp + "stop result=\"abc\"", "needs no quotes"},
      {stamp + "stop result=\"a b", "unterminated quoted value"},
      {stamp + "stop result=\"a b\\", "unterminated escape"},
      {stamp + "stop result=\"a b\\\"", "unterminated quoted value"},
      {stamp + "stop result=\"a\\nb\"", "an escape other than"},
      {stamp + "stop result=\"a\\x9\"", "an escape other than"},
      {stamp + "stop result=\"a\\x9B\"", "an escape other than"},
      {stamp + "stop result=\"a\\x", "an escape other than"},
      {stamp + "stop result=\"a \\x41\"", "a printable byte written as"},
      {stamp + "stop result=\"a\xc3\xa9\"", "outside printable ASCII"},
      {stamp + "stop result=\"a\r\nb\"", "outside printable ASCII"},
      {stamp + "stop result=\"a b\"x", "text after a quoted value"},
      {stamp + "stop result=\"a b\"\"", "text after a quoted value"},
      {stamp + std::string("stop result=\"a\0b\"", 17), "outside printable ASCII"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.line);
    std::string problem;
    EXPECT_FALSE(parse_log_line(c.line, &problem));
    EXPECT_NE(problem.find(c.why), std::string::npos) << problem;
    const std::string rest = c.line.substr(std::min(c.line.size(), stamp.size()));
    if (!rest.empty()) {
      EXPECT_EQ(problem.find(rest), std::string::npos) << "the problem quotes the line: " << problem;
    }
  }
}

// One pass over the line: a line at the bound parses (fast enough that a
// quadratic parser would time out), one byte more is refused unread.
TEST(RelayLogParser, IsBoundedAndLinear) {
  const std::string head = "2026-11-28T20:14:41.967Z tlsp-relay error error=\"";
  std::string line = head;
  while (line.size() + 4 < kMaxLogLineBytes) line += "\\x01";
  line.append(kMaxLogLineBytes - 1 - line.size(), 'a');
  line += '"';
  ASSERT_EQ(line.size(), kMaxLogLineBytes);
  const auto t = std::chrono::steady_clock::now();
  std::optional<LogLine> l = parse_log_line(line);
  ASSERT_TRUE(l.has_value());
  EXPECT_LT(std::chrono::steady_clock::now() - t, 5s);
  EXPECT_EQ(format(LogEvent::error, l->fields).substr(24), line.substr(24));
  std::string problem;
  EXPECT_FALSE(parse_log_line(line + "a", &problem));
  EXPECT_NE(problem.find("longer than"), std::string::npos) << problem;
}

// ------------------------------------------------------------------ JSON

std::string json(LogEvent e, const LogFields& f) { return format_log_json(kWhen, e, f); }

// The JSON string of raw bytes as an independent reader sees it: one
// character a byte (relay_log.h), so nlohmann's UTF-8 is U+0000..U+00FF.
std::string as_json_reader_sees(const std::string& bytes) {
  std::string utf8;
  for (char c : bytes) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x80) {
      utf8.push_back(c);
    } else {
      utf8.push_back(static_cast<char>(0xc0 | (u >> 6)));
      utf8.push_back(static_cast<char>(0x80 | (u & 0x3f)));
    }
  }
  return utf8;
}

TEST(RelayLogJson, EveryEventRoundTripsByteForByte) {
  for (const LogEventSchema& s : log_schema()) {
    for (size_t shift = 0; shift < kValues.size(); ++shift) {
      LogFields fields;
      for (size_t i = 0; i < s.fields.size(); ++i)
        fields.emplace_back(std::string(s.fields[i]), kValues[(i + shift) % kValues.size()]);
      const std::string line = json(s.event, fields);
      SCOPED_TRACE(line);
      for (char c : line) {
        const unsigned char u = static_cast<unsigned char>(c);
        ASSERT_TRUE(u >= 0x20 && u <= 0x7e) << "raw byte " << int(u);
      }
      LogLine l = parse_ok(line);
      EXPECT_EQ(l.event, s.event);
      EXPECT_EQ(l.time, "2026-11-28T20:14:41.967Z");
      EXPECT_EQ(l.fields, fields);
      EXPECT_EQ(json(l.event, l.fields), line);
      // A standard JSON reader sees the same object.
      const nlohmann::json j = nlohmann::json::parse(line);
      EXPECT_EQ(j.size(), 3u);
      EXPECT_EQ(j.at("time"), "2026-11-28T20:14:41.967Z");
      EXPECT_EQ(j.at("event"), std::string(s.name));
      ASSERT_EQ(j.at("fields").size(), fields.size());
      for (const auto& [k, v] : fields) EXPECT_EQ(j.at("fields").at(k).get<std::string>(), as_json_reader_sees(v));
      // The body (syslog, journal) too.
      const std::string body = format_log_body(s.event, fields);
      EXPECT_EQ(body, format(s.event, fields).substr(36));
      std::optional<LogLine> b = parse_log_body(body);
      ASSERT_TRUE(b);
      EXPECT_EQ(b->event, s.event);
      EXPECT_EQ(b->fields, fields);
      EXPECT_EQ(b->time, "");
    }
  }
}

TEST(RelayLogJson, TheShapeIsFixed) {
  EXPECT_EQ(json(LogEvent::limit, {{"reply", "421 4.7.0 bye"}, {"limit", "max_commands"}, {"client", "127.0.0.1"}}),
            R"({"time":"2026-11-28T20:14:41.967Z","event":"limit","fields":{"client":"127.0.0.1",)"
            R"("limit":"max_commands","reply":"421 4.7.0 bye"}})");
  EXPECT_EQ(json(LogEvent::stop, {}), R"({"time":"2026-11-28T20:14:41.967Z","event":"stop","fields":{}})");
  EXPECT_EQ(json(LogEvent::stop, {{"result", std::string("a\"\\\x01\xff", 5)}}),
            R"({"time":"2026-11-28T20:14:41.967Z","event":"stop","fields":{"result":"a\"\\\u0001\u00ff"}})");
  EXPECT_EQ(json(LogEvent::stop, {{"result", ""}}),
            R"({"time":"2026-11-28T20:14:41.967Z","event":"stop","fields":{"result":""}})");
}

TEST(RelayLogJson, RefusesLinesTheWriterCannotProduce) {
  const std::string head = R"({"time":"2026-11-28T20:14:41.967Z","event":"stop","fields":{)";
  struct Case {
    std::string line, why;
  };
  const Case cases[] = {
      {"{", "expected"},
      {R"({"time": "2026-11-28T20:14:41.967Z","event":"stop","fields":{}})", "expected a JSON string"},
      {R"({"time":"2026-11-28T20:14:41Z","event":"stop","fields":{}})", "no timestamp"},
      {R"({"time":"2026-11-28T20:14:41.967Z","event":"Stop","fields":{}})", "not an event"},
      {R"({"event":"stop","time":"2026-11-28T20:14:41.967Z","fields":{}})", "expected"},
      {head + "}", "expected `}}`"},
      {head + "}}\n", "text after the object"},
      {head + "}} ", "text after the object"},
      {head + R"("result":"a"})", "expected `}}`"},
      {head + R"("result":"a",})", "expected a JSON string"},
      {head + R"("result":"a" })", "expected"},
      {head + R"("queue_id":"1"}})", "no such field"},
      {head + R"("result":"a","result":"b"}})", "repeated or out of"},
      {head + R"("queued":"1","result":"a"}})", "repeated or out of"},
      {head + R"("result":1}})", "expected a JSON string"},
      {head + R"("result":"a\nb"}})", "an escape other than"},
      {head + R"("result":"a\/b"}})", "an escape other than"},
      {head + R"("result":"a\u00C3"}})", "an escape other than"},
      {head + R"("result":"a\u0041"}})", "a printable byte written as"},
      {head + R"("result":"a\u20ac"}})", "an escape other than"},
      {head + "\"result\":\"caf\xc3\xa9\"}}", "outside printable ASCII"},
      {head + "\"result\":\"a\tb\"}}", "outside printable ASCII"},
      {head + R"("result":"abc)", "unterminated JSON string"},
      {head + R"("result":"abc\)", "unterminated escape"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.line);
    std::string problem;
    EXPECT_FALSE(parse_log_line(c.line, &problem));
    EXPECT_NE(problem.find(c.why), std::string::npos) << problem;
  }
  // A byte above 0x7e, as the writer writes it, parses.
  EXPECT_TRUE(parse_log_line(head + R"("result":"caf\u00c3\u00a9"}})"));
}

TEST(RelayLogJson, IsBoundedAndLinear) {
  std::string line = R"({"time":"2026-11-28T20:14:41.967Z","event":"error","fields":{"error":")";
  while (line.size() + 6 < kMaxLogLineBytes - 3) line += "\\u0001";
  line.append(kMaxLogLineBytes - 3 - line.size(), 'a');
  line += "\"}}";
  ASSERT_EQ(line.size(), kMaxLogLineBytes);
  const auto t = std::chrono::steady_clock::now();
  std::optional<LogLine> l = parse_log_line(line);
  ASSERT_TRUE(l.has_value());
  EXPECT_LT(std::chrono::steady_clock::now() - t, 5s);
  std::string problem;
  EXPECT_FALSE(parse_log_line(line + "a", &problem));
  EXPECT_NE(problem.find("longer than"), std::string::npos) << problem;
}

// ------------------------------------------------------- the rest of it

TEST(RelayLogSeconds, AsPostfixWritesThem) {
  using D = std::chrono::duration<double>;
  EXPECT_EQ(log_seconds(D(0)), "0");
  EXPECT_EQ(log_seconds(D(-1)), "0");
  EXPECT_EQ(log_seconds(D(0.004)), "0");
  EXPECT_EQ(log_seconds(D(0.29)), "0.29");
  EXPECT_EQ(log_seconds(D(0.3)), "0.3");
  EXPECT_EQ(log_seconds(D(1.5)), "1.5");
  EXPECT_EQ(log_seconds(D(9.999)), "10");
  EXPECT_EQ(log_seconds(D(12.34)), "12.3");
  EXPECT_EQ(log_seconds(D(312.7)), "313");
}

TEST(RelayLogOutputs, SettingsParse) {
  struct Case {
    std::string spec;
    std::optional<LogOutput::Kind> kind;
    std::string path;
  };
  const Case cases[] = {
      {"stderr", LogOutput::Kind::standard_error, ""},
      {"journal", LogOutput::Kind::journal, ""},
      {"syslog", LogOutput::Kind::syslog, "/dev/log"},
      {"syslog:/run/log.sock", LogOutput::Kind::syslog, "/run/log.sock"},
      {"file:/var/log/tlsp/relay.log", LogOutput::Kind::file, "/var/log/tlsp/relay.log"},
      {"file:relay.log", LogOutput::Kind::file, "relay.log"},
      {"file:", std::nullopt, ""},
      {"syslog:", std::nullopt, ""},
      {"syslog:dev/log", std::nullopt, ""},
      {"syslog:/" + std::string(200, 'a'), std::nullopt, ""},
      {"Stderr", std::nullopt, ""},
      {"relay.log", std::nullopt, ""},
      {"", std::nullopt, ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.spec);
    std::string problem;
    std::optional<LogOutput> o = parse_log_output(c.spec, &problem);
    ASSERT_EQ(o.has_value(), c.kind.has_value()) << problem;
    if (o) {
      EXPECT_EQ(o->kind, *c.kind);
      EXPECT_EQ(o->path, c.path);
    } else {
      EXPECT_FALSE(problem.empty());
    }
  }
  EXPECT_EQ(parse_log_format("text"), LogFormat::text);
  EXPECT_EQ(parse_log_format("json"), LogFormat::json);
  EXPECT_FALSE(parse_log_format("JSON"));
}

TEST(RelayLogOutputs, SeverityByEvent) {
  EXPECT_EQ(log_severity(LogEvent::attempt, {}), 6);
  EXPECT_EQ(log_severity(LogEvent::reject, {}), 5);
  EXPECT_EQ(log_severity(LogEvent::limit, {}), 5);
  EXPECT_EQ(log_severity(LogEvent::stress, {}), 4);
  EXPECT_EQ(log_severity(LogEvent::table, {{"result", "loaded"}}), 6);
  EXPECT_EQ(log_severity(LogEvent::table, {{"result", "refused"}}), 4);
  EXPECT_EQ(log_severity(LogEvent::error, {}), 3);
  EXPECT_EQ(log_severity(LogEvent::spool, {}), 3);
}

std::vector<std::string> lines_of(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// A file output, reopened after a rename (logrotate), and a syslog output
// at a socket of the test's: every line goes to both, in one format.
TEST(RelayLogOutputs, AFileIsReopenedAndSyslogGetsEachLine) {
  char tmpl[] = "/tmp/tlsp-log-unit-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const std::string sock = dir + "/log.sock";
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, sock.c_str(), sizeof a.sun_path - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);
  {
    RelayLog log({{LogOutput::Kind::file, dir + "/relay.log"}, {LogOutput::Kind::syslog, sock}}, LogFormat::json);
    log.write(LogEvent::start, {{"listen", "127.0.0.1:25"}});
    std::filesystem::rename(dir + "/relay.log", dir + "/relay.log.1");
    log.reopen();
    log.write(LogEvent::reject, {{"reason", "two words"}});
    EXPECT_EQ(log.dropped(), 0u);
  }
  const std::vector<std::string> old_file = lines_of(dir + "/relay.log.1");
  const std::vector<std::string> new_file = lines_of(dir + "/relay.log");
  ASSERT_EQ(old_file.size(), 1u);
  ASSERT_EQ(new_file.size(), 1u);
  EXPECT_TRUE(parse_ok(old_file[0]).matches(LogEvent::start, {{"listen", "127.0.0.1:25"}}));
  EXPECT_TRUE(parse_ok(new_file[0]).matches(LogEvent::reject, {{"reason", "two words"}}));
  std::vector<std::string> datagrams;
  char buf[65536];
  while (datagrams.size() < 2) {
    pollfd p{fd, POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 5000), 1);
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    ASSERT_GT(n, 0);
    datagrams.emplace_back(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  const std::string tag = " tlsp-relay[" + std::to_string(::getpid()) + "]: ";
  EXPECT_EQ(datagrams[0].substr(0, 4), "<22>");  // mail.info
  EXPECT_EQ(datagrams[1].substr(0, 4), "<21>");  // mail.notice
  for (size_t i = 0; i < 2; ++i) {
    const size_t at = datagrams[i].find(tag);
    ASSERT_EQ(at, 4u + 15u) << datagrams[i];
    EXPECT_EQ(datagrams[i].substr(at + tag.size()), i == 0 ? old_file[0] : new_file[0]);
  }
  std::filesystem::remove_all(dir);
}

// A file output that cannot be reopened keeps writing the old one and
// says so; a full disk or a missing syslog daemon drops lines, counted,
// and never throws.
TEST(RelayLogOutputs, FailuresCostLinesNotTheRelay) {
  char tmpl[] = "/tmp/tlsp-log-unit-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  std::filesystem::create_directories(dir + "/sub");
  {
    RelayLog log({{LogOutput::Kind::file, dir + "/sub/relay.log"}}, LogFormat::text);
    log.write(LogEvent::start, {});
    std::filesystem::rename(dir + "/sub", dir + "/moved");
    log.reopen();  // dir/sub/ is gone: the old file stays in use
    log.write(LogEvent::stop, {});
  }
  const std::vector<std::string> l = lines_of(dir + "/moved/relay.log");
  ASSERT_EQ(l.size(), 3u);
  EXPECT_TRUE(parse_ok(l[1]).matches(LogEvent::error, {{"where", "log"}}));
  EXPECT_NE(parse_ok(l[1]).get("error").find("cannot reopen"), std::string::npos);
  EXPECT_TRUE(parse_ok(l[2]).matches(LogEvent::stop));
  RelayLog full({{LogOutput::Kind::file, "/dev/full"}, {LogOutput::Kind::syslog, dir + "/nobody.sock"}},
                LogFormat::text);
  EXPECT_NO_THROW(full.write(LogEvent::start, {}));
  EXPECT_NO_THROW(full.write(LogEvent::stop, {}));
  EXPECT_EQ(full.dropped(), 4u);
  EXPECT_THROW(RelayLog({{LogOutput::Kind::file, dir + "/no/such/dir/relay.log"}}, LogFormat::text),
               std::runtime_error);
  std::filesystem::remove_all(dir);
}

// A syslog daemon that does not read: once its queue is full a line waits
// at most 100 ms, then lines are dropped at once until one gets through;
// the relay is never held up for long, and the lines that were queued
// arrive whole.
TEST(RelayLogOutputs, AStuckSyslogDaemonCostsOneShortWait) {
  char tmpl[] = "/tmp/tlsp-log-unit-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const std::string sock = dir + "/log.sock";
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, sock.c_str(), sizeof a.sun_path - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);
  constexpr size_t kLines = 200;
  uint64_t dropped = 0;
  const auto t = std::chrono::steady_clock::now();
  {
    RelayLog log({{LogOutput::Kind::syslog, sock}}, LogFormat::text);
    for (size_t i = 0; i < kLines; ++i) log.write(LogEvent::queue, {{"queue_id", std::to_string(i)}});
    dropped = log.dropped();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t, 1s);
  EXPECT_GT(dropped, 0u);
  size_t received = 0;
  char buf[65536];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0; ++received) {
    const std::string d(buf, static_cast<size_t>(n));
    const std::string body = d.substr(d.find("]: ") + 3);
    EXPECT_TRUE(parse_log_body(body)) << d;
    EXPECT_EQ(body, "queue queue_id=" + std::to_string(received)) << d;  // the first ones, whole and in order
  }
  EXPECT_EQ(received + dropped, kLines);
  ::close(fd);
  std::filesystem::remove_all(dir);
}

}  // namespace

// The example lines of the README and of docs/logs.md (text lines wrapped
// there, two spaces before each continuation; JSON lines whole) are lines
// the relay could write: its documentation reads through the same parser
// as everyone else.
TEST(RelayLogParser, TheDocumentedExamplesAreLinesTheWriterProduces) {
  for (const char* doc : {"/README.md", "/docs/logs.md"}) {
    SCOPED_TRACE(doc);
    std::ifstream in(std::string(TLSP_SOURCE_DIR) + doc);
    ASSERT_TRUE(in) << doc;
    std::vector<std::string> examples;
    bool open = false;  // the last example may go on in the next line
    for (std::string l; std::getline(in, l);) {
      const bool text = l.size() > 25 && l.compare(24, 12, " tlsp-relay ") == 0 && l[0] == '2';
      if (text || l.starts_with("{\"time\":\"2")) {
        examples.push_back(l);
        open = text;
      } else if (open && l.rfind("  ", 0) == 0 && l.find_first_not_of(' ') == 2) {
        examples.back() += " " + l.substr(2);
      } else {
        open = false;
      }
    }
    ASSERT_FALSE(examples.empty());
    for (const std::string& e : examples) {
      std::string problem;
      std::optional<LogLine> l = parse_log_line(e, &problem);
      ASSERT_TRUE(l) << e << "\n" << problem;
      if (e[0] == '{')
        EXPECT_EQ(format_log_json(kWhen, l->event, l->fields).substr(33), e.substr(33)) << e;
      else
        EXPECT_EQ(format_log_line(kWhen, l->event, l->fields).substr(24), e.substr(24)) << e;
    }
  }
}
