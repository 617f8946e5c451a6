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

#include "test_support.h"
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

struct CommandRun {
  std::string out;
  int code = -1;
};

CommandRun run(const std::string& args) {
  std::string cmd = "cd '" TLSP_SOURCE_DIR "' && '" TLSP_BINARY "' " + args + " 2>&1";
  CommandRun r;
  FILE* p = popen(cmd.c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

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

// Issue 10: the command line's contract, the same for every command. Usage
// errors say what the user typed wrong in their words (never an internal
// option name such as `--policy` for a positional argument) and end with the
// usage line; exit codes are README's: 0 success, 1 errors in the input (a
// refused table), 2 bad usage or an input that cannot be read.
namespace {

bool has(const CommandRun& r, const std::string& text) {
  return r.out.find(text) != std::string::npos;
}

}  // namespace

TEST(CommandLine, MissingPositionalNamesWhatTheUserLeftOut) {
  CommandRun check = run("check");
  EXPECT_EQ(check.code, 2) << check.out;
  EXPECT_TRUE(has(check, "tlsp check: no policy file given\nusage: tlsp check POLICY...")) << check.out;
  EXPECT_FALSE(has(check, "--policy")) << check.out;

  CommandRun diff = run("diff policies/example.tlsp");
  EXPECT_EQ(diff.code, 2) << diff.out;
  EXPECT_TRUE(has(diff, "tlsp diff: no NEW policy given\nusage: tlsp diff OLD NEW")) << diff.out;
  EXPECT_FALSE(has(diff, "--new")) << diff.out;

  CommandRun inspect = run("inspect");
  EXPECT_EQ(inspect.code, 2) << inspect.out;
  EXPECT_TRUE(has(inspect, "tlsp inspect: no table file given")) << inspect.out;
  EXPECT_FALSE(has(inspect, "--table")) << inspect.out;

  CommandRun compile = run("compile -o /dev/null");
  EXPECT_EQ(compile.code, 2) << compile.out;
  EXPECT_TRUE(has(compile, "tlsp compile: no policy file given")) << compile.out;

  CommandRun simulate = run("simulate --policy policies/example.tlsp");
  EXPECT_EQ(simulate.code, 2) << simulate.out;
  EXPECT_TRUE(has(simulate, "tlsp simulate: no scenario file or directory given")) << simulate.out;
  EXPECT_FALSE(has(simulate, "--scenarios")) << simulate.out;
}

TEST(CommandLine, OtherUsageErrorsAreWordedForTheUser) {
  CommandRun many = run("inspect a.tlspdt b.tlspdt");
  EXPECT_EQ(many.code, 2) << many.out;
  EXPECT_TRUE(has(many, "tlsp inspect: too many arguments\nusage: tlsp inspect TABLE")) << many.out;
  CommandRun many_diff = run("diff a b c");
  EXPECT_EQ(many_diff.code, 2) << many_diff.out;
  EXPECT_TRUE(has(many_diff, "tlsp diff: too many arguments")) << many_diff.out;

  CommandRun unknown = run("check --frobnicate policies/example.tlsp");
  EXPECT_EQ(unknown.code, 2) << unknown.out;
  EXPECT_TRUE(has(unknown, "tlsp check: unknown option `--frobnicate`\nusage: tlsp check")) << unknown.out;

  CommandRun value = run("compile policies/example.tlsp -o");
  EXPECT_EQ(value.code, 2) << value.out;
  EXPECT_TRUE(has(value, "tlsp compile: ")) << value.out;
  EXPECT_TRUE(has(value, "usage: tlsp compile")) << value.out;

  CommandRun required = run("explain --table x --domain a.example --peer b.example");
  EXPECT_EQ(required.code, 2) << required.out;
  EXPECT_TRUE(has(required, "tlsp explain: --direction is required")) << required.out;
}

// A name no table can hold got the default rule silently; it is a usage
// error naming the problem (tlsp/base/domain_name.h), and valid names and
// addresses still work.
TEST(CommandLine, ExplainRefusesNamesThatAreNotDomainNames) {
  const std::string base = "explain --policy policies/example.tlsp --direction outbound ";
  CommandRun empty_label = run(base + "--domain acme.example --peer 'bad..name'");
  EXPECT_EQ(empty_label.code, 2) << empty_label.out;
  EXPECT_TRUE(has(empty_label, "tlsp: error: --peer `bad..name` is not a valid domain name: empty label in domain name "
                               "`bad..name`"))
      << empty_label.out;
  CommandRun ulabel = run(base + "--domain acme.example --peer 'b\xc3\xbc" "cher.example'");
  EXPECT_EQ(ulabel.code, 2) << ulabel.out;
  EXPECT_TRUE(has(ulabel, "help: did you mean `xn--bcher-kva.example`?")) << ulabel.out;
  for (const std::string peer : {"a_b.example", "-a.example", "xn--a.example", "192.0.2.300"}) {
    CommandRun r = run(base + "--domain acme.example --peer '" + peer + "'");
    EXPECT_EQ(r.code, 2) << peer << "\n" << r.out;
    EXPECT_TRUE(has(r, "--peer `" + peer + "` is not a valid domain name")) << r.out;
  }
  CommandRun domain = run(base + "--domain 'acme..example' --peer partner.example");
  EXPECT_EQ(domain.code, 2) << domain.out;
  EXPECT_TRUE(has(domain, "--domain `acme..example` is not a valid domain name")) << domain.out;
  for (const std::string peer : {"Partner.Example.", "192.0.2.1", "2001:db8::1"}) {
    CommandRun ok = run(base + "--domain acme.example --peer '" + peer + "'");
    EXPECT_EQ(ok.code, 0) << peer << "\n" << ok.out;
  }
}

TEST(CommandLine, AnInputThatCannotBeReadIsExitTwoEverywhere) {
  for (const std::string args :
       {"inspect nosuch.tlspdt", "check nosuch.tlsp", "compile nosuch.tlsp -o /tmp/tlsp-never-written",
        "explain --table nosuch.tlspdt --direction outbound --domain a.example --peer b.example",
        "simulate --table nosuch.tlspdt policies/scenarios", "diff nosuch.tlsp policies/example.tlsp",
        "diff policies/example.tlsp nosuch.tlsp", "matrix --table nosuch.tlspdt", "matrix --policy nosuch.tlsp",
        "decide nosuch.jsonl"}) {
    CommandRun r = run(args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.out;
    EXPECT_TRUE(has(r, "nosuch")) << args << "\n" << r.out;
  }
}

TEST(CommandLine, ATableThatIsReadAndRefusedIsExitOne) {
  std::string tmpl = (fs::temp_directory_path() / "tlsp-cli-XXXXXX").string();
  const fs::path dir = mkdtemp(tmpl.data());
  std::ofstream(dir / "bad.tlspdt") << "this is not a decision table\n";
  const std::string bad = "'" + (dir / "bad.tlspdt").string() + "'";
  CommandRun inspect = run("inspect " + bad);
  CommandRun explain = run("explain --table " + bad + " --direction outbound --domain a.example --peer b.example");
  fs::remove_all(dir);
  EXPECT_EQ(inspect.code, 1) << inspect.out;
  EXPECT_TRUE(has(inspect, "not a tlsp decision table")) << inspect.out;
  EXPECT_EQ(explain.code, 1) << explain.out;
}

// `tlsp compile -o` writes through tlsp/base/atomic_file.h: when the write
// fails (the file size limit here, which holds for root, as a read-only
// directory does not), it says which table it could not write and why,
// exits 2, and the table that was there is whole and no temporary file
// is left.
TEST(CommandLine, CompileThatCannotWriteKeepsTheOldTable) {
  const tlsp::testing_support::TempDir dir("tlsp-cli");
  const std::string policy = dir.write("p.tlsp", "policy \"p\" version \"1\";\n"
                                                 "domain \"a.example\" { outbound { default peer { level mandatory; } } }\n");
  const std::string table = dir.file("p.tlspdt");
  ASSERT_EQ(run("compile '" + policy + "' -o '" + table + "'").code, 0);
  const DecisionTable before = DecisionTable::open(table);
  dir.write("p.tlsp", "policy \"p\" version \"2\";\n"
                      "domain \"b.example\" { outbound { default peer { level mandatory; } } }\n");
  CommandRun r;
  {
    const tlsp::testing_support::FileSizeLimit limit(0);
    r = run("compile '" + policy + "' -o '" + table + "'");
  }
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_TRUE(has(r, "tlsp: error: cannot write `" + table + "`: File too large")) << r.out;
  EXPECT_EQ(DecisionTable::open(table).decode(), before.decode());
  EXPECT_EQ(tlsp::testing_support::directory_names(dir.path()), (std::vector<std::string>{"p.tlsp", "p.tlspdt"}));
  CommandRun under_file = run("compile '" + policy + "' -o '" + policy + "/t.tlspdt'");
  EXPECT_EQ(under_file.code, 2) << under_file.out;
  EXPECT_TRUE(has(under_file, "cannot create a temporary file for `" + policy + "/t.tlspdt`: Not a directory"))
      << under_file.out;
}

TEST(CommandLine, HelpAndVersion) {
  CommandRun top = run("help");
  EXPECT_EQ(top.code, 0) << top.out;
  EXPECT_TRUE(has(top, "usage: tlsp <command> [options]")) << top.out;
  CommandRun help = run("help check");
  CommandRun flag = run("check --help");
  EXPECT_EQ(help.code, 0) << help.out;
  EXPECT_TRUE(has(help, "usage: tlsp check POLICY...")) << help.out;
  EXPECT_EQ(help.out, flag.out);
  CommandRun nosuch = run("help frobnicate");
  EXPECT_EQ(nosuch.code, 2) << nosuch.out;
  EXPECT_TRUE(has(nosuch, "unknown command `frobnicate`")) << nosuch.out;

  for (const std::string v : {"--version", "-V"}) {
    CommandRun r = run(v);
    EXPECT_EQ(r.code, 0) << r.out;
    EXPECT_EQ(r.out, "tlsp " TLSP_VERSION "\n");
  }
}

TEST(CommandLine, ConflictingFlagsAreAnError) {
  CommandRun r = run("matrix --policy policies/example.tlsp --csv --json");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_TRUE(has(r, "--csv and --json cannot be used together")) << r.out;
  CommandRun sim = run("simulate --matrix --policy policies/example.tlsp --json --csv");
  EXPECT_EQ(sim.code, 2) << sim.out;
}

// `tlsp check -` and `tlsp compile -`: standard input is read by the CLI
// (the compiler reads regular files only) and shown as `<stdin>`; its
// includes resolve relative to the cwd (here the source tree).
TEST(CommandLine, PolicyFromStandardInput) {
  std::string tmpl = (fs::temp_directory_path() / "tlsp-stdin-XXXXXX").string();
  const fs::path dir = mkdtemp(tmpl.data());
  const std::string head =
      "policy \"stdin\" version \"1\";\n"
      "default domain { outbound { default peer { level opportunistic; } } inbound { default peer { level "
      "opportunistic; } } }\n";
  auto file = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
    return "'" + (dir / name).string() + "'";
  };
  const std::string clean = file("clean.tlsp", head);
  const std::string twice = file("twice.tlsp", head + "domain \"a.example\" { }\ndomain \"a.example\" { }\n");
  const std::string included = file("included.tlsp", head + "include \"policies/tenants/globex.tlsp\";\n");
  const std::string missing = file("missing.tlsp", head + "include \"nosuch-from-cwd.tlsp\";\n");
  CommandRun ok = run("check - < " + clean);
  CommandRun piped = run("compile - -o - --format json < " + clean);
  CommandRun bad = run("check - < " + twice);
  CommandRun with_include = run("check - < " + included);
  CommandRun no_include = run("check - < " + missing);
  fs::remove_all(dir);

  EXPECT_EQ(ok.code, 0) << ok.out;
  EXPECT_EQ(ok.out, "");
  EXPECT_EQ(piped.code, 0) << piped.out.substr(0, 300);
  EXPECT_TRUE(has(piped, "<stdin>")) << piped.out.substr(0, 300);
  EXPECT_EQ(bad.code, 1) << bad.out;
  EXPECT_EQ(bad.out.rfind("<stdin>:4:", 0), 0u) << bad.out;
  EXPECT_TRUE(has(bad, "E0201")) << bad.out;
  // Includes resolve from the cwd (the source tree here), not from where
  // the text came from.
  EXPECT_EQ(with_include.code, 0) << with_include.out;
  EXPECT_EQ(no_include.code, 1) << no_include.out;
  EXPECT_TRUE(has(no_include, "<stdin>:3:9: error: include `nosuch-from-cwd.tlsp` matches no file")) << no_include.out;
  EXPECT_TRUE(has(no_include, "(`.`)")) << no_include.out;

  // Bounded like a file: one byte past the per-file limit is refused.
  CommandRun big = run("check - < /dev/zero");
  EXPECT_EQ(big.code, 2) << big.out.substr(0, 300);
  EXPECT_TRUE(has(big, "cannot read `<stdin>`: it is larger than the limit of 8 MiB per file [E0306]"))
      << big.out.substr(0, 300);
}
