// spool_files.h — the file-system calls the spool's store and recovery
// share, each failing with SpoolError ("what: strerror"). Writing a file
// durably is tlsp/base/atomic_file.h's. Not a public header.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace tlsp::spool {

std::string errno_text(int e);
[[noreturn]] void fail(const std::string& what, int e);

// Reads a whole file of at most `limit` bytes. nullopt with errno-like code
// in `err` when it cannot be opened; throws when it is larger than `limit`
// or a read fails.
std::optional<std::string> read_file(const std::string& path, size_t limit, int& err);

// The names in a directory but `.` and `..`, sorted; !ok when it cannot be
// opened.
struct DirListing {
  std::vector<std::string> names;
  bool ok = true;
};
DirListing list_dir(const std::string& path);

bool is_directory(const std::string& path);  // not following a symlink
void make_dir(const std::string& path);      // mode 0700; an existing directory is fine
void unlink_if_present(const std::string& path);

}  // namespace tlsp::spool
