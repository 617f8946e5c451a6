// The relay's `user` setting and its service-manager notifications, on the
// real binary: started as root with `user`, it binds, reads a root-only TLS
// key, then runs as that user (its /proc status says so) and still accepts
// and delivers mail; started as root without `user`, or as another user
// with `user` naming someone else, it refuses with a fixed message; with
// NOTIFY_SOCKET set it sends READY=1 once listening, RELOADING=1 / READY=1
// around a SIGHUP reload and STOPPING=1 on SIGTERM (sd_notify(3)), from its
// main process as systemd's NotifyAccess=main requires. Running as root
// needs root: those tests skip otherwise, saying so. The account is the
// system's `nobody`; none is created.
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "command.h"
#include "test_support.h"
#include "tlsp/sim/relay_process.h"
#include "tlsp/sim/smtp_peer.h"
#include "tlsp/sim/test_pki.h"

namespace {

using namespace std::chrono_literals;
using namespace tlsp;
using namespace tlsp::sim;
using tlsp::testing_support::run_tlsp;
using tlsp::testing_support::TempDir;

constexpr auto kWait = 20s;

// The `Name:` line of /proc/PID/status, after the tab.
std::string proc_status(pid_t pid, const std::string& name) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.starts_with(name + ":")) {
      std::string v = line.substr(name.size() + 1);
      while (!v.empty() && (v.front() == '\t' || v.front() == ' ')) v.erase(0, 1);
      return v;
    }
  return "(none)";
}

const passwd& nobody() {
  static const passwd* pw = ::getpwnam("nobody");
  if (!pw) throw std::runtime_error("no user `nobody` on this system");
  return *pw;
}

// A directory with a compiled table (the example policy: acme.example is
// managed) whose relays run as nobody when the test is root.
class PrivilegeWorld : public ::testing::Test {
 protected:
  void SetUp() override {
    table_ = dir_.file("policy.tlspdt");
    auto r = run_tlsp("compile policies/example.tlsp -o " + table_);
    ASSERT_EQ(r.code, 0) << r.out;
  }

  std::vector<std::string> relay_args(uint16_t hop_port) const {
    return {"relay",      "--listen",   "127.0.0.1:0", "--hostname", "relay.test", "--table", table_,
            "--spool",    dir_.file("spool"), "--resolver", "127.0.0.1:9", "--next-hop",
            "acme.example=127.0.0.30:" + std::to_string(hop_port), "--shutdown-grace", "1s"};
  }

  TempDir dir_{"tlsp-privileges-test"};
  std::string table_;
};

TEST_F(PrivilegeWorld, RootSwitchesToTheUserAfterBindingAndReadingTheKey) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (the relay switches users only when started as root)";
  const passwd& pw = nobody();
  TestPki pki(dir_.file("pki"));
  TestCert cert = pki.issue({"relay.test"});
  SmtpPeerConfig hop;
  hop.hostname = "mailstore.acme.example";
  hop.offer_starttls = false;
  hop.address = "127.0.0.30";
  SmtpPeer next_hop(hop);

  std::vector<std::string> args = relay_args(next_hop.port());
  for (std::string& a : service_user_args(dir_.path())) args.push_back(std::move(a));  // --user nobody
  // After the directory went to nobody: a key only root may read.
  ASSERT_EQ(::chown(cert.key_file.c_str(), 0, 0), 0);
  ASSERT_EQ(::chmod(cert.key_file.c_str(), 0600), 0);
  args.insert(args.end(), {"--tls-cert", cert.cert_file, "--tls-key", cert.key_file});
  RelayProcess relay(TLSP_BINARY, args);
  const uint16_t port = relay.wait_ready(kWait);
  ASSERT_NE(port, 0) << testing::PrintToString(relay.lines());
  ASSERT_TRUE(relay.wait_for([](const relay::LogLine& l) { return l.get("starttls") == "yes"; }, 1s));

  const std::string uid = std::to_string(pw.pw_uid), gid = std::to_string(pw.pw_gid);
  EXPECT_EQ(proc_status(relay.pid(), "Uid"), uid + "\t" + uid + "\t" + uid + "\t" + uid);
  EXPECT_EQ(proc_status(relay.pid(), "Gid"), gid + "\t" + gid + "\t" + gid + "\t" + gid);
  std::istringstream groups(proc_status(relay.pid(), "Groups"));
  for (std::string g; groups >> g;) EXPECT_NE(g, "0") << "a supplementary group of root's is left";
  EXPECT_EQ(proc_status(relay.pid(), "CapEff"), "0000000000000000");

  SubmitOptions o;
  o.port = port;
  o.starttls = true;
  o.message.mail_from = "bob@elsewhere.example";
  o.message.rcpts = {"alice@acme.example"};
  o.message.data = "Subject: as nobody\r\n\r\nhello\r\n";
  o.timeout = 10s;
  SubmitResult r = submit_message(o);
  ASSERT_TRUE(r.accepted) << r.reply << r.error;
  EXPECT_NE(r.tls, TlsVersion::none);
  ASSERT_TRUE(next_hop.wait_for_messages(1, kWait)) << testing::PrintToString(relay.lines());
  EXPECT_NE(next_hop.messages()[0].data.find("Subject: as nobody"), std::string::npos);
  // What the relay made after the switch is the user's.
  struct stat st {};
  ASSERT_EQ(::stat(dir_.file("spool/queue").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, pw.pw_uid);
  relay.signal(SIGTERM);
  auto status = relay.wait_exit(kWait);
  ASSERT_TRUE(status);
  EXPECT_EQ(WEXITSTATUS(*status), 0);
}

