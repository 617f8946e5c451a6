// redis_server.cpp — see redis_server.h.
#include "redis_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <stdexcept>
#include <thread>

#include "test_support.h"

namespace tlsp::testing_support {
namespace {

// A port the kernel had free on 127.0.0.1 a moment ago.
uint16_t free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot bind a loopback port");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

// True when a server on 127.0.0.1:port answers PING (+PONG, or -NOAUTH
// when it wants a password) within 200 ms.
bool answers_ping(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::send(fd, "PING\r\n", 6, MSG_NOSIGNAL) == 6) {
    pollfd p{fd, POLLIN, 0};
    char buf[64] = {};
    if (::poll(&p, 1, 200) == 1) {
      const ssize_t n = ::recv(fd, buf, sizeof buf - 1, 0);
      const std::string_view reply(buf, n > 0 ? static_cast<size_t>(n) : 0);
      ok = reply.starts_with("+PONG") || reply.starts_with("-NOAUTH");
    }
  }
  ::close(fd);
  return ok;
}

}  // namespace

RedisServer::RedisServer() : RedisServer(Options{}) {}

RedisServer::RedisServer(Options options) : options_(std::move(options)), dir_(std::make_unique<TempDir>("tlsp-redis")) {
  for (int attempt = 0; attempt < kRedisStartAttempts; ++attempt) {
    port_ = free_loopback_port();
    if (launch()) return;
  }
  std::ifstream log(dir_->file("redis.log"));
  throw std::runtime_error("redis-server did not start: " +
                           std::string(std::istreambuf_iterator<char>(log), std::istreambuf_iterator<char>()));
}

RedisServer::~RedisServer() { kill(); }

std::string RedisServer::url(int db) const {
  return "redis://" + (options_.password.empty() ? std::string() : ":" + options_.password + "@") + "127.0.0.1:" +
         std::to_string(port_) + "/" + std::to_string(db);
}

const std::string& RedisServer::dir() const { return dir_->path(); }

bool RedisServer::launch() {
  std::string conf = "bind 127.0.0.1\nport " + std::to_string(port_) +
                     "\nsave \"\"\nappendonly no\ndaemonize no\nprotected-mode yes\n"
                     "dir " + dir_->path() + "\nlogfile " + dir_->file("redis.log") + "\n";
  if (!options_.password.empty()) conf += "requirepass " + options_.password + "\n";
  const std::string conf_file = dir_->write("redis.conf", conf);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the test already ended
    ::execlp("redis-server", "redis-server", conf_file.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  pid_ = pid;
  const auto deadline = std::chrono::steady_clock::now() + kRedisStartTimeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {  // exited: the port was taken, or no redis-server
      pid_ = -1;
      return false;
    }
    if (answers_ping(port_)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill();
  return false;
}

void RedisServer::kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

void RedisServer::start() {
  if (pid_ > 0) return;
  if (!launch()) throw std::runtime_error("redis-server did not start again on port " + std::to_string(port_));
}

void RedisServer::pause() {
  if (pid_ > 0) ::kill(pid_, SIGSTOP);
}

void RedisServer::resume() {
  if (pid_ > 0) ::kill(pid_, SIGCONT);
}

}  // namespace tlsp::testing_support
