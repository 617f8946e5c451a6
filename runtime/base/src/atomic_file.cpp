// atomic_file.cpp — write-temp / fsync / rename / fsync-directory
// (tlsp/base/atomic_file.h has the contract).
#include "tlsp/base/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tlsp::base {
namespace {

// Writes all of `data`, retrying short writes and EINTR; false with errno set.
bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string directory_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Writes, fsyncs and closes `fd`; on failure closes it and throws, naming
// `path` (the file, or for a temporary file the file it becomes).
void write_and_sync(int fd, const std::string& path, std::string_view data, mode_t mode, bool set_mode) {
  const char* step = nullptr;
  if (set_mode && ::fchmod(fd, mode) != 0) step = "chmod";
  else if (!write_all(fd, data)) step = "write";
  else if (::fsync(fd) != 0) step = "fsync";
  if (step != nullptr) {
    const int err = errno;
    ::close(fd);
    throw FileError(step, path, err);
  }
  if (::close(fd) != 0) throw FileError("close", path, errno);
}

}  // namespace

FileError::FileError(const std::string& step, const std::string& path, int error)
    : std::runtime_error("cannot " + step + " `" + path + "`: " + std::strerror(error)), error_(error) {}

void write_file_synced(const std::string& path, std::string_view data, mode_t mode, bool exclusive) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (exclusive ? O_EXCL : O_TRUNC), mode);
  if (fd < 0) throw FileError("create", path, errno);
  write_and_sync(fd, path, data, mode, /*set_mode=*/false);
}

void replace_file(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) == 0) return;
  const int err = errno;
  ::unlink(from.c_str());
  throw FileError("rename `" + from + "` to", to, err);
}

void sync_directory(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw FileError("open the directory", path, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw FileError("fsync the directory", path, err);
}

void write_file_atomically(const std::string& path, std::string_view data, mode_t mode) {
  const std::string dir = directory_of(path);
  const std::string name = path.substr(path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1);
  // A hidden name, unique by mkstemp: readers that list the directory skip
  // dot files, and two writers never share a temporary file.
  std::string temp = dir + "/." + name + ".XXXXXX";
  const int fd = ::mkstemp(temp.data());
  if (fd < 0) throw FileError("create a temporary file for", path, errno);
  try {
    // mkstemp makes the file 0600; the caller says who may read it. Errors
    // name `path`: the temporary file is ours, and gone when we throw.
    write_and_sync(fd, path, data, mode, /*set_mode=*/mode != 0600);
  } catch (...) {
    ::unlink(temp.c_str());
    throw;
  }
  replace_file(temp, path);
  sync_directory(dir);
}

BoundedRead read_file_bounded(const std::string& path, size_t limit) {
  BoundedRead r;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    r.error = errno;
    r.status = errno == ENOENT ? BoundedRead::Status::missing : BoundedRead::Status::unreadable;
    return r;
  }
  r.status = BoundedRead::Status::ok;
  char buf[8192];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      r.error = errno;
      r.status = BoundedRead::Status::unreadable;
      break;
    }
    if (n == 0) break;
    if (r.text.size() + static_cast<size_t>(n) > limit) {
      r.status = BoundedRead::Status::too_large;
      break;
    }
    r.text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  if (r.status != BoundedRead::Status::ok) r.text.clear();
  return r;
}

}  // namespace tlsp::base
