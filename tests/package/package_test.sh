#!/usr/bin/env bash
# package_test.sh — the Debian package on this machine, end to end: builds
# it from the existing build tree (scripts/package.sh: cpack, lintian),
# installs it with dpkg -i, checks the `tlsp` account, the directories'
# owners and modes, the files, the Depends dpkg-shlibdeps computed, that the
# installed binary passes --check-config on the installed configuration,
# and that the installed relay started as root with that configuration (on
# a loopback port instead of 25) serves EHLO as the user tlsp; then
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

# The installed configuration, started as root, but on a loopback port: the
# copy differs in its listen line only.
sed 's/^listen = .*/listen = 127.0.0.1:0/' /etc/tlsp/relay.conf >"$work/relay.conf"
[ "$(diff /etc/tlsp/relay.conf "$work/relay.conf" | grep -c '^[<>]')" -eq 2 ] || fail "the copy differs in more than listen"
/usr/bin/tlsp relay --config "$work/relay.conf" 2>"$work/relay.log" &
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
kill -TERM "$relay_pid"
wait "$relay_pid" || fail "the relay exited $? after SIGTERM"
relay_pid=
chown_files=$(find /var/spool/tlsp ! -user tlsp | wc -l)
[ "$chown_files" -eq 0 ] || fail "files in the spool not owned by tlsp: $(find /var/spool/tlsp ! -user tlsp)"

dpkg -r tlsp >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -r"; }
[ ! -e /usr/bin/tlsp ] && [ ! -e /usr/lib/systemd/system/tlsp-relay.service ] || fail "files left after dpkg -r"
[ -f /etc/tlsp/relay.conf ] || fail "dpkg -r removed the configuration"
echo "removed (the configuration stays)"
dpkg --purge tlsp >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg --purge"; }
for p in /etc/tlsp /var/spool/tlsp /var/lib/tlsp /usr/share/tlsp /usr/share/doc/tlsp \
         /etc/systemd/system/tlsp-relay.service /etc/systemd/system/multi-user.target.wants/tlsp-relay.service; do
  [ ! -e "$p" ] && [ ! -L "$p" ] || fail "$p is left after dpkg --purge"
done
left=$(find /var/lib/systemd/deb-systemd-helper-enabled /var/lib/systemd/deb-systemd-helper-masked \
         -name '*tlsp-relay*' 2>/dev/null || true)
[ -z "$left" ] || fail "systemd enablement state left after dpkg --purge: $left"
if dpkg-query -W -f='${Status}' tlsp 2>/dev/null | grep -q installed; then fail "dpkg still knows tlsp"; fi
echo "purged in $(($(date +%s) - start)) s in all"
