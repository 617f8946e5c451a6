// tlsp_relay_bench.cpp — messages per second through `tlsp relay` on the
// loopback (issue 4, "Benchmark"), side by side with Debian's Postfix
// configured as a relay with the equivalent `smtp_tls_security_level`.
//
//   tlsp_relay_bench [--tlsp PATH] [--messages N] [--clients C]
//                    [--message-bytes B] [--delivery-workers W]
//                    [--modes plaintext,opportunistic,dane-only]
//                    [--postfix PATH | --no-postfix]
//
// The world, on 127.0.0.0/8:
//  * a DNS responder (tlsp::sim::DnsResponder), shared by every run,
//    publishing with the AD bit `sink.example MX 10 mx.sink.example`,
//    `mx.sink.example A 127.0.0.2` and `3 1 1` TLSA records for the sink's
//    certificate;
//  * per run, a fresh sink (tlsp::sim::SmtpPeer on 127.0.0.2) that
//    accepts everything; it offers STARTTLS except in `plaintext`;
//  * per run, the MTA under test: a real `tlsp relay` child with a fresh
//    spool and a decision table whose rule for sink.example is
//    `opportunistic` (plaintext, opportunistic) or `dane-only; min_tls
//    tls1.3`; then a private Postfix instance with smtp_tls_security_level
//    none / may / dane-only (and TLS 1.3 as the mandatory floor);
//  * C client threads submitting N messages of B octets over plaintext
//    SMTP, kMessagesPerConnection per connection.
// The figure is N / (the time from the first submission until the sink
// holds all N). Printed with it: the client-side acceptance rate (N / the
// time until the last 250 after DATA), the CPU time of the MTA's
// processes per message, and peak memory.
//
// Contract: a row says `ok` only when the run was correct: every message
// accepted by the MTA, each arrived at the sink exactly once with the
// expected TLS version (none in plaintext, TLS 1.3 otherwise), and (tlsp)
// one `attempt ... action=sent` log line per message, DANE-EE
// authenticated in dane-only (Postfix: every TLS session in its log
// `Verified`). Otherwise the row says what was wrong and the exit status
// is 1. Nothing is left running or on disk: the relay is stopped and
// reaped, Postfix stopped (and its processes waited for), the work
// directory removed, also when a run fails or on SIGINT/SIGTERM/SIGHUP.
//
// Postfix and DNSSEC: Postfix asks the system resolver (glibc) for MX, A
// and TLSA records and trusts its AD bit; glibc cannot be given a port, so
// the DNS responder listens on kDnsAddress port 53, and Postfix's smtp
// client runs chrooted in its queue directory (in every mode, so the
// modes differ only in the TLS level), where etc/resolv.conf names that
// address with `options trust-ad` (glibc strips AD otherwise). No system
// file is touched. When port 53 cannot be had (not root, or in use), the
// DNS responder takes any port, Postfix relays to [127.0.0.2]:port
// without DNS, and its dane-only row is "n/a".
//
// Postfix runs with its defaults otherwise (process limits, destination
// concurrency 20, on-demand connection caching, no TLS session cache,
// in_flow_delay), no local delivery. The machine is shared and noisy:
// compare the ratio measured in one run, not figures across runs.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench_support.h"
#include "tlsp/compiler.h"
#include "tlsp/dane.h"
#include "tlsp/decision_table.h"
#include "tlsp/sim/dns_responder.h"
#include "tlsp/sim/relay_process.h"
#include "tlsp/sim/smtp_peer.h"
#include "tlsp/sim/test_pki.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace tlsp;
using namespace tlsp::sim;
using Clock = std::chrono::steady_clock;

