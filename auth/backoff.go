package auth

import (
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/alloyci/hardened-runner/source"
)

// The back-off curve. A client address may fail freeBurst times in a row at full
// speed (typos, a misconfigured scraper finding out). The attempt that makes
// freeBurst failures opens a window of backoffBase during which every credential
// from that address that is not already known to be good is answered 429 without
// bcrypt; each further checked attempt doubles the window, up to backoffCap. So
// after its burst an address gets checks at about 1, 3, 7, 15, 31 and 63 s, then
// one a minute: at most 5 in the first minute and 1 a minute after that.
//
// An address is forgotten once it has had no checked attempt for forgetAfter, or at
// once when bcrypt accepts a credential from it. An address that keeps making new
// guesses never reaches forgetAfter, because it uses its window's check every
// backoffCap; repeating guesses already known to be wrong charges nothing and
// gains nothing either.
const (
	freeBurst   = 5
	backoffBase = time.Second
	backoffCap  = 60 * time.Second
	forgetAfter = 10 * time.Minute
)

// DefaultMaxClients is the default bound on the number of client addresses whose
// failures are remembered. Each costs about a hundred bytes; when the table is full
// the least recently active address is forgotten, which gives that address a fresh
// burst. An attacker who controls more addresses than this (many IPv6 /64s) can
// therefore make freeBurst guesses per address: per-address limits cannot stop a
// distributed attack, they only keep it from being cheap from one machine.
const DefaultMaxClients = 10000

// clientKey returns the back-off bucket for a request's RemoteAddr: its
// source (package source), the IPv4 address or the IPv6 /64, the same key as
// every other per-client limit of the proxy. A RemoteAddr that is not an IP
// address (a unix socket, a test) falls into one shared bucket, the zero
// Prefix.
func clientKey(remoteAddr string) netip.Prefix { return source.Of(remoteAddr) }

// clientState is what we remember about one address.
type clientState struct {
	// failures counts checked attempts since the last success, charged before the
	// check runs (so concurrent requests cannot all slip into the same window) and
	// cleared when a check succeeds.
	failures int
	// until is when the next checked attempt is allowed.
	until time.Time
	// last is the time of the last checked attempt, for forgetAfter.
	last time.Time
}

// backoffTable is the bounded table of addresses with recent failures.
type backoffTable struct {
	mu      sync.Mutex
	clients *simplelru.LRU[netip.Prefix, *clientState]
}

func newBackoffTable(maxClients int) *backoffTable {
	clients, err := simplelru.NewLRU[netip.Prefix, *clientState](maxClients, nil)
	if err != nil {
		// Only a non-positive size fails, and NewVerifier never passes one.
		panic(err)
	}
	return &backoffTable{clients: clients}
}

// state returns the live state of client, dropping it if forgotten. Get (not Peek)
// also marks the address as recently active, so that an address being throttled
// is not the one the LRU forgets to make room. Call with t.mu held.
func (t *backoffTable) state(client netip.Prefix, now time.Time) *clientState {
	s, ok := t.clients.Get(client)
	if !ok {
		return nil
	}
	if now.Sub(s.last) >= forgetAfter {
		t.clients.Remove(client)
		return nil
	}
	return s
}

// wait returns how long client must wait before its next checked attempt, or 0.
func (t *backoffTable) wait(client netip.Prefix, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.state(client, now); s != nil && now.Before(s.until) {
		return s.until.Sub(now)
	}
	return 0
}

// charge records a checked attempt by client, or returns how long it must wait if
// its window is closed (another request may have taken the check since wait was
// asked). Charging before checking is what bounds the number of checks even when
// many requests from one address arrive together.
func (t *backoffTable) charge(client netip.Prefix, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.state(client, now)
	if s == nil {
		s = &clientState{}
		t.clients.Add(client, s)
	}
	if now.Before(s.until) {
		return s.until.Sub(now)
	}
	s.failures++
	s.last = now
	if s.failures >= freeBurst {
		s.until = now.Add(backoffDelay(s.failures - freeBurst))
	}
	return 0
}

// reset forgets client after bcrypt accepted a credential from it.
func (t *backoffTable) reset(client netip.Prefix) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.clients.Remove(client)
}

// inBackoff counts the addresses past their free burst and not forgotten.
func (t *backoffTable) inBackoff(now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, s := range t.clients.Values() {
		if s.failures >= freeBurst && now.Sub(s.last) < forgetAfter {
			n++
		}
	}
	return n
}

// backoffDelay returns the window after the n-th attempt beyond the burst
// (n = 0 for the attempt that completes it): backoffBase doubled n times, capped.
func backoffDelay(n int) time.Duration {
	d := backoffBase
	for i := 0; i < n && d < backoffCap; i++ {
		d *= 2
	}
	return min(d, backoffCap)
}
