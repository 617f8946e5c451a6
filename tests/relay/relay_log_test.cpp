// relay_log_test.cpp — the relay log's schema, writer and parser
// (tlsp/relay_log.h): every event the writer emits reads back as written,
// byte for byte, and lines the writer cannot produce are refused.
// tests/relay/relay_test.cpp checks the same for every line a real relay writes.
#include "tlsp/relay_log.h"

#include <gtest/gtest.h>

#include <chrono>
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
  EXPECT_EQ(names.size(), 14u);
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

// The README's example (unwrapped) is a line the parser reads and the
// writer writes again unchanged.
TEST(RelayLogParser, TheReadmeExampleIsByteCompatible) {
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

}  // namespace

// The README's example lines (wrapped there, two spaces before each
// continuation) are lines the relay could write: its documentation reads
// through the same parser as everyone else.
TEST(RelayLogParser, TheReadmeExamplesAreLinesTheWriterProduces) {
  std::ifstream readme(std::string(TLSP_SOURCE_DIR) + "/README.md");
  ASSERT_TRUE(readme) << "README.md";
  std::vector<std::string> examples;
  bool open = false;  // the last example may go on in the next line
  for (std::string l; std::getline(readme, l);) {
    if (l.size() > 25 && l.compare(24, 12, " tlsp-relay ") == 0 && l[0] == '2') {
      examples.push_back(l);
      open = true;
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
    EXPECT_EQ(format_log_line(kWhen, l->event, l->fields).substr(24), e.substr(24)) << e;
  }
}
