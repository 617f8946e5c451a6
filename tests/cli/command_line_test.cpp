// command_line_test.cpp — the `tlsp` command line's contract, the same for
// every command, run as the real binary: usage errors worded for the user,
// the exit codes of the README (0, 1, 2, and 70 for our own bugs), help and
// version, standard input, and the compiler's dump points.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "command.h"
#include "internal_error.h"
#include "test_support.h"
#include "tlsp/decision_table.h"

namespace fs = std::filesystem;
using tlsp::DecisionTable;
using tlsp::testing_support::CommandRun;

namespace {

CommandRun run(const std::string& args) { return tlsp::testing_support::run_tlsp(args); }

}  // namespace

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
  // The JSON form and a dump to a file are written the same way.
  const std::string json = dir.write("p.json", "old");
  for (const std::string args : {"--format json", "--dump ir"}) {
    CommandRun j;
    {
      const tlsp::testing_support::FileSizeLimit limit(0);
      j = run("compile '" + policy + "' " + args + " -o '" + json + "'");
    }
    EXPECT_EQ(j.code, 2) << args << ": " << j.out;
    EXPECT_TRUE(has(j, "tlsp: error: cannot write `" + json + "`: File too large")) << args << ": " << j.out;
    std::ifstream in(json);
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()), "old") << args;
  }
  std::filesystem::remove(json);
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

// `tlsp compile --dump STAGE` stops after that stage and prints the program
// as it is there: the syntax tree still names its includes and every
// setting's position, the IR has the files' peers lowered (no include left),
// and the table is what `tlsp inspect --json` reads back from the file that
// `tlsp compile -o` writes. No table is written.
TEST(CompileDump, EachStageShowsTheProgramAsItIsThere) {
  tlsp::testing_support::TempDir dir("tlsp-dump");
  CommandRun ast = run("compile policies/example.tlsp --dump ast");
  ASSERT_EQ(ast.code, 0) << ast.out;
  EXPECT_EQ(ast.out.rfind("file 0 \"policies/example.tlsp\"\n  policy 4:1 \"acme-gateway\"", 0), 0u) << ast.out;
  EXPECT_TRUE(has(ast, "  include 5:1 \"tenants/*.tlsp\"\n")) << ast.out;
  EXPECT_TRUE(has(ast, "        level 9:29 opportunistic\n")) << ast.out;

  CommandRun ir = run("compile policies/example.tlsp --dump ir");
  ASSERT_EQ(ir.code, 0) << ir.out;
  EXPECT_FALSE(has(ir, "include")) << ir.out;
  EXPECT_TRUE(has(ir, "peer 16:10 \"partner.example\": level dane-only 16:31, min_tls tls1.2 16:48\n")) << ir.out;
  EXPECT_NE(ast.out, ir.out);

  const std::string table = dir.file("example.tlspdt");
  CommandRun dump = run("compile policies/example.tlsp --dump table");
  CommandRun written = run("compile policies/example.tlsp -o '" + table + "'");
  CommandRun inspected = run("inspect '" + table + "' --json");
  ASSERT_EQ(dump.code, 0) << dump.out;
  ASSERT_EQ(written.code, 0) << written.out;
  EXPECT_TRUE(has(dump, "\"name\": \"acme-gateway\"")) << dump.out.substr(0, 300);
  EXPECT_EQ(dump.out, inspected.out);

  // To a file with -o: the dump, not a table.
  const std::string to_file = dir.file("ir.txt");
  ASSERT_EQ(run("compile policies/example.tlsp --dump ir -o '" + to_file + "'").code, 0);
  std::ifstream in(to_file);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()), ir.out);
}

