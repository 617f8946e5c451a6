// completion_test.cpp — `tlsp completion bash`, run for real: the script is
// sourced in bash (with bash-completion loaded, as an installed system has
// it, and without), and its function is called with COMP_WORDS and
// COMP_CWORD as readline would set them for a TAB.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "command.h"
#include "test_support.h"

namespace fs = std::filesystem;
using tlsp::testing_support::CommandRun;

namespace {

class Completion : public ::testing::Test {
 protected:
  void SetUp() override {
    CommandRun script = tlsp::testing_support::run_tlsp("completion bash");
    ASSERT_EQ(script.code, 0) << script.out;
    std::ofstream(dir_.path() + "/tlsp.bash") << script.out;
    // What file and directory names there are to complete.
    std::ofstream(dir_.path() + "/relay.conf") << "\n";
    std::ofstream(dir_.path() + "/policy.tlsp") << "\n";
    std::ofstream(dir_.path() + "/spool.txt") << "\n";
    fs::create_directory(dir_.path() + "/spooldir");
    std::ofstream(dir_.path() + "/driver.sh")
        << "[ \"$1\" = with-bash-completion ] && source /usr/share/bash-completion/bash_completion\n"
        << "shift\n"
        << "source ./tlsp.bash\n"
        << "COMP_WORDS=(\"$@\")\n"
        << "COMP_CWORD=$(($# - 1))\n"
        << "COMP_LINE=\"$*\"\n"
        << "COMP_POINT=${#COMP_LINE}\n"
        << "_tlsp\n"
        << "printf '%s\\n' \"${COMPREPLY[@]}\" | sort\n";
  }

  // What TAB offers after `words` (the last is the word being completed).
  std::vector<std::string> complete(const std::vector<std::string>& words, bool bash_completion = true) {
    std::string args;
    for (const std::string& w : words) args += " '" + w + "'";
    CommandRun r = tlsp::testing_support::run_shell("cd '" + dir_.path() + "' && bash driver.sh " +
                                                    (bash_completion ? "with-bash-completion" : "alone") + args +
                                                    " 2>&1");
    EXPECT_EQ(r.code, 0) << r.out;
    std::vector<std::string> out;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) out.push_back(line);
    return out;
  }

  tlsp::testing_support::TempDir dir_{"tlsp-completion"};
};

using Words = std::vector<std::string>;

}  // namespace

TEST_F(Completion, CommandsAndOptions) {
  for (bool bc : {true, false}) {
    EXPECT_EQ(complete({"tlsp", "rel"}, bc), Words{"relay"});
    EXPECT_EQ(complete({"tlsp", "relay", "--chec"}, bc), Words{"--check-config"});
    EXPECT_EQ(complete({"tlsp", "help", "sim"}, bc), Words{"simulate"});
    EXPECT_EQ(complete({"tlsp", "compile", "--format", ""}, bc), (Words{"binary", "json"}));
    EXPECT_EQ(complete({"tlsp", "compile", "--dump", "i"}, bc), Words{"ir"});
    EXPECT_EQ(complete({"tlsp", "explain", "--direction", "in"}, bc), Words{"inbound"});
    EXPECT_EQ(complete({"tlsp", "completion", ""}, bc), Words{"bash"});
    // File names where the value is a file, directories where it is one,
    // nothing where it is a duration.
    EXPECT_EQ(complete({"tlsp", "relay", "--config", "rel"}, bc), Words{"relay.conf"});
    EXPECT_EQ(complete({"tlsp", "relay", "--config", "=", "rel"}, bc), Words{"relay.conf"});
    EXPECT_EQ(complete({"tlsp", "relay", "--spool", "spool"}, bc), Words{"spooldir"});
    EXPECT_EQ(complete({"tlsp", "relay", "--idle-timeout", ""}, bc), Words{});
    EXPECT_EQ(complete({"tlsp", "check", "pol"}, bc), Words{"policy.tlsp"});
    EXPECT_EQ(complete({"tlsp", "compile", "-o", "rel"}, bc), Words{"relay.conf"});
    EXPECT_EQ(complete({"tlsp", "nonsense", "--"}, bc), Words{});
  }
}