// The refusals, each one exact line on standard error and exit 2.
struct Refusal {
  int code = -1;
  std::string err;
};

// Runs `tlsp ARGS` as root, or as nobody when `as_nobody`.
Refusal run_relay(const std::vector<std::string>& args, bool as_nobody) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return {};
  const passwd& pw = nobody();
  std::vector<std::string> argv_s{TLSP_BINARY};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(p[1], 2);
    const int devnull = ::open("/dev/null", O_RDWR);
    ::dup2(devnull, 0);
    ::dup2(devnull, 1);
    if (as_nobody && (::setgroups(0, nullptr) != 0 || ::setgid(pw.pw_gid) != 0 || ::setuid(pw.pw_uid) != 0))
      ::_exit(126);
    ::execv(argv_s[0].c_str(), argv.data());
    ::_exit(127);
  }
  ::close(p[1]);
  Refusal r;
  char buf[4096];
  // Bounded: a relay that did start anyway is killed after the deadline.
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd f{p[0], POLLIN, 0};
    if (::poll(&f, 1, 200) <= 0) continue;
    const ssize_t n = ::read(p[0], buf, sizeof buf);
    if (n <= 0) break;
    r.err.append(buf, static_cast<size_t>(n));
  }
  ::close(p[0]);
  ::kill(pid, SIGKILL);
  int st = 0;
  ::waitpid(pid, &st, 0);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

TEST_F(PrivilegeWorld, RootWithoutUserRefusesToStart) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  const Refusal r = run_relay(relay_args(2), false);
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err,
            "tlsp relay: error: started as root without `user`: deliveries never run as root; set `user` to the "
            "service account (e.g. `user = tlsp`)\n");
  EXPECT_FALSE(std::filesystem::exists(dir_.file("spool"))) << "nothing is opened before the refusal";
}

TEST_F(PrivilegeWorld, UserRootOrUnknownIsAConfigurationError) {
  std::vector<std::string> args = relay_args(2);
  args.insert(args.end(), {"--user", "root"});
  Refusal r = run_relay(args, false);
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "tlsp relay: error: --user: `root` has uid 0: deliveries never run as root\n");
  args.back() = "tlsp-no-such-user";
  r = run_relay(args, false);
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "tlsp relay: error: --user: `tlsp-no-such-user` is not a user on this system\n");
}

TEST_F(PrivilegeWorld, AnotherUserCannotSwitchToTheConfiguredOne) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to start the relay as nobody";
  ASSERT_NE(::getpwnam("daemon"), nullptr);
  service_user_args(dir_.path());  // nobody may read the table and make the spool
  std::vector<std::string> args = relay_args(2);
  args.insert(args.end(), {"--user", "daemon"});
  const Refusal r = run_relay(args, true);
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "tlsp relay: error: user: started as uid " + std::to_string(nobody().pw_uid) +
                       ", not root: cannot switch to `daemon` (start the relay as root, or as that user)\n");
}

