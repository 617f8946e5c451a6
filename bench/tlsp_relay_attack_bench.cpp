// tlsp_relay_attack_bench.cpp — the good-client success rate of `tlsp
// relay` under a slow-client attack (issue 9, "Slow clients"), with the
// relay's defence on (its defaults) and, for contrast, off.
//
//   tlsp_relay_attack_bench [--tlsp PATH] [--seconds S] [--attackers N]
//                           [--sources K] [--good-per-second R]
//                           [--max-connections M]
//
// The world, on 127.0.0.0/8: a real `tlsp relay` child (max-connections M,
// default 100, every other setting at its default), a next hop for the
// managed domain acme.example (tlsp::sim::SmtpPeer on 127.0.0.30), and
//  * the attack (tlsp::sim::SlowClients): N connections (default 150) from
//    K addresses (default 10, 127.0.0.100 on; 15 each stays under
//    max-connections-per-client), each sending `EHLO`, then `NOOP` for
//    ever, one byte per second, and opened again one second after the
//    relay closes it;
//  * the well-behaved clients: from the moment the attack holds every slot,
//    R per second (default 2) for S seconds (default 20), each from its own
//    address (127.0.1.x, 127.0.2.x, ...), sending one message
//    to alice@acme.example over plaintext SMTP with a 30 s timeout per
//    operation, as a patient MTA would.
// A good client succeeds when its message gets 250 after DATA. Printed per
// run: successes / attempts, the median and the slowest time to that 250,
// and what became of the attack's connections.
//
// Run 1 is the defence as shipped (stress timeouts, admission wait,
// eviction of stalled sessions, connection rate limit); run 2 turns it off
// (--stress-threshold 0 --admission-wait 0 --evict-stalled-after 0
// --max-connection-rate-per-client 0), which is how the relay behaved
// before issue 9 as far as slot handling goes. The relay is stopped and
// reaped after each run, and on SIGINT/SIGTERM; the work directory is
// removed.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench_support.h"
#include "tlsp/compiler.h"
#include "tlsp/sim/relay_process.h"
#include "tlsp/sim/slow_clients.h"
#include "tlsp/sim/smtp_peer.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace tlsp;
using namespace tlsp::sim;
using Clock = std::chrono::steady_clock;

namespace {

using tlsp::bench::find_tlsp;
using tlsp::bench::parse_count;

struct Options {
  std::string tlsp;
  size_t seconds = 20;
  size_t attackers = 150;
  size_t sources = 10;
  size_t good_per_second = 2;
  size_t max_connections = 100;
};

std::atomic<pid_t> g_relay_pid{0};  // killed on SIGINT/SIGTERM

Options parse_options(int argc, char** argv) {
  Options o;
  o.tlsp = find_tlsp(argv[0]);
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    if (a == "--tlsp")
      o.tlsp = value();
    else if (a == "--seconds")
      o.seconds = parse_count(a, value());
    else if (a == "--attackers")
      o.attackers = parse_count(a, value());
    else if (a == "--sources")
      o.sources = std::min<size_t>(parse_count(a, value()), 150);
    else if (a == "--good-per-second")
      o.good_per_second = parse_count(a, value());
    else if (a == "--max-connections")
      o.max_connections = parse_count(a, value());
    else
      throw std::invalid_argument("unknown option `" + a + "`");
  }
  return o;
}

std::string write_table(const std::string& dir) {
  const std::string policy = dir + "/policy.tlsp";
  std::ofstream(policy) << "policy \"attack-bench\" version \"1\";\n"
                           "default domain {\n"
                           "  outbound { default peer { level opportunistic; min_tls any; } }\n"
                           "  inbound  { default peer { level opportunistic; min_tls any; } }\n"
                           "}\n"
                           "domain \"acme.example\" {\n"
                           "  outbound { default peer { level opportunistic; min_tls any; } }\n"
                           "  inbound { default peer { level opportunistic; min_tls any; } }\n"
                           "}\n";
  CompileOptions o;
  o.inputs = {policy};
  o.threads = 1;
  CompileResult r = compile(o);
  if (!r.table) throw std::runtime_error("the bench policy does not compile:\n" + render_diagnostics(r));
  const std::string table = dir + "/table.tlspdt";
  write_table_file(table, *r.table);
  return table;
}

struct RunResult {
  size_t attempts = 0, accepted = 0;
  double median_ms = 0, max_ms = 0;
  SlowClientsStats attack;
  std::string problem, first_failure;
};

// The n'th good client's address: 127.0.1.1, 127.0.1.2, ... 127.0.1.250,
// 127.0.2.1, ...: one address each, so no per-client limit is involved.
std::string good_address(size_t n) {
  return "127.0." + std::to_string(1 + n / 250) + "." + std::to_string(1 + n % 250);
}

