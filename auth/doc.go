// Package auth verifies HTTP basic authentication and bearer tokens for
// metrics-proxy in a way that stays correct and available while someone is
// guessing passwords or flooding the port.
//
// The credential format is exporter-toolkit's basic_auth_users (user name to bcrypt
// hash), but the request path is our own, because exporter-toolkit's handler runs one
// bcrypt comparison at a time behind a process-wide mutex and lets failed guesses
// evict good credentials from a shared 100-entry cache: a flood of wrong passwords
// against a cost-12 hash stalls a legitimate scrape for longer than Prometheus's
// scrape timeout (docs/DESIGN.md, "Why the proxy authenticates itself", has the
// measurements). Here:
//
//   - A credential that bcrypt has accepted once is remembered, as an HMAC under a
//     per-process random key of user, hash and password (never the password), in a
//     bounded LRU that only successes enter. Later requests with it cost one HMAC, and
//     no number of failures can evict it. The key includes the hash, so the cache
//     survives reloads and a changed hash invalidates only its own entries.
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
//     build a backlog in front of a legitimate request. A client address has at
//     most one comparison running (its other new guesses are throttled), and
//     requests from one address with the same new credential share one check.
//   - Every bcrypt check costs the work of one comparison at the highest
//     configured cost: unknown users are compared against a dummy hash of that
//     cost, and a user whose hash is cheaper is compared against dummy hashes
//     after its own (2^c + 2^c + ... + 2^(m-1) = 2^m rounds), whether or not the
//     password matched, so response times reveal neither which names exist nor
//     which are cheap to guess.
//   - Failed attempts are logged with the client address and the escaped,
//     length-capped user name, never the password or hash, and the log lines
//     themselves are rate limited (a burst of 10, then one a second, plus a
//     "suppressed N" summary) so an attack cannot fill the disk.
//
// # Back-off
//
// This is the one description of the back-off; the README and docs/ link here.
//
// Failures are counted per client address: an IPv4 address, or an IPv6 /64,
// because one IPv6 host or customer usually holds a whole /64 (IPv4-mapped
// addresses count as IPv4, zones are dropped, and anything that is not an IP
// address shares one bucket). An address may fail 5 times in a row at full
// speed (typos, a misconfigured scraper finding out). The attempt that makes 5
// failures opens a window of 1 s during which every credential from that
// address that is not already known to be good is answered 429, without
// bcrypt, with the seconds left in Retry-After. Each further checked attempt
// doubles the window, up to 60 s. So after its burst an address gets checks at
// about 1, 3, 7, 15, 31 and 63 s, then one a minute: at most 5 in the first
// minute after the burst and 1 a minute after that. An attempt is charged
// before bcrypt runs, so simultaneous requests from one address cannot share
// one window.
//
// An address is forgotten once it has had no checked attempt for 10 minutes,
// or at once when bcrypt accepts a credential from it. An address that keeps
// making new guesses never reaches the 10 minutes, because it uses its
// window's check every 60 s. Repeating guesses already known to be wrong
// charges nothing and gains nothing either.
//
// The table is bounded (DefaultMaxClients addresses, about a hundred bytes each);
// when it is full the least recently active address is forgotten, which gives it
// a fresh burst. An attacker with more addresses than that (many IPv6 /64s) can
// therefore make 5 guesses per address: per-address limits cannot stop a
// distributed attack, they only keep it from being cheap from one machine.
//
// A known-good credential is never throttled, even from an address in
// back-off: a client with the right password is never locked out. A right
// password this process has not yet verified (Prometheus just after a restart,
// behind the same address as an attacker) is checked at the first request with
// a new credential after the address's window opens, so at most 60 s later.
// Against a flood that repeats its guesses it therefore gets through within one
// window, because repeats do not take the check. Against a flood of ever new
// guesses from the same address it competes for each window's single check:
// that is the price of bounding guesses per address. The ways out are another
// source address, a client certificate, a bearer token (below), or a
// credential verified before the flood began.
//
// Each throttled 429 is held back for --web.throttle-delay (1 s; at most 256
// at once) before it is written and its connection closed, so a flood that
// ignores Retry-After sends one request per connection per second, not
// thousands.
//
// # Bearer tokens
//
// Tokens (Authorization: Bearer, what Prometheus sends with authorization:
// {credentials_file: ...}) are configured as name to SHA-256 of the token.
// A fast hash is enough because a token is not a password: GenerateToken's
// carry 256 random bits, which no one guesses online or offline. A token
// must be an RFC 6750 b64token of 22 to 512 bytes (22 base64 characters hold
// 128 bits); anything else is a malformed credential, refused without bcrypt
// but charged to back-off like a wrong password. A well-formed token is
// hashed and compared in constant time with every configured sum, which costs
// microseconds: no bcrypt, no worker, no cache entry.
//
// A right token is allowed even from an address in back-off, and does not
// end the back-off (else an attacker behind a scraper's address would get a
// fresh burst of password guesses at every scrape). A wrong one is not
// charged to back-off, but is answered like a repeated wrong password: 429
// while the address is in back-off, else from its refusal bucket (401 for
// the burst, then 429). Failed token attempts are logged as
// credential="bearer token", never with the token.
package auth