// ------------------------------------------------------------ sd_notify

// A datagram socket in the abstract namespace (no file for the relay's
// user to be refused), receiving the relay's notifications with the
// sender's credentials.
class NotifySocket {
 public:
  NotifySocket() {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const int on = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_PASSCRED, &on, sizeof on);
    name_ = "tlsp-notify-test-" + std::to_string(::getpid());
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path + 1, name_.data(), name_.size());
    bound_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&a),
                    static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name_.size())) == 0;
  }
  ~NotifySocket() { ::close(fd_); }
  bool bound() const { return bound_; }
  std::string env() const { return "@" + name_; }

  struct Message {
    std::string text;
    pid_t pid = 0;
  };
  // The next datagram, or nullopt at the deadline.
  std::optional<Message> next(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return std::nullopt;
    char buf[4096];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
    iovec iov{buf, sizeof buf};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control;
    m.msg_controllen = sizeof control;
    const ssize_t n = ::recvmsg(fd_, &m, 0);
    if (n < 0) return std::nullopt;
    Message out{std::string(buf, static_cast<size_t>(n)), 0};
    for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
        ucred cred{};
        std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
        out.pid = cred.pid;
      }
    return out;
  }

 private:
  int fd_ = -1;
  std::string name_;
  bool bound_ = false;
};

bool has_line(const std::string& text, const std::string& line) {
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);)
    if (l == line) return true;
  return false;
}

TEST_F(PrivilegeWorld, NotifiesReadyReloadingAndStopping) {
  NotifySocket sock;
  ASSERT_TRUE(sock.bound());
  std::vector<std::string> args = relay_args(2);
  for (std::string& a : service_user_args(dir_.path())) args.push_back(std::move(a));
  ::setenv("NOTIFY_SOCKET", sock.env().c_str(), 1);  // this test's process only (one ctest test a process)
  RelayProcess relay(TLSP_BINARY, args);
  ::unsetenv("NOTIFY_SOCKET");

  auto ready = sock.next(kWait);
  ASSERT_TRUE(ready) << testing::PrintToString(relay.lines());
  EXPECT_TRUE(has_line(ready->text, "READY=1")) << ready->text;
  EXPECT_EQ(ready->pid, relay.pid());
  // READY=1 means listening: the start line is written and the port answers.
  const uint16_t port = relay.wait_ready(1s);
  ASSERT_NE(port, 0);
  SubmitOptions probe;
  probe.port = port;
  probe.message.mail_from = "bob@elsewhere.example";
  probe.message.rcpts = {"nobody@elsewhere.example"};  // 554: not relayed; the session itself is the check
  probe.timeout = 10s;
  EXPECT_EQ(submit_message(probe).code, 554);

  relay.signal(SIGHUP);
  auto reloading = sock.next(kWait);
  ASSERT_TRUE(reloading);
  EXPECT_TRUE(has_line(reloading->text, "RELOADING=1")) << reloading->text;
  EXPECT_TRUE(reloading->text.find("\nMONOTONIC_USEC=") != std::string::npos) << reloading->text;
  auto again = sock.next(kWait);
  ASSERT_TRUE(again);
  EXPECT_TRUE(has_line(again->text, "READY=1")) << again->text;
  // The table was read again in between (its log line comes before READY=1).
  EXPECT_EQ(relay.wait_for(
                [](const relay::LogLine& l) { return l.event == relay::LogEvent::table && l.get("why") == "SIGHUP"; },
                1s),
            true)
      << testing::PrintToString(relay.lines());

  relay.signal(SIGTERM);
  auto stopping = sock.next(kWait);
  ASSERT_TRUE(stopping);
  EXPECT_TRUE(has_line(stopping->text, "STOPPING=1")) << stopping->text;
  auto status = relay.wait_exit(kWait);
  ASSERT_TRUE(status);
  EXPECT_EQ(WEXITSTATUS(*status), 0);
  EXPECT_FALSE(sock.next(200ms)) << "nothing after STOPPING=1";
}

}  // namespace
