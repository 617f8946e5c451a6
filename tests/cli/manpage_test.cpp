// manpage_test.cpp — the man pages the build made (build/man, by `tlsp
// manpage` from docs/man/*.in) say what the program says: every setting of
// `tlsp relay --help` is in tlsp.conf(5) with the same help and default,
// every command of `tlsp --help` is in tlsp(1) with its synopsis; and every
// page renders without a single warning from groff (a broken page does
// warn, so the check can fail).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <regex>

#include "command.h"
#include "tlsp/policy_model.h"
#include "test_support.h"

namespace fs = std::filesystem;
using tlsp::testing_support::CommandRun;
using tlsp::testing_support::run_shell;
using tlsp::testing_support::run_tlsp;

namespace {

const char* const kPages[] = {"tlsp.1", "tlsp-relay.8", "tlsp.conf.5", "tlsp-policy.5"};

std::string page_path(const std::string& page) {
  return (fs::path(TLSP_BINARY).parent_path() / "man" / page).string();
}

// What groff and man say about a page beyond the page itself: nothing,
// for a good page. groff with every warning on (-ww), and man(1) as a
// reader runs it.
std::string page_warnings(const std::string& path) {
  CommandRun groff = run_shell("groff -man -ww -z '" + path + "' 2>&1");
  CommandRun man = run_shell("MANWIDTH=80 man --warnings -l '" + path + "' 2>&1 >/dev/null");
  std::string out = groff.out + man.out;
  if (groff.code != 0) out += "groff exited " + std::to_string(groff.code) + "\n";
  if (man.code != 0) out += "man exited " + std::to_string(man.code) + "\n";
  return out;
}

// The page as plain text, every run of white space one space: lines as
// long as a paragraph, so that nothing is broken or hyphenated.
std::string rendered(const std::string& path) {
  CommandRun r = run_shell("groff -man -Tascii -P-cbou -rLL=2000n '" + path + "' 2>/dev/null");
  EXPECT_EQ(r.code, 0) << path;
  std::string out;
  for (char c : r.out) {
    const bool space = c == ' ' || c == '\n' || c == '\t';
    if (space && (out.empty() || out.back() == ' ')) continue;
    out += space ? ' ' : c;
  }
  return out;
}

std::string collapsed(const std::string& text) {
  std::string out;
  for (char c : text) {
    const bool space = c == ' ' || c == '\n' || c == '\t';
    if (space && (out.empty() || out.back() == ' ')) continue;
    out += space ? ' ' : c;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// Text without any white space: Boost breaks a help line at a space it
// may drop, or inside a word, and groff fills lines its own way.
std::string squeezed(const std::string& text) {
  std::string out;
  for (char c : text)
    if (c != ' ' && c != '\n' && c != '\t') out += c;
  return out;
}

// The entries of a Boost --help after `from`: "--name VALUE  help..."
// with its continuation lines, each joined into one line.
std::vector<std::string> help_entries(const std::string& help, const std::string& from) {
  std::vector<std::string> entries;
  std::istringstream in(help.substr(help.find(from)));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("  --", 0) == 0)
      entries.push_back(line);
    else if (line.rfind("      ", 0) == 0 && !entries.empty())
      entries.back() += " " + line;
  }
  for (std::string& e : entries) e = collapsed(e);
  return entries;
}

}  // namespace

TEST(ManPages, EveryPageRendersWithoutAWarning) {
  for (const char* page : kPages) {
    ASSERT_TRUE(fs::is_regular_file(page_path(page))) << page_path(page) << " was not built";
    EXPECT_EQ(page_warnings(page_path(page)), "") << page;
    EXPECT_TRUE(fs::is_regular_file(page_path(page) + ".gz")) << page;
  }
}

// The check above can fail: a page with an unknown macro and a bad font
// escape is warned about.
TEST(ManPages, ABrokenPageIsWarnedAbout) {
  tlsp::testing_support::TempDir dir("tlsp-man");
  std::ifstream in(page_path("tlsp.1"));
  std::stringstream text;
  text << in.rdbuf();
  for (const std::string broken : {".XY not a macro\n", "text \\fQ in no font\n", ".TP\n"}) {
    const std::string path = dir.path() + "/broken.1";
    std::ofstream(path, std::ios::trunc) << text.str() << ".SH BROKEN\n" << broken;
    EXPECT_NE(page_warnings(path), "") << broken;
  }
}

// tlsp.conf(5) has every setting `tlsp relay --help` lists, with the same
// value, help text and default: both come from the one table.
TEST(ManPages, TlspConfHasEverySettingWithItsDefault) {
  const CommandRun help = run_tlsp("relay --help");
  ASSERT_EQ(help.code, 0) << help.out;
  const std::string man = rendered(page_path("tlsp.conf.5"));
  size_t settings = 0, defaults = 0;
  for (const std::string& entry : help_entries(help.out, "settings: ")) {
    // "--idle-timeout DURATION read one whole ... (default 5m)" is written
    // in the page as "idle-timeout = DURATION read one whole ... (default 5m)".
    const size_t space = entry.find(' ');
    ASSERT_NE(space, std::string::npos) << entry;
    const std::string in_page = entry.substr(2, space - 2) + " = " + entry.substr(space + 1);
    EXPECT_NE(squeezed(man).find(squeezed(in_page)), std::string::npos) << "tlsp.conf(5) lacks: " << in_page;
    ++settings;
    if (entry.find("default") != std::string::npos) ++defaults;
  }
  EXPECT_GE(settings, 40u) << help.out;
  EXPECT_GE(defaults, 35u) << help.out;
  EXPECT_NE(man.find("(default 5m)"), std::string::npos);
}

