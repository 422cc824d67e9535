#!/usr/bin/env bash
# make test-system's first step: the system test needs systemd-nspawn
# (systemd-container), mmdebstrap, nsenter (util-linux) and lintian. Where one
# is missing and this machine can install it (root with apt-get), install it;
# otherwise say so: the test then skips, saying what is missing.
set -euo pipefail

declare -A pkg=([systemd-nspawn]=systemd-container [mmdebstrap]=mmdebstrap [nsenter]=util-linux [lintian]=lintian)
missing=()
for tool in "${!pkg[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${pkg[$tool]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "system-test-deps: installing ${missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "system-test-deps: missing ${missing[*]}; make test-system skips what needs them." >&2
  echo "system-test-deps: install them with: sudo apt-get install ${missing[*]}" >&2
fi
