#!/usr/bin/env bash
# package_test.sh — the Debian package on this machine, end to end: builds
# it from the existing build tree (scripts/package.sh: cpack, lintian),
# installs it with dpkg -i, checks the `tlsp` account, the directories'
# owners and modes, the files, the Depends dpkg-shlibdeps computed, that the
# installed binary passes --check-config on the installed configuration,
# and that the installed relay started as root with that configuration (on
# a loopback port instead of 25) serves EHLO as the user tlsp; then the
# operator's day with the installed binary: a message deferred and found
# in the log file by grep, `tlsp queue` list/show/hold/release/flush/delete
# through the running relay, `tlsp mta-sts-cache` list/purge, a metrics
# scrape promtool accepts, the log file reopened on SIGHUP; then
# dpkg -r (the configuration stays) and dpkg --purge (nothing stays).
#
# Needs root and dpkg: otherwise it skips saying so (exit 77), and fails
# under CI=true. It refuses to run where tlsp is already installed or the
# `tlsp` account or its directories exist, and leaves the machine as it
# found it, also when a check fails (the EXIT trap purges the package,
# removes the account it made and stops the relay it started).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${TLSP_BUILD_DIR:-$root/build}

skip() {
  if [ "${CI:-}" = true ]; then echo "FAIL: $1 (CI=true: this test must run)"; exit 1; fi
  echo "SKIP: $1"; exit 77
}
fail() { echo "FAIL: $*"; exit 1; }
[ "$(id -u)" -eq 0 ] || skip "needs root (dpkg -i)"
command -v dpkg >/dev/null && command -v dpkg-deb >/dev/null || skip "needs dpkg"

# Nothing of ours may be here before: the cleanup would remove it.
if dpkg-query -W -f='${Status}' tlsp 2>/dev/null | grep -q installed; then fail "the tlsp package is already installed here"; fi
for p in /etc/tlsp /var/spool/tlsp /var/lib/tlsp /var/log/tlsp; do [ ! -e "$p" ] || fail "$p exists already"; done
getent passwd tlsp >/dev/null && fail "a user tlsp exists already"
getent group tlsp >/dev/null && fail "a group tlsp exists already"
[ ! -e /etc/systemd/system/multi-user.target.wants/tlsp-relay.service ] || fail "tlsp-relay.service is enabled already"

work=$(mktemp -d /tmp/tlsp-package-test-XXXXXX)
relay_pid=
cleanup() {
  # Every step runs whatever the one before did (a killed relay's wait
  # returns 137, which set -e would turn into an exit before the purge).
  set +e
  [ -n "$relay_pid" ] && kill -KILL "$relay_pid" 2>/dev/null && wait "$relay_pid" 2>/dev/null
  dpkg --purge tlsp >/dev/null 2>&1 || true
  getent passwd tlsp >/dev/null && userdel tlsp
  getent group tlsp >/dev/null && groupdel tlsp
  rm -rf "$work" /etc/tlsp /var/spool/tlsp /var/lib/tlsp /var/log/tlsp
  deb-systemd-helper purge tlsp-relay.service >/dev/null 2>&1 || true
  deb-systemd-helper unmask tlsp-relay.service >/dev/null 2>&1 || true
}
trap cleanup EXIT

start=$(date +%s)
deb=$(TLSP_BUILD_DIR=$build "$root/scripts/package.sh" 2>"$work/package.log" | tail -n 1) ||
  { cat "$work/package.log"; fail "scripts/package.sh"; }
sed -n '/lintian/,$p' "$work/package.log"
echo "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB) in $(($(date +%s) - start)) s"

dpkg -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -i"; }
echo "installed"

# The account: a system user without a login.
IFS=: read -r _ _ uid gid _ home shell < <(getent passwd tlsp) || fail "no user tlsp after install"
[ "$uid" -lt 1000 ] || fail "tlsp has uid $uid: not a system user"
[ "$(getent group tlsp | cut -d: -f3)" = "$gid" ] || fail "tlsp's primary group is not tlsp"
[ "$home" = /var/lib/tlsp ] && [ "$shell" = /usr/sbin/nologin ] || fail "tlsp: home $home, shell $shell"

