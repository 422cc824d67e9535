// Package packaging builds the Debian packages alloy-runner and metrics-proxy
// (make deb, with nfpm) and proves them under a real systemd (make
// test-system): a Debian 12 root booted with systemd-nspawn, the packages
// installed, configured, scraped through the proxy with every drop-in,
// reloaded, stopped, scored, removed and purged. It has no Go code of its
// own: its tests check the packaging files (in make test) and run the system
// test (only when make test-system sets ALLOY_SYSTEM_TEST_DEBS). How and why:
// packaging/README.md.
package packaging