namespace {

using tlsp::bench::find_tlsp;
using tlsp::bench::parse_count;

// ------------------------------------------------------------ settings

constexpr size_t kDefaultMessages = 20000;
constexpr size_t kDefaultClients = 8;
constexpr size_t kDefaultMessageBytes = 2048;
// Messages per client connection: below the relay's max-commands (1000
// per session, three commands per message).
constexpr size_t kMessagesPerConnection = 100;
constexpr auto kClientTimeout = 60s;  // one client read or write
constexpr auto kStartTimeout = 30s;   // an MTA to start listening
constexpr auto kStopTimeout = 60s;    // an MTA to stop (its shutdown grace is shorter)
// The sink is waited for in kProgressSteps steps; a step that does not
// complete within kStallTimeout fails the run (a stuck queue).
constexpr size_t kProgressSteps = 20;
constexpr auto kStallTimeout = 120s;
constexpr auto kMemorySampleInterval = 100ms;  // Postfix's processes

const char* const kDnsAddress = "127.0.0.153";  // glibc needs port 53: an address of its own
constexpr uint16_t kDnsPort = 53;
const char* const kSinkAddress = "127.0.0.2";
const char* const kPostfixAddress = "127.0.0.3";
const char* const kClientAddress = "127.0.0.1";
const char* const kSinkDomain = "sink.example";
const char* const kSinkHost = "mx.sink.example";
const char* const kSender = "alice@acme.example";  // acme.example: the relay's managed domain
const char* const kRecipient = "bob@sink.example";
const char* const kSeqHeader = "X-Bench-Seq: ";

enum class Mode : uint8_t { plaintext, opportunistic, dane_only };
const char* mode_name(Mode m) {
  switch (m) {
    case Mode::plaintext:
      return "plaintext";
    case Mode::opportunistic:
      return "opportunistic";
    case Mode::dane_only:
      return "dane-only";
  }
  return "?";
}

struct Options {
  std::string tlsp;
  std::string postfix = "/usr/sbin/postfix";
  bool with_postfix = true;
  size_t messages = kDefaultMessages;
  size_t clients = kDefaultClients;
  size_t message_bytes = kDefaultMessageBytes;
  unsigned delivery_workers = 0;  // 0: the relay's default
  std::vector<Mode> modes = {Mode::plaintext, Mode::opportunistic, Mode::dane_only};
};

// ------------------------------------------- cleanup on a fatal signal
// The main thread and every thread it starts block SIGINT/SIGTERM/SIGHUP;
// one thread waits for them and, if one comes, stops whatever is running
// (Postfix instances, relay children) and removes the work directory
// before exiting. RAII does the same on every ordinary path.

struct Emergency {
  std::mutex mu;
  std::string work_dir;
  std::map<std::string, pid_t> postfix_instances;  // config directory -> master pid
  std::set<pid_t> pids;
  std::string postfix;
};
Emergency g_emergency;

void stop_postfix_instance(const std::string& postfix, const std::string& config, pid_t master, const char* verb);

void emergency_thread(sigset_t set) {
  int sig = 0;
  if (sigwait(&set, &sig) != 0) return;
  std::lock_guard lock(g_emergency.mu);
  std::fprintf(stderr, "\nrelay bench: signal %d: stopping and cleaning up\n", sig);
  for (pid_t p : g_emergency.pids) ::kill(p, SIGKILL);
  for (const auto& [config, master] : g_emergency.postfix_instances)
    stop_postfix_instance(g_emergency.postfix, config, master, "abort");
  std::error_code ec;
  if (!g_emergency.work_dir.empty()) fs::remove_all(g_emergency.work_dir, ec);
  ::_exit(130);
}

// ------------------------------------------------------------- helpers

// Runs argv with the default signal mask (Postfix's master must see
// SIGTERM); returns the exit status (-1: no exit) and, when `output` is
// given, what it wrote. The output goes to a pseudo-terminal: Postfix's
// commands only write their errors to standard error when it is a tty
// (otherwise to syslog, which a container may not have).
int run_command(const std::vector<std::string>& argv, std::string* output = nullptr) {
  std::fflush(stdout);
  std::fflush(stderr);
  int master = -1, slave = -1;
  if (output && ::openpty(&master, &slave, nullptr, nullptr, nullptr) != 0)
    throw std::runtime_error(std::string("openpty: ") + std::strerror(errno));
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    ::pthread_sigmask(SIG_SETMASK, &none, nullptr);
    int out = output ? slave : ::open("/dev/null", O_WRONLY);
    ::dup2(out, STDOUT_FILENO);
    ::dup2(out, STDERR_FILENO);
    int in = ::open("/dev/null", O_RDONLY);
    ::dup2(in, STDIN_FILENO);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  if (output) {
    // Read until the command exits (a daemon it starts may keep the
    // terminal open, so end of file is not the signal): poll the terminal
    // and a pidfd of the child together.
    ::close(slave);
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    ::fcntl(master, F_SETFL, O_NONBLOCK);
    char buf[4096];
    while (true) {
      pollfd fds[2] = {{master, POLLIN, 0}, {pidfd, POLLIN, 0}};
      if (::poll(fds, pidfd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR) break;
      ssize_t n;
      while ((n = ::read(master, buf, sizeof buf)) > 0) output->append(buf, static_cast<size_t>(n));
      const bool writers_gone = n < 0 && errno == EIO;
      if (writers_gone || (pidfd >= 0 && (fds[1].revents & POLLIN))) break;
    }
    if (pidfd >= 0) ::close(pidfd);
    ::close(master);
    output->erase(std::remove(output->begin(), output->end(), '\r'), output->end());
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write `" + path + "`");
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t b = 0;
  while (b < s.size() && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  return s.substr(b);
}

// The last `n` lines of a text, for error messages.
std::string tail(const std::string& text, size_t n) {
  size_t pos = text.size();
  for (size_t i = 0; i <= n && pos > 0; ++i) {
    size_t nl = text.rfind('\n', pos - 1);
    if (nl == std::string::npos) return text;
    if (i < n) pos = nl;
  }
  return text.substr(pos);
}

// A port free on `address` now (the kernel's choice for port 0).
uint16_t free_port(const std::string& address) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  ::inet_pton(AF_INET, address.c_str(), &sa.sin_addr);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("cannot bind `" + address + "`: " + std::strerror(errno));
  }
  socklen_t len = sizeof sa;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  ::close(fd);
  return ntohs(sa.sin_port);
}

// A field of /proc/<pid>/status or smaps_rollup ("VmHWM:", "Rss:"), in KiB.
long proc_kib(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) return std::atol(line.c_str() + key.size());
  return -1;
}

// Fields of /proc/<pid>/stat from the state on (field 3 is index 0).
std::vector<long long> stat_fields(pid_t pid) {
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  size_t close = stat.rfind(')');  // the command name may hold spaces
  std::vector<long long> out;
  if (close == std::string::npos) return out;
  std::istringstream in(stat.substr(close + 2));
  std::string state;
  in >> state;
  out.push_back(0);
  for (long long v; in >> v;) out.push_back(v);
  return out;
}

pid_t parent_of(pid_t pid) {
  std::vector<long long> f = stat_fields(pid);
  return f.size() > 1 ? static_cast<pid_t>(f[1]) : -1;
}

// `root` and every process below it.
std::vector<pid_t> process_tree(pid_t root) {
  std::map<pid_t, pid_t> parent;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string n = e.path().filename().string();
    if (n.empty() || !std::all_of(n.begin(), n.end(), ::isdigit)) continue;
    pid_t p = std::atoi(n.c_str());
    parent[p] = parent_of(p);
  }
  std::vector<pid_t> tree{root};
  for (size_t i = 0; i < tree.size(); ++i)
    for (const auto& [p, pp] : parent)
      if (pp == tree[i]) tree.push_back(p);
  return tree;
}

