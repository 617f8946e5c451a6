#!/usr/bin/env bash
# bench.sh — set up and build, then print the benchmark figures: compile
# time and peak memory for 10k/100k/1M-entry policies, table load time,
# lookup cost (and postmap's, when Postfix is installed), the
# enforcement engine's decisions per second, and the relay's messages per
# second on the loopback, side by side with Postfix when it is installed
# (TLSP_RELAY_BENCH_ARGS, e.g. "--messages 2000", is passed to that run).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${TLSP_BUILD_DIR:-$root/build}
"$root/scripts/bootstrap.sh"
"$build/tlsp_bench" "$@"
echo
"$build/tlsp_engine_bench"
echo
"$build/tlsp_simulate_bench" "$root"
echo
# shellcheck disable=SC2086 # the arguments are meant to split
"$build/tlsp_relay_bench" ${TLSP_RELAY_BENCH_ARGS:-}
