// smtp_session_fuzz.cpp — libFuzzer target for the relay's SMTP server
// side: the input is what a hostile client sends, byte for byte, over a
// socket pair to a real session (runtime/relay/src/smtp_server.cpp) with a
// real table, spool and limits. Any input ends in replies and a closed
// session: never a crash, a hang or unbounded memory.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include "tables.h"
#include "tlsp/decision_table.h"
#include "tlsp/smtp_server.h"

namespace {

using namespace tlsp;

// The relay's own sessions through their public seam (tlsp/smtp_server.h).
SmtpServer* make_server() {
  RelayConfig config;
  config.hostname = "fuzz.test";
  config.log_file = "/dev/null";
  config.next_hops.push_back({"acme.example", "127.0.0.1", 2525, ""});
  config.limits.max_recipients = 5;
  config.limits.max_message_size = 4096;
  config.limits.max_commands = 200;
  config.limits.idle_timeout = std::chrono::seconds(2);
  // On tmpfs: fsync there is free, so a stall is the session's, not the disk's.
  char dir[] = "/dev/shm/tlsp-smtp-fuzz-XXXXXX";
  if (!mkdtemp(dir)) std::abort();
  static std::string spool_dir = dir;
  std::atexit([] { std::filesystem::remove_all(spool_dir); });
  config.spool_dir = dir;
  return new SmtpServer(config, testing_support::acme_inbound_mandatory_table("fuzz"));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static SmtpServer* server = make_server();
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) std::abort();
  std::thread session([fd = fds[0]] { server->serve(fd); });
  // Send the input while draining the replies, then half-close: the
  // session must end on its own (end of input or a limit).
  fcntl(fds[1], F_SETFL, O_NONBLOCK);
  size_t sent = 0;
  bool open = true;
  char buf[4096];
  while (open) {
    pollfd p{fds[1], static_cast<short>(POLLIN | (sent < size ? POLLOUT : 0)), 0};
    int rc = poll(&p, 1, 20000);
    if (rc < 0 && errno == EINTR) continue;  // libFuzzer's timer signals
    if (rc <= 0) {
      fprintf(stderr, "smtp_session_fuzz: the session hangs (sent %zu of %zu)\n", sent, size);
      std::abort();  // a hang is a finding
    }
    if ((p.revents & POLLOUT) && sent < size) {
      ssize_t n = send(fds[1], data + sent, size - sent, MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<size_t>(n);
      if (n < 0 && errno != EAGAIN) sent = size;
      if (sent == size) shutdown(fds[1], SHUT_WR);
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = read(fds[1], buf, sizeof buf);
      if (n == 0 || (n < 0 && errno != EAGAIN)) open = false;
    }
    if (size == 0 && sent == 0) {
      shutdown(fds[1], SHUT_WR);
      sent = 1;
    }
  }
  session.join();
  close(fds[1]);
  return 0;
}
