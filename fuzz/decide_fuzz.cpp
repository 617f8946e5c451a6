// decide_fuzz.cpp — libFuzzer target for `tlsp decide` (docs/engine.md):
// the input is the JSON Lines stream, read through the CLI's own code path
// (cli/cmd_decide.cpp). Every non-blank line must get exactly one answer
// line, an outcome or {"error": ...}, and the stream must go on after a bad
// line; never a crash, a hang or an exception.
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <string_view>

#include "cli_common.h"
#include "commands.h"
#include "fuzz_support.h"


extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input_path = (tlsp::fuzz::private_dir() / "facts.jsonl").string();
  tlsp::fuzz::write_file(input_path, std::string_view(reinterpret_cast<const char*>(data), size));
  std::ostringstream answers, errors;
  auto* out = std::cout.rdbuf(answers.rdbuf());
  auto* err = std::cerr.rdbuf(errors.rdbuf());
  (void)tlsp::cli::cmd_decide({input_path});
  std::cout.rdbuf(out);
  std::cerr.rdbuf(err);

  // One answer line per non-blank input line, whatever the line held.
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t expected = 0;
  for (size_t start = 0; start < in.size();) {
    size_t end = in.find('\n', start);
    if (end == std::string_view::npos) end = in.size();
    if (in.substr(start, end - start).find_first_not_of(" \t\r") != std::string_view::npos) ++expected;
    start = end + 1;
  }
  const std::string text = answers.str();
  const auto lines = static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
  if (lines != expected) abort();
  return 0;
}
