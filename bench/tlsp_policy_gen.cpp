// tlsp_policy_gen.cpp — writes a large benchmark policy (policy_generator.h)
//   tlsp_policy_gen DIR ENTRIES     e.g. tlsp_policy_gen /tmp/big 1000000
#include <cstdio>
#include <string>

#include "policy_generator.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: tlsp_policy_gen DIR ENTRIES\n");
    return 2;
  }
  int entries = std::stoi(argv[2]);
  auto g = tlsp::bench::generate_policy(argv[1], std::max(1, entries / tlsp::bench::kEntriesPerDomain));
  std::printf("%s: %zu entries in %zu files, %.1f MB\n", g.root.c_str(), g.entries, g.files, g.bytes / 1e6);
  return 0;
}
