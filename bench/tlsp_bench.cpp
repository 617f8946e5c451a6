// tlsp_bench.cpp — compile, load and lookup figures for large policies,
// with Debian's Postfix postmap as the reference point when it is installed.
//
//   tlsp_bench [--tlsp PATH] [--sizes 10000,100000,1000000] [--work DIR]
//
// Each compile runs `tlsp compile` as a child process, so the wall time and
// the peak resident memory (from wait4's rusage) are those of the real
// command. Load and lookup run in this process on the largest table. The
// machine is shared and noisy: compare ratios measured in one run.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench_support.h"
#include "policy_generator.h"
#include "tlsp/decision_table.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace tlsp;

namespace {

using tlsp::bench::find_tlsp;

struct ChildRun {
  double seconds = 0;
  double peak_mib = 0;
  int status = -1;
};

// Runs argv as a child (stdin from `input` when given), waits, and returns
// its wall time and peak RSS.
ChildRun run_child(const std::vector<std::string>& argv, const std::string& input = "",
                   const std::string& output = "/dev/null") {
  ChildRun r;
  std::fflush(stdout);  // or the child inherits and repeats our buffered output
  auto start = Clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    if (!input.empty()) freopen(input.c_str(), "r", stdin);
    freopen(output.c_str(), "w", stdout);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  rusage ru{};
  wait4(pid, &status, 0, &ru);
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  r.peak_mib = static_cast<double>(ru.ru_maxrss) / 1024.0;
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

std::vector<int> parse_sizes(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(std::stoi(item));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string tlsp = find_tlsp(argv[0]);
  std::vector<int> sizes = {10000, 100000, 1000000};
  fs::path work = fs::temp_directory_path() / "tlsp-bench";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--tlsp") tlsp = argv[i + 1];
    else if (a == "--sizes") sizes = parse_sizes(argv[i + 1]);
    else if (a == "--work") work = argv[i + 1];
  }
  fs::remove_all(work);
  fs::create_directories(work);
  std::printf("tlsp benchmark (%s)\n\n", tlsp.c_str());

  // ------------------------------------------------------------- compile
  std::printf("%-10s %6s %10s %12s %12s %10s\n", "entries", "files", "source MB", "compile s", "peak MiB",
              "table MB");
  std::string largest_table;
  int largest_domains = 0;
  double largest_compile = 0;
  for (int entries : sizes) {
    int domains = std::max(1, entries / bench::kEntriesPerDomain);
    fs::path dir = work / ("p" + std::to_string(entries));
    auto g = bench::generate_policy(dir, domains);
    std::string table = (dir / "table.tlspdt").string();
    ChildRun r = run_child({tlsp, "compile", g.root, "-o", table});
    if (r.status != 0) {
      std::fprintf(stderr, "tlsp compile failed (%d) for %d entries\n", r.status, entries);
      return 1;
    }
    std::printf("%-10zu %6zu %10.1f %12.2f %12.0f %10.1f\n", g.entries, g.files, g.bytes / 1e6, r.seconds,
                r.peak_mib, fs::file_size(table) / 1e6);
    largest_table = table;
    largest_domains = domains;
    largest_compile = r.seconds;
  }

  // ---------------------------------------------------------------- load
  std::vector<double> loads;
  for (int i = 0; i < 7; ++i) {
    auto start = Clock::now();
    DecisionTable t = DecisionTable::open(largest_table);
    loads.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  // The loads are the biggest thing this process has held so far (the
  // compiles ran as children), so its peak RSS is what one open() costs.
  rusage self{};
  getrusage(RUSAGE_SELF, &self);
  std::printf("\ntable load (read + full validation), %zu entries: median %.1f ms (first %.1f ms), "
              "peak RSS %.0f MiB\n",
              static_cast<size_t>(largest_domains) * bench::kEntriesPerDomain, median(loads), loads.front(),
              static_cast<double>(self.ru_maxrss) / 1024.0);

  // -------------------------------------------------------------- lookup
  // Two mixes of equal parts exact, wildcard, CIDR and default lookups:
  // over the busiest 1,000 domains (where real traffic concentrates; the
  // table's hot part stays in cache) and uniformly over all domains (every
  // lookup a string of cache misses). A pointer chase over 64 MiB shows
  // what one dependent cache miss costs on this machine.
  DecisionTable table = DecisionTable::open(largest_table);
  auto measure = [&](const std::vector<bench::Query>& mix, size_t* kinds) {
    size_t sink = 0;
    for (const auto& q : mix)  // warm-up pass
      sink += static_cast<size_t>(table.lookup(q.outbound ? Direction::outbound : Direction::inbound, q.domain, q.peer).level);
    std::vector<double> per_batch;
    const size_t batch = 1000;
    for (size_t b = 0; b + batch <= mix.size(); b += batch) {
      auto start = Clock::now();
      for (size_t i = b; i < b + batch; ++i) {
        Decision d = table.lookup(mix[i].outbound ? Direction::outbound : Direction::inbound, mix[i].domain, mix[i].peer);
        sink += static_cast<size_t>(d.level);
        if (kinds) ++kinds[static_cast<int>(d.match)];
      }
      per_batch.push_back(std::chrono::duration<double, std::nano>(Clock::now() - start).count() / batch);
    }
    return std::pair(median(per_batch), sink);
  };
  size_t kinds[5] = {};
  auto [hot_ns, s1] = measure(bench::lookup_mix(std::min(largest_domains, 1000), 400000, 42), nullptr);
  auto [cold_ns, s2] = measure(bench::lookup_mix(largest_domains, 400000, 43), kinds);
  size_t sink = s1 + s2;
  std::printf("lookup, mixed kinds (exact %zu, wildcard %zu, cidr %zu, default-peer %zu, default-domain %zu):\n"
              "  over the busiest 1,000 domains: median %.0f ns\n"
              "  uniformly over all %d domains:  median %.0f ns (cache misses: see below)\n",
              kinds[0], kinds[1], kinds[2], kinds[3], kinds[4], hot_ns, largest_domains, cold_ns);
  {
    const size_t n = (64u << 20) / 64;
    std::vector<uint64_t> next(n * 8);
    std::vector<uint32_t> order(n);
    for (size_t i = 0; i < n; ++i) order[i] = static_cast<uint32_t>(i);
    std::shuffle(order.begin(), order.end(), std::mt19937(1));
    for (size_t i = 0; i < n; ++i) next[order[i] * 8] = order[(i + 1) % n] * 8;
    size_t p = order[0] * 8;
    auto start = Clock::now();
    for (int i = 0; i < 1000000; ++i) p = next[p];
    std::printf("  one dependent cache miss on this machine (pointer chase over 64 MiB): %.0f ns\n",
                std::chrono::duration<double, std::nano>(Clock::now() - start).count() / 1e6);
    sink += p;
  }

  // ------------------------------------------------------------- postmap
  const char* postmap = "/usr/sbin/postmap";
  if (access(postmap, X_OK) != 0) {
    std::printf("\npostmap: not installed (apt-get install postfix postfix-lmdb postfix-cdb for the comparison)\n");
    return sink == 42 ? 1 : 0;
  }
  fs::path flat = work / "tls_policy";
  bench::generate_postfix_map(flat, largest_domains);
  fs::path keys = work / "keys";
  {
    std::ofstream k(keys);
    for (int i = 0; i < 100000; ++i) k << "peer" << i % 10 << ".dom" << (i * 7919) % largest_domains << ".example\n";
  }
  std::printf("\npostmap on the equivalent flat map (%zu keys):\n",
              static_cast<size_t>(largest_domains) * bench::kEntriesPerDomain);
  for (const char* type : {"lmdb", "cdb"}) {
    ChildRun r = run_child({postmap, "-c", "/etc/postfix", std::string(type) + ":" + flat.string()});
    if (r.status != 0) {
      std::printf("  %-5s not supported here (install postfix-%s)\n", type, type);
      continue;
    }
    ChildRun q = run_child({postmap, "-c", "/etc/postfix", "-q", "-", std::string(type) + ":" + flat.string()},
                           keys.string());
    std::printf("  %-5s build %.2f s, peak %.0f MiB (tlsp compile / postmap = %.2f); 100,000 lookups "
                "through `postmap -q -` %.0f ns each\n",
                type, r.seconds, r.peak_mib, largest_compile / r.seconds, q.seconds * 1e9 / 100000);
  }
  return sink == 42 ? 1 : 0;
}
