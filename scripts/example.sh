#!/usr/bin/env bash
# example.sh — the main job on the shipped example: set up and build, check
# and compile policies/example.tlsp into a decision table, then show what
# the table holds and explain a few decisions.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${TLSP_BUILD_DIR:-$root/build}
"$root/scripts/bootstrap.sh"

tlsp="$build/tlsp"
table="$build/example.tlspdt"
cd "$root"
# Shows each command as it could be typed again (an empty argument as '').
run() {
  local shown=() a
  for a in "$@"; do [ -n "$a" ] && shown+=("$a") || shown+=("''"); done
  printf '\n$ tlsp %s\n' "${shown[*]}"
  "$tlsp" "$@"
}

run check policies/example.tlsp
run compile policies/example.tlsp -o "$table"
run inspect "$table"
run explain --table "$table" --direction outbound --domain acme.example --peer partner.example
run explain --table "$table" --direction outbound --domain ACME-mail.example. --peer mx1.eu.bank.example
run explain --table "$table" --direction outbound --domain acme.example --peer legacy.example
run explain --table "$table" --direction inbound  --domain acme.example --peer 203.0.113.77
run explain --table "$table" --direction inbound  --domain acme.example --peer 2001:db8:42::25 --json
run explain --table "$table" --direction outbound --domain globex.example --peer mx.secure.example.org
run explain --table "$table" --direction outbound --domain old.example --peer partner.example
run simulate --policy policies/scenarios/policy.tlsp policies/scenarios/
# The relay's example configuration, checked against the table just built
# (its certificate paths are a production machine's, so STARTTLS is left out).
run relay --config docs/relay.conf.example --table "$table" --tls-cert "" --tls-key "" --check-config
