#!/usr/bin/env bash
# bench.sh — set up and build, then print the benchmark figures: compile
# time and peak memory for 10k/100k/1M-entry policies, table load time,
# lookup cost (and postmap's, when Postfix is installed), the
# enforcement engine's decisions per second, and the relay's messages per
# second on the loopback, side by side with Postfix when it is installed
# (TLSP_RELAY_BENCH_ARGS, e.g. "--messages 2000", is passed to that run),
# the share of well-behaved clients the relay serves under a slow-client
# attack, with its defence on and off (TLSP_ATTACK_BENCH_ARGS), and live
# simulation of the scenario suite: scenarios per second and the
# share of time per phase.
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
echo
# shellcheck disable=SC2086 # the arguments are meant to split
"$build/tlsp_relay_attack_bench" ${TLSP_ATTACK_BENCH_ARGS:-}
echo
echo "live simulation of policies/scenarios (tlsp simulate --live --timings):"
start=$(date +%s.%N)
out=$("$build/tlsp" simulate --live --timings --policy "$root/policies/scenarios/policy.tlsp" \
  "$root/policies/scenarios/" 2>&1 || true)
end=$(date +%s.%N)
grep -v '^PASS ' <<<"$out"
n=$(grep -Eo '^[0-9]+ passed' <<<"$out" | grep -Eo '^[0-9]+' || echo 0)
awk -v s="$start" -v e="$end" -v n="$n" 'BEGIN { printf "wall %.1f s, %.1f scenarios/s\n", e - s, n / (e - s) }'
