// simulate_junit.cpp — `tlsp simulate --junit FILE` (simulate.h): the report
// as JUnit XML for CI, one testsuite per scenario file and one testcase per
// entry; a failure carries its explanation (or the file's diagnostics), a
// `live skip` scenario is skipped with its reason.
#include <algorithm>
#include <fstream>
#include <sstream>

#include "cli_common.h"
#include "simulate.h"

namespace tlsp::cli {
namespace {

std::string xml_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default:
        // XML 1.0 has no place for other control characters.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t') out += '?';
        else out += c;
    }
  }
  return out;
}

}  // namespace

void write_junit(const std::string& path, const std::vector<sim::ScenarioFile>& files,
                 const std::vector<ScenarioEntry>& entries, size_t failed) {
  std::ostringstream x;
  x << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    << "<testsuites name=\"tlsp simulate\" tests=\"" << entries.size() << "\" failures=\"" << failed << "\">\n";
  for (const auto& f : files) {
    std::vector<const ScenarioEntry*> mine;
    for (const auto& e : entries)
      if (e.file == &f) mine.push_back(&e);
    size_t fails = std::count_if(mine.begin(), mine.end(),
                                 [](const ScenarioEntry* e) { return !e->ok && e->kind != ScenarioEntry::skipped; });
    size_t skips =
        std::count_if(mine.begin(), mine.end(), [](const ScenarioEntry* e) { return e->kind == ScenarioEntry::skipped; });
    const std::string file = xml_escape(f.source.display_path);
    x << "  <testsuite name=\"" << file << "\" tests=\"" << mine.size() << "\" failures=\"" << fails << "\"";
    if (skips) x << " skipped=\"" << skips << "\"";
    x << ">\n";
    for (const ScenarioEntry* e : mine) {
      x << "    <testcase classname=\"" << file << "\" name=\"" << xml_escape(e->name) << "\" file=\"" << file
        << "\" line=\"" << e->line << "\"";
      if (e->ok) {
        x << "/>\n";
        continue;
      }
      if (e->kind == ScenarioEntry::skipped) {
        x << ">\n      <skipped message=\"" << xml_escape("not run live: " + e->scenario->live_skip) << "\"/>\n"
          << "    </testcase>\n";
        continue;
      }
      std::string message = e->kind == ScenarioEntry::ran ? "the outcome differs from the expectation"
                                                          : "the scenario file has errors";
      if (e->live) message = "expected, model and live outcomes differ";
      std::string body = e->kind == ScenarioEntry::unparsable ? sim::render_diagnostics(*e->file) : e->details;
      x << ">\n      <failure message=\"" << xml_escape(message) << "\">" << xml_escape(body) << "</failure>\n"
        << "    </testcase>\n";
    }
    x << "  </testsuite>\n";
  }
  x << "</testsuites>\n";
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << x.str();
  out.close();
  if (!out) throw UsageError("cannot write `" + path + "`");
}

}  // namespace tlsp::cli
