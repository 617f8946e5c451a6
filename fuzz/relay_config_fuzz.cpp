// relay_config_fuzz.cpp — libFuzzer target for the relay's configuration
// file (`tlsp relay --config FILE`, cli/cmd_relay.cpp): the input is the
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

namespace {

namespace fs = std::filesystem;

const std::string& config_path() {
  // Never destroyed: the exit handler below still needs it.
  static const std::string* path = [] {
    std::string t = (fs::temp_directory_path() / "tlsp-config-fuzz-XXXXXX").string();
    if (mkdtemp(t.data()) == nullptr) abort();
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(fs::path(config_path()).parent_path(), ec);
    });
    return new std::string(t + "/relay.conf");
  }();
  return *path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  {
    std::ofstream out(config_path(), std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  std::ostringstream sink;
  auto* out = std::cout.rdbuf(sink.rdbuf());
  auto* err = std::cerr.rdbuf(sink.rdbuf());
  try {
    // Flags win over the file: the table cannot be opened, so nothing the
    // file names is ever read or started.
    (void)tlsp::cli::cmd_relay({"--config", config_path(), "--check-config", "--table", "/nonexistent/fuzz.tlspdt"});
  } catch (const tlsp::cli::UsageError&) {
  }
  std::cout.rdbuf(out);
  std::cerr.rdbuf(err);
  return 0;
}
