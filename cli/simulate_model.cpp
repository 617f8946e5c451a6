// simulate_model.cpp — `tlsp simulate` in the model: every scenario of the
// parsed files replayed against the table through the engine
// (sim::run_scenario) and checked against its expectation, one report
// entry each (simulate.h).
#include <algorithm>

#include "simulate.h"

namespace tlsp::cli {

std::vector<ScenarioEntry> run_model(const DecisionTable& table, const std::vector<sim::ScenarioFile>& files, bool live) {
  std::vector<ScenarioEntry> entries;
  for (const auto& f : files) {
    if (f.syntax_error) {
      ScenarioEntry e;
      e.file = &f;
      e.kind = ScenarioEntry::unparsable;
      e.name = f.source.display_path;
      e.line = f.diagnostics.empty() ? 1 : f.diagnostics.front().where.line;
      entries.push_back(std::move(e));
      continue;
    }
    std::vector<ScenarioEntry> mine;
    for (const auto& s : f.scenarios) {
      ScenarioEntry e;
      e.file = &f;
      e.scenario = &s;
      e.name = s.name;
      e.line = s.where.line;
      if (live && !s.live_skip.empty()) {
        e.kind = ScenarioEntry::skipped;
        mine.push_back(std::move(e));
        continue;
      }
      e.result = sim::run_scenario(table, s);
      e.checks = sim::check_expectation(s.expect, e.result);
      e.ok = sim::passed(e.checks);
      if (!e.ok) e.details = explain_failure(table, s, e);
      mine.push_back(std::move(e));
    }
    std::vector<std::string> broken_text = sim::render_broken_diagnostics(f);
    for (size_t i = 0; i < f.broken.size(); ++i) {
      ScenarioEntry e;
      e.file = &f;
      e.kind = ScenarioEntry::broken;
      e.name = f.broken[i].name;
      e.line = f.broken[i].where.line;
      e.details = std::move(broken_text[i]);  // for --junit; the text output has them on stderr
      mine.push_back(std::move(e));
    }
    std::stable_sort(mine.begin(), mine.end(),
                     [](const ScenarioEntry& a, const ScenarioEntry& b) { return a.line < b.line; });
    for (auto& e : mine) entries.push_back(std::move(e));
  }
  return entries;
}

ScenarioTally tally(const std::vector<ScenarioEntry>& entries) {
  ScenarioTally t;
  t.passed = std::count_if(entries.begin(), entries.end(), [](const ScenarioEntry& e) { return e.ok; });
  t.skipped = std::count_if(entries.begin(), entries.end(),
                            [](const ScenarioEntry& e) { return e.kind == ScenarioEntry::skipped; });
  t.failed = entries.size() - t.passed - t.skipped;
  return t;
}

}  // namespace tlsp::cli
