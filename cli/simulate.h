// simulate.h — the pieces of `tlsp simulate` (cmd_simulate.cpp), one concern
// per file:
//   simulate_inputs.cpp  which scenario files the arguments name, and their text
//   simulate_model.cpp   every scenario replayed in the model, one ScenarioEntry each
//   simulate_live.cpp    --live: the entries that ran replayed on the wire
//   simulate_text.cpp    the text report (PASS/FAIL lines, explanations, timings)
//   simulate_json.cpp    --json: the JSON report
//   simulate_junit.cpp   --junit: the JUnit XML report
// The command parses the options, reads the table and the scenario files,
// and hands the entries from one piece to the next.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tlsp/decision_table.h"
#include "tlsp/sim/live.h"
#include "tlsp/simulator.h"

namespace tlsp::cli {

// One line of the report: a scenario that ran, one left out for errors, one
// not run live (`live skip`), or a file that did not parse.
struct ScenarioEntry {
  const sim::ScenarioFile* file = nullptr;
  const sim::Scenario* scenario = nullptr;  // ran, skipped
  std::string name;
  uint32_t line = 0;
  enum Kind { ran, broken, unparsable, skipped } kind = ran;
  sim::ScenarioResult result;
  std::vector<sim::FieldCheck> checks;
  bool live = false;  // replayed live: live_result and live_checks hold
  sim::LiveResult live_result;
  std::vector<sim::LiveCheck> live_checks;
  bool ok = false;
  std::string details;  // ran: the failure's explanation, as printed; broken: its diagnostics
};

// ------------------------------------------------------ simulate_inputs.cpp

// The scenario files the arguments name: files as given, directories
// searched recursively for *.scenario (in byte order). UsageError when one
// does not exist, cannot be read or holds none.
std::vector<std::string> scenario_paths(const std::vector<std::string>& inputs);

// The text of one scenario file, at most one byte more than a scenario file
// may have (parse_scenarios() owns the limit and reports it). UsageError
// when it cannot be read.
std::string read_scenario_text(const std::string& path);

// ------------------------------------------------------- simulate_model.cpp

// Every scenario of `files` run in the model and checked against its
// expectation, in file order and within a file in line order; broken
// scenarios and unparsable files are entries too. With `live`, scenarios
// marked `live skip` are not run (kind skipped). The entries point into
// `files`.
std::vector<ScenarioEntry> run_model(const DecisionTable& table, const std::vector<sim::ScenarioFile>& files, bool live);

// The counts on the report's last line: an entry that is not ok and not
// skipped failed.
struct ScenarioTally {
  size_t passed = 0, failed = 0, skipped = 0;
};
ScenarioTally tally(const std::vector<ScenarioEntry>& entries);

// -------------------------------------------------------- simulate_live.cpp

struct LiveModeOptions {
  unsigned jobs = 0;                         // worlds at once; 0: one per core
  std::string work_dir = "/tmp";             // where the worlds' directories go
  std::optional<std::string> relay_binary;   // default: this program
  bool timings = false;                      // the time per phase to stderr
};

// --live: every `ran` entry replayed through a real relay; an entry then
// passes only when expected, model and live agree, and a failure's details
// become the three side by side. The table file the relay loads is
// `table_path` when given, else `table` written into a run directory that
// is removed at the end. Returns kExitOk, or 130 when interrupted (every
// world torn down). UsageError when the relay cannot be found or run.
int run_live_mode(const LiveModeOptions& options, const DecisionTable& table, const std::string& table_path,
                  std::vector<ScenarioEntry>& entries);

// -------------------------------------------------------- simulate_text.cpp

// The explanation under a FAIL line: expected and actual fields side by
// side, the rule used and where each part came from, every host's outcome.
std::string explain_failure(const DecisionTable& table, const sim::Scenario& scenario, const ScenarioEntry& entry);

// The explanation under a live FAIL line: expected, model and live side by
// side, then what the live world showed.
std::string explain_live(const ScenarioEntry& entry);

// --timings: the time per phase of the live worlds.
std::string live_timings_text(const std::vector<ScenarioEntry>& entries, double wall_seconds, unsigned jobs);

// The facts the engine saw for one host, in one line (also in the JSON).
std::string describe_facts(const PeerFacts& facts, Direction direction);

// Where a rule part came from: `file:line`, or `built-in default`.
std::string rule_source(const DecisionTable& table, const SourceRef& ref);

// The text report on stdout: one line per entry, failures explained, the
// counts last.
void print_text_report(const std::vector<ScenarioEntry>& entries, const ScenarioTally& tally, bool live);

// -------------------------------------------------------- simulate_json.cpp

// --json: the report as one JSON document on stdout.
void print_json_report(const DecisionTable& table, const std::vector<sim::ScenarioFile>& files,
                       const std::vector<ScenarioEntry>& entries, const ScenarioTally& tally, bool live);

// ------------------------------------------------------- simulate_junit.cpp

// --junit FILE: the report as JUnit XML, one testsuite per scenario file.
// UsageError when the file cannot be written.
void write_junit(const std::string& path, const std::vector<sim::ScenarioFile>& files,
                 const std::vector<ScenarioEntry>& entries, size_t failed);

}  // namespace tlsp::cli
