#!/usr/bin/env bash
# fuzz.sh — a bounded libFuzzer run of every target in fuzz/ (fuzz/README.md),
# from a seed corpus built from the shipped files plus the regression seeds
# in fuzz/seeds/<target>/. A crash, a leak, a UBSan report, a timeout or an
# out-of-memory is a failure (exit 1), with the reproducer kept under
# $TLSP_FUZZ_OUT (default: <build>/fuzz-out) and its path printed.
#
#   scripts/fuzz.sh [BUILD_DIR]            # default build dir: build-asan
#   TLSP_FUZZ_SECONDS=N                    # seconds per target (default 15)
#   TLSP_FUZZ_JOBS=N                       # targets run at once (default: nproc)
#
# The build dir must be configured with -DTLSP_FUZZ=ON and clang
# (scripts/test.sh does that); this script builds the targets in it.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-${TLSP_ASAN_BUILD_DIR:-$root/build-asan}}
seconds=${TLSP_FUZZ_SECONDS:-15}
out=${TLSP_FUZZ_OUT:-$build/fuzz-out}

targets=()
for src in "$root"/fuzz/*_fuzz.cpp; do targets+=("$(basename "$src" .cpp)"); done
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" >/dev/null

work=$(mktemp -d "${TMPDIR:-/tmp}/tlsp-fuzz-XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# ------------------------------------------------------------- seed corpora
seed() {  # seed TARGET NAME < bytes
  mkdir -p "$work/$1"
  cat >"$work/$1/$2"
}

# The policy language: every shipped policy; the example with its tenant as
# the second file of the input (fuzz/policy_compile_fuzz.cpp).
{ cat "$root/policies/example.tlsp"; printf '\n#---\n'; cat "$root/policies/tenants/globex.tlsp"; } |
  seed policy_compile_fuzz example
for f in "$root"/policies/errors/*.tlsp "$root"/policies/scenarios/policy.tlsp; do
  seed policy_compile_fuzz "$(basename "$(dirname "$f")")-$(basename "$f")" <"$f"
done

# The scenario language: one seed per shipped scenario.
for f in "$root"/policies/scenarios/*.scenario; do
  awk -v dir="$work/scenario_fuzz" -v base="$(basename "$f" .scenario)" '
    BEGIN { n = 0; system("mkdir -p " dir) }
    /^scenario / { n++ }
    n > 0 { print > (dir "/" base "-" n) }' "$f"
done

# Decision tables: the shipped policies compiled.
mkdir -p "$work/table_loader_fuzz"
"$build/tlsp" compile "$root/policies/example.tlsp" -o "$work/table_loader_fuzz/example.tlspdt" >/dev/null
"$build/tlsp" compile "$root/policies/scenarios/policy.tlsp" -o "$work/table_loader_fuzz/scenarios.tlspdt" >/dev/null

# The relay's configuration file.
[ -f "$root/docs/relay.conf.example" ] && seed relay_config_fuzz example <"$root/docs/relay.conf.example"

# The relay log: the example lines of the README and docs/logs.md, text
# (wrapped there, one line here) and JSON.
awk '
  function flush() { if (line != "") print line; line = "" }
  /^20[0-9-]*T.* tlsp-relay / { flush(); line = $0; next }
  /^  / && line != "" { line = line " " substr($0, 3); next }
  /^\{"time":"2/ { flush(); print; next }
  { flush() }
  END { flush() }' "$root/README.md" "$root/docs/logs.md" | head -n 40 | {
  i=0
  while IFS= read -r l; do i=$((i + 1)); printf '%s' "$l" | seed relay_log_fuzz "readme-$i"; done
}

# TLSRPT records (RFC 8460 §3): the RFC's examples and an RRset of two.
printf 'v=TLSRPTv1; rua=mailto:reports@example.com' | seed tlsrpt_record_fuzz mailto
printf 'v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt' | seed tlsrpt_record_fuzz https
printf 'v=TLSRPTv1;rua=mailto:a%%2Bb@example.com , https://r.example.com:8443/p?q=1; ext=1;\nv=spf1 -all' |
  seed tlsrpt_record_fuzz rrset

# The metrics endpoint: the requests curl and Prometheus send, and a HEAD.
printf 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9100\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n' |
  seed metrics_http_fuzz curl
printf '%s\r\n' 'GET /metrics HTTP/1.1' 'Host: localhost:9100' 'User-Agent: Prometheus/2.42.0' \
  'Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1' \
  'Accept-Encoding: gzip' 'X-Prometheus-Scrape-Timeout-Seconds: 10' '' | seed metrics_http_fuzz prometheus
printf 'HEAD /metrics?x=1 HTTP/1.0\r\n\r\n' | seed metrics_http_fuzz head-http10

# TLSRPT reports: the reports tlsp writes (tests/tlsrpt/golden), as JSON
# and gzipped; and as a report mail (multipart/report, base64 gzip part).
for f in "$root"/tests/tlsrpt/golden/*.json; do
  b=$(basename "$f" .json)
  seed tlsrpt_json_fuzz "$b" <"$f"
  gzip -9 -n -c "$f" | seed tlsrpt_json_fuzz "$b.gz"
  {
    printf 'From: tlsrpt@mx.acme.example\r\nTLS-Report-Domain: bank.example\r\nMIME-Version: 1.0\r\n'
    printf 'Content-Type: multipart/report; report-type="tlsrpt";\r\n boundary="b1"\r\n\r\n--b1\r\n'
    printf 'Content-Type: text/plain\r\n\r\nA TLS report.\r\n--b1\r\nContent-Type: application/tlsrpt+gzip\r\n'
    printf 'Content-Transfer-Encoding: base64\r\n\r\n'
    gzip -9 -n -c "$f" | base64
    printf '\r\n--b1--\r\n'
  } | seed tlsrpt_mail_fuzz "$b.eml"
done

# Regression seeds: inputs that once broke a parser, kept for ever.
for dir in "$root"/fuzz/seeds/*/; do
  [ -d "$dir" ] || continue
  t=$(basename "$dir")
  mkdir -p "$work/$t"
  cp "$dir"* "$work/$t/" 2>/dev/null || true