// CPU seconds used by a process tree: each live process's user and
// system time plus that of the children it has reaped (cutime, cstime),
// so the processes Postfix's master started and reaped still count.
double tree_cpu_seconds(pid_t root) {
  static const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  long long ticks = 0;
  for (pid_t p : process_tree(root)) {
    std::vector<long long> f = stat_fields(p);
    if (f.size() > 14) ticks += f[11] + f[12] + f[13] + f[14];  // utime stime cutime cstime
  }
  return static_cast<double>(ticks) / tick;
}

// Samples the summed RSS and PSS of a process tree until stopped (Postfix
// is a dozen processes; their summed peak is its footprint).
class MemorySampler {
 public:
  explicit MemorySampler(pid_t root) : root_(root), thread_([this] { loop(); }) {}
  ~MemorySampler() { stop(); }
  void stop() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  double peak_rss_mib() const { return peak_rss_kib_ / 1024.0; }
  double peak_pss_mib() const { return peak_pss_kib_ / 1024.0; }
  size_t peak_processes() const { return peak_processes_; }

 private:
  void loop() {
    std::unique_lock lock(mu_);
    while (!stop_) {
      lock.unlock();
      sample();
      lock.lock();
      cv_.wait_for(lock, kMemorySampleInterval, [&] { return stop_; });
    }
  }
  void sample() {
    long rss = 0, pss = 0;
    std::vector<pid_t> tree = process_tree(root_);
    for (pid_t p : tree) {
      const std::string base = "/proc/" + std::to_string(p) + "/smaps_rollup";
      long r = proc_kib(base, "Rss:"), s = proc_kib(base, "Pss:");
      if (r > 0) rss += r;
      if (s > 0) pss += s;
    }
    peak_rss_kib_ = std::max(peak_rss_kib_, rss);
    peak_pss_kib_ = std::max(peak_pss_kib_, pss);
    peak_processes_ = std::max(peak_processes_, tree.size());
  }
  pid_t root_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  long peak_rss_kib_ = 0, peak_pss_kib_ = 0;
  size_t peak_processes_ = 0;
  std::thread thread_;
};

// -------------------------------------------------------------- the load

std::vector<SubmitMessage> make_messages(size_t n, size_t bytes) {
  std::vector<SubmitMessage> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    std::string d = "From: <" + std::string(kSender) + ">\r\nTo: <" + kRecipient + ">\r\nSubject: relay bench " +
                    std::to_string(i) + "\r\nMessage-ID: <" + std::to_string(i) + ".bench@acme.example>\r\n" +
                    kSeqHeader + std::to_string(i) + "\r\n\r\n";
    for (size_t line = 0; d.size() < bytes; ++line) {
      std::string l = "line " + std::to_string(line) + " of message " + std::to_string(i) + ": ";
      l.append(74 - std::min<size_t>(l.size(), 74), static_cast<char>('a' + line % 26));
      d += l + "\r\n";
    }
    if (d.size() > bytes) d.resize(bytes - 2), d += "\r\n";
    out.push_back({kSender, {kRecipient}, std::move(d)});
  }
  return out;
}

struct LoadResult {
  size_t accepted = 0;
  double seconds = 0;       // until the last client finished
  std::string first_error;  // the first refusal or failure, if any
};

