// cli_common.h — what every `tlsp` subcommand shares: exit codes, option
// parsing with --help, and the compiler driver.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cerrno>
#include <cstring>
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

// A usage error already worded for the user, with the command's name and
// usage line: main() prints it as it is, without the generic prefix.
struct CommandUsageError : UsageError {
  using UsageError::UsageError;
};

// What a positional argument is, in the user's words: "no policy file given"
// names the thing they left out, never the internal option that holds it.
struct Positional {
  std::string option;  // the option the positional arguments are stored in
  std::string what;    // "policy file"
};

// What a subcommand takes, as its parse_options() call declares it: what
// `tlsp manpage` and `tlsp completion` are made from, so that the man page
// and the completion list exactly the options the command reads.
struct OptionInfo {
  std::string long_name;   // "output"
  std::string short_name;  // "o", or empty
  bool takes_value = false;
  // The value's name as declared (`->value_name(...)`): an upper-case
  // placeholder (FILE, DIR, DURATION), or, in lower case, the fixed set of
  // values separated by `|` (`binary|json`); Boost's "arg" when undeclared.
  std::string value_name;
  std::string help;
};
struct CommandInfo {
  std::string name, synopsis, about;
  std::vector<OptionInfo> options;  // without the positional ones
  std::vector<std::string> positionals;  // what the positional arguments are ("policy file")
};

// While set, parse_options() records the command's options here and
// returns false (as for --help) without parsing or printing anything:
// `describe_command()` in commands.h runs a command this way.
inline CommandInfo* g_describing = nullptr;

inline CommandInfo describe_options(const std::string& name, const std::string& synopsis, const std::string& about,
                                    const po::options_description& opts, const po::positional_options_description* pos,
                                    const std::vector<Positional>& positionals);

// Parses a subcommand's options; prints its help and returns false for --help.
// Every Boost error is reworded here, for every command at once: the
// internal names of positional options (`--policy` for `tlsp check FILE`)
// never reach the user, and each message ends with the usage line.
inline bool parse_options(const std::string& name, const std::string& synopsis, const std::string& about,
                          po::options_description& opts, po::positional_options_description* pos,
                          const std::vector<std::string>& args, po::variables_map& vm,
                          const std::vector<Positional>& positionals = {}) {
  opts.add_options()("help,h", "show this help");
  if (g_describing) {
    *g_describing = describe_options(name, synopsis, about, opts, pos, positionals);
    return false;
  }
  const std::string usage = "usage: tlsp " + name + " " + synopsis + "\n(`tlsp " + name + " --help` for more)";
  auto fail = [&](const std::string& what) -> CommandUsageError {
    return CommandUsageError("tlsp " + name + ": " + what + "\n" + usage);
  };
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
  } catch (const po::required_option& e) {
    // Boost names the option as `--policy`; match it against ours.
    for (const auto& p : positionals)
      if (e.get_option_name() == "--" + p.option) throw fail("no " + p.what + " given");
    throw fail(e.get_option_name() + " is required");
  } catch (const po::too_many_positional_options_error&) {
    throw fail("too many arguments");
  } catch (const po::unknown_option& e) {
    throw fail("unknown option `" + e.get_option_name() + "`");
  } catch (const po::error& e) {
    throw fail(e.what());
  }
  return true;
}

inline CommandInfo describe_options(const std::string& name, const std::string& synopsis, const std::string& about,
                                    const po::options_description& opts, const po::positional_options_description* pos,
                                    const std::vector<Positional>& positionals) {
  CommandInfo info{name, synopsis, about, {}, {}};
  std::vector<std::string> positional_options;
  if (pos)
    for (unsigned i = 0; i < std::min(pos->max_total_count(), 8u); ++i)
      positional_options.push_back(pos->name_for_position(i));
  for (const std::string& p : positional_options) {
    std::string what = p;
    for (const Positional& known : positionals)
      if (known.option == p) what = known.what;
    if (std::find(info.positionals.begin(), info.positionals.end(), what) == info.positionals.end())
      info.positionals.push_back(what);
  }
  for (const auto& o : opts.options()) {
    if (std::find(positional_options.begin(), positional_options.end(), o->long_name()) != positional_options.end())
      continue;
    OptionInfo oi;
    oi.long_name = o->long_name();
    const std::string shown = o->format_name();  // "-o [ --output ]" or "--output"
    if (shown.size() > 2 && shown[0] == '-' && shown[1] != '-') oi.short_name = shown.substr(1, 1);
    oi.takes_value = o->semantic()->max_tokens() > 0;
    if (oi.takes_value) {
      oi.value_name = o->semantic()->name();
      if (const size_t dflt = oi.value_name.find(" (="); dflt != std::string::npos) oi.value_name.resize(dflt);
    }
    oi.help = o->description();
    info.options.push_back(std::move(oi));
  }
  return info;
}

// At most one of `names` may be given (`matrix --csv --json`): silently
// preferring one would hide the user's mistake.
inline void at_most_one_of(const po::variables_map& vm, const std::vector<std::string>& names) {
  std::string given;
  for (const auto& n : names)
    if (vm.count(n) && !vm[n].defaulted()) {
      if (!given.empty()) throw UsageError("--" + given + " and --" + n + " cannot be used together");
      given = n;
    }
}

inline void add_compile_options(po::options_description& opts) {
  opts.add_options()("werror", "treat warnings as errors")(
      "threads", po::value<unsigned>()->default_value(0)->value_name("N"), "parse workers (0: one per core)");
}

// Standard input, for a policy named `-`: read here because the compiler
// reads only regular files (source_files.h), and at most one byte past its
// per-file limit, so that a endless pipe is refused as too large (E0306)
// instead of filling memory.
inline std::string read_stdin_policy() {
  const size_t limit = max_policy_file_bytes() + 1;
  std::string text;
  char buf[65536];
  while (text.size() < limit) {
    const ssize_t n = ::read(STDIN_FILENO, buf, std::min(sizeof buf, limit - text.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error(std::string("cannot read standard input: ") + std::strerror(errno));
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  return text;
}

inline CompileResult run_compiler(const po::variables_map& vm, const std::vector<std::string>& inputs,
                                  std::optional<DumpPoint> dump = std::nullopt) {
  CompileOptions co;
  co.dump = dump;
  co.inputs = inputs;
  if (std::find(inputs.begin(), inputs.end(), "-") != inputs.end()) co.stdin_text = read_stdin_policy();
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
  } catch (const TableReadError& e) {
    std::cerr << "tlsp: error: " << e.what() << "\n";
    exit_code = kExitUsage;  // could not be read: like a policy file that cannot be read
    return std::nullopt;
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
