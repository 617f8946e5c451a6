// live_simulation_test.cpp — `tlsp simulate --live` (issue 5): the whole
// shipped scenario suite replayed through real relays against scripted
// loopback peers, through the real `tlsp` binary, must agree with the
// expectations and the model on every scenario; a Ctrl-C leaves nothing
// running or on disk; and the inbound table mapping keeps every rule.
//
// Each test uses a fresh work directory under /tmp and checks it is empty
// afterwards. Waiting is on the child's output and exit, never by sleeping.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "test_support.h"
#include "tlsp/compiler.h"
#include "tlsp/decision_table.h"
#include "tlsp/sim/live.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

const std::string kSource = TLSP_SOURCE_DIR;
constexpr auto kSuiteBudget = std::chrono::minutes(5);  // the CI target on this 2-core machine

// Each TempDir here is named tlsp-live-test-XXXXXX.
struct TempDir : tlsp::testing_support::TempDir {
  TempDir() : tlsp::testing_support::TempDir("tlsp-live-test") {}
};

struct Child {
  pid_t pid = -1;
  int out = -1, err = -1;
};

// Runs TLSP_BINARY with args from the source directory, stdout and stderr
// on pipes.
Child spawn(const std::vector<std::string>& args) {
  int o[2], e[2];
  if (pipe(o) != 0 || pipe(e) != 0) return {};
  Child c;
  c.pid = fork();
  if (c.pid == 0) {
    dup2(o[1], 1);
    dup2(e[1], 2);
    close(o[0]), close(o[1]), close(e[0]), close(e[1]);
    if (chdir(kSource.c_str()) != 0) _exit(126);
    std::vector<char*> argv{const_cast<char*>(TLSP_BINARY)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(TLSP_BINARY, argv.data());
    _exit(127);
  }
  close(o[1]), close(e[1]);
  c.out = o[0];
  c.err = e[0];
  return c;
}

// Reads both pipes until EOF or the deadline; `stop_when` (on stderr so
// far) ends the reading early.
void drain(Child& c, std::string& out, std::string& err, std::chrono::steady_clock::time_point deadline,
           const std::string& stop_when = "") {
  pollfd fds[2] = {{c.out, POLLIN, 0}, {c.err, POLLIN, 0}};
  while ((fds[0].fd >= 0 || fds[1].fd >= 0) && std::chrono::steady_clock::now() < deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (poll(fds, 2, static_cast<int>(std::max<int64_t>(1, left.count()))) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      char buf[65536];
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        continue;
      }
      (i == 0 ? out : err).append(buf, static_cast<size_t>(n));
    }
    if (!stop_when.empty() && err.find(stop_when) != std::string::npos) return;
  }
}

int wait_status(pid_t pid) {
  int st = 0;
  waitpid(pid, &st, 0);
  return st;
}

// Processes whose command line mentions `text` (the relays of a world name
// their spool under the work directory).
std::vector<std::string> processes_mentioning(const std::string& text) {
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& d : fs::directory_iterator("/proc", ec)) {
    std::ifstream in(d.path() / "cmdline", std::ios::binary);
    std::string cmd((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (cmd.find(text) != std::string::npos) found.push_back(d.path().filename().string());
  }
  return found;
}

TEST(LiveSimulation, EveryShippedScenarioAgreesExpectedModelAndLive) {
  TempDir work;
  ASSERT_FALSE(work.path().empty());
  const auto start = std::chrono::steady_clock::now();
  Child c = spawn({"simulate", "--live", "--json", "--timings", "--work-dir", work.path(), "--policy",
                   "policies/scenarios/policy.tlsp", "policies/scenarios/"});
  ASSERT_GT(c.pid, 0);
  std::string out, err;
  drain(c, out, err, start + kSuiteBudget);
  if (c.out >= 0 || c.err >= 0) kill(c.pid, SIGINT);
  int st = wait_status(c.pid);
  const auto took = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start);
  std::cout << err.substr(err.find("live timings") == std::string::npos ? err.size() : err.find("live timings"));
  std::cout << "whole live suite: " << took.count() << " s\n";
  EXPECT_LT(took, kSuiteBudget);

  nlohmann::json doc = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(doc.is_discarded()) << err.substr(0, 4000);
  size_t live_runs = 0;
  for (const auto& s : doc["scenarios"]) {
    if (s.contains("live")) live_runs++;
    if (s["status"] == "pass") continue;
    std::ostringstream why;
    why << s["name"].get<std::string>() << " (" << s["file"].get<std::string>() << ":" << s["line"]
        << "): " << s["status"];
    if (s.contains("live")) why << "\n" << s["live"].dump(2);
    ADD_FAILURE() << why.str();
  }
  EXPECT_EQ(doc["failed"], 0);
  EXPECT_EQ(doc["skipped"], 0) << "a scenario is marked `live skip`";
  EXPECT_EQ(live_runs, doc["scenarios"].size());
  EXPECT_GE(doc["passed"].get<size_t>(), 170u);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0);
  EXPECT_TRUE(work.empty()) << "a live world left files behind";
  EXPECT_TRUE(processes_mentioning(work.path()).empty()) << "a relay is still running";
}

