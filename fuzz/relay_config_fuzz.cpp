// relay_config_fuzz.cpp — libFuzzer target for the relay's configuration
// file (`tlsp relay --config FILE`, cli/relay_settings.cpp): the input is the
// file, read through the CLI's own code path with --check-config and a table
// path that cannot exist, so every setting is parsed and validated and the
// run ends before anything is opened or started. Any file must end in a
// usage error or the table's refusal; never a crash, a hang or another
// exception.
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
  return 0;
}