// tlsp(1) has every command of `tlsp --help`, with its summary and its
// synopsis, and the options of each.
TEST(ManPages, TlspHasEveryCommand) {
  const CommandRun top = run_tlsp("--help");
  ASSERT_EQ(top.code, 0) << top.out;
  const std::string man = rendered(page_path("tlsp.1"));
  std::istringstream in(top.out.substr(top.out.find("commands:\n") + 10));
  size_t commands = 0;
  for (std::string line; std::getline(in, line) && !line.empty();) {
    std::istringstream words(line);
    std::string name;
    words >> name;
    std::string summary;
    std::getline(words, summary);
    summary = collapsed(summary);
    ++commands;
    EXPECT_NE(man.find("tlsp " + name + " "), std::string::npos) << name;
    EXPECT_NE(man.find("tlsp " + name + " -- " + summary), std::string::npos) << name << ": " << summary;
    const CommandRun help = run_tlsp("help " + name);
    ASSERT_EQ(help.code, 0) << help.out;
    const std::string usage = help.out.substr(0, help.out.find('\n'));  // "usage: tlsp NAME SYNOPSIS"
    if (help.out.find("(each with ") != std::string::npos) {
      // A command of operations (`usage: tlsp queue list [--json] | show
      // ID | ...`): each operation's own usage is in the page.
      std::string all = collapsed(help.out.substr(0, help.out.find("(each with ")));
      all = all.substr(all.find(name) + name.size() + 1);
      std::set<std::string> ops;
      for (size_t at = 0; at < all.size();) {
        const size_t bar = all.find(" | ", at);
        if (all[at] >= 'a' && all[at] <= 'z') ops.insert(all.substr(at, all.find(' ', at) - at));
        if (bar == std::string::npos) break;
        at = bar + 3;
      }
      EXPECT_GE(ops.size(), 1u) << usage;  // `tlsrpt` has one operation so far (send)
      for (const std::string& op : ops) {
        const CommandRun op_help = run_tlsp(name + " " + op + " --help");
        ASSERT_EQ(op_help.code, 0) << name << " " << op << ": " << op_help.out;
        const std::string op_usage = op_help.out.substr(0, op_help.out.find('\n'));
        EXPECT_NE(man.find(collapsed(op_usage.substr(7))), std::string::npos) << op_usage;
      }
      continue;
    }
    EXPECT_NE(man.find(collapsed(usage.substr(7))), std::string::npos) << usage;
    // The relay's settings are in tlsp.conf(5), checked above.
    // Positional arguments are in the synopsis, not options (their
    // internal option names are never shown).
    for (const std::string& entry : help_entries(help.out.substr(0, help.out.find("settings: ")), "options")) {
      if (entry.find("positional") != std::string::npos) continue;
      const std::string flag = entry.substr(0, entry.find(' '));
      EXPECT_NE(man.find(flag), std::string::npos) << name << " " << flag << " in: " << entry;
    }
  }
  EXPECT_GE(commands, 10u) << top.out;
}

// tlsp-policy(5) is written by hand, so it is held to the language itself:
// every keyword of the grammar (grammar/TlsPolicy.g4, `NAME : 'word' ;`),
// every level and every TLS version the engine spells (policy_model.h) is
// in the page. A keyword added to the language without a word in its
// manual fails here.
TEST(ManPages, TlspPolicyHasEveryKeywordLevelAndVersion) {
  const std::string man = " " + rendered(page_path("tlsp-policy.5")) + " ";
  std::ifstream grammar(std::string(TLSP_SOURCE_DIR) + "/grammar/TlsPolicy.g4");
  ASSERT_TRUE(grammar) << "grammar/TlsPolicy.g4";
  const std::regex keyword(R"(^[A-Z_]+\s*:\s*'([a-z][a-z_-]*)'\s*;)");
  std::vector<std::string> words;
  for (std::string line; std::getline(grammar, line);)
    if (std::smatch m; std::regex_search(line, m, keyword)) words.push_back(m[1]);
  EXPECT_GE(words.size(), 10u) << "the grammar's keywords were not found";
  for (std::string_view w : tlsp::kLevelNames) words.emplace_back(w);
  for (std::string_view w : tlsp::kMinTlsNames) words.emplace_back(w);
  for (const std::string& w : words) {
    const std::regex as_word("[^a-z0-9_.-]" + std::regex_replace(w, std::regex(R"([.])"), R"(\.)") + "[^a-z0-9_-]");
    EXPECT_TRUE(std::regex_search(man, as_word)) << "tlsp-policy(5) never names `" << w << "`";
  }
}
