// slow_clients.cpp — see tlsp/sim/slow_clients.h.
#include "tlsp/sim/slow_clients.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>

#include "tlsp/stream.h"

namespace tlsp::sim {
namespace {

using Clock = std::chrono::steady_clock;

struct Connection {
  int fd = -1;
  size_t sent = 0;        // script bytes sent
  bool answered = false;  // the first reply (greeting or refusal) came
  bool greeted = false;   // and it was a 220
};

}  // namespace

SlowClients::SlowClients(SlowClientsConfig config) : config_(std::move(config)) {
  if (config_.repeat_from >= config_.script.size()) throw std::invalid_argument("slow clients: repeat_from");
  if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) throw std::runtime_error("slow clients: pipe");
  thread_ = std::thread([this] { run(); });
}

SlowClients::~SlowClients() {
  stop();
  for (int fd : wake_)
    if (fd >= 0) ::close(fd);
}

void SlowClients::stop() {
  if (stopping_.exchange(true)) return;
  char b = 's';
  [[maybe_unused]] ssize_t n = ::write(wake_[1], &b, 1);
  if (thread_.joinable()) thread_.join();
}

SlowClientsStats SlowClients::stats() const {
  return {connects_.load(), greeted_.load(), refused_.load(), cut_.load()};
}

void SlowClients::run() {
  std::vector<Connection> conns(config_.connections);
  size_t next_source = 0;
  auto close_conn = [&](Connection& c) {
    if (c.fd >= 0) ::close(c.fd);
    c = Connection{};
  };
  auto next_tick = Clock::now();
  while (!stopping_) {
    const auto now = Clock::now();
    if (now >= next_tick) {
      next_tick = now + config_.byte_interval;
      for (Connection& c : conns) {
        if (c.fd < 0) {
          // (Re)open: at most once per interval, like the trickle itself.
          std::string error;
          const std::string src =
              config_.sources.empty() ? "" : config_.sources[next_source++ % config_.sources.size()];
          c.fd = connect_tcp(config_.server, config_.port, std::chrono::milliseconds(1000), error, src);
          if (c.fd >= 0) ++connects_;
          continue;
        }
        const std::string& s = config_.script;
        size_t i =
            c.sent < s.size() ? c.sent : config_.repeat_from + (c.sent - s.size()) % (s.size() - config_.repeat_from);
        if (::send(c.fd, &s[i], 1, MSG_NOSIGNAL) != 1) {
          if (c.greeted) ++cut_;
          close_conn(c);
          continue;
        }
        ++c.sent;
      }
    }
    std::vector<pollfd> fds;
    std::vector<Connection*> owners;
    for (Connection& c : conns)
      if (c.fd >= 0) {
        fds.push_back({c.fd, POLLIN, 0});
        owners.push_back(&c);
      }
    fds.push_back({wake_[0], POLLIN, 0});
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_tick - Clock::now()).count();
    int n = ::poll(fds.data(), fds.size(), static_cast<int>(std::max<int64_t>(0, wait)));
    if (n <= 0) continue;
    for (size_t k = 0; k + 1 < fds.size(); ++k) {
      if (!(fds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      Connection& c = *owners[k];
      char buf[4096];
      ssize_t got = ::recv(c.fd, buf, sizeof buf, 0);
      if (got > 0) {
        if (!c.answered) {
          c.answered = true;
          c.greeted = buf[0] == '2';
          if (c.greeted)
            ++greeted_;
          else
            ++refused_;
        }
        continue;
      }
      if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (c.greeted) ++cut_;
      if (!c.answered) ++refused_;  // closed without a word
      close_conn(c);
    }
  }
  for (Connection& c : conns) close_conn(c);
}

}  // namespace tlsp::sim
