#!/usr/bin/env bash
# make test-system's first step: the system test needs systemd-nspawn
# (systemd-container), mmdebstrap, nsenter (util-linux) and lintian. Where one
# is missing and this machine can install it (root with apt-get), install it;
# otherwise say so: the test then skips, saying what is missing.
set -euo pipefail
exec "$(dirname "$0")/../scripts/apt-need.sh" system-test-deps "make test-system skips what needs them." \
  systemd-nspawn=systemd-container mmdebstrap=mmdebstrap nsenter=util-linux lintian=lintian
