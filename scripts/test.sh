#!/usr/bin/env bash
# test.sh — the whole test suite, in three stages; .ci/run calls exactly this.
#   1. set up and build (bootstrap.sh), then every test with ctest;
#   2. the same suite built with clang under AddressSanitizer and
#      UndefinedBehaviorSanitizer (build-asan/, any report fails the test);
#   3. a bounded libFuzzer run of every target in fuzz/ (scripts/fuzz.sh,
#      from the stage-2 build).
# TLSP_TEST_STAGES picks stages (default "1 2 3"; e.g. "1" for a quick run).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${TLSP_BUILD_DIR:-$root/build}
asan=${TLSP_ASAN_BUILD_DIR:-$root/build-asan}
stages=${TLSP_TEST_STAGES:-1 2 3}
stage() { [[ " $stages " == *" $1 "* ]]; }
elapsed() { echo "test.sh: $1 done after $((SECONDS / 60))m$((SECONDS % 60))s" >&2; }

"$root/scripts/bootstrap.sh"
if stage 1; then
  (cd "$build" && ctest --output-on-failure -j"$(nproc)" --timeout 600)
  elapsed "stage 1 (tests)"
fi
if stage 2 || stage 3; then
  # -O1 and line tables: what the sanitizers need for useful reports, and
  # the fastest build that keeps the sanitized suite quick (asserts stay on).
  cmake -S "$root" -B "$asan" -DCMAKE_CXX_COMPILER=clang++ -DTLSP_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" >/dev/null
  cmake --build "$asan" -j"$(nproc)"
  elapsed "sanitizer build"
fi
if stage 2; then
  (cd "$asan" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    ctest --output-on-failure -j"$(nproc)" --timeout 900)
  elapsed "stage 2 (tests under ASan+UBSan)"
fi
if stage 3; then
  "$root/scripts/fuzz.sh" "$asan"
  elapsed "stage 3 (fuzz)"
fi
