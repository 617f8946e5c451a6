// bench_support.h — what the benchmark programs share: finding the tlsp
// binary they measure and reading their numeric flags. Header-only.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

namespace tlsp::bench {

// The tlsp binary beside this program (both sit at the top of the build
// tree), else one level up, else `tlsp` on the PATH.
inline std::string find_tlsp(const char* argv0) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) self = fs::absolute(argv0);
  for (fs::path p : {self.parent_path() / "tlsp", self.parent_path().parent_path() / "tlsp"})
    if (fs::exists(p)) return p.string();
  return "tlsp";
}

// A flag's value that must be a positive whole number.
inline size_t parse_count(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
  if (v.empty() || *end || n == 0) throw std::invalid_argument(flag + ": `" + v + "` is not a positive number");
  return static_cast<size_t>(n);
}

}  // namespace tlsp::bench
