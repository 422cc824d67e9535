#!/usr/bin/env bash
# apt-need.sh NAME CONSEQUENCE TOOL=PACKAGE...: install, with apt-get, the
# packages of the tools that are missing, when this machine can (root with
# apt-get); otherwise say which, and CONSEQUENCE (what skips without them).
# scripts/test-deps.sh and packaging/system-test-deps.sh are its callers.
set -euo pipefail

name=$1 consequence=$2
shift 2
missing=()
for pair in "$@"; do
  command -v "${pair%%=*}" >/dev/null 2>&1 || missing+=("${pair#*=}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "$name: missing ${missing[*]}; $consequence" >&2
  echo "$name: install them with: sudo apt-get install ${missing[*]}" >&2
  exit 0
fi
echo "$name: installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d 101: a package's own service (node_exporter on *:9100) must not
# start on a test machine; the tests start what they need on loopback. The
# trap removes it even when apt-get fails, so no later service is blocked.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
