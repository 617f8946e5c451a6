// simulate_inputs.cpp — which scenario files `tlsp simulate` reads, and
// their text (simulate.h). Every problem here is the user's: a UsageError,
// found before any compile work.
#include <algorithm>
#include <filesystem>
#include <fstream>

#include "cli_common.h"
#include "simulate.h"

namespace tlsp::cli {

namespace fs = std::filesystem;

std::vector<std::string> scenario_paths(const std::vector<std::string>& inputs) {
  std::vector<std::string> out;
  for (const auto& in : inputs) {
    std::error_code ec;
    fs::file_status st = fs::status(in, ec);
    if (ec || !fs::exists(st)) throw UsageError("cannot read `" + in + "`: no such file or directory");
    if (!fs::is_directory(st)) {
      out.push_back(in);
      continue;
    }
    std::vector<std::string> found;
    for (auto it = fs::recursive_directory_iterator(in, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec))
      if (it->is_regular_file() && it->path().extension() == ".scenario") found.push_back(it->path().string());
    if (ec) throw UsageError("cannot read the directory `" + in + "`: " + ec.message());
    if (found.empty()) throw UsageError("no *.scenario files under `" + in + "`");
    std::sort(found.begin(), found.end());
    out.insert(out.end(), found.begin(), found.end());
  }
  return out;
}

// At most one byte more than a scenario file may have: parse_scenarios()
// owns the size limit and reports it (S0105); reading the rest of a huge
// file would only cost memory.
std::string read_scenario_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError("cannot read `" + path + "`");
  std::string text(sim::kMaxScenarioFileBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) throw UsageError("cannot read `" + path + "`");
  text.resize(static_cast<size_t>(in.gcount()));
  text.shrink_to_fit();
  return text;
}

}  // namespace tlsp::cli