done

# ---------------------------------------------------------------------- run
# TLSP_FUZZ_JOBS targets at a time (default: one per core), each for its
# full time budget with its own log and findings directory; the results are
# reported afterwards in the order of the targets, whatever finished first.
jobs=${TLSP_FUZZ_JOBS:-$(nproc)}
((jobs >= 1)) || jobs=1
run_target() {  # run_target TARGET: its exit status into $work/TARGET.rc
  local t=$1 rc=0
  mkdir -p "$work/$t" "$out/$t"
  # -rss_limit_mb: no input may need more; -timeout: none may take longer.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$build/$t" "$work/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -artifact_prefix="$out/$t/" -print_final_stats=1 >"$out/$t.log" 2>&1 || rc=$?
  echo "$rc" >"$work/$t.rc"
}
running=0
for t in "${targets[@]}"; do
  if ((running >= jobs)); then
    wait -n || true
    running=$((running - 1))
  fi
  run_target "$t" &
  running=$((running + 1))
done
wait

failed=0
passed=0
summary=()
for t in "${targets[@]}"; do
  log="$out/$t.log"
  if [ "$(cat "$work/$t.rc" 2>/dev/null)" = 0 ]; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    summary+=("fuzz: $t: ${runs:-?} inputs in ${seconds}s, clean")
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    summary+=("fuzz: $t: FAILED, see $log")
    tail -40 "$log" >&2
    ls "$out/$t"/* 2>/dev/null | sed 's/^/fuzz: reproducer: /' >&2 || true
  fi
done
printf '%s\n' "${summary[@]}"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
