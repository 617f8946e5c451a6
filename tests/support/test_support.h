// test_support.h — what several test suites share. Header-only; tests
// include it directly (tests/ is not a library).
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/resource.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

// True in a sanitizer build (gcc says __SANITIZE_ADDRESS__, clang
// __has_feature): ASan reserves terabytes of address space at start, so an
// address-space limit (RLIMIT_AS, `ulimit -v`) on a test or on the tlsp
// binary it runs would kill it; such tests keep their time limit only.
#if defined(__SANITIZE_ADDRESS__)
#define TLSP_TEST_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TLSP_TEST_UNDER_ASAN 1
#endif
#endif
#ifndef TLSP_TEST_UNDER_ASAN
#define TLSP_TEST_UNDER_ASAN 0
#endif

namespace tlsp::testing_support {

// A fresh directory under /tmp, removed with everything in it.
class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "tlsp-test") {
    std::string t = (std::filesystem::temp_directory_path() / (std::string(prefix) + "-XXXXXX")).string();
    if (mkdtemp(t.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    // Searchable (not readable) by others: a relay started by a test that
    // runs as root runs as nobody (tlsp/sim/relay_process.h) and must reach
    // the files the test gives it.
    std::filesystem::permissions(t, std::filesystem::perms::owner_all | std::filesystem::perms::group_exec |
                                        std::filesystem::perms::others_exec);
    path_ = t;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  // The path of `rel` inside the directory.
  std::string file(std::string_view rel) const { return (std::filesystem::path(path_) / rel).string(); }
  // Writes `text` to `rel` (making the folders on the way); its path.
  std::string write(std::string_view rel, std::string_view text) const {
    const std::filesystem::path p = std::filesystem::path(path_) / rel;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    if (!out.flush()) throw std::runtime_error("cannot write " + p.string());
    return p.string();
  }
  bool empty() const { return std::filesystem::is_empty(path_); }

 private:
  std::string path_;
};

// A directory of the running test's own, for files a test names itself
// (never a fixed name in testing::TempDir() or /tmp, which tests that ctest
// runs in parallel share). The first call in a test makes it; it lasts
// until the next test asks for one, or the program ends.
inline const std::string& test_temp_dir() {
  static std::unique_ptr<TempDir> dir;
  static std::string owner;
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = info != nullptr ? std::string(info->test_suite_name()) + "." + info->name() : std::string();
  if (dir == nullptr || name != owner) {
    dir.reset();  // the previous test's directory goes first
    dir = std::make_unique<TempDir>("tlsp-test");
    owner = std::move(name);
  }
  return dir->path();
}

// While it lives, a write that would make a regular file larger than
// `bytes` fails with EFBIG (RLIMIT_FSIZE, as `ulimit -f`; SIGXFSZ ignored),
// in this process and the commands it starts: a failed write that root
// cannot override (a read-only directory does not stop root), for tests of
// what a failed write leaves behind. Pipes and terminals are not affected.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    if (::getrlimit(RLIMIT_FSIZE, &old_) != 0) throw std::runtime_error("getrlimit failed");
    old_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    rlimit r = old_;
    r.rlim_cur = bytes;
    if (::setrlimit(RLIMIT_FSIZE, &r) != 0) throw std::runtime_error("setrlimit failed");
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &old_);
    std::signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit old_{};
  void (*old_handler_)(int) = SIG_DFL;
};

// The names in a directory, sorted.
inline std::vector<std::string> directory_names(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// ------------------------------------------------------------ shared data
//
// The conformance data lives outside the repository, in the shared folder:
// $TLSP_SHARED_DIR (read when the test runs) when set, else ../shared beside
// the source tree. A clone on its own has no such folder; the tests that
// need it then skip, with TLSP_CONFORMANCE_DIR below, and the others run.
// CI has the data and sets TLSP_REQUIRE_SHARED=1 (.ci/run): a missing
// folder is then a failure, so the conformance tests cannot silently skip.

inline std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("TLSP_SHARED_DIR"); env != nullptr && *env != '\0') return env;
  return std::filesystem::path(TLSP_SOURCE_DIR) / ".." / "shared";
}

// shared_dir()/conformance/<name>, the folder a conformance test reads.
inline std::filesystem::path conformance_path(std::string_view name) {
  return (shared_dir() / "conformance" / std::string(name)).lexically_normal();
}

inline bool shared_data_required() {
  const char* env = std::getenv("TLSP_REQUIRE_SHARED");
  return env != nullptr && *env != '\0' && std::string_view(env) != "0";
}

inline std::string conformance_missing_message(const std::filesystem::path& dir) {
  std::string m =
      "conformance data not found: " + dir.string() + " (set TLSP_SHARED_DIR to the folder that holds conformance/)";
  if (shared_data_required()) m += "; TLSP_REQUIRE_SHARED is set, so a missing folder fails";
  return m;
}

}  // namespace tlsp::testing_support

// In a test body (or SetUp): declares `const std::filesystem::path var`, the
// folder shared_dir()/conformance/<name>. When it is not a directory the test
// skips, saying which folder and TLSP_SHARED_DIR; under TLSP_REQUIRE_SHARED
// it fails instead. This is the only "data missing" skip: a vector skipped
// on purpose (a known-unsupported feature) uses TLSP_SKIP_UNSUPPORTED.
#define TLSP_CONFORMANCE_DIR(var, name)                                                               \
  [[maybe_unused]] const std::filesystem::path var = ::tlsp::testing_support::conformance_path(name); \
  if (std::error_code tlsp_ec_; !std::filesystem::is_directory(var, tlsp_ec_)) {                      \
    if (::tlsp::testing_support::shared_data_required())                                              \
      GTEST_FAIL() << ::tlsp::testing_support::conformance_missing_message(var);                      \
    else                                                                                              \
      GTEST_SKIP() << ::tlsp::testing_support::conformance_missing_message(var);                      \
  }                                                                                                   \
  static_assert(true, "")

// A skip of a different kind: the data is there, and tlsp does not support
// what it tests yet, for `reason`. TLSP_REQUIRE_SHARED does not fail it.
#define TLSP_SKIP_UNSUPPORTED(reason) GTEST_SKIP() << "known-unsupported vector: " << reason
