// relay_process.cpp — see tlsp/sim/relay_process.h.
#include "tlsp/sim/relay_process.h"

#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace tlsp::sim {

RelayProcess::RelayProcess(const std::string& binary, const std::vector<std::string>& args) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  std::vector<std::string> argv_s{binary};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid_ == 0) {
    ::dup2(p[1], 2);
    int devnull = ::open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      ::dup2(devnull, 0);
      ::dup2(devnull, 1);
    }
    ::execv(binary.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(p[1]);
  reader_ = std::thread([this, fd = p[0]] { read_loop(fd); });
}

RelayProcess::~RelayProcess() {
  if (running()) {
    ::kill(pid_, SIGKILL);
    wait_exit(std::chrono::seconds(10));
  }
  if (reader_.joinable()) reader_.join();
}

void RelayProcess::read_loop(int fd) {
  std::string buf;
  char chunk[4096];
  while (true) {
    ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    buf.append(chunk, static_cast<size_t>(n));
    size_t nl;
    bool any = false;
    std::lock_guard lock(mu_);
    while ((nl = buf.find('\n')) != std::string::npos) {
      lines_.push_back(buf.substr(0, nl));
      buf.erase(0, nl + 1);
      any = true;
    }
    if (any) cv_.notify_all();
  }
  ::close(fd);
  std::lock_guard lock(mu_);
  if (!buf.empty()) lines_.push_back(buf);
  eof_ = true;
  cv_.notify_all();
}

bool RelayProcess::wait_for(const Predicate& pred, std::chrono::milliseconds timeout, size_t from, std::string* line,
                            size_t* index) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(mu_);
  size_t next = from;
  while (true) {
    for (; next < lines_.size(); ++next) {
      std::optional<relay::LogLine> parsed = relay::parse_log_line(lines_[next]);
      if (parsed && pred(*parsed)) {
        if (line) *line = lines_[next];
        if (index) *index = next;
        return true;
      }
    }
    if (eof_) return false;
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && next >= lines_.size()) return false;
  }
}

uint16_t RelayProcess::wait_ready(std::chrono::milliseconds timeout) {
  std::string line;
  if (!wait_for([](const relay::LogLine& l) { return l.event == relay::LogEvent::start; }, timeout, 0, &line))
    return 0;
  std::string listen = relay::parse_log_line(line)->get("listen");
  listen = listen.substr(0, listen.find(','));
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return 0;
  return static_cast<uint16_t>(std::stoi(listen.substr(colon + 1)));
}

std::vector<std::string> RelayProcess::lines() const {
  std::lock_guard lock(mu_);
  return lines_;
}

size_t RelayProcess::line_count() const {
  std::lock_guard lock(mu_);
  return lines_.size();
}

void RelayProcess::signal(int sig) {
  if (running()) ::kill(pid_, sig);
}

bool RelayProcess::running() const {
  std::lock_guard lock(mu_);
  return pid_ > 0 && !status_;
}

std::optional<int> RelayProcess::wait_exit(std::chrono::milliseconds timeout) {
  {
    std::lock_guard lock(mu_);
    if (status_) return status_;
  }
  // The child's exit closes the log pipe: wait for that, then reap.
  {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return eof_; });
  }
  int st = 0;
  pid_t r = ::waitpid(pid_, &st, eof_ ? 0 : WNOHANG);
  if (r == pid_) {
    std::lock_guard lock(mu_);
    status_ = st;
    return status_;
  }
  return std::nullopt;
}

namespace {
uid_t g_give_uid;
gid_t g_give_gid;
int give_entry(const char* path, const struct stat*, int, FTW*) {
  return ::lchown(path, g_give_uid, g_give_gid) == 0 ? 0 : -1;
}
}  // namespace

std::vector<std::string> service_user_args(const std::string& dir) {
  if (::geteuid() != 0) return {};
  static std::mutex mu;  // nftw's callback sees the ids through globals
  std::lock_guard lock(mu);
  const passwd* pw = ::getpwnam("nobody");
  if (pw == nullptr) throw std::runtime_error("running as root, and there is no user `nobody` to run the relay as");
  g_give_uid = pw->pw_uid;
  g_give_gid = pw->pw_gid;
  // Every directory on the way must let nobody through, or the relay
  // fails later with a less clear "Permission denied".
  for (std::filesystem::path p = std::filesystem::absolute(dir).parent_path(); !p.empty(); p = p.parent_path()) {
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0 && !(st.st_mode & S_IXOTH) &&
        !(st.st_uid == g_give_uid && (st.st_mode & S_IXUSR)) && !(st.st_gid == g_give_gid && (st.st_mode & S_IXGRP)))
      throw std::runtime_error("`" + p.string() + "` is closed to nobody, who runs the relay started by root: " +
                               "make it searchable (chmod o+x)");
    if (p == p.root_path()) break;
  }
  if (::nftw(dir.c_str(), give_entry, 32, FTW_PHYS) != 0)
    throw std::runtime_error("cannot give `" + dir + "` to nobody: " + std::strerror(errno));
  return {"--user", "nobody"};
}

std::string readable_by_service_user(const std::string& file, const std::string& dir) {
  if (::geteuid() != 0) return file;
  const std::string copy = dir + "/relay-" + std::filesystem::path(file).filename().string();
  std::error_code ec;
  std::filesystem::copy_file(file, copy, std::filesystem::copy_options::overwrite_existing, ec);
  if (ec) throw std::runtime_error("cannot copy `" + file + "` for the relay: " + ec.message());
  return copy;
}

}  // namespace tlsp::sim
