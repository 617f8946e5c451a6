// cli_common.h — what every `tlsp` subcommand shares: exit codes, option
// parsing with --help, and the compiler driver.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include <fstream>
#include <optional>

#include "tlsp/compiler.h"
#include "tlsp/decision_table.h"

namespace tlsp::cli {

namespace po = boost::program_options;

constexpr int kExitOk = 0;
constexpr int kExitErrors = 1;
constexpr int kExitUsage = 2;

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Parses a subcommand's options; prints its help and returns false for --help.
inline bool parse_options(const std::string& name, const std::string& synopsis, const std::string& about,
                   po::options_description& opts, po::positional_options_description* pos,
                   const std::vector<std::string>& args, po::variables_map& vm) {
  opts.add_options()("help,h", "show this help");
  try {
    po::command_line_parser parser(args);
    parser.options(opts);
    if (pos) parser.positional(*pos);
    po::store(parser.run(), vm);
    if (vm.count("help")) {
      std::cout << "usage: tlsp " << name << " " << synopsis << "\n\n" << about << "\n\n" << opts;
      return false;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(std::string(e.what()) + "\n(see `tlsp " + name + " --help`)");
  }
  return true;
}

inline void add_compile_options(po::options_description& opts) {
  opts.add_options()("werror", "treat warnings as errors")(
      "threads", po::value<unsigned>()->default_value(0), "parse workers (0: one per core)");
}

inline CompileResult run_compiler(const po::variables_map& vm, const std::vector<std::string>& inputs) {
  CompileOptions co;
  co.inputs = inputs;
  co.werror = vm.count("werror") > 0;
  co.threads = vm["threads"].as<unsigned>();
  CompileResult r = compile(co);
  std::cerr << render_diagnostics(r);
  return r;
}

inline int exit_code_of(const CompileResult& r) {
  if (r.input_error) return kExitUsage;
  return r.table ? kExitOk : kExitErrors;
}

// The table at `table_path` when it is given, else `policies` compiled:
// either way a validated table. Diagnostics and errors go to stderr;
// std::nullopt then, with `exit_code` set.
inline std::optional<DecisionTable> open_or_compile(const std::string& table_path,
                                                    const std::vector<std::string>& policies,
                                                    const po::variables_map& vm, int& exit_code) {
  try {
    if (!table_path.empty()) return DecisionTable::open(table_path);
    CompileResult r = run_compiler(vm, policies);
    if (!r.table) {
      exit_code = exit_code_of(r);
      return std::nullopt;
    }
    return DecisionTable::from_bytes(encode_table(*r.table));
  } catch (const TableError& e) {
    std::cerr << "tlsp: error: " << e.what() << "\n";
    exit_code = kExitErrors;
    return std::nullopt;
  }
}

// A decision table file (recognised by its magic) or policy sources to
// compile, as open_or_compile().
inline std::optional<DecisionTable> table_or_policy(const std::vector<std::string>& paths, const po::variables_map& vm,
                                                    int& exit_code) {
  char magic[8] = {};
  if (paths.size() == 1) {
    // Only a regular file is peeked at: a FIFO or a device must not block
    // or be read here. Whatever it is, the loader or the compiler then
    // refuses it with its own message.
    const int fd = ::open(paths[0].c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd >= 0 && ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) (void)!::pread(fd, magic, sizeof magic, 0);
    if (fd >= 0) ::close(fd);
  }
  const bool is_table = std::string_view(magic, 8) == std::string_view("\x89TLSP\r\n\x1a", 8);
  return open_or_compile(is_table ? paths[0] : std::string(), paths, vm, exit_code);
}

}  // namespace tlsp::cli
