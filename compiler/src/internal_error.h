// internal_error.h — the third kind of failure: our own bug.
//
// A user's mistake is a diagnostic, the environment's (an unreadable file)
// an input error; a broken invariant of the compiler itself is neither, and
// going on would write a wrong table or report a wrong error. TLSP_ASSERT
// states such an invariant where the code relies on it; when it does not
// hold, internal_error() prints
//   tlsp: internal error: WHAT at FILE:LINE (please report)
// to standard error and ends the process with kExitInternalError, an exit
// code no user input can cause (0 ok, 1 errors in the input, 2 usage or
// unreadable input). It is never compiled out: the checks are cheap and sit
// outside the hot loops.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace tlsp {

// EX_SOFTWARE of sysexits(3): "an internal software error has been detected".
inline constexpr int kExitInternalError = 70;

// FILE and LINE come from the TLSP_ASSERT macro (__FILE__, __LINE__):
// std::source_location needs a builtin that clang 14, the sanitizer and
// fuzz build's compiler, does not have with libstdc++ 12.
[[noreturn]] inline void internal_error(std::string_view what, const char* file, unsigned line) {
  std::fflush(stdout);
  std::fprintf(stderr, "tlsp: internal error: %.*s at %s:%u (please report)\n", static_cast<int>(what.size()),
               what.data(), file, line);
  std::fflush(stderr);
  std::_Exit(kExitInternalError);
}

}  // namespace tlsp

// TLSP_ASSERT(condition, "what it means when it does not hold")
#define TLSP_ASSERT(condition, what)                                                       \
  do {                                                                                     \
    if (!(condition)) [[unlikely]]                                                         \
      ::tlsp::internal_error(std::string("`" #condition "` does not hold: ") + (what), \
                             __FILE__, __LINE__);                                          \
  } while (false)