// `clients` threads, each a contiguous share of the messages, in
// connections of kMessagesPerConnection.
LoadResult submit_load(const std::string& address, uint16_t port, const std::vector<SubmitMessage>& messages,
                       size_t clients, Clock::time_point start) {
  std::atomic<size_t> accepted{0};
  std::mutex mu;
  std::string first_error;
  std::vector<std::thread> threads;
  const size_t share = (messages.size() + clients - 1) / clients;
  for (size_t c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      const size_t begin = std::min(messages.size(), c * share), end = std::min(messages.size(), begin + share);
      for (size_t i = begin; i < end; i += kMessagesPerConnection) {
        std::vector<SubmitMessage> batch(messages.begin() + i,
                                         messages.begin() + std::min(end, i + kMessagesPerConnection));
        SubmitOptions o;
        o.address = address;
        o.port = port;
        o.source_address = kClientAddress;
        o.ehlo_name = "client.bench.test";
        o.timeout = kClientTimeout;
        for (const SubmitResult& r : submit_messages(o, batch)) {
          if (r.accepted) {
            ++accepted;
            continue;
          }
          std::lock_guard lock(mu);
          if (first_error.empty())
            first_error = std::string("refused at ") + std::string(to_string(r.failed_stage)) + ": " +
                          (r.reply.empty() ? r.error : r.reply);
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  LoadResult r;
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  r.accepted = accepted;
  r.first_error = first_error;
  return r;
}

// Waits until the sink holds n messages; false when a step stalls.
bool wait_for_sink(SmtpPeer& sink, size_t n) {
  const size_t step = std::max<size_t>(1, n / kProgressSteps);
  for (size_t target = std::min(n, step);; target = std::min(n, target + step)) {
    if (!sink.wait_for_messages(target, kStallTimeout)) return false;
    if (target == n) return true;
  }
}

// Every message exactly once, with the expected TLS version. "" or what is wrong.
std::string check_sink(const SmtpPeer& sink, size_t n, TlsVersion want) {
  std::vector<PeerMessage> got = sink.messages();
  std::vector<unsigned> seen(n, 0);
  size_t wrong_tls = 0, unknown = 0;
  for (const PeerMessage& m : got) {
    if (m.tls != want) ++wrong_tls;
    size_t at = m.data.find(kSeqHeader);
    size_t seq = at == std::string::npos ? n : std::strtoul(m.data.c_str() + at + std::strlen(kSeqHeader), nullptr, 10);
    if (seq >= n || m.rcpts.size() != 1 || m.rcpts[0] != kRecipient)
      ++unknown;
    else
      ++seen[seq];
  }
  size_t missing = std::count(seen.begin(), seen.end(), 0u);
  size_t duplicated = 0;
  for (unsigned s : seen) duplicated += s > 1 ? s - 1 : 0;
  std::string problems;
  auto add = [&](size_t count, const std::string& what) {
    if (count) problems += (problems.empty() ? "" : ", ") + std::to_string(count) + " " + what;
  };
  add(missing, "missing");
  add(duplicated, "duplicated");
  add(unknown, "unrecognised");
  add(wrong_tls, "not over " + std::string(to_string(want)));
  return problems;
}

// ------------------------------------------------------------- the world

// What both MTAs share: the PKI, the DNS responder and the sink's certificate.
struct World {
  std::string dir;
  std::unique_ptr<TestPki> pki;
  TestCert sink_cert;
  DnsResponder dns;
  bool dns_on_port_53 = false;
  std::string dns_problem;  // why not

  explicit World(const std::string& work) : dir(work) {
    pki = std::make_unique<TestPki>(dir + "/pki");
    sink_cert = pki->issue({kSinkHost});
    try {
      dns.start(kDnsAddress, kDnsPort);
      dns_on_port_53 = true;
    } catch (const std::exception& e) {
      dns_problem = e.what();
      dns.start("127.0.0.1", 0);
    }
    dns.set({kSinkDomain, dns_type::MX, {std::string("10 ") + kSinkHost + "."}});
    dns.set({kSinkHost, dns_type::A, {kSinkAddress}});
  }

  // TLSA at port 25 (where tlsp looks) and at the sink's port (where
  // Postfix looks for a next hop with a port).
  void publish_tlsa(uint16_t port) {
    std::vector<std::string> rdata = {format_tlsa_record(TestPki::tlsa_for(sink_cert, 3, 1, 1))};
    for (uint16_t p : {uint16_t{25}, port})
      dns.set({"_" + std::to_string(p) + "._tcp." + kSinkHost, dns_type::TLSA, rdata});
  }

  std::unique_ptr<SmtpPeer> make_sink(Mode mode) {
    SmtpPeerConfig c;
    c.address = kSinkAddress;
    c.hostname = kSinkHost;
    c.offer_starttls = mode != Mode::plaintext;
    c.cert_file = sink_cert.cert_file;
    c.key_file = sink_cert.key_file;
    c.max_recipients = kPeerMaxRecipients;
    c.timeout = kClientTimeout;
    auto sink = std::make_unique<SmtpPeer>(c);
    publish_tlsa(sink->port());
    return sink;
  }
};

struct RunResult {
  bool ran = false;  // false: n/a (reason in `problem`)
  bool ok = false;
  double seconds = 0;         // first submission until the sink holds all
  double accept_seconds = 0;  // first submission until the last 250
  double cpu_seconds = 0;     // the MTA's processes, during the run
  double peak_mib = 0;        // tlsp: VmHWM; Postfix: summed RSS
  double peak_pss_mib = 0;    // Postfix: summed PSS
  size_t processes = 1;
  std::string problem;
  std::string note;
  double rate(size_t n) const { return seconds > 0 ? n / seconds : 0; }
};

// ------------------------------------------------------------------ tlsp

std::string write_table(const std::string& dir, Mode mode) {
  const std::string rule =
      mode == Mode::dane_only ? "level dane-only; min_tls tls1.3;" : "level opportunistic; min_tls any;";
  const std::string policy = dir + "/policy.tlsp";
  write_file(policy,
             "policy \"relay-bench\" version \"1\";\n"
             "default domain {\n"
             "  outbound { default peer { level opportunistic; min_tls any; } }\n"
             "  inbound  { default peer { level opportunistic; min_tls any; } }\n"
             "}\n"
             "domain \"acme.example\" {\n"
             "  outbound {\n"
             "    default peer { level opportunistic; min_tls any; }\n"
             "    peer \"" +
                 std::string(kSinkDomain) + "\" { " + rule +
                 " }\n"
                 "  }\n"
                 "  inbound { default peer { level opportunistic; min_tls any; } }\n"
                 "}\n");
  CompileOptions o;
  o.inputs = {policy};
  o.threads = 1;
  CompileResult r = compile(o);
  if (!r.table) throw std::runtime_error("the bench policy does not compile:\n" + render_diagnostics(r));
  const std::string table = dir + "/table.tlspdt";
  write_table_file(table, *r.table);
  return table;
}

RunResult run_tlsp(const Options& opt, World& world, Mode mode, const std::vector<SubmitMessage>& messages) {
  RunResult res;
  res.ran = true;
  const std::string dir = world.dir + "/tlsp-" + mode_name(mode);
  fs::create_directories(dir);
  auto sink = world.make_sink(mode);
  std::vector<std::string> args = {"relay",
                                   "--listen",
                                   std::string(kClientAddress) + ":0",
                                   "--hostname",
                                   "relay.bench.test",
                                   "--table",
                                   write_table(dir, mode),
                                   "--spool",
                                   dir + "/spool",
                                   "--resolver",
                                   world.dns.server(),
                                   "--smtp-port",
                                   std::to_string(sink->port()),
                                   "--ca-file",
                                   world.pki->ca_file()};
  if (opt.delivery_workers) args.insert(args.end(), {"--delivery-workers", std::to_string(opt.delivery_workers)});
  for (std::string& a : service_user_args(dir)) args.push_back(std::move(a));  // root: the relay runs as nobody
  RelayProcess relay(opt.tlsp, args);
  {
    std::lock_guard lock(g_emergency.mu);
    g_emergency.pids.insert(relay.pid());
  }
  struct Forget {
    pid_t pid;
    ~Forget() {
      std::lock_guard lock(g_emergency.mu);
      g_emergency.pids.erase(pid);
    }
  } forget{relay.pid()};
  auto log_tail = [&] {
    std::string s;
    for (const std::string& l : relay.lines()) s += l + "\n";
    return tail(s, 5);
  };
  uint16_t port = relay.wait_ready(kStartTimeout);
  if (port == 0) {
    res.problem = "the relay did not start:\n" + log_tail();
    return res;
  }

  const double cpu_before = tree_cpu_seconds(relay.pid());
  const auto start = Clock::now();
  LoadResult load = submit_load(kClientAddress, port, messages, opt.clients, start);
  res.accept_seconds = load.seconds;
  if (load.accepted != messages.size()) {
    res.problem = std::to_string(messages.size() - load.accepted) + " messages not accepted (" + load.first_error + ")";
    return res;
  }
  if (!wait_for_sink(*sink, messages.size())) {
    res.problem = "the sink stalled before all messages arrived:\n" + log_tail();
    return res;
  }
  res.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  res.cpu_seconds = tree_cpu_seconds(relay.pid()) - cpu_before;
  res.peak_mib = proc_kib("/proc/" + std::to_string(relay.pid()) + "/status", "VmHWM:") / 1024.0;

  relay.signal(SIGTERM);
  std::optional<int> status = relay.wait_exit(kStopTimeout);
  if (!status) {
    res.problem = "the relay did not stop";
    return res;
  }
  // The relay's own account: one sent attempt per message, with the
  // channel the mode promises.
  size_t sent = 0, wrong = 0;
  for (const std::string& line : relay.lines()) {
    std::optional<relay::LogLine> f = relay::parse_log_line(line);
    if (!f || !f->matches(relay::LogEvent::attempt, {{"action", "sent"}})) continue;
    ++sent;
    auto is = [&](const char* k, const char* v) { return f->get(k) == v; };
    bool as_expected = mode == Mode::plaintext ? is("channel", "plaintext")
                       : mode == Mode::opportunistic
                           ? is("channel", "encrypted") && is("tls", "tls1.3")
                           : is("channel", "authenticated") && is("auth", "dane-ee") && is("tls", "tls1.3");
    if (!as_expected) ++wrong;
  }
  std::string problems =
      check_sink(*sink, messages.size(), mode == Mode::plaintext ? TlsVersion::none : TlsVersion::tls1_3);
  if (sent != messages.size())
    problems += (problems.empty() ? "" : ", ") + std::to_string(sent) + " sent attempts logged";
  if (wrong) problems += (problems.empty() ? "" : ", ") + std::to_string(wrong) + " attempts on another channel";
  res.note = "log: " + std::to_string(sent) + " sent attempts (" + std::to_string(sent - wrong) + " " +
             (mode == Mode::plaintext       ? "plaintext"
              : mode == Mode::opportunistic ? "TLS 1.3"
                                            : "DANE-EE, TLS 1.3") +
             "); sink sessions " + std::to_string(sink->sessions().size());
  res.problem = problems;
  res.ok = problems.empty();
  return res;
}

// --------------------------------------------------------------- Postfix

// `postfix -c config stop` (or abort), then waits for every process of
// the instance to end, SIGKILL to what is left after kStopTimeout: the
// master's children outlive it by a second or two, and the directory they
// work in must not be removed under them. They are not our children: a
// pidfd taken before the stop tells when each one exits.
void stop_postfix_instance(const std::string& postfix, const std::string& config, pid_t master, const char* verb) {
  std::vector<int> pidfds;
  if (master > 0)
    for (pid_t p : process_tree(master)) {
      int fd = static_cast<int>(::syscall(SYS_pidfd_open, p, 0));
      if (fd >= 0) pidfds.push_back(fd);
    }
  run_command({postfix, "-c", config, verb});
  const auto deadline = Clock::now() + kStopTimeout;
  for (int fd : pidfds) {
    pollfd pfd{fd, POLLIN, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (::poll(&pfd, 1, static_cast<int>(std::max<long long>(0, left))) <= 0)
      ::syscall(SYS_pidfd_send_signal, fd, SIGKILL, nullptr, 0);
    ::close(fd);
  }
}

// A private Postfix instance: its own config, queue and data directories
// under `dir`; stopped (and every process of it gone) by the destructor.
class PostfixInstance {
 public:
  PostfixInstance(std::string postfix, std::string dir) : postfix_(std::move(postfix)), dir_(std::move(dir)) {}
  ~PostfixInstance() { stop(); }

  const std::string& config() const { return config_; }
  std::string maillog() const { return dir_ + "/log/maillog"; }

  // Writes main.cf and master.cf and starts. Throws with the start output.
  void start(Mode mode, const World& world, uint16_t sink_port, uint16_t smtpd_port) {
    config_ = dir_ + "/etc";
    const std::string queue = dir_ + "/queue";
    fs::create_directories(config_);
    fs::create_directories(queue + "/etc");
    fs::create_directories(dir_ + "/data");
    const passwd* owner = ::getpwnam("postfix");
    if (!owner) throw std::runtime_error("no `postfix` user (mail_owner)");
    if (::chown((dir_ + "/data").c_str(), owner->pw_uid, owner->pw_gid) != 0)
      throw std::runtime_error("cannot chown `" + dir_ + "/data`: " + std::strerror(errno));
    fs::create_directories(dir_ + "/log");
    // The postfix user must reach the queue through the path.
    for (fs::path p = dir_; p != p.parent_path() && p.string().rfind(world.dir, 0) == 0; p = p.parent_path())
      ::chmod(p.c_str(), 0755);

    const bool dns = world.dns_on_port_53;
    const std::string level = mode == Mode::plaintext ? "none" : mode == Mode::opportunistic ? "may" : "dane-only";
    std::string main_cf =
        "# tlsp_relay_bench: a private relay instance\n"
        "compatibility_level = 3.6\n"
        "queue_directory = " +
        queue +
        "\n"
        "data_directory = " +
        dir_ +
        "/data\n"
        "mail_owner = postfix\n"
        "setgid_group = postdrop\n"
        "maillog_file = " +
        maillog() +
        "\n"
        "maillog_file_prefixes = " +
        dir_ +
        "\n"
        "myhostname = postfix.bench.test\n"
        "mydomain = bench.test\n"
        "myorigin = $myhostname\n"
        "mydestination =\n"
        "local_recipient_maps =\n"
        "local_transport = error:local delivery is disabled\n"
        "alias_maps =\n"
        "alias_database =\n"
        "biff = no\n"
        "append_dot_mydomain = no\n"
        "inet_interfaces = loopback-only\n"  // an interface's address; master.cf binds kPostfixAddress
        "inet_protocols = ipv4\n"
        "mynetworks = 127.0.0.0/8\n"
        "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n"
        "smtp_address_preference = ipv4\n"
        "smtp_tls_security_level = " +
        level +
        "\n"
        "smtp_tls_loglevel = 1\n"
        "smtp_tls_CAfile = " +
        world.pki->ca_file() + "\n";
    if (dns) {
      // The MX lookup as tlsp does it, through the chrooted resolver.
      main_cf += "relayhost = " + std::string(kSinkDomain) + ":" + std::to_string(sink_port) +
                 "\n"
                 "smtp_dns_support_level = dnssec\n";
      write_file(queue + "/etc/resolv.conf", "nameserver " + std::string(kDnsAddress) + "\noptions trust-ad\n");
      for (const char* f : {"/etc/services", "/etc/hosts", "/etc/host.conf"}) {
        std::error_code ec;
        fs::copy_file(f, queue + f, fs::copy_options::overwrite_existing, ec);
      }
    } else {
      main_cf += "relayhost = [" + std::string(kSinkAddress) + "]:" + std::to_string(sink_port) + "\n";
    }
    if (mode == Mode::dane_only) main_cf += "smtp_tls_mandatory_protocols = >=TLSv1.3\n";
    write_file(config_ + "/main.cf", main_cf);

    const std::string chroot = dns ? "y" : "n";
    write_file(config_ + "/master.cf", "# service type  private unpriv  chroot  wakeup  maxproc command\n" +
                                           std::string(kPostfixAddress) + ":" + std::to_string(smtpd_port) +
                                           " inet n - n - - smtpd\n"
                                           "pickup    unix  n       -       n       60      1       pickup\n"
                                           "cleanup   unix  n       -       n       -       0       cleanup\n"
                                           "qmgr      unix  n       -       n       300     1       qmgr\n"
                                           "tlsmgr    unix  -       -       n       1000?   1       tlsmgr\n"
                                           "rewrite   unix  -       -       n       -       -       trivial-rewrite\n"
                                           "bounce    unix  -       -       n       -       0       bounce\n"
                                           "defer     unix  -       -       n       -       0       bounce\n"
                                           "trace     unix  -       -       n       -       0       bounce\n"
                                           "verify    unix  -       -       n       -       1       verify\n"
                                           "flush     unix  n       -       n       1000?   0       flush\n"
                                           "proxymap  unix  -       -       n       -       -       proxymap\n"
                                           "smtp      unix  -       -       " +
                                           chroot +
                                           "       -       -       smtp\n"
                                           "relay     unix  -       -       " +
                                           chroot +
                                           "       -       -       smtp\n"
                                           "showq     unix  n       -       n       -       -       showq\n"
                                           "error     unix  -       -       n       -       -       error\n"
                                           "retry     unix  -       -       n       -       -       error\n"
                                           "discard   unix  -       -       n       -       -       discard\n"
                                           "anvil     unix  -       -       n       -       1       anvil\n"
                                           "scache    unix  -       -       n       -       1       scache\n"
                                           "postlog   unix-dgram n  -       n       -       1       postlogd\n");
    started_ = true;
    std::string out;
    if (run_command({postfix_, "-c", config_, "start"}, &out) != 0)
      throw std::runtime_error("`postfix start` failed:\n" + tail(out, 8));
    std::string pid = trim(read_file(queue + "/pid/master.pid"));
    master_ = std::atoi(pid.c_str());
    std::lock_guard lock(g_emergency.mu);
    g_emergency.postfix_instances[config_] = master_;
    if (master_ <= 0) throw std::runtime_error("postfix started without a master.pid");
  }

  pid_t master() const { return master_; }

  // Stops the instance and waits for all its processes (see below).
  void stop() {
    if (!started_) return;
    started_ = false;
    stop_postfix_instance(postfix_, config_, master_, "stop");
    std::lock_guard lock(g_emergency.mu);
    g_emergency.postfix_instances.erase(config_);
  }

 private:
  std::string postfix_;
  std::string dir_;
  std::string config_;
  bool started_ = false;
  pid_t master_ = -1;
};

size_t count_lines_with(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size())) ++n;
  return n;
}

RunResult run_postfix(const Options& opt, World& world, Mode mode, const std::vector<SubmitMessage>& messages) {
  RunResult res;
  if (mode == Mode::dane_only && !world.dns_on_port_53) {
    res.problem =
        "Postfix's DANE needs the system resolver (glibc, port 53) to reach the test DNS: " + world.dns_problem;
    return res;
  }
  res.ran = true;
  const std::string dir = world.dir + "/postfix-" + mode_name(mode);
  auto sink = world.make_sink(mode);
  PostfixInstance postfix(opt.postfix, dir);
  try {
    postfix.start(mode, world, sink->port(), free_port(kPostfixAddress));
  } catch (const std::exception& e) {
    res.problem = e.what();
    return res;
  }
  auto log_tail = [&] { return tail(read_file(postfix.maillog()), 5); };
  std::optional<MemorySampler> memory;
  memory.emplace(postfix.master());
  uint16_t port = 0;
  {
    // master.cf names the port; `postfix start` returns once the master listens.
    std::string m = read_file(postfix.config() + "/master.cf");
    size_t at = m.find(std::string(kPostfixAddress) + ":");
    port = static_cast<uint16_t>(std::atoi(m.c_str() + at + std::strlen(kPostfixAddress) + 1));
  }

  const double cpu_before = tree_cpu_seconds(postfix.master());
  const auto start = Clock::now();
  LoadResult load = submit_load(kPostfixAddress, port, messages, opt.clients, start);
  res.accept_seconds = load.seconds;
  if (load.accepted != messages.size()) {
    res.problem = std::to_string(messages.size() - load.accepted) + " messages not accepted (" + load.first_error +
                  ")\n" + log_tail();
    return res;
  }
  if (!wait_for_sink(*sink, messages.size())) {
    res.problem = "the sink stalled before all messages arrived:\n" + log_tail();
    return res;
  }
  res.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  res.cpu_seconds = tree_cpu_seconds(postfix.master()) - cpu_before;
  memory->stop();
  res.peak_mib = memory->peak_rss_mib();
  res.peak_pss_mib = memory->peak_pss_mib();
  res.processes = memory->peak_processes();
  postfix.stop();

  std::string problems =
      check_sink(*sink, messages.size(), mode == Mode::plaintext ? TlsVersion::none : TlsVersion::tls1_3);
  // Postfix's own account, for the notes (its log goes through postlogd
  // asynchronously, so it is not part of the verdict).
  const std::string maillog = read_file(postfix.maillog());
  const size_t sent = count_lines_with(maillog, "status=sent");
  const size_t verified = count_lines_with(maillog, "Verified TLS connection established");
  const size_t tls = verified + count_lines_with(maillog, "Untrusted TLS connection established") +
                     count_lines_with(maillog, "Anonymous TLS connection established") +
                     count_lines_with(maillog, "Trusted TLS connection established");
  const size_t sessions = sink->sessions().size();
  res.note = "log: " + std::to_string(sent) + " status=sent, " + std::to_string(tls) + " TLS sessions (" +
             std::to_string(verified) + " DANE-verified); sink sessions " + std::to_string(sessions);
  if (mode == Mode::dane_only && verified != tls)
    problems += (problems.empty() ? "" : ", ") + std::to_string(tls - verified) + " TLS sessions not verified";
  res.problem = problems;
  res.ok = problems.empty();
  return res;
}

// ------------------------------------------------------------------ main

std::vector<Mode> parse_modes(const std::string& s) {
  std::vector<Mode> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item == "plaintext")
      out.push_back(Mode::plaintext);
    else if (item == "opportunistic")
      out.push_back(Mode::opportunistic);
    else if (item == "dane-only")
      out.push_back(Mode::dane_only);
    else
      throw std::invalid_argument("--modes: `" + item + "` is not plaintext, opportunistic or dane-only");
  }
  return out;
}

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
    else if (a == "--messages")
      o.messages = parse_count(a, value());
    else if (a == "--clients")
      o.clients = parse_count(a, value());
    else if (a == "--message-bytes")
      o.message_bytes = parse_count(a, value());
    else if (a == "--delivery-workers")
      o.delivery_workers = static_cast<unsigned>(parse_count(a, value()));
    else if (a == "--modes")
      o.modes = parse_modes(value());
    else if (a == "--postfix")
      o.postfix = value();
    else if (a == "--no-postfix")
      o.with_postfix = false;
    else
      throw std::invalid_argument("unknown option `" + a + "`");
  }
  if (o.message_bytes < 512) throw std::invalid_argument("--message-bytes: at least 512");
  return o;
}

