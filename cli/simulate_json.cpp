// simulate_json.cpp — `tlsp simulate --json` (simulate.h): one document with
// the policy, one object per entry (its checks, the outcome in the one JSON
// form of outcome_json.h, the rule and its lookups, every host; with --live
// the live outcome and checks, and the relay's log of a failure), the
// diagnostics of every file and the counts.
#include <iostream>
#include <nlohmann/json.hpp>

#include "outcome_json.h"
#include "simulate.h"

namespace tlsp::cli {
namespace {

using nlohmann::ordered_json;

ordered_json live_json(const ScenarioEntry& e) {
  const sim::LiveResult& l = e.live_result;
  ordered_json j;
  j["ran"] = l.ran;
  if (!l.error.empty()) j["error"] = l.error;
  j["outcome"] = l.outcome;
  j["channel"] = l.channel;
  j["applied"] = l.applied;
  j["tls"] = l.tls;
  j["reason"] = l.reason;
  if (!l.via.empty()) j["via"] = l.via;
  j["checks"] = ordered_json::array();
  for (const auto& c : e.live_checks)
    j["checks"].push_back({{"field", c.field}, {"expected", c.expected}, {"model", c.model}, {"live", c.live}, {"ok", c.ok}});
  j["wire"] = l.wire;
  j["notes"] = l.notes;
  j["phases_us"] = {{"certs", l.phases.certs}, {"dns", l.phases.dns}, {"world", l.phases.world},
                    {"relay", l.phases.relay}, {"submit", l.phases.submit}, {"delivery", l.phases.delivery},
                    {"teardown", l.phases.teardown}, {"total", l.phases.total}};
  return j;
}

ordered_json entry_json(const DecisionTable& t, const ScenarioEntry& e) {
  ordered_json j;
  j["name"] = e.name;
  j["file"] = e.file->source.display_path;
  j["line"] = e.line;
  j["status"] = e.kind == ScenarioEntry::ran       ? (e.ok ? "pass" : "fail")
                : e.kind == ScenarioEntry::skipped ? "skip"
                                                   : "error";
  if (e.kind == ScenarioEntry::skipped) j["skip_reason"] = e.scenario->live_skip;
  if (e.kind != ScenarioEntry::ran) return j;
  j["checks"] = ordered_json::array();
  for (const auto& c : e.checks)
    j["checks"].push_back({{"field", c.field}, {"expected", c.expected}, {"actual", c.actual}, {"ok", c.ok}});
  ordered_json result = outcome_json(e.result.outcome);
  if (!e.result.via.empty()) result["via"] = e.result.via;
  j["result"] = result;
  const sim::AppliedRule& rule = e.result.rule;
  ordered_json r;
  r["level"] = to_string(rule.rule.level);
  r["min_tls"] = to_string(rule.rule.min_tls);
  r["lookups"] = ordered_json::array();
  for (size_t i = 0; i < rule.lookups.size(); ++i) {
    const auto& l = rule.lookups[i];
    r["lookups"].push_back({{"direction", to_string(l.direction)},
                            {"domain", l.managed_domain},
                            {"peer", l.peer},
                            {"match", to_string(l.decision.match)},
                            {"selector", l.decision.selector.empty() ? ordered_json(nullptr) : ordered_json(l.decision.selector)},
                            {"level", to_string(l.decision.level)},
                            {"min_tls", to_string(l.decision.min_tls)},
                            {"source", rule_source(t, l.decision.origin)},
                            {"level_source", rule_source(t, l.decision.level_from)},
                            {"min_tls_source", rule_source(t, l.decision.min_tls_from)},
                            {"gives_level", rule.level_from == i},
                            {"gives_min_tls", rule.min_tls_from == i}});
  }
  j["rule"] = r;
  j["attempts"] = ordered_json::array();
  for (size_t i = 0; i < e.result.attempts.size(); ++i) {
    const auto& a = e.result.attempts[i];
    ordered_json h;
    h["name"] = a.name;
    if (e.scenario->direction == Direction::outbound) h["pref"] = a.pref;
    h["outcome"] = outcome_json(a.outcome);
    h["chosen"] = i == e.result.chosen;
    h["facts"] = describe_facts(a.facts, e.scenario->direction);
    h["notes"] = a.notes;
    j["attempts"].push_back(h);
  }
  j["notes"] = e.result.notes;
  if (e.live) {
    j["live"] = live_json(e);
    if (!e.ok) j["live"]["relay_log"] = e.live_result.log;  // only where it is worth reading
  }
  return j;
}

}  // namespace

void print_json_report(const DecisionTable& table, const std::vector<sim::ScenarioFile>& files,
                       const std::vector<ScenarioEntry>& entries, const ScenarioTally& tally, bool live) {
  ordered_json doc;
  doc["policy"] = {{"name", table.policy_name()}, {"version", table.policy_version()}};
  doc["scenarios"] = ordered_json::array();
  for (const auto& e : entries) doc["scenarios"].push_back(entry_json(table, e));
  doc["diagnostics"] = ordered_json::array();
  for (const auto& f : files)
    for (const auto& d : f.diagnostics)
      doc["diagnostics"].push_back({{"file", f.source.display_path},
                                    {"line", d.where.line},
                                    {"column", d.where.column},
                                    {"code", d.code},
                                    {"message", d.message}});
  doc["passed"] = tally.passed;
  doc["failed"] = tally.failed;
  if (live) doc["skipped"] = tally.skipped;
  std::cout << doc.dump(2) << "\n";
}

}  // namespace tlsp::cli
