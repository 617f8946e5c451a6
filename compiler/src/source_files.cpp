// source_files.cpp — see source_files.h. Why not std::ifstream and glob(3):
// an ifstream reads a symlink to /dev/zero until memory runs out and blocks
// forever opening a FIFO; glibc's glob() recurses once per directory
// component (a pattern of ~3,000 `*/` overflowed the stack) and has no
// bound on the directories it reads.
#include "source_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>

namespace tlsp {
namespace {

// Closes a descriptor on every return path.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

bool has_magic(std::string_view component) {
  return component.find_first_of("*?[\\") != std::string_view::npos;
}

bool is_directory(const std::string& path) {
  struct stat st;
  return ::stat(path.empty() ? "." : path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string join(const std::string& dir, std::string_view name) {
  if (dir.empty()) return std::string(name);
  if (dir.back() == '/') return dir + std::string(name);
  return dir + "/" + std::string(name);
}

}  // namespace

std::string describe_bytes(size_t n) {
  if (n >= (size_t{1} << 20) && n % (size_t{1} << 20) == 0) return std::to_string(n >> 20) + " MiB";
  return std::to_string(n) + " bytes";
}

bool read_policy_file(const std::string& path, std::string& text, ReadFailure& failure) {
  text.clear();
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
  // writer. It changes nothing for the regular files we go on to read.
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (fd.get() < 0) {
    const int open_errno = errno;
    // A socket cannot be opened at all (ENXIO): name it as what it is.
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
      failure = {"E0305", std::string("it is ") + file_kind(st.st_mode) + ", not a regular file"};
      return false;
    }
    failure = {"E0303", std::strerror(open_errno)};
    return false;
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    failure = {"E0303", std::strerror(errno)};
    return false;
  }
  // fstat on the opened descriptor, not stat on the name: what we checked
  // is what we read, even if the name is swapped meanwhile.
  if (!S_ISREG(st.st_mode)) {
    std::string kind = file_kind(st.st_mode);
    failure = {"E0305", kind == "not a regular file" ? kind : "it is " + kind + ", not a regular file"};
    return false;
  }
  const std::string too_large = "it is larger than the limit of " + describe_bytes(kMaxPolicyFileBytes) + " per file";
  if (static_cast<unsigned long long>(st.st_size) > kMaxPolicyFileBytes) {
    failure = {"E0306", too_large};
    return false;
  }
  // The size may be wrong (a growing file, /proc): read at most one byte
  // past the limit, whatever it said.
  text.resize(static_cast<size_t>(st.st_size) + 1);
  size_t have = 0;
  while (true) {
    if (have == text.size()) {
      if (text.size() > kMaxPolicyFileBytes) break;
      text.resize(std::min(kMaxPolicyFileBytes + 1, std::max<size_t>(4096, text.size() * 2)));
    }
    ssize_t n = ::read(fd.get(), text.data() + have, text.size() - have);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      failure = {"E0303", std::strerror(errno)};
      text.clear();
      return false;
    }
    if (n == 0) break;
    have += static_cast<size_t>(n);
  }
  if (have > kMaxPolicyFileBytes) {
    failure = {"E0306", too_large};
    text.clear();
    return false;
  }
  text.resize(have);
  return true;
}

IncludeExpansion expand_include_pattern(const std::string& full_pattern) {
  IncludeExpansion out;
  // The paths matched so far, one component at a time (breadth first, so
  // no recursion however many components the pattern has).
  std::vector<std::string> current{full_pattern.starts_with('/') ? "/" : ""};
  std::vector<std::string_view> components;
  std::string_view rest(full_pattern);
  while (!rest.empty()) {
    size_t slash = rest.find('/');
    std::string_view c = rest.substr(0, slash);
    if (!c.empty()) components.push_back(c);
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
  }
  size_t scanned = 0;
  for (size_t k = 0; k < components.size() && !current.empty(); ++k) {
    const bool last = k + 1 == components.size();
    std::vector<std::string> next;
    if (!has_magic(components[k])) {
      for (const auto& p : current) next.push_back(join(p, components[k]));
    } else {
      const std::string pattern(components[k]);
      for (const auto& p : current) {
        DIR* dir = ::opendir(p.empty() ? "." : p.c_str());
        if (dir == nullptr) continue;
        while (const dirent* e = ::readdir(dir)) {
          if (++scanned > kMaxIncludeScanEntries) {
            ::closedir(dir);
            out.too_broad = true;
            return out;
          }
          std::string_view name(e->d_name);
          if (name == "." || name == "..") continue;
          if (::fnmatch(pattern.c_str(), e->d_name, FNM_PERIOD) != 0) continue;
          std::string path = join(p, name);
          // A component before the last must be a directory to go on.
          if (!last && !is_directory(path)) continue;
          next.push_back(std::move(path));
        }
        ::closedir(dir);
      }
    }
    current = std::move(next);
  }
  for (auto& p : current) {
    struct stat st;
    if (::stat(p.c_str(), &st) == 0) out.matches.push_back(std::move(p));
  }
  return out;
}

}  // namespace tlsp
