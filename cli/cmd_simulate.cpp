// cmd_simulate.cpp — `tlsp simulate`: replays scenario files (docs/scenarios.md)
// against a decision table through the enforcement engine and checks each
// scenario's expected outcome.
//
// Output: one `PASS name (file:line)` / `FAIL name (file:line)` line per
// scenario, in file order; under each failure, its expected and actual
// fields side by side, the rule used (level, minimum, where each came from)
// and every MX host's outcome; last, exactly `N passed, M failed`. A
// scenario with errors (diagnostics on stderr) is a failure, and so is a
// file that does not parse (it counts once: its scenarios are unknown).
// --json prints one JSON document instead; --junit FILE also writes JUnit
// XML for CI. Exit: 0 all passed, 1 any failure or a policy with errors,
// 2 bad usage or an unreadable input.
//
// --live also replays every scenario through a real `tlsp relay` against
// scripted loopback peers (tlsp/sim/live.h), worlds in parallel (--jobs),
// and a scenario passes only when expected, model and live agree; a failure
// shows the three side by side. Scenarios marked `live skip "...";` are
// counted apart. A progress line goes to stderr; Ctrl-C tears every world
// down (exit 130). --timings adds the time per phase of the live worlds.
//
// This file is the command: its options, and the order of the steps, each
// of which is a file of its own (simulate.h).
#include <algorithm>
#include <iostream>

#include "cli_common.h"
#include "commands.h"
#include "simulate.h"

namespace tlsp::cli {

int cmd_simulate(const Args& args) {
  // `simulate --matrix` is the decision matrix over the behaviour catalogue.
  if (std::find(args.begin(), args.end(), "--matrix") != args.end()) return cmd_matrix(args);
  po::options_description opts("options");
  std::vector<std::string> policies, inputs;
  std::string table_path, junit;
  opts.add_options()("policy", po::value(&policies)->composing()->value_name("POLICY"),
                     "a policy file to compile (repeat for several roots)")(
      "table", po::value(&table_path)->value_name("TABLE"), "a compiled decision table, instead of --policy")(
      "scenarios", po::value(&inputs)->required(), "scenario files or directories (positional)")(
      "junit", po::value(&junit)->value_name("FILE"), "also write the results as JUnit XML to this file")(
      "json", "print one JSON document instead of text")(
      "live", "also replay every scenario through a real `tlsp relay` against scripted loopback peers")(
      "jobs,j", po::value<unsigned>()->default_value(0)->value_name("N"), "--live: worlds run at once (0: one per core)")(
      "relay-binary", po::value<std::string>()->value_name("FILE"), "--live: the tlsp executable to run as the relay (default: this one)")(
      "work-dir", po::value<std::string>()->default_value("/tmp")->value_name("DIR"), "--live: where the worlds' temporary directories go")(
      "timings", "--live: print the time spent per phase of the worlds to stderr");
  add_compile_options(opts);
  po::positional_options_description pos;
  pos.add("scenarios", -1);
  po::variables_map vm;
  if (!parse_options(
          "simulate",
          "(--policy POLICY [--policy ...] | --table TABLE) SCENARIO_FILE_OR_DIR... [--json] [--junit FILE] [--live "
          "[--jobs N] [--timings]]",
          "Replays the scenarios against the policy through the enforcement engine and checks each expected "
          "outcome. Directories are searched recursively for *.scenario files (docs/scenarios.md).\n"
          "With --live: each scenario also runs on the wire, through a real `tlsp relay` against scripted peers on "
          "127.20.0.0/16, and passes only when expected, model and live outcomes agree.\n"
          "With --matrix (and no scenarios): the decision matrix, as `tlsp matrix` (see its --help).",
          opts, &pos, args, vm, {{"scenarios", "scenario file or directory"}}))
    return kExitOk;
  if (table_path.empty() == policies.empty()) throw UsageError("give exactly one of --table and --policy");
  const bool json = vm.count("json") > 0;
  const bool live = vm.count("live") > 0;

  // Inputs first: an unreadable scenario is a usage problem, found before
  // any compile work.
  std::vector<std::string> paths = scenario_paths(inputs);
  std::vector<std::string> texts;
  for (const auto& p : paths) texts.push_back(read_scenario_text(p));

  int code = kExitOk;
  std::optional<DecisionTable> table = open_or_compile(table_path, policies, vm, code);
  if (!table) return code;

  std::vector<sim::ScenarioFile> files;
  files.reserve(paths.size());  // entries point into it
  for (size_t i = 0; i < paths.size(); ++i) {
    files.push_back(sim::parse_scenarios(paths[i], std::move(texts[i])));
    std::cerr << sim::render_diagnostics(files.back());
  }

  std::vector<ScenarioEntry> entries = run_model(*table, files, live);
  if (live) {
    LiveModeOptions lo;
    lo.jobs = vm["jobs"].as<unsigned>();
    lo.work_dir = vm["work-dir"].as<std::string>();
    if (vm.count("relay-binary")) lo.relay_binary = vm["relay-binary"].as<std::string>();
    lo.timings = vm.count("timings") > 0;
    int rc = run_live_mode(lo, *table, table_path, entries);
    if (rc != kExitOk) return rc;
  }
  const ScenarioTally counts = tally(entries);
  if (json) print_json_report(*table, files, entries, counts, live);
  else print_text_report(entries, counts, live);
  if (!junit.empty()) write_junit(junit, files, entries, counts.failed);
  return counts.failed == 0 ? kExitOk : kExitErrors;
}

}  // namespace tlsp::cli
