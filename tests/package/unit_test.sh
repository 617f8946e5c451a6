#!/usr/bin/env bash
# unit_test.sh UNIT INSTALLED_BINARY BUILT_BINARY — checks the systemd unit
# the build configured (build/packaging/tlsp-relay.service) with
# `systemd-analyze verify`, offline (PID 1 need not be systemd): on a copy
# whose commands run the binary this build made, since verify checks that
# every command is executable. Clean means no output at all: verify prints
# every unknown setting, bad value and missing binary. Then prints
# `systemd-analyze security`'s exposure score (docs/packaging.md records
# it) and fails if it is above 2.0, i.e. if the hardening was weakened.
set -euo pipefail

unit=$1 installed=$2 built=$3
command -v systemd-analyze >/dev/null || { echo "SKIP: systemd-analyze is not installed"; exit 77; }
work=$(mktemp -d /tmp/tlsp-unit-test-XXXXXX)
trap 'rm -rf "$work"' EXIT
copy=$work/tlsp-relay.service
sed "s|$installed |$built |g" "$unit" >"$copy"
grep -q "^ExecStart=$built relay" "$copy" || { echo "FAIL: no ExecStart running $installed in $unit"; exit 1; }

out=$(systemd-analyze verify --man=no "$copy" 2>&1) || { echo "FAIL: systemd-analyze verify:"; echo "$out"; exit 1; }
if [ -n "$out" ]; then echo "FAIL: systemd-analyze verify is not clean:"; echo "$out"; exit 1; fi
echo "systemd-analyze verify: clean"

# The same check must fail on a unit that is wrong, or it proves nothing.
sed 's/^ProtectSystem=strict/ProtectSystem=stricter/' "$copy" >"$work/broken.service"
if [ -z "$(systemd-analyze verify --man=no "$work/broken.service" 2>&1)" ]; then
  echo "FAIL: systemd-analyze verify said nothing about ProtectSystem=stricter"; exit 1
fi

security=$(systemd-analyze security --offline=yes --no-pager "$copy" 2>&1) || true
score=$(printf '%s\n' "$security" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
[ -n "$score" ] || { echo "FAIL: no exposure score from systemd-analyze security:"; echo "$security"; exit 1; }
echo "systemd-analyze security: exposure $score"
printf '%s\n' "$security" | grep '✗' || true
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || { echo "FAIL: exposure $score is above 2.0"; exit 1; }