check_mode() {  # PATH OWNER:GROUP MODE
  local got; got=$(stat -c '%U:%G %a' "$1" 2>/dev/null) || fail "$1 is missing"
  [ "$got" = "$2 $3" ] || fail "$1 is $got, not $2 $3"
}
check_mode /var/spool/tlsp tlsp:tlsp 700
check_mode /var/lib/tlsp root:tlsp 750
check_mode /var/lib/tlsp/mta-sts tlsp:tlsp 700
check_mode /var/lib/tlsp/policy.tlspdt root:tlsp 640
check_mode /var/log/tlsp tlsp:tlsp 750
check_mode /etc/tlsp/relay.conf root:root 644
check_mode /usr/bin/tlsp root:root 755
for f in /usr/lib/systemd/system/tlsp-relay.service /usr/share/tlsp/policies/example.tlsp \
         /usr/share/tlsp/policies/tenants/globex.tlsp /usr/share/doc/tlsp/copyright \
         /usr/share/doc/tlsp/changelog.Debian.gz; do
  [ -f "$f" ] || fail "$f is missing"
done
grep -qx /etc/tlsp/relay.conf /var/lib/dpkg/info/tlsp.conffiles || fail "relay.conf is not a conffile"
[ -L /etc/systemd/system/multi-user.target.wants/tlsp-relay.service ] || fail "the service is not enabled"
depends=$(dpkg-query -W -f='${Depends}' tlsp)
for lib in libssl3 libldns3 libcurl4 libsystemd0 libantlr4-runtime libc6 adduser; do
  case "$depends" in *"$lib"*) ;; *) fail "Depends lacks $lib: $depends" ;; esac
done
echo "Depends: $depends"
# Installed again over itself (prerm upgrade, postinst configure VERSION):
# the maintainer scripts are idempotent, and an existing table is kept.
table_sum=$(sha256sum /var/lib/tlsp/policy.tlspdt)
dpkg -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -i, again"; }
check_mode /var/spool/tlsp tlsp:tlsp 700
check_mode /var/lib/tlsp/policy.tlspdt root:tlsp 640
[ "$(sha256sum /var/lib/tlsp/policy.tlspdt)" = "$table_sum" ] || fail "the reinstall rewrote the table"
[ "$(getent passwd tlsp | cut -d: -f3)" = "$uid" ] || fail "the reinstall changed the account"

out=$(/usr/bin/tlsp relay --check-config --config /etc/tlsp/relay.conf 2>&1) || fail "--check-config: $out"
echo "$out"

# The installed configuration, started as root, but on a loopback port, with
# what an operator adds to observe it: the log in the package's log directory
# (and on stderr, which this test reads), metrics on the loopback (port 0: the
# start line names the port), and a resolver where nothing answers (a UDP
# port without a listener, so every lookup fails at once and the mail is
# deferred), retried only in an hour so that only the operator's commands
# cause attempts.
dns_port=$(python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
conf=$work/relay.conf
log_file=/var/log/tlsp/relay.log
{
  sed 's/^listen = .*/listen = 127.0.0.1:0/' /etc/tlsp/relay.conf
  printf '%s\n' "# package_test.sh: the operator's day" "metrics-listen = 127.0.0.1:0" "log = file:$log_file" \
    "log = stderr" "log-format = text" "resolver = 127.0.0.1:$dns_port" "dns-timeout = 300ms" "retry-schedule = 1h"
} >"$conf"
expected_diff="< listen = 0.0.0.0:25
> listen = 127.0.0.1:0
> # package_test.sh: the operator's day
> metrics-listen = 127.0.0.1:0
> log = file:$log_file
> log = stderr
> log-format = text
> resolver = 127.0.0.1:$dns_port
> dns-timeout = 300ms
> retry-schedule = 1h"
got_diff=$(diff /etc/tlsp/relay.conf "$conf" | grep '^[<>]' || true)
[ "$got_diff" = "$expected_diff" ] || fail "the copy of relay.conf differs in other lines than listen and the operator's: $got_diff"
/usr/bin/tlsp relay --check-config --config "$conf" >"$work/check.log" 2>&1 || { cat "$work/check.log"; fail "--check-config on the copy"; }
/usr/bin/tlsp relay --config "$conf" 2>"$work/relay.log" &
relay_pid=$!
port=
for _ in $(seq 100); do
  port=$(sed -n 's/.* start listen=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/relay.log" | head -n 1)
  [ -n "$port" ] && break
  kill -0 "$relay_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$port" ] || { cat "$work/relay.log"; fail "the installed relay did not start"; }
status_uid=$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "/proc/$relay_pid/status")
[ "$status_uid" = "$uid $uid $uid $uid" ] || fail "the relay runs with uids $status_uid, not tlsp's $uid"
reply=$(timeout 10 bash -c '
  exec 3<>"/dev/tcp/127.0.0.1/$1"
  read -r greeting <&3; printf "%s\n" "$greeting"
  printf "EHLO package.test\r\n" >&3
  while read -r line <&3; do printf "%s\n" "$line"; case "$line" in 250\ *) break ;; esac; done
  printf "QUIT\r\n" >&3' _ "$port") || fail "no SMTP dialogue: $reply"
