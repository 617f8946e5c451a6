// commands.h — the `tlsp` subcommands, one function each (cmd_*.cpp or
// main.cpp). Each takes the arguments after its name and returns the exit
// code; usage errors are thrown as UsageError (cli_common.h).
#pragma once

#include <string>
#include <vector>

#include "cli_common.h"

namespace tlsp::cli {

using Args = std::vector<std::string>;

int cmd_check(const Args& args);
int cmd_compile(const Args& args);
int cmd_explain(const Args& args);
int cmd_inspect(const Args& args);
int cmd_decide(const Args& args);
int cmd_diff(const Args& args);
int cmd_matrix(const Args& args);
int cmd_simulate(const Args& args);
int cmd_relay(const Args& args);
int cmd_queue(const Args& args);
int cmd_mta_sts_cache(const Args& args);
int cmd_tlsrpt(const Args& args);

// One subcommand as `tlsp --help`, tlsp(1) and the completion list it:
// cli/main.cpp holds the list (commands()), in the order shown.
struct Command {
  const char* name;
  const char* summary;  // nullptr: hidden (not in --help, the man page or the completion)
  int (*run)(const Args& args);
  // A command of operations (`tlsp queue list`): the operations, each
  // described, paged and completed as a command of its own; nullptr for
  // the others.
  const std::vector<Command>& (*verbs)() = nullptr;
};

const std::vector<Command>& queue_verbs();          // list, show, flush, hold, release, delete
const std::vector<Command>& mta_sts_cache_verbs();  // list, purge
const std::vector<Command>& tlsrpt_verbs();         // report, send, summarize
int tlsrpt_send(const Args& args);                  // cli/cmd_tlsrpt_send.cpp

// The command's options as its parse_options() call declares them: the
// command is run with no arguments in describe mode (cli_common.h), where
// parse_options() records them and returns false, so the command does
// nothing. A command must call parse_options() before anything else it
// does (or it is described by its name alone).
CommandInfo describe_command(const Command& command);

// `tlsp completion bash`: the bash completion script (cmd_completion.cpp).
int cmd_completion(const Args& args, const std::vector<Command>& commands);
// `tlsp manpage TEMPLATE`: a man page made from a template under docs/man/
// and the tables (cmd_manpage.cpp); hidden, run by the build.
int cmd_manpage(const Args& args, const std::vector<Command>& commands);

}  // namespace tlsp::cli
