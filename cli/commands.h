// commands.h — the `tlsp` subcommands, one function each (cmd_*.cpp or
// main.cpp). Each takes the arguments after its name and returns the exit
// code; usage errors are thrown as UsageError (cli_common.h).
#pragma once

#include <string>
#include <vector>

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

}  // namespace tlsp::cli
