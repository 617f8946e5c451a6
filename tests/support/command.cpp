// command.cpp — see command.h.
#include "command.h"

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "test_support.h"

namespace tlsp::testing_support {

CommandRun run_shell(const std::string& command) {
  CommandRun r;
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) r.out.append(buf, n);
  const int status = ::pclose(p);
  r.code = status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

CommandRun run_tlsp(const std::string& args) {
  return run_shell("cd '" TLSP_SOURCE_DIR "' && '" TLSP_BINARY "' " + args + " 2>&1");
}

CommandRun run_tlsp(const std::string& args, std::string& err) {
  TempDir dir("tlsp-command");
  const std::string err_file = dir.file("stderr");
  CommandRun r = run_shell("cd '" TLSP_SOURCE_DIR "' && '" TLSP_BINARY "' " + args + " 2>'" + err_file + "'");
  std::ifstream e(err_file, std::ios::binary);
  err.assign(std::istreambuf_iterator<char>(e), std::istreambuf_iterator<char>());
  return r;
}

}  // namespace tlsp::testing_support
