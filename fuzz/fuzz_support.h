// fuzz_support.h — what several fuzz targets share: a private temporary
// directory for the files a target writes its input to, made once per
// process and removed at exit.
#pragma once

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace tlsp::fuzz {

// A fresh directory under the temporary directory, the same one for the
// whole process. Never destroyed: the exit handler that removes it needs it.
inline const std::filesystem::path& private_dir() {
  static const std::filesystem::path* dir = [] {
    std::string t = (std::filesystem::temp_directory_path() / "tlsp-fuzz-XXXXXX").string();
    if (mkdtemp(t.data()) == nullptr) std::abort();
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(private_dir(), ec);
    });
    return new std::filesystem::path(t);
  }();
  return *dir;
}

// Writes `bytes` to `path`, replacing it; aborts when it cannot (the
// target would otherwise test nothing).
inline void write_file(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) std::abort();
}

}  // namespace tlsp::fuzz
