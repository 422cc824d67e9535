#!/usr/bin/env bash
# make test's first step: the tests start real programs (Prometheus, promtool,
# node_exporter, openssl, curl, git, systemd-analyze). Where one is missing and this machine
# can install it (root with apt-get), install it; otherwise say which tests
# will skip, so a fresh machine needs nothing but `make test`.
set -euo pipefail

declare -A pkg=([prometheus]=prometheus [promtool]=prometheus [openssl]=openssl [curl]=curl
                [git]=git [systemd-analyze]=systemd [prometheus-node-exporter]=prometheus-node-exporter)
missing=()
for tool in "${!pkg[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${pkg[$tool]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "test-deps: installing ${missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d 101: a package's own service (node_exporter on *:9100) must
  # not start on a test machine; the tests start what they need on loopback.
  had_policy=0; [ -e /usr/sbin/policy-rc.d ] && had_policy=1
  [ $had_policy = 1 ] || printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ $had_policy = 1 ] || rm -f /usr/sbin/policy-rc.d
else
  echo "test-deps: missing ${missing[*]}; the tests that need them cannot run (the Prometheus and systemd ones skip, saying so)." >&2
  echo "test-deps: install them with: sudo apt-get install ${missing[*]}" >&2
fi
