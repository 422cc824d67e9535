// Package e2e holds black-box tests that start the real alloy-runner and
// metrics-proxy binaries on loopback and talk to them as users and attackers
// would. The binaries come from $ALLOY_BIN_DIR (make test sets it to bin/), or
// are built into a temporary directory when it is unset.
package e2e
