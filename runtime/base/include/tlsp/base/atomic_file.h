// tlsp/base/atomic_file.h — writing a file so that a reader, or a crash,
// sees either the old content or the new, never a part: the one way tlsp
// replaces a file (the decision table writer, the spool's envelopes, the
// MTA-STS policy cache).
//
// Contract:
// - write_file_atomically(path, data, mode) writes `data` to a new temporary
//   file in the directory of `path` (so the rename never crosses a file
//   system), fsyncs it, renames it over `path`, and fsyncs the directory
//   (the rename is durable only once the directory entry is on disk). On
//   failure the temporary file is removed and `path` is as it was (or, when
//   only the last fsync failed, already the new file).
// - The pieces, for callers that act between the steps (the spool marks
//   crash points between them): write_file_synced() creates (or, unless
//   exclusive, truncates) and fsyncs one file; replace_file() renames, and
//   removes `from` when the rename fails; sync_directory() fsyncs a
//   directory. Each makes exactly one fsync call when it succeeds.
// - Every failure throws FileError: "cannot STEP `PATH`: strerror", with the
//   errno kept in error(). write_file_atomically() names `path` for every
//   step on the temporary file (create, chmod, write, fsync, close), the
//   name a caller knows; only a failed rename names both.
// - read_file_bounded(path, limit) is the reading side for such files: at
//   most `limit` bytes, never through a symbolic link (O_NOFOLLOW), EINTR
//   retried; a larger file is too_large (its text not kept). Throws nothing.
#pragma once

#include <sys/types.h>

#include <stdexcept>
#include <string>
#include <string_view>

namespace tlsp::base {

class FileError : public std::runtime_error {
 public:
  FileError(const std::string& step, const std::string& path, int error);
  int error() const { return error_; }

 private:
  int error_;
};

void write_file_atomically(const std::string& path, std::string_view data, mode_t mode);

void write_file_synced(const std::string& path, std::string_view data, mode_t mode, bool exclusive);
void replace_file(const std::string& from, const std::string& to);
void sync_directory(const std::string& path);

struct BoundedRead {
  enum class Status { ok, missing, too_large, unreadable };
  Status status = Status::unreadable;
  std::string text;  // when ok
  int error = 0;     // errno, when missing or unreadable
};
BoundedRead read_file_bounded(const std::string& path, size_t limit);

}  // namespace tlsp::base