TEST(LiveSimulation, CtrlCTearsEveryWorldDown) {
  TempDir work;
  ASSERT_FALSE(work.path().empty());
  Child c = spawn({"simulate", "--live", "--jobs", "2", "--work-dir", work.path(), "--policy",
                   "policies/scenarios/policy.tlsp", "policies/scenarios/dane.scenario"});
  ASSERT_GT(c.pid, 0);
  std::string out, err;
  // The first progress line: worlds are running now.
  drain(c, out, err, std::chrono::steady_clock::now() + 60s, "live: ");
  ASSERT_NE(err.find("live: "), std::string::npos) << err;
  kill(c.pid, SIGINT);
  drain(c, out, err, std::chrono::steady_clock::now() + 60s);
  int st = wait_status(c.pid);
  ASSERT_TRUE(WIFEXITED(st)) << err;
  EXPECT_EQ(WEXITSTATUS(st), 130) << err;
  EXPECT_NE(err.find("interrupted"), std::string::npos) << err;
  EXPECT_TRUE(work.empty()) << "a live world left files behind";
  EXPECT_TRUE(processes_mentioning(work.path()).empty()) << "a relay is still running";
}

// The live side really is observed: a relay that enforces another rule
// (here: a wrapper that hands the relay a table where mandatory-tls12 is
// opportunistic) is caught with model and live differing, while the model
// alone still passes.
TEST(LiveSimulation, ARelayEnforcingAnotherRuleIsCaught) {
  TempDir work;
  ASSERT_FALSE(work.path().empty());
  std::ifstream in(kSource + "/policies/scenarios/policy.tlsp");
  std::string policy((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string strict = "peer \"mandatory-tls12.example\"     { level mandatory;     min_tls tls1.2; }";
  const size_t at = policy.find(strict);
  ASSERT_NE(at, std::string::npos);
  policy.replace(at, strict.size(), "peer \"mandatory-tls12.example\" { level opportunistic; min_tls any; }");
  const std::string weak = work.path() + "/weak.tlsp";
  std::ofstream(weak) << policy;
  const std::string weak_table = work.path() + "/weak.tlspdt";
  {
    tlsp::CompileOptions o;
    o.inputs = {weak};
    o.threads = 1;
    tlsp::CompileResult r = tlsp::compile(o);
    ASSERT_TRUE(r.table);
    tlsp::write_table_file(weak_table, *r.table);
  }
  // The wrapper swaps the value of --table and runs the real relay.
  const std::string wrapper = work.path() + "/relay-with-another-table";
  std::ofstream(wrapper) << "#!/bin/sh\nn=$#; i=0; for a; do i=$((i+1)); if [ \"$prev\" = --table ]; then a="
                         << weak_table << "; fi; set -- \"$@\" \"$a\"; prev=$a; done; shift $n; exec " << TLSP_BINARY
                         << " \"$@\"\n";
  fs::permissions(wrapper, fs::perms::owner_all);
  const std::string worlds = work.path() + "/worlds";
  fs::create_directory(worlds);

  Child c = spawn({"simulate", "--live", "--json", "--relay-binary", wrapper, "--work-dir", worlds, "--policy",
                   "policies/scenarios/policy.tlsp", "policies/scenarios/mandatory.scenario"});
  ASSERT_GT(c.pid, 0);
  std::string out, err;
  drain(c, out, err, std::chrono::steady_clock::now() + kSuiteBudget);
  int st = wait_status(c.pid);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 1) << err;
  nlohmann::json doc = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(doc.is_discarded()) << err.substr(0, 4000);
  size_t caught = 0;
  for (const auto& s : doc["scenarios"]) {
    if (s["status"] != "fail") continue;
    for (const auto& check : s["live"]["checks"])
      if (check["field"] == "applied" && check["model"] == "mandatory" && check["live"] == "opportunistic") caught++;
  }
  EXPECT_GT(caught, 0u) << out.substr(0, 4000);
  EXPECT_GT(doc["failed"].get<size_t>(), 0u);
  EXPECT_TRUE(fs::is_empty(worlds)) << "a live world left files behind";
}

// The inbound mapping keeps each scripted client address's rule, for every
// address the suite scripts and a few more, and the nesting of prefixes.
TEST(LiveSimulation, ClientTableMappingKeepsEveryRule) {
  tlsp::CompileOptions o;
  o.inputs = {kSource + "/policies/scenarios/policy.tlsp"};
  o.threads = 1;
  tlsp::CompileResult r = tlsp::compile(o);
  ASSERT_TRUE(r.table);
  const tlsp::DecisionTable original = tlsp::DecisionTable::from_bytes(tlsp::encode_table(*r.table));
  for (std::string managed : {"acme.example", "vault.example", "other.example"})
    for (std::string client : {"192.0.2.10", "192.0.2.129", "192.0.2.200", "198.51.100.7", "198.51.100.99",
                               "2001:db8:25::9", "2001:db8:26::1", "203.0.113.9", "203.0.114.1", "10.0.0.1"}) {
      tlsp::TableContent mapped = tlsp::sim::map_client_table(*r.table, client, "127.20.3.200", managed);
      const tlsp::DecisionTable t = tlsp::DecisionTable::from_bytes(tlsp::encode_table(mapped));
      const tlsp::Decision a = original.lookup(tlsp::Direction::inbound, managed, client);
      const tlsp::Decision b = t.lookup(tlsp::Direction::inbound, managed, "127.20.3.200");
      EXPECT_EQ(a.level, b.level) << managed << " " << client;
      EXPECT_EQ(a.min_tls, b.min_tls) << managed << " " << client;
      EXPECT_EQ(a.origin, b.origin) << managed << " " << client;
      // Outbound rules and sender-domain rules are untouched.
      EXPECT_EQ(original.lookup(tlsp::Direction::inbound, managed, "partner.example").origin,
                t.lookup(tlsp::Direction::inbound, managed, "partner.example").origin);
      EXPECT_EQ(original.lookup(tlsp::Direction::outbound, managed, "dane-tls12.example").origin,
                t.lookup(tlsp::Direction::outbound, managed, "dane-tls12.example").origin);
    }
}

}  // namespace