printf '%s\n' "$reply" | head -n 1 | grep -q '^220 ' || fail "greeting: $reply"
printf '%s\n' "$reply" | grep -q '^250 ' || fail "EHLO: $reply"
echo "the installed relay serves EHLO on 127.0.0.1:$port as uid $uid (tlsp)"

# ---- The operator's day, with the installed binary and files only, as root
# (the `tlsp queue` commands talk to the running relay over its control
# socket in the spool).
day_start=$(date +%s)
metrics_port=$(sed -n 's/.* start .* metrics=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/relay.log" | head -n 1)
[ -n "$metrics_port" ] || { cat "$work/relay.log"; fail "the start line names no metrics address"; }
tq() { /usr/bin/tlsp queue "$@" --config "$conf"; }
# wait_for SECONDS WHAT COMMAND...: polls COMMAND every 0.1 s.
wait_for() {
  local tries=$(($1 * 10)) what=$2
  shift 2
  for _ in $(seq "$tries"); do
    "$@" && return 0
    kill -0 "$relay_pid" 2>/dev/null || { cat "$work/relay.log"; fail "the relay died while waiting for $what"; }
    sleep 0.1
  done
  cat "$work/relay.log"
  fail "waited $1 s in vain for $what"
}
log_count() { grep -c -- "$1" "$log_file" 2>/dev/null || true; }
log_has_at_least() { [ "$(log_count "$1")" -ge "$2" ]; }
# The entry is in the queue and no attempt runs on it (hold, release and
# delete refuse an entry being delivered).
entry_idle() {
  tq list --json 2>/dev/null | python3 -c '
import json, sys
e = json.load(sys.stdin)["entries"]
sys.exit(0 if len(e) == 1 and e[0]["id"] == sys.argv[1] and not e[0]["delivering"] else 1)' "$queue_id"
}
scrape() { curl -sf --max-time 5 "http://127.0.0.1:$metrics_port/metrics"; }

# One message from a managed domain of the example policy (acme.example)
# to a domain the resolver cannot resolve: accepted from the loopback (the
# default submit network) for outbound delivery, then deferred.
sender=alice@acme.example
recipient=bob@unreachable.example
reply=$(timeout 10 bash -c '
  exec 3<>"/dev/tcp/127.0.0.1/$1"
  say() { printf "%s\r\n" "$1" >&3; }
  hear() { while read -r line <&3; do printf "%s\n" "${line%$'"'\r'"'}"; case "$line" in [0-9][0-9][0-9]\ *) return 0 ;; esac; done; return 1; }
  hear
  say "EHLO package.test"; hear
  say "MAIL FROM:<$2>"; hear
  say "RCPT TO:<$3>"; hear
  say "DATA"; hear
  say "From: <$2>"; say "To: <$3>"; say "Subject: the operator'"'"'s day"; say "Message-ID: <day@package.test>"
  say ""; say "One message to defer, hold, release, flush and delete."; say "."; hear
  say "QUIT"; hear' _ "$port" "$sender" "$recipient") || fail "the SMTP submission broke off: $reply"
queue_id=$(printf '%s\n' "$reply" | sed -n 's/^250 2\.0\.0 Ok: queued as \([^ ,]*\)$/\1/p')
[ -n "$queue_id" ] || fail "the message was not queued: $reply"
echo "queued $queue_id: <$sender> -> <$recipient>"

# The log file, grepped as an operator would.
wait_for 10 "a status=deferred line in $log_file" log_has_at_least 'status=deferred' 1
line=$(grep 'status=deferred' "$log_file" | head -n 1)
for want in " attempt " "queue_id=$queue_id " "to=<$recipient> " " dsn=4." " delays="; do
  case "$line" in *"$want"*) ;; *) fail "the deferred line lacks \`$want\`: $line" ;; esac