std::string postfix_version(const std::string& postfix) {
  const std::string postconf = (fs::path(postfix).parent_path() / "postconf").string();
  std::string v;
  run_command({postconf, "-dh", "mail_version"}, &v);
  v = trim(v);
  return v.empty() ? "?" : v;
}

void print_row(const char* mode, const char* mta, const RunResult& r, size_t n) {
  if (!r.ran) {
    std::printf("%-14s %-8s %10s  %s\n", mode, mta, "n/a", r.problem.c_str());
  } else if (r.seconds == 0) {
    std::printf("%-14s %-8s %10s  FAILED: %s\n", mode, mta, "-", r.problem.c_str());
  } else {
    std::printf("%-14s %-8s %10.0f %10.0f %8.2f %11.2f %9.0f", mode, mta, r.rate(n), n / r.accept_seconds, r.seconds,
                r.cpu_seconds * 1000 / n, r.peak_mib);
    if (r.peak_pss_mib > 0) std::printf(" (PSS %.0f, %zu processes)", r.peak_pss_mib, r.processes);
    std::printf("  %s\n", r.ok ? "ok" : ("WRONG: " + r.problem).c_str());
  }
  if (!r.note.empty()) std::printf("%-24s %s\n", "", r.note.c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  try {
    opt = parse_options(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr,
                 "tlsp_relay_bench: %s\nusage: tlsp_relay_bench [--tlsp PATH] [--messages N] [--clients C] "
                 "[--message-bytes B] [--delivery-workers W] [--modes plaintext,opportunistic,dane-only] "
                 "[--postfix PATH | --no-postfix]\n",
                 e.what());
    return 2;
  }
  if (::access(opt.tlsp.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "tlsp_relay_bench: no tlsp binary at `%s` (give --tlsp)\n", opt.tlsp.c_str());
    return 2;
  }

  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set, s);
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  std::thread(emergency_thread, set).detach();

  char tmpl[] = "/tmp/tlsp-relay-bench-XXXXXX";
  if (!::mkdtemp(tmpl)) {
    std::perror("mkdtemp");
    return 1;
  }
  ::chmod(tmpl, 0711);  // searchable by the relay's own user (service_user_args)
  const std::string work = tmpl;
  {
    std::lock_guard lock(g_emergency.mu);
    g_emergency.work_dir = work;
    g_emergency.postfix = opt.postfix;
  }
  struct RemoveWork {
    std::string dir;
    ~RemoveWork() {
      std::lock_guard lock(g_emergency.mu);
      std::error_code ec;
      fs::remove_all(dir, ec);
      g_emergency.work_dir.clear();
    }
  } remove_work{work};

  bool postfix = opt.with_postfix;
  std::string postfix_note;
  if (postfix && ::access(opt.postfix.c_str(), X_OK) != 0) {
    postfix = false;
    postfix_note = "not installed at `" + opt.postfix + "` (apt-get install postfix for the comparison)";
  } else if (postfix && ::geteuid() != 0) {
    postfix = false;
    postfix_note = "a private Postfix instance needs root";
  } else if (!postfix) {
    postfix_note = "skipped (--no-postfix)";
  }

  int status = 0;
  try {
    World world(work);
    const auto messages = make_messages(opt.messages, opt.message_bytes);
    std::printf(
        "relay throughput on the loopback: %zu messages of %zu octets, %zu client connections at once "
        "(%zu messages per connection), one sink\n",
        opt.messages, opt.message_bytes, opt.clients, kMessagesPerConnection);
    std::printf("tlsp:    %s relay, delivery workers %s\n", opt.tlsp.c_str(),
                opt.delivery_workers ? std::to_string(opt.delivery_workers).c_str() : "default (8)");
    if (postfix)
      std::printf("postfix: %s %s, %s\n", opt.postfix.c_str(), postfix_version(opt.postfix).c_str(),
                  world.dns_on_port_53 ? "MX/A/TLSA lookups through a chrooted smtp(8) whose resolv.conf names the "
                                         "test DNS"
                                       : ("relayhost by address, no DNS (" + world.dns_problem + ")").c_str());
    else
      std::printf("postfix: %s\n", postfix_note.c_str());
    std::printf("\n%-14s %-8s %10s %10s %8s %11s %9s  %s\n", "mode", "mta", "msgs/s", "accept/s", "wall s",
                "cpu ms/msg", "peak MiB", "check");

    struct Row {
      Mode mode;
      RunResult tlsp, postfix;
    };
    std::vector<Row> rows;
    for (Mode mode : opt.modes) {
      Row row{mode, {}, {}};
      row.tlsp = run_tlsp(opt, world, mode, messages);
      print_row(mode_name(mode), "tlsp", row.tlsp, opt.messages);
      if (postfix) {
        row.postfix = run_postfix(opt, world, mode, messages);
        print_row(mode_name(mode), "postfix", row.postfix, opt.messages);
      }
      if (!row.tlsp.ok || (postfix && row.postfix.ran && !row.postfix.ok)) status = 1;
      rows.push_back(std::move(row));
    }
    if (postfix) {
      std::printf("\nratio tlsp/postfix (messages/s):");
      for (const Row& r : rows) {
        if (r.tlsp.ok && r.postfix.ok)
          std::printf("  %s %.2fx", mode_name(r.mode), r.tlsp.rate(opt.messages) / r.postfix.rate(opt.messages));
        else
          std::printf("  %s n/a", mode_name(r.mode));
      }
      std::printf("\n");
    }
    std::printf(
        "msgs/s: until the sink held every message; accept/s: until the last 250 to the clients; cpu: the "
        "MTA's processes only (user + system)\n"
        "peak MiB: tlsp = the relay's VmHWM; postfix = the summed RSS (and PSS) of all its processes, sampled "
        "every %lld ms\n",
        static_cast<long long>(kMemorySampleInterval.count()));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tlsp_relay_bench: %s\n", e.what());
    status = 1;
  }
  return status;
}