// A stage with errors prints its diagnostics and no dump (exit 1); a stage's
// dump holds only what that stage checked: a domain given twice is a check
// across files, after the IR, so --dump ir still shows the program.
TEST(CompileDump, ErrorsComeInsteadOfTheDump) {
  tlsp::testing_support::TempDir dir("tlsp-dump");
  const std::string head =
      "policy \"dump\" version \"1\";\n"
      "default domain { outbound { default peer { level opportunistic; } } inbound { default peer { level "
      "opportunistic; } } }\n";
  const std::string syntax = dir.write("syntax.tlsp", head + "domain \"a.example\" { outbound { peer x } }\n");
  const std::string twice = dir.write("twice.tlsp", head + "domain \"a.example\" { }\ndomain \"a.example\" { }\n");
  for (const char* stage : {"ast", "ir", "table"}) {
    std::string err;
    CommandRun r = tlsp::testing_support::run_tlsp(std::string("compile '") + syntax + "' --dump " + stage, err);
    EXPECT_EQ(r.code, 1) << stage << ": " << err;
    EXPECT_EQ(r.out, "") << stage;
    EXPECT_NE(err.find("syntax.tlsp:3:"), std::string::npos) << stage << ": " << err;
  }
  std::string err;
  CommandRun ir = tlsp::testing_support::run_tlsp("compile '" + twice + "' --dump ir", err);
  EXPECT_EQ(ir.code, 0) << err;
  EXPECT_NE(ir.out.find("domain 3:1 \"a.example\""), std::string::npos) << ir.out;
  CommandRun table = tlsp::testing_support::run_tlsp("compile '" + twice + "' --dump table", err);
  EXPECT_EQ(table.code, 1) << err;
  EXPECT_EQ(table.out, "");
  EXPECT_NE(err.find("E0201"), std::string::npos) << err;
}

TEST(CompileDump, UsageMistakes) {
  struct Case {
    std::string args, says;
  };
  for (const Case& c : {Case{"--dump tokens", "unknown --dump `tokens` (ast, ir or table)"},
                        Case{"--dump ast --format json", "--dump and --format cannot be used together"},
                        Case{"", "no table file given: -o TABLE (or --dump ast|ir|table)"}}) {
    CommandRun r = run("compile policies/example.tlsp " + c.args);
    EXPECT_EQ(r.code, 2) << c.args << ": " << r.out;
    EXPECT_TRUE(has(r, c.says)) << c.args << ": " << r.out;
  }
  CommandRun help = run("help compile");
  EXPECT_EQ(help.code, 0);
  EXPECT_TRUE(has(help, "--dump")) << help.out;
}

// Our own bug is neither a user's mistake (1) nor bad usage (2): a broken
// invariant prints where it broke and asks for a report, with exit code 70
// (EX_SOFTWARE), and output written so far is flushed first.
TEST(InternalError, AnAssertionThatFailsExitsSeventyAndSaysWhere) {
  EXPECT_EXIT(
      {
        std::fputs("partial output", stdout);
        TLSP_ASSERT(1 + 1 == 3, "arithmetic holds");
      },
      ::testing::ExitedWithCode(70),
      "^tlsp: internal error: `1 \\+ 1 == 3` does not hold: arithmetic holds at .*command_line_test\\.cpp:[0-9]+ "
      "\\(please report\\)\n$");
  TLSP_ASSERT(1 + 1 == 2, "arithmetic holds");  // a condition that holds costs nothing and says nothing
  CommandRun help = run("--help");
  EXPECT_TRUE(has(help, "70 internal error")) << help.out;
}

// Every document a command's help points to exists in the tree: `tlsp
// decide --help` named docs/decide.md, which never did (issue 10).
TEST(CommandLine, HelpPointsOnlyToDocumentsThatExist) {
  size_t named = 0;
  for (const char* command : {"check", "compile", "explain", "inspect", "decide", "diff", "matrix", "simulate",
                              "relay"}) {
    CommandRun help = run(std::string("help ") + command);
    EXPECT_EQ(help.code, 0) << command << ": " << help.out;
    for (size_t at = help.out.find("docs/"); at != std::string::npos; at = help.out.find("docs/", at + 1)) {
      size_t end = at;
      while (end < help.out.size() && (std::isalnum(static_cast<unsigned char>(help.out[end])) ||
                                       std::string_view("/._-").find(help.out[end]) != std::string_view::npos))
        ++end;
      std::string doc = help.out.substr(at, end - at);
      while (!doc.empty() && doc.back() == '.') doc.pop_back();  // the end of a sentence
      ++named;
      EXPECT_TRUE(fs::is_regular_file(fs::path(TLSP_SOURCE_DIR) / doc)) << command << " names " << doc;
    }
  }
  EXPECT_GE(named, 1u);
}