done
echo "log: $line"
[ "$(stat -c %U "$log_file")" = tlsp ] || fail "$log_file is owned by $(stat -c %U "$log_file"), not tlsp"
wait_for 10 "the first attempt to end" entry_idle

# See it.
out=$(tq list 2>&1) || fail "tlsp queue list: $out"
case "$out" in *"$queue_id "*"deferred"*"from <$sender>"*"to   <$recipient>"*) ;; *) fail "tlsp queue list: $out" ;; esac
tq list --json | python3 -c '
import json, sys
e = json.load(sys.stdin)["entries"]
assert len(e) == 1, e
e = e[0]
assert (e["id"], e["sender"], e["recipients"], e["state"], e["attempts"]) == (sys.argv[1], sys.argv[2], [sys.argv[3]], "deferred", 1), e
' "$queue_id" "$sender" "$recipient" || fail "tlsp queue list --json: $(tq list --json 2>&1)"
out=$(tq show "$queue_id" 2>&1) || fail "tlsp queue show: $out"
for want in "id            $queue_id" "sender        <$sender>" "recipient     <$recipient>" "Subject: the operator's day"; do
  case "$out" in *"$want"*) ;; *) fail "tlsp queue show lacks \`$want\`: $out" ;; esac
done
echo "tlsp queue list, list --json and show see $queue_id"

# Hold it, release it (due at once: a second attempt), flush it (a third).
out=$(tq hold "$queue_id" 2>&1) && [ "$out" = "1 entry held" ] || fail "tlsp queue hold: $out"
tq list --json | python3 -c 'import json, sys; assert json.load(sys.stdin)["entries"][0]["state"] == "held"' ||
  fail "the entry is not held: $(tq list 2>&1)"
out=$(tq release "$queue_id" 2>&1) && [ "$out" = "1 entry released" ] || fail "tlsp queue release: $out"
wait_for 10 "the attempt after the release" log_has_at_least 'status=deferred' 2
wait_for 10 "the attempt after the release to end" entry_idle
out=$(tq flush 2>&1) && [ "$out" = "1 entry made due now" ] || fail "tlsp queue flush: $out"
wait_for 10 "the attempt after the flush" log_has_at_least 'status=deferred' 3
wait_for 10 "the attempt after the flush to end" entry_idle
[ "$(grep "queue_id=$queue_id " "$log_file" | grep -c 'status=deferred')" -eq 3 ] ||
  fail "not three deferred attempts: $(grep 'status=deferred' "$log_file")"
for r in held released; do
  grep -q " queue queue_id=$queue_id result=$r " "$log_file" || fail "no \`queue queue_id=$queue_id result=$r\` line in $log_file"
done
# A flush of the whole queue is one line without a queue id.
grep -q " queue result=flushed pending=1 " "$log_file" || fail "no \`queue result=flushed pending=1\` line in $log_file"
echo "tlsp queue hold, release, flush: three attempts, each status=deferred"

# Scrape it while the entry is queued.
metrics=$(scrape) && [ -n "$metrics" ] || fail "no metrics from 127.0.0.1:$metrics_port"
check=$(printf '%s\n' "$metrics" | promtool check metrics 2>&1) && [ -z "$check" ] || fail "promtool check metrics: $check"
deferred_attempts=$(printf '%s\n' "$metrics" |
  awk '/^tlsp_delivery_attempts_total\{/ && /action="defer"/ { n += $NF } END { print n + 0 }')
[ "$deferred_attempts" -eq 3 ] ||
  fail "tlsp_delivery_attempts_total{action=\"defer\"} adds up to $deferred_attempts, not 3: $(printf '%s\n' "$metrics" | grep '^tlsp_delivery_attempts_total')"
printf '%s\n' "$metrics" | grep -qx 'tlsp_queue_entries 1' || fail "tlsp_queue_entries is not 1: $(printf '%s\n' "$metrics" | grep '^tlsp_queue')"
echo "metrics: $(printf '%s\n' "$metrics" | wc -l) lines, promtool clean, 3 deferred attempts, tlsp_queue_entries 1"

