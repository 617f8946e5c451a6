// rollout_test.cpp — the behaviour catalogue, the decision matrix and the
// policy diff (tlsp/rollout.h), and the `tlsp matrix` / `tlsp diff`
// commands with their exit codes.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <fstream>
#include <set>

#include "command.h"
#include "tlsp/compiler.h"
#include "tlsp/rollout.h"

namespace fs = std::filesystem;
using namespace tlsp;

namespace {

DecisionTable compile_file(const std::string& path) {
  CompileOptions o;
  o.inputs = {path};
  CompileResult r = compile(o);
  EXPECT_TRUE(r.table) << render_diagnostics(r);
  return DecisionTable::from_bytes(encode_table(*r.table));
}

DecisionTable compile_text(const std::string& text) {
  std::string tmpl = (fs::temp_directory_path() / "tlsp-rollout-XXXXXX").string();
  fs::path dir = mkdtemp(tmpl.data());
  std::ofstream(dir / "p.tlsp") << text;
  DecisionTable t = compile_file((dir / "p.tlsp").string());
  fs::remove_all(dir);
  return t;
}

using tlsp::testing_support::CommandRun;

CommandRun run(const std::string& args) { return tlsp::testing_support::run_tlsp(args); }

TEST(Behaviours, CatalogueIsLargeAndNamedUniquely) {
  std::set<std::string_view> names;
  size_t outbound = 0, inbound = 0;
  for (const auto& b : behaviour_catalogue()) {
    EXPECT_TRUE(names.insert(b.name).second) << b.name;
    (b.direction == Direction::outbound ? outbound : inbound)++;
    EXPECT_FALSE(b.description.empty());
  }
  EXPECT_GE(outbound, 40u);
  EXPECT_GE(inbound, 5u);
}

const MatrixCell* cell(const MatrixRow& row, std::string_view behaviour) {
  for (const auto& c : row.cells)
    if (c.behaviour->name == behaviour) return &c;
  return nullptr;
}

TEST(Matrix, CoversEveryPointWithTheEngine) {
  DecisionTable t = compile_file(TLSP_SOURCE_DIR "/policies/example.tlsp");
  auto rows = decision_matrix(t);
  // acme.example, acme-mail.example and globex.example: per direction the
  // default peer and every listed peer; plus the default domain's two.
  size_t expected = 0;
  for (const auto& d : t.decode().domains) expected += 2 + d.dir(Direction::outbound).peers.size() + d.dir(Direction::inbound).peers.size();
  EXPECT_EQ(rows.size(), expected + 2);
  bool seen = false;
  for (const auto& r : rows) {
    for (const auto& c : r.cells) {
      EXPECT_EQ(c.behaviour->direction, r.point.direction);
      EXPECT_EQ(c.outcome, decide(r.point.direction, {r.rule.level, r.rule.min_tls}, c.behaviour->facts));
    }
    if (r.point.direction == Direction::outbound && r.point.domain == "acme.example" && r.point.peer == "partner.example") {
      seen = true;
      EXPECT_EQ(r.rule.level, Level::dane_only);
      EXPECT_EQ(cell(r, "no-starttls")->outcome.kind, OutcomeKind::refuse);
      EXPECT_EQ(cell(r, "dane-ee-match")->outcome.channel, Channel::authenticated);
    }
    if (r.point.direction == Direction::outbound && r.point.domain == "acme.example" && r.point.peer == "*.bank.example") {
      EXPECT_EQ(r.rule.level, Level::mta_sts);
    }
  }
  EXPECT_TRUE(seen);
}

TEST(Diff, IdenticalPoliciesDoNotChange) {
  DecisionTable a = compile_file(TLSP_SOURCE_DIR "/policies/example.tlsp");
  DecisionTable b = compile_file(TLSP_SOURCE_DIR "/policies/example.tlsp");
  PolicyDiff d = diff_policies(a, b);
  EXPECT_TRUE(d.changes.empty());
  EXPECT_GT(d.evaluated, 500u);
}

TEST(Diff, ListsExactlyWhatAChangeDoes) {
  const std::string base =
      "policy \"p\" version \"1\";\n"
      "default domain { outbound { default peer { level opportunistic; } } }\n"
      "domain \"a.example\" { outbound { peer \"p.example\" { level LEVEL; } } }\n";
  auto with = [&](const std::string& level) {
    std::string s = base;
    s.replace(s.find("LEVEL"), 5, level);
    return compile_text(s);
  };
  DecisionTable old_t = with("mandatory");
  DecisionTable new_t = with("dane-only");
  PolicyDiff d = diff_policies(old_t, new_t);
  ASSERT_FALSE(d.changes.empty());
  for (const auto& c : d.changes) {
    EXPECT_EQ(c.point.domain, "a.example");
    EXPECT_EQ(c.point.peer, "p.example");
    EXPECT_EQ(c.old_rule.level, Level::mandatory);
    EXPECT_EQ(c.new_rule.level, Level::dane_only);
  }
  // A modern peer without DANE: mandatory delivers, dane-only refuses.
  bool modern = false;
  for (const auto& c : d.changes)
    if (c.behaviour->name == "modern") {
      modern = true;
      EXPECT_EQ(c.old_outcome.kind, OutcomeKind::deliver);
      EXPECT_EQ(c.new_outcome.kind, OutcomeKind::refuse);
    }
  EXPECT_TRUE(modern);
  // A peer only one side lists is compared against the other side's rule.
  DecisionTable removed = compile_text(
      "policy \"p\" version \"2\";\n"
      "default domain { outbound { default peer { level opportunistic; } } }\n"
      "domain \"a.example\" { }\n");
  PolicyDiff d2 = diff_policies(old_t, removed);
  ASSERT_FALSE(d2.changes.empty());
  EXPECT_EQ(d2.changes.front().new_rule.match, MatchKind::default_peer);
}

TEST(Commands, DiffExitCodesAndMatrixFormats) {
  CommandRun same = run("diff policies/example.tlsp policies/example.tlsp");
  EXPECT_EQ(same.code, 0) << same.out;
  EXPECT_NE(same.out.find("no change"), std::string::npos) << same.out;
  CommandRun changed = run("diff policies/example.tlsp policies/scenarios/policy.tlsp");
  EXPECT_EQ(changed.code, 3) << changed.out;
  CommandRun json = run("diff --json policies/example.tlsp policies/scenarios/policy.tlsp");
  EXPECT_EQ(json.code, 3);
  EXPECT_NE(json.out.find("\"summary\""), std::string::npos);
  CommandRun bad = run("diff policies/example.tlsp policies/errors/duplicate_domain.tlsp");
  EXPECT_EQ(bad.code, 1) << bad.out;

  CommandRun text = run("matrix --policy policies/example.tlsp");
  EXPECT_EQ(text.code, 0) << text.out;
  EXPECT_NE(text.out.find("outbound acme.example <-> partner.example"), std::string::npos);
  CommandRun csv = run("simulate --matrix --policy policies/example.tlsp --csv");
  EXPECT_EQ(csv.code, 0) << csv.out;
  EXPECT_EQ(csv.out.rfind("direction,domain,peer,level,min_tls,source,behaviour,outcome", 0), 0u) << csv.out.substr(0, 200);
  CommandRun js = run("matrix --policy policies/example.tlsp --json");
  EXPECT_EQ(js.code, 0);
  EXPECT_NE(js.out.find("\"rows\""), std::string::npos);
}

// Issue 10: diff --json and matrix --json wrote outcomes without
// `last_resort` (simulate --json had it): every command writes an outcome
// the same way, and the plaintext retry after a broken handshake says it
// may be used only when no other host delivers (SPEC §4).
TEST(Commands, EveryJsonOutcomeSaysWhetherItIsALastResort) {
  const std::vector<std::string> keys = {"outcome", "channel", "applied", "tls", "reason", "last_resort"};
  auto keys_of = [](const nlohmann::ordered_json& o) {
    std::vector<std::string> k;
    for (auto it = o.begin(); it != o.end(); ++it) k.push_back(it.key());
    return k;
  };
  CommandRun js = run("matrix --policy policies/example.tlsp --json");
  ASSERT_EQ(js.code, 0) << js.out;
  nlohmann::ordered_json m = nlohmann::ordered_json::parse(js.out);
  bool seen_last_resort = false;
  for (const auto& row : m["rows"])
    for (auto it = row["outcomes"].begin(); it != row["outcomes"].end(); ++it) {
      EXPECT_EQ(keys_of(*it), keys) << it.key();
      if (it.key() == "handshake-failure" && row["level"] == "opportunistic") {
        EXPECT_EQ((*it)["last_resort"], true) << row.dump();
        seen_last_resort = true;
      }
    }
  EXPECT_TRUE(seen_last_resort) << "example.tlsp has an opportunistic outbound point";

  CommandRun diff = run("diff --json policies/example.tlsp policies/scenarios/policy.tlsp");
  ASSERT_EQ(diff.code, 3) << diff.out;
  nlohmann::ordered_json d = nlohmann::ordered_json::parse(diff.out);
  ASSERT_FALSE(d["changes"].empty()) << diff.out.substr(0, 500);
  for (const auto& c : d["changes"]) {
    EXPECT_EQ(keys_of(c["old"]), keys) << c.dump();
    EXPECT_EQ(keys_of(c["new"]), keys) << c.dump();
  }
}

}  // namespace

// A FIFO named where a table or a policy may stand is refused at once:
// peeking at its first bytes for the table's magic must not wait for a
// writer (issue 9); a hang would fail on the test timeout.
TEST(Commands, DiffRefusesAFifoWithoutBlocking) {
  std::string tmpl = (fs::temp_directory_path() / "tlsp-fifo-XXXXXX").string();
  const fs::path dir = mkdtemp(tmpl.data());
  const std::string fifo = (dir / "old.tlspdt").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  CommandRun r = run("diff '" + fifo + "' policies/example.tlsp");
  fs::remove_all(dir);
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("not a regular file"), std::string::npos) << r.out;
}
