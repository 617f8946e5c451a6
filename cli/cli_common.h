// cli_common.h — what every `tlsp` subcommand shares: exit codes, option
// parsing with --help, and the compiler driver.
#pragma once

#include <boost/program_options.hpp>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tlsp/compiler.h"

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

}  // namespace tlsp::cli
