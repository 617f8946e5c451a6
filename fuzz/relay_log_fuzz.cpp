// relay_log_fuzz.cpp — libFuzzer target for the relay log's parser and
// writer (tlsp/relay_log.h), the contract between the relay and whoever
// reads its log.
//
//  * The input as one line, text or JSON, and as a syslog/journal body:
//    parsed, or refused with a reason. A line that parses is written again
//    from its event and fields, in its format, and gives the same bytes
//    (the parser accepts only what the writer produces).
//  * The input as field values (cut at 0x1f; the first byte picks the
//    event): the line written for them in each format, and the body, is
//    printable ASCII, one line, and parses back to exactly those values,
//    whatever bytes a peer sent.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "tlsp/relay_log.h"

namespace {

using namespace tlsp::relay;

void parse_one_line(std::string_view in) {
  std::string problem;
  std::optional<LogLine> l = parse_log_line(in, &problem);
  if (!l) {
    if (problem.empty()) std::abort();
    return;
  }
  // The timestamp is not the writer's to choose here: compare around it.
  const auto now = std::chrono::system_clock::now();
  const bool json = in.front() == '{';
  const size_t stamp_at = json ? 9 : 0;  // {"time":"
  const std::string again =
      json ? format_log_json(now, l->event, l->fields) : format_log_line(now, l->event, l->fields);
  if (l->time != in.substr(stamp_at, 24) || again.substr(0, stamp_at) != in.substr(0, stamp_at) ||
      again.substr(stamp_at + 24) != in.substr(stamp_at + 24))
    std::abort();
}

void parse_one_body(std::string_view in) {
  std::string problem;
  std::optional<LogLine> l = parse_log_body(in, &problem);
  if (!l) {
    if (problem.empty()) std::abort();
    return;
  }
  if (format_log_body(l->event, l->fields) != in) std::abort();
}

void check_written(const std::string& line, const LogEventSchema& s, const LogFields& fields, bool body) {
  for (char c : line)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) std::abort();
  std::optional<LogLine> l = body ? parse_log_body(line) : parse_log_line(line);
  if (!l || l->event != s.event || l->fields != fields) std::abort();
}

void write_values(std::string_view in) {
  if (in.empty()) return;
  const auto schema = log_schema();
  const LogEventSchema& s = schema[static_cast<unsigned char>(in[0]) % schema.size()];
  in.remove_prefix(1);
  LogFields fields;
  for (size_t i = 0; i < s.fields.size() && !in.empty(); ++i) {
    const size_t cut = in.find('\x1f');
    fields.emplace_back(std::string(s.fields[i]), std::string(in.substr(0, cut)));
    in.remove_prefix(cut == std::string_view::npos ? in.size() : cut + 1);
  }
  const auto now = std::chrono::system_clock::now();
  check_written(format_log_line(now, s.event, fields), s, fields, false);
  check_written(format_log_json(now, s.event, fields), s, fields, false);
  check_written(format_log_body(s.event, fields), s, fields, true);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  parse_one_line(in);
  parse_one_body(in);
  write_values(in);
  return 0;
}
