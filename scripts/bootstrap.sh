#!/usr/bin/env bash
# bootstrap.sh — everything a fresh Debian 12 machine needs before tlsp can
# run: installs the Debian packages that are missing (apt-get is skipped
# when all are present), then configures and builds into $TLSP_BUILD_DIR
# (default: build/). Idempotent; safe to run before every command.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${TLSP_BUILD_DIR:-$root/build}

# Every package and why: README.md, "Dependencies".
packages=(
  cmake make g++ pkg-config
  antlr4 libantlr4-runtime-dev
  libssl-dev
  libldns-dev
  libcurl4-openssl-dev
  zlib1g-dev
  libidn2-dev
  libboost-program-options-dev
  nlohmann-json3-dev
  zlib1g-dev python3-jsonschema
  libxxhash-dev
  libhiredis-dev redis-server libsqlite3-dev
  libmimalloc-dev
  libsystemd-dev
  libgtest-dev
  curl prometheus
  groff-base man-db bash-completion
  clang libclang-rt-14-dev
  dpkg-dev lintian systemd
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
  echo "bootstrap: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# RelWithDebInfo with line tables only (-g1: functions and line numbers for
# backtraces and profiles, no local variables): full -g made every
# compile about a third slower, and this build is the first stage of CI.
# TLSP_BUILD_TYPE=Debug for a build to step through with all of it.
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE="${TLSP_BUILD_TYPE:-RelWithDebInfo}" \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" >/dev/null
cmake --build "$build" -j"$(nproc)"
