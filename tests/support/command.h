// command.h — running a program from a test: `tlsp` itself (the binary the
// build made) or a shell command line, with what it printed and its exit
// status. The one popen loop of the test suite.
#pragma once

#include <string>

namespace tlsp::testing_support {

struct CommandRun {
  std::string out;  // standard output (and standard error, when merged)
  int code = -1;    // the exit status; -1 when it did not exit (a signal) or could not start
};

// `/bin/sh -c command`, its standard output read to the end.
CommandRun run_shell(const std::string& command);

// `tlsp ARGS 2>&1`, run in the source directory (so that paths such as
// policies/example.tlsp work). ARGS is shell text: quote what needs it.
CommandRun run_tlsp(const std::string& args);

// The same command with its standard error kept apart: `err` receives it.
CommandRun run_tlsp(const std::string& args, std::string& err);

}  // namespace tlsp::testing_support
