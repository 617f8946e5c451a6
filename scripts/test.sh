#!/usr/bin/env bash
# test.sh — the whole test suite: set up and build, then run every test
# with ctest. .ci/run calls exactly this.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${TLSP_BUILD_DIR:-$root/build}
"$root/scripts/bootstrap.sh"
cd "$build"
ctest --output-on-failure -j"$(nproc)" --timeout 600
