// source_files.h — the loader's contact with the file system: reading one
// policy file, and expanding one include pattern. Both are bounded, because
// a policy tree may come from someone careless or hostile (issue 9).
//
// Contract:
//   read_policy_file() reads only a regular file (a symlink to one is fine),
//   never blocks (a FIFO is refused, not opened for a writer to come) and
//   never reads more than kMaxPolicyFileBytes. On failure it returns the
//   diagnostic code and a reason in words ("it is a FIFO, not a regular
//   file") and leaves `text` empty.
//   expand_include_pattern() is glob(3) without GLOB_PERIOD (a wildcard never
//   matches a leading `.`; `.` and `..` are never matched), with `*`, `?`,
//   `[...]` and backslash escapes inside a component (fnmatch(3)), but
//   iterative and bounded: it gives up after reading kMaxIncludeScanEntries
//   directory entries (the caller refuses a pattern longer than
//   kMaxIncludePatternBytes before calling it). Matches are
//   paths that exist, in no particular order. Unreadable directories are
//   skipped, as glob(3) does without GLOB_ERR.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace tlsp {

// The limits, documented in README "Diagnostics". None is hit by a policy
// written by hand or by the 1M-entry benchmark (101 files of <= 0.7 MB).
//
// One file. Parsing takes memory in proportion to the tokens, freed after
// the file: about 50 bytes per byte of source for a policy, and up to ~125
// for a file of one-character tokens that are all syntax errors. So a file
// at the limit peaks near 400 MB, or 1 GB if hostile, per parse worker.
// That is 11x the benchmark's files; split a larger policy with `include`.
// [E0306]
inline constexpr size_t kMaxPolicyFileBytes = size_t{8} << 20;
// All files of one compile together: their text is kept for diagnostics
// and their IR until the table is built; 3.6x the 1M-entry benchmark's
// 70 MB. [E0306]
inline constexpr size_t kMaxPolicyBytes = size_t{256} << 20;
// Files pulled in by one compile (roots and includes). [E0308]
inline constexpr size_t kMaxPolicyFiles = 10000;
// An include pattern (PATH_MAX is 4096; no sane pattern nears 1 KiB). [E0307]
inline constexpr size_t kMaxIncludePatternBytes = 1024;
// Directory entries one include pattern may read while it is expanded, so
// `include "/*/*/*/*/*";` ends quickly instead of walking the disk. [E0307]
inline constexpr size_t kMaxIncludeScanEntries = 100000;

struct ReadFailure {
  std::string code;    // E0303 (cannot open or read), E0305, E0306
  std::string reason;  // lower case, no trailing period
};

// Returns true and the file's bytes, or false and why.
bool read_policy_file(const std::string& path, std::string& text, ReadFailure& failure);

struct IncludeExpansion {
  std::vector<std::string> matches;
  bool too_broad = false;  // gave up after kMaxIncludeScanEntries
};

IncludeExpansion expand_include_pattern(const std::string& full_pattern);

// "16 MiB", "1024 bytes": how limits are named in messages.
std::string describe_bytes(size_t n);

}  // namespace tlsp
