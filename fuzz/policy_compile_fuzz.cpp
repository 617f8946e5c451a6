// policy_compile_fuzz.cpp — libFuzzer target for the policy language, through
// the whole compiler (tlsp/compiler.h): lexer, ANTLR parser and its error
// strategy, includes and globs, checks, resolution, diagnostics rendering,
// and the table writer and loader.
//
// The input is a small policy tree: the bytes up to the first line
// `#---` are `policy.tlsp`, each later chunk `tenants/tN.tlsp`, all in a
// private temporary directory (so `include "tenants/*.tlsp";` in a seed
// reaches them, and an include can name any of them, or itself). Any input
// must end in diagnostics or a table; never a crash, a hang, an exception
// out of compile(), or a table that does not survive encode -> load ->
// decode unchanged.
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.h"
#include "tlsp/compiler.h"
#include "tlsp/decision_table.h"

namespace {

namespace fs = std::filesystem;

// At most this many files per input: enough for includes, globs and cycles.
constexpr size_t kMaxFiles = 4;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> chunks;
  size_t start = 0;
  while (chunks.size() + 1 < kMaxFiles) {
    const size_t sep = in.find("\n#---\n", start);
    if (sep == std::string_view::npos) break;
    chunks.push_back(in.substr(start, sep - start));
    start = sep + 6;
  }
  chunks.push_back(in.substr(start));

  const fs::path& dir = tlsp::fuzz::private_dir();
  std::error_code ec;
  fs::remove_all(dir / "tenants", ec);
  fs::create_directories(dir / "tenants");
  tlsp::fuzz::write_file(dir / "policy.tlsp", chunks[0]);
  for (size_t i = 1; i < chunks.size(); ++i)
    tlsp::fuzz::write_file(dir / "tenants" / ("t" + std::to_string(i) + ".tlsp"), chunks[i]);

  tlsp::CompileOptions options;
  options.inputs = {(dir / "policy.tlsp").string()};
  options.threads = 1;
  const tlsp::CompileResult result = tlsp::compile(options);
  (void)tlsp::render_diagnostics(result);

  if (result.table) {
    if (result.error_count != 0) abort();  // a table only from a clean compile
    const std::string bytes = tlsp::encode_table(*result.table);
    const tlsp::DecisionTable table = tlsp::DecisionTable::from_bytes(bytes);
    tlsp::TableContent expected = *result.table;
    tlsp::canonicalize(expected);
    if (!(table.decode() == expected)) abort();
    if (tlsp::encode_table(table.decode()) != bytes) abort();
  } else if (result.error_count == 0 && !result.input_error) {
    abort();  // no table and no reason given
  }
  return 0;
}
