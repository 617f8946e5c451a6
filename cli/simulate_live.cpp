// simulate_live.cpp — `tlsp simulate --live` (simulate.h): every scenario
// that ran in the model replayed through a real `tlsp relay` against
// scripted loopback peers (tlsp/sim/live.h), `--jobs` worlds at a time, one
// address block each, with a progress line on stderr. Ctrl-C (or SIGTERM)
// tears every world down; the command then exits 130.
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <thread>

#include "cli_common.h"
#include "simulate.h"

namespace tlsp::cli {
namespace {

namespace fs = std::filesystem;

// Ctrl-C during a live run: every world is torn down, then exit 130.
void on_live_interrupt(int) { sim::cancel_live_runs(); }

// Runs every entry of `todo` live, `jobs` worlds at a time (one address
// block each), with a progress line on stderr: refreshed in place on a
// terminal, else one line per tenth done and at least every
// kProgressQuietInterval.
void run_live_entries(std::vector<ScenarioEntry*>& todo, const sim::LiveConfig& config, unsigned jobs_wanted) {
  constexpr auto kProgressTtyInterval = std::chrono::milliseconds(250);
  constexpr auto kProgressQuietInterval = std::chrono::seconds(15);
  const unsigned jobs = std::min<unsigned>(std::max<size_t>(1, todo.size()), std::min(jobs_wanted, sim::kLiveMaxSlots));
  std::atomic<size_t> next{0}, done{0}, failures{0};
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::thread> workers;
  for (unsigned slot = 0; slot < jobs; ++slot)
    workers.emplace_back([&, slot] {
      for (size_t i; (i = next++) < todo.size();) {
        if (sim::live_runs_cancelled()) break;
        ScenarioEntry& e = *todo[i];
        e.live = true;
        e.live_result = sim::run_live(config, *e.scenario, slot);
        e.live_checks = sim::check_live(*e.scenario, e.result, e.live_result);
        bool ok = e.ok;
        for (const auto& c : e.live_checks) ok = ok && c.ok;
        e.ok = ok;
        if (!ok) failures++;
        done++;
        std::lock_guard lock(mu);
        cv.notify_all();
      }
    });
  const bool tty = isatty(STDERR_FILENO);
  auto last = std::chrono::steady_clock::now();
  size_t last_tenth = 0;  // not a terminal: a line at each tenth done, or every kProgressQuietInterval
  std::string shown;
  auto progress = [&](bool final) {
    std::string line = "live: " + std::to_string(done.load()) + "/" + std::to_string(todo.size()) + " done, " +
                       std::to_string(failures.load()) + " failed";
    if (!tty && line == shown) return;
    shown = line;
    if (tty) std::cerr << "\r" << line << (final ? "\n" : "") << std::flush;
    else std::cerr << line << "\n";
  };
  {
    std::unique_lock lock(mu);
    while (done.load() < todo.size() && !sim::live_runs_cancelled()) {
      cv.wait_for(lock, tty ? kProgressTtyInterval : kProgressQuietInterval);
      auto now = std::chrono::steady_clock::now();
      const size_t tenth = done.load() * 10 / todo.size();
      if (tty || now - last >= kProgressQuietInterval || tenth != last_tenth) {
        last_tenth = tenth;
        progress(false);
        last = now;
      }
    }
  }
  for (auto& t : workers) t.join();
  progress(true);
}

}  // namespace

int run_live_mode(const LiveModeOptions& options, const DecisionTable& table, const std::string& table_path,
                  std::vector<ScenarioEntry>& entries) {
  const unsigned jobs = options.jobs != 0 ? options.jobs : std::max(1u, std::thread::hardware_concurrency());
  sim::LiveConfig config;
  config.work_dir = options.work_dir;
  if (options.relay_binary) {
    config.tlsp_binary = *options.relay_binary;
  } else {
    std::error_code ec;
    config.tlsp_binary = fs::read_symlink("/proc/self/exe", ec).string();
    if (ec) throw UsageError("cannot find this program's path for the relay: give --relay-binary");
  }
  if (access(config.tlsp_binary.c_str(), X_OK) != 0)
    throw UsageError("cannot run `" + config.tlsp_binary + "` as the relay");
  // The relay loads a table file: the one given, or the compiled policy
  // written into a run directory removed at the end.
  std::string run_dir;
  if (!table_path.empty()) {
    config.table_file = fs::absolute(table_path).string();
  } else {
    std::string tmpl = (fs::path(config.work_dir) / "tlsp-live-run-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw UsageError("cannot make a directory under `" + config.work_dir + "`");
    run_dir = tmpl;
    config.table_file = run_dir + "/policy.tlspdt";
    write_table_file(config.table_file, table.decode());
  }
  std::vector<ScenarioEntry*> todo;
  for (auto& e : entries)
    if (e.kind == ScenarioEntry::ran) todo.push_back(&e);

  struct sigaction sa {}, old_int {}, old_term {};
  sa.sa_handler = on_live_interrupt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  const auto start = std::chrono::steady_clock::now();
  run_live_entries(todo, config, jobs);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  if (!run_dir.empty()) {
    std::error_code ec;
    fs::remove_all(run_dir, ec);
  }
  if (sim::live_runs_cancelled()) {
    std::cerr << "tlsp: interrupted; every live world was torn down\n";
    return 130;
  }
  for (ScenarioEntry* e : todo)
    if (!e->ok) e->details = explain_live(*e);
  if (options.timings)
    std::cerr << live_timings_text(entries, wall, std::min<unsigned>(jobs, std::max<size_t>(1, todo.size())));
  return kExitOk;
}

}  // namespace tlsp::cli
