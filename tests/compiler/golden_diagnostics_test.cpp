// golden_diagnostics_test.cpp — every policy in policies/errors/ is checked
// with the real `tlsp check`, run from the source directory, and its exact
// output and exit code are compared with the reviewed golden file beside it
// (NAME.tlsp -> NAME.expected). TLSP_UPDATE_GOLDEN=1 rewrites the golden
// files; review the diff before committing.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "command.h"

namespace fs = std::filesystem;

namespace {

struct RunResult {
  std::string output;
  int exit_code = -1;
};

RunResult run_check(const std::string& relative_policy) {
  const auto r = tlsp::testing_support::run_tlsp("check --threads 2 '" + relative_policy + "'");
  return {r.out, r.code};
}

std::vector<std::string> error_policies() {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(fs::path(TLSP_SOURCE_DIR) / "policies/errors"))
    if (e.is_regular_file() && e.path().extension() == ".tlsp") out.push_back(e.path().stem().string());
  std::sort(out.begin(), out.end());
  return out;
}

class GoldenDiagnostics : public testing::TestWithParam<std::string> {};

TEST_P(GoldenDiagnostics, MatchesReviewedOutput) {
  const std::string name = GetParam();
  RunResult r = run_check("policies/errors/" + name + ".tlsp");
  ASSERT_NE(r.exit_code, -1) << "tlsp did not exit normally (crash?)";
  std::string actual = r.output + "exit: " + std::to_string(r.exit_code) + "\n";
  fs::path golden = fs::path(TLSP_SOURCE_DIR) / "policies/errors" / (name + ".expected");
  if (std::getenv("TLSP_UPDATE_GOLDEN") != nullptr) {
    std::ofstream(golden, std::ios::binary) << actual;
    GTEST_SKIP() << "golden file rewritten: " << golden;
  }
  std::ifstream in(golden, std::ios::binary);
  ASSERT_TRUE(in) << "no golden file " << golden << " (run with TLSP_UPDATE_GOLDEN=1 and review it)";
  std::stringstream expected;
  expected << in.rdbuf();
  EXPECT_EQ(actual, expected.str());
}

INSTANTIATE_TEST_SUITE_P(ErrorPolicies, GoldenDiagnostics, testing::ValuesIn(error_policies()),
                         [](const testing::TestParamInfo<std::string>& i) { return i.param; });

// Every golden file has its policy (a stale golden file is a mistake).
TEST(GoldenDiagnostics, NoOrphanGoldenFiles) {
  for (const auto& e : fs::directory_iterator(fs::path(TLSP_SOURCE_DIR) / "policies/errors"))
    if (e.path().extension() == ".expected") {
      fs::path policy = e.path();
      policy.replace_extension(".tlsp");
      EXPECT_TRUE(fs::exists(policy)) << e.path();
    }
}

// The shipped example compiles cleanly: no errors and no warnings.
TEST(GoldenDiagnostics, ExampleIsClean) {
  RunResult r = run_check("policies/example.tlsp");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.output, "");
}

}  // namespace
