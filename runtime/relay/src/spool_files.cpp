// spool_files.cpp — the spool's file-system calls (spool_files.h).
#include "spool_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "tlsp/spool.h"

namespace tlsp::spool {

std::string errno_text(int e) { return std::strerror(e); }

[[noreturn]] void fail(const std::string& what, int e) {
  throw SpoolError(what + ": " + errno_text(e));
}

std::optional<std::string> read_file(const std::string& path, size_t limit, int& err) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    err = errno;
    return std::nullopt;
  }
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      fail("cannot read `" + path + "`", e);
    }
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > limit) {
      ::close(fd);
      throw SpoolError("`" + path + "` is larger than " + std::to_string(limit) + " bytes");
    }
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  err = 0;
  return out;
}

DirListing list_dir(const std::string& path) {
  DirListing out;
  DIR* d = ::opendir(path.c_str());
  if (!d) {
    out.ok = false;
    return out;
  }
  while (dirent* de = ::readdir(d)) {
    std::string_view n = de->d_name;
    if (n == "." || n == "..") continue;
    out.names.emplace_back(n);
  }
  ::closedir(d);
  std::sort(out.names.begin(), out.names.end());
  return out;
}

bool is_directory(const std::string& path) {
  struct stat st{};
  return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void make_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) == 0) return;
  int e = errno;
  if (e == EEXIST && is_directory(path)) return;
  fail("cannot create the spool directory `" + path + "`", e);
}

void unlink_if_present(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) fail("cannot remove `" + path + "`", errno);
}

}  // namespace tlsp::spool
