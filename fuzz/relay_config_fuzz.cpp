// relay_config_fuzz.cpp — libFuzzer target for the relay's configuration
// file (`tlsp relay --config FILE`, cli/relay_settings.cpp): the input is the
// file, read through the CLI's own code path with --check-config and a table
// path that cannot exist, so every setting is parsed and validated and the
// run ends before anything is opened or started. Any file must end in a
// usage error or the table's refusal; never a crash, a hang or another
// exception. A file that reads without a mistake is also printed
// (`--print-config-all`): what is printed must read back as the same
// configuration, or the value must have been refused.
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "cli_common.h"
#include "commands.h"
#include "fuzz_support.h"
#include "relay_settings.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string config_path = (tlsp::fuzz::private_dir() / "relay.conf").string();
  tlsp::fuzz::write_file(config_path, std::string_view(reinterpret_cast<const char*>(data), size));
  std::ostringstream sink;
  auto* out = std::cout.rdbuf(sink.rdbuf());
  auto* err = std::cerr.rdbuf(sink.rdbuf());
  try {
    // Flags win over the file: the table cannot be opened, so nothing the
    // file names is ever read or started.
    (void)tlsp::cli::cmd_relay({"--config", config_path, "--check-config", "--table", "/nonexistent/fuzz.tlspdt"});
  } catch (const tlsp::cli::UsageError&) {
  }
  std::cout.rdbuf(out);
  std::cerr.rdbuf(err);

  namespace po = boost::program_options;
  const po::options_description opts = tlsp::cli::relay_options();
  const auto read = [&](const std::string& path) {
    po::variables_map vm;
    return tlsp::cli::read_relay_config(opts, vm, path, /*check_problems=*/false);
  };
  const tlsp::cli::RelayConfigRead first = read(config_path);
  if (!first.errors.empty()) return 0;
  std::vector<std::string> refused;
  const std::string printed = tlsp::cli::format_relay_config(first.config, {}, true, refused);
  if (!refused.empty()) return 0;
  const std::string again_path = (tlsp::fuzz::private_dir() / "printed.conf").string();
  tlsp::fuzz::write_file(again_path, printed);
  const tlsp::cli::RelayConfigRead second = read(again_path);
  std::vector<std::string> none;
  if (!second.errors.empty() || tlsp::cli::format_relay_config(second.config, {}, true, none) != printed ||
      !none.empty()) {
    std::cerr << "printed configuration does not read back the same:\n" << printed << "\n";
    std::abort();
  }
  return 0;
}
