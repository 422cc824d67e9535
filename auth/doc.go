// Package auth verifies HTTP basic authentication for metrics-proxy in a way that
// stays correct and available while someone is guessing passwords or flooding the
// port.
//
// The credential format is exporter-toolkit's basic_auth_users (user name to bcrypt
// hash), but the request path is our own, because exporter-toolkit's handler runs one
// bcrypt comparison at a time behind a process-wide mutex and lets failed guesses
// evict good credentials from a shared 100-entry cache: a flood of wrong passwords
// against a cost-12 hash stalls a legitimate scrape for longer than Prometheus's
// scrape timeout. Here (see DESIGN.md, "Why the proxy does its own authentication"):
//
//   - A credential that bcrypt has accepted once is remembered, as an HMAC under a
//     per-process random key of user, hash and password (never the password), in a
//     bounded LRU that only successes enter. Later requests with it cost one HMAC, and
//     no number of failures can evict it.
//   - A credential that bcrypt has rejected once is remembered in a separate bounded
//     LRU, so repeating a wrong password (what flood tools do) costs no bcrypt and
//     does not use up the client's back-off window.
//   - Refusals that cost no bcrypt (no credentials, a known-wrong or malformed
//     one) spend a per-address token bucket, a burst of 10 then one a second;
//     past it they are throttled (429), so a flood repeating one wrong password is
//     not answered as fast as it asks. The bucket is never consulted for a
//     credential not yet checked nor for a known-good one; see refusals.go.
//   - bcrypt runs on a bounded number of slots; a request that finds them all taken
//     is refused at once (429, Retry-After: 1) rather than queued, so a flood cannot
//     build a backlog in front of a legitimate request.
//   - Every bcrypt check costs the work of one comparison at the highest
//     configured cost: unknown users are compared against a dummy hash of that
//     cost, and a user whose hash is cheaper is compared against dummy hashes
//     after its own (2^c + 2^c + ... + 2^(m-1) = 2^m rounds), whether or not the
//     password matched, so response times reveal neither which names exist nor
//     which are cheap to guess.
//   - Failures are counted per client address (IPv4 address, IPv6 /64) with
//     exponential back-off after a small free burst, in a bounded table; see
//     backoff.go for the curve and for how a never-seen right password still gets
//     through from an address that is in back-off.
//   - Failed attempts are logged with the client address and the escaped,
//     length-capped user name, never the password or hash, and the log lines
//     themselves are rate limited so an attack cannot fill the disk.
package auth