// Every command of `tlsp --help` is completed, and every option of each
// command's --help: the script is made from the same options_description.
TEST_F(Completion, EveryCommandAndEveryOption) {
  const CommandRun top = tlsp::testing_support::run_tlsp("--help");
  std::istringstream in(top.out.substr(top.out.find("commands:\n") + 10));
  std::set<std::string> commands;
  for (std::string line; std::getline(in, line) && !line.empty();) {
    std::istringstream words(line);
    std::string name;
    words >> name;
    commands.insert(name);
  }
  const Words offered = complete({"tlsp", ""});
  for (const std::string& c : commands) {
    EXPECT_NE(std::find(offered.begin(), offered.end(), c), offered.end()) << c;
    const CommandRun help = tlsp::testing_support::run_tlsp("help " + c);
    if (help.out.find("(each with ") != std::string::npos) continue;  // operations: OperationsAndTheirOptions
    // Each option's entry: its line and the continuation lines below it.
    std::vector<std::string> entries;
    std::istringstream lines(help.out);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("  -", 0) == 0)
        entries.push_back(line);
      else if (line.rfind("      ", 0) == 0 && !entries.empty())
        entries.back() += " " + line;
    }
    std::set<std::string> flags;
    for (const std::string& e : entries) {
      if (e.find("positional") != std::string::npos) continue;  // in the synopsis, not an option
      const size_t at = e.find("--");
      flags.insert(e.substr(at, e.find_first_of(" ]", at) - at));
    }
    EXPECT_FALSE(flags.empty()) << c;
    const Words options = complete({"tlsp", c, "--"});
    for (const std::string& f : flags) EXPECT_NE(std::find(options.begin(), options.end(), f), options.end())
          << c << " " << f << " not in " << ::testing::PrintToString(options);
  }
  EXPECT_GE(commands.size(), 10u);
}

// The build makes the same script, which cmake --install puts in
// share/bash-completion/completions/tlsp.
TEST_F(Completion, TheBuiltScriptIsTheCommandsOutput) {
  std::ifstream in(fs::path(TLSP_BINARY).parent_path() / "completion" / "tlsp");
  ASSERT_TRUE(in) << "build/completion/tlsp was not built";
  std::stringstream built;
  built << in.rdbuf();
  EXPECT_EQ(built.str(), tlsp::testing_support::run_tlsp("completion bash").out);
}

// A command of operations completes the operation, then that operation's
// own options (`tlsp queue list --json`, `tlsp queue delete --all`).
TEST_F(Completion, OperationsAndTheirOptions) {
  const Words ops = complete({"tlsp", "queue", ""});
  for (const char* op : {"list", "show", "flush", "hold", "release", "delete"})
    EXPECT_NE(std::find(ops.begin(), ops.end(), op), ops.end()) << op << " in " << ::testing::PrintToString(ops);
  EXPECT_EQ(complete({"tlsp", "queue", "rel"}), Words{"release"});
  const Words list = complete({"tlsp", "queue", "list", "--"});
  for (const char* f : {"--json", "--spool", "--config"})
    EXPECT_NE(std::find(list.begin(), list.end(), f), list.end()) << f << " in " << ::testing::PrintToString(list);
  const Words del = complete({"tlsp", "queue", "delete", "--a"});
  EXPECT_EQ(del, Words{"--all"});
  const Words cache = complete({"tlsp", "mta-sts-cache", ""});
  EXPECT_NE(std::find(cache.begin(), cache.end(), "purge"), cache.end()) << ::testing::PrintToString(cache);
  EXPECT_NE(std::find(cache.begin(), cache.end(), "list"), cache.end());
  const Words cache_list = complete({"tlsp", "mta-sts-cache", "list", "--c"});
  EXPECT_NE(std::find(cache_list.begin(), cache_list.end(), "--cache"), cache_list.end())
      << ::testing::PrintToString(cache_list);
}