RunResult run(const Options& opt, const std::string& dir, bool defence) {
  RunResult res;
  fs::create_directories(dir);
  SmtpPeerConfig hop;
  hop.hostname = "mailstore.acme.example";
  hop.offer_starttls = false;
  hop.address = "127.0.0.30";
  SmtpPeer next_hop(hop);
  std::vector<std::string> args = {"relay",
                                   "--listen",
                                   "127.0.0.1:0",
                                   "--hostname",
                                   "relay.bench.test",
                                   "--table",
                                   write_table(dir),
                                   "--spool",
                                   dir + "/spool",
                                   "--resolver",
                                   "127.0.0.1:9",  // inbound only: nothing is looked up
                                   "--submit-network",
                                   "127.0.0.1/32",
                                   "--next-hop",
                                   "acme.example=127.0.0.30:" + std::to_string(next_hop.port()),
                                   "--max-connections",
                                   std::to_string(opt.max_connections)};
  if (!defence)
    args.insert(args.end(), {"--stress-threshold", "0", "--admission-wait", "0", "--evict-stalled-after", "0",
                             "--max-connection-rate-per-client", "0"});
  for (std::string& a : service_user_args(dir)) args.push_back(std::move(a));  // root: the relay runs as nobody
  RelayProcess relay(opt.tlsp, args);
  g_relay_pid = relay.pid();
  uint16_t port = relay.wait_ready(20s);
  if (port == 0) {
    res.problem = "the relay did not start";
    return res;
  }
  SlowClientsConfig attack;
  attack.port = port;
  for (size_t i = 0; i < opt.sources; ++i) attack.sources.push_back("127.0.0." + std::to_string(100 + i));
  attack.connections = opt.attackers;
  SlowClients attackers(attack);
  // The attack holds every slot: the listener refuses (or queues) a client.
  bool full = relay.wait_for(
      [](const relay::LogLine& l) { return l.matches(relay::LogEvent::limit, {{"limit", "max_connections"}}); }, 20s,
      0, nullptr);
  if (!full) {
    res.problem = "the attack did not fill the relay";
    return res;
  }
  std::mutex mu;
  std::vector<double> times;
  std::vector<std::thread> clients;
  const size_t total = opt.seconds * opt.good_per_second;
  const auto began = Clock::now();
  for (size_t n = 0; n < total; ++n) {
    const auto at = began + std::chrono::milliseconds(1000 * n / opt.good_per_second);
    // The schedule of arrivals is the benchmark's input: wait for the
    // moment the next client arrives.
    std::this_thread::sleep_until(at);
    clients.emplace_back([&, n] {
      SubmitOptions o;
      o.address = "127.0.0.1";
      o.port = port;
      o.source_address = good_address(n);
      o.ehlo_name = "good" + std::to_string(n) + ".example";
      o.message.mail_from = "carol@sender.example";
      o.message.rcpts = {"alice@acme.example"};
      o.message.data = "Subject: bench\r\nMessage-ID: <" + std::to_string(n) + "@bench>\r\n\r\nhello\r\n";
      o.timeout = 30s;
      const auto t0 = Clock::now();
      SubmitResult r = submit_message(o);
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      std::lock_guard lock(mu);
      if (r.accepted)
        times.push_back(ms);
      else if (res.first_failure.empty())
        res.first_failure = r.reply.empty() ? std::to_string(r.code) + " " + r.error : r.reply;
    });
  }
  for (std::thread& t : clients) t.join();
  res.attack = attackers.stats();
  attackers.stop();
  relay.signal(SIGTERM);
  relay.wait_exit(20s);
  g_relay_pid = 0;
  res.attempts = total;
  res.accepted = times.size();
  std::sort(times.begin(), times.end());
  if (!times.empty()) {
    res.median_ms = times[times.size() / 2];
    res.max_ms = times.back();
  }
  return res;
}

void print(const char* name, const RunResult& r) {
  if (!r.problem.empty()) {
    std::printf("  %-24s FAILED: %s\n", name, r.problem.c_str());
    return;
  }
  std::printf("  %-24s good clients %zu/%zu accepted (%.1f %%)", name, r.accepted, r.attempts,
              r.attempts ? 100.0 * r.accepted / r.attempts : 0.0);
  if (r.accepted) std::printf(", time to 250: median %.0f ms, max %.0f ms", r.median_ms, r.max_ms);
  std::printf("\n  %-24s attack: %zu connections, %zu greeted, %zu refused, %zu cut by the relay\n", "",
              r.attack.connects, r.attack.greeted, r.attack.refused, r.attack.cut);
  if (r.accepted < r.attempts) std::printf("  %-24s first refusal: %s\n", "", r.first_failure.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  try {
    opt = parse_options(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tlsp_relay_attack_bench: %s\n", e.what());
    return 2;
  }
  // SIGINT/SIGTERM: kill the relay of the current run, remove the work
  // directory, exit.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  char tmpl[] = "/tmp/tlsp-attack-bench-XXXXXX";
  if (!mkdtemp(tmpl)) return 1;
  ::chmod(tmpl, 0711);  // searchable by the relay's own user (service_user_args)
  const std::string dir = tmpl;
  std::thread([set, dir]() mutable {
    int sig = 0;
    sigwait(&set, &sig);
    if (pid_t p = g_relay_pid.load()) ::kill(p, SIGKILL);
    std::error_code ec;
    fs::remove_all(dir, ec);
    std::_Exit(130);
  }).detach();

  std::printf(
      "relay under a slow-client attack: %zu connections from %zu addresses trickling 1 byte/s against "
      "max-connections %zu;\n%zu well-behaved clients (%zu/s for %zu s), one message each:\n",
      opt.attackers, opt.sources, opt.max_connections, opt.seconds * opt.good_per_second, opt.good_per_second,
      opt.seconds);
  std::fflush(stdout);
  int rc = 0;
  try {
    RunResult on = run(opt, dir + "/on", true);
    print("defence on (defaults)", on);
    std::fflush(stdout);
    RunResult off = run(opt, dir + "/off", false);
    print("defence off", off);
    if (!on.problem.empty() || !off.problem.empty()) rc = 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tlsp_relay_attack_bench: %s\n", e.what());
    rc = 1;
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  return rc;
}
