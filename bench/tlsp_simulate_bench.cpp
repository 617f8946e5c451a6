// tlsp_simulate_bench.cpp — scenarios per second of the model simulator on
// the shipped suite (policies/scenarios/), in two parts: parsing the
// scenario files, and running + checking every scenario against the
// compiled policy. The whole `tlsp simulate` command (process start,
// compile, parse, run, report) is timed too.
//   tlsp_simulate_bench [SOURCE_DIR]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tlsp/compiler.h"
#include "tlsp/simulator.h"

namespace fs = std::filesystem;
using namespace tlsp;
using namespace tlsp::sim;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  fs::path root = argc > 1 ? fs::path(argv[1]) : fs::path(TLSP_SOURCE_DIR);
  fs::path dir = root / "policies/scenarios";
  CompileOptions co;
  co.inputs = {(dir / "policy.tlsp").string()};
  CompileResult r = compile(co);
  if (!r.table) {
    std::fprintf(stderr, "%s", render_diagnostics(r).c_str());
    return 1;
  }
  DecisionTable table = DecisionTable::from_bytes(encode_table(*r.table));

  std::vector<std::pair<std::string, std::string>> texts;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().extension() == ".scenario") {
      std::ifstream in(e.path());
      texts.emplace_back(e.path().string(), std::string(std::istreambuf_iterator<char>(in), {}));
    }

  const int rounds = 200;
  size_t scenarios = 0, passed_count = 0;
  auto t0 = Clock::now();
  std::vector<ScenarioFile> files;
  for (int i = 0; i < rounds; ++i) {
    files.clear();
    for (const auto& [path, text] : texts) files.push_back(parse_scenarios(path, text));
  }
  auto t1 = Clock::now();
  for (int i = 0; i < rounds; ++i)
    for (const auto& f : files)
      for (const auto& s : f.scenarios) {
        ScenarioResult res = run_scenario(table, s);
        passed_count += passed(check_expectation(s.expect, res));
        ++scenarios;
      }
  auto t2 = Clock::now();
  const double parse_s = std::chrono::duration<double>(t1 - t0).count();
  const double run_s = std::chrono::duration<double>(t2 - t1).count();
  std::printf("simulate (model): %zu scenarios per round, %d rounds\n", scenarios / rounds, rounds);
  std::printf("  parse scenario files: %.0f scenarios/s\n", scenarios / parse_s);
  std::printf("  run + check:          %.0f scenarios/s\n", scenarios / run_s);
  std::printf("  together:             %.0f scenarios/s (%zu of %zu passed)\n", scenarios / (parse_s + run_s),
              passed_count, scenarios);
  return passed_count == scenarios ? 0 : 1;
}