# Delete it (no bounce): the queue is empty, and so is the gauge.
out=$(tq delete "$queue_id" 2>&1) && [ "$out" = "1 entry deleted (no bounce sent)" ] || fail "tlsp queue delete: $out"
out=$(tq list 2>&1) && [ "$out" = "the queue is empty" ] || fail "tlsp queue list after the delete: $out"
tq list --json | python3 -c 'import json, sys; assert json.load(sys.stdin)["entries"] == []' || fail "tlsp queue list --json is not empty"
grep -q " queue queue_id=$queue_id result=deleted " "$log_file" || fail "no \`queue ... result=deleted\` line in $log_file"
metrics=$(scrape) || fail "no metrics after the delete"
printf '%s\n' "$metrics" | grep -qx 'tlsp_queue_entries 0' || fail "tlsp_queue_entries is not 0 after the delete: $(printf '%s\n' "$metrics" | grep '^tlsp_queue')"
echo "tlsp queue delete: the queue is empty, tlsp_queue_entries 0"

# The MTA-STS cache (empty: nothing was fetched).
out=$(/usr/bin/tlsp mta-sts-cache list --config "$conf" 2>&1) || fail "tlsp mta-sts-cache list: $out"
/usr/bin/tlsp mta-sts-cache list --json --config "$conf" | python3 -c 'import json, sys; json.load(sys.stdin)' ||
  fail "tlsp mta-sts-cache list --json"
out=$(/usr/bin/tlsp mta-sts-cache purge --config "$conf" 2>&1) || fail "tlsp mta-sts-cache purge: $out"
echo "tlsp mta-sts-cache list and purge"

# Rotation: the file moved aside, SIGHUP, and the relay writes a new one (as
# tlsp, in the log directory) from the next line on: the table it reloads.
mv "$log_file" "$log_file.1"
kill -HUP "$relay_pid"
wait_for 10 "a new $log_file with the reload's table line" grep -q ' table ' "$log_file"
[ "$(stat -c %U "$log_file")" = tlsp ] || fail "the reopened $log_file is owned by $(stat -c %U "$log_file"), not tlsp"
[ "$(grep -c ' table ' "$log_file.1")" -eq 1 ] ||
  fail "the old file got the reload's line too: $(grep ' table ' "$log_file.1")"
echo "SIGHUP: $log_file reopened, owned by tlsp"
echo "the operator's day took $(($(date +%s) - day_start)) s"
kill -TERM "$relay_pid"
wait "$relay_pid" || fail "the relay exited $? after SIGTERM"
relay_pid=
grep -q ' stop ' "$log_file" || fail "the stop lines are not in the reopened $log_file"
! grep -q ' stop ' "$log_file.1" || fail "the relay still wrote to the file moved aside: $(grep ' stop ' "$log_file.1")"
chown_files=$(find /var/spool/tlsp ! -user tlsp | wc -l)
[ "$chown_files" -eq 0 ] || fail "files in the spool not owned by tlsp: $(find /var/spool/tlsp ! -user tlsp)"

dpkg -r tlsp >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -r"; }
[ ! -e /usr/bin/tlsp ] && [ ! -e /usr/lib/systemd/system/tlsp-relay.service ] || fail "files left after dpkg -r"
[ -f /etc/tlsp/relay.conf ] || fail "dpkg -r removed the configuration"
echo "removed (the configuration stays)"
dpkg --purge tlsp >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg --purge"; }
for p in /etc/tlsp /var/spool/tlsp /var/lib/tlsp /var/log/tlsp /usr/share/tlsp /usr/share/doc/tlsp \
         /etc/systemd/system/tlsp-relay.service /etc/systemd/system/multi-user.target.wants/tlsp-relay.service; do
  [ ! -e "$p" ] && [ ! -L "$p" ] || fail "$p is left after dpkg --purge"
done
left=$(find /var/lib/systemd/deb-systemd-helper-enabled /var/lib/systemd/deb-systemd-helper-masked \
         -name '*tlsp-relay*' 2>/dev/null || true)
[ -z "$left" ] || fail "systemd enablement state left after dpkg --purge: $left"
if dpkg-query -W -f='${Status}' tlsp 2>/dev/null | grep -q installed; then fail "dpkg still knows tlsp"; fi
echo "purged in $(($(date +%s) - start)) s in all"
