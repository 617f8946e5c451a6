// tlsp/sim/relay_process.h — a real `tlsp relay` child process for tests and
// live simulation: started with given arguments, its log (standard error)
// collected line by line, waited on by condition (never by sleeping),
// signalled, killed and reaped.
//
// Contract: the constructor forks and execs the binary with the log going
// to a pipe; every line the relay writes is kept in order. wait_for()
// returns as soon as a line (at or after `from`) satisfies the predicate,
// or false at the deadline; the predicate sees each line as the log's own
// parser reads it (tlsp/relay_log.h), and never a line it refuses. The destructor kills the process (SIGKILL) if
// it still runs and reaps it: nothing is left running.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tlsp/relay_log.h"

namespace tlsp::sim {

class RelayProcess {
 public:
  // Throws std::runtime_error when the process cannot be started.
  RelayProcess(const std::string& binary, const std::vector<std::string>& args);
  RelayProcess(const RelayProcess&) = delete;
  ~RelayProcess();

  // Waits for the `start` line; returns the first listening port (0 when
  // the relay exited or the deadline passed).
  uint16_t wait_ready(std::chrono::milliseconds timeout);

  using Predicate = std::function<bool(const relay::LogLine& line)>;
  // The first line at index >= from satisfying pred; its index in *index.
  bool wait_for(const Predicate& pred, std::chrono::milliseconds timeout, size_t from = 0,
                std::string* line = nullptr, size_t* index = nullptr);
  std::vector<std::string> lines() const;
  size_t line_count() const;

  void signal(int sig);
  // The exit status (as from waitpid) once the process ended, or nullopt
  // at the deadline.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  pid_t pid() const { return pid_; }
  bool running() const;

 private:
  void read_loop(int fd);
  pid_t pid_ = -1;
  std::thread reader_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> lines_;
  bool eof_ = false;
  std::optional<int> status_;
};

// A relay started as root refuses to run without `user` (deliveries never
// run as root), and the test suite and CI run as root. When the caller is
// root, the arguments that make a relay started from it run as `nobody`,
// as it would as the service user in production, after `dir` (the
// directory holding its spool, log and whatever else it writes) is given to
// nobody with everything in it; when the caller is not root, nothing (the
// relay then runs as the caller). Throws std::runtime_error when `dir`
// cannot be given away.
std::vector<std::string> service_user_args(const std::string& dir);
// A file the relay must read, as it can: when the caller is root, a copy
// of `file` in `dir` (call before service_user_args(dir), which gives it to
// nobody), since the file's own directory may be closed to others;
// otherwise `file` itself.
std::string readable_by_service_user(const std::string& file, const std::string& dir);

}  // namespace tlsp::sim
