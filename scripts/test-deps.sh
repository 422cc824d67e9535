#!/usr/bin/env bash
# make test's first step: the tests start real programs (Prometheus, promtool,
# node_exporter, openssl, curl, git, systemd-analyze). Where one is missing and
# this machine can install it (root with apt-get), install it; otherwise say
# which tests will skip, so a fresh machine needs nothing but `make test`.
set -euo pipefail
exec "$(dirname "$0")/apt-need.sh" test-deps \
  "the tests that need them cannot run (the Prometheus and systemd ones skip, saying so)." \
  prometheus=prometheus promtool=prometheus prometheus-node-exporter=prometheus-node-exporter \
  openssl=openssl curl=curl git=git systemd-analyze=systemd
