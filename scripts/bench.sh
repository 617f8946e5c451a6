#!/usr/bin/env bash
# bench.sh — set up and build, then print the benchmark figures: compile
# time and peak memory for 10k/100k/1M-entry policies, table load time,
# lookup cost (and postmap's, when Postfix is installed), and the
# enforcement engine's decisions per second.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${TLSP_BUILD_DIR:-$root/build}
"$root/scripts/bootstrap.sh"
"$build/tlsp_bench" "$@"
echo
"$build/tlsp_engine_bench"
echo
"$build/tlsp_simulate_bench" "$root"
