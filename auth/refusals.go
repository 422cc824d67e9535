package auth

import (
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// The refusal bucket. Refusals that cost no bcrypt (no Authorization header, a
// credential bcrypt already rejected, a malformed header) are not charged to
// back-off, so that repeating them cannot use up an address's next bcrypt check;
// without a limit of their own they would be answered as fast as a flood sends
// them. Each client address (the clientKey of back-off) therefore has a token
// bucket for them: refusalBurst answered 401 at full speed (a browser asking for
// the challenge, a scraper with a stale password retrying a few times), then one
// per refusalEvery; past that they are throttled (429 with Retry-After), which
// the proxy holds back and answers by closing the connection.
//
// The bucket is never consulted for a credential not yet checked, nor for a
// known-good one: it can neither delay nor spend the back-off window in which a
// right password not yet seen gets its bcrypt check.
const (
	refusalBurst = 10
	refusalEvery = time.Second
)

// refusalTable holds the refusal buckets of recently refused addresses, bounded
// like the back-off table: when full, the least recently refused address is
// forgotten, which only gives it a fresh burst.
type refusalTable struct {
	mu      sync.Mutex
	buckets *simplelru.LRU[netip.Prefix, *refusalBucket]
}

// refusalBucket is one address's bucket. Its tokens are kept as credit of time,
// refusalEvery per token, so that the arithmetic is exact.
type refusalBucket struct {
	credit time.Duration // at most refusalBurst * refusalEvery
	at     time.Time     // when credit was last brought up to date
}

func newRefusalTable(maxClients int) *refusalTable {
	buckets, err := simplelru.NewLRU[netip.Prefix, *refusalBucket](maxClients, nil)
	if err != nil {
		// Only a non-positive size fails, and NewVerifier never passes one.
		panic(err)
	}
	return &refusalTable{buckets: buckets}
}

// take spends one token of client's bucket and returns 0, or, when the bucket is
// empty, spends nothing and returns how long until the next token.
func (t *refusalTable) take(client netip.Prefix, now time.Time) time.Duration {
	const full = refusalBurst * refusalEvery
	t.mu.Lock()
	defer t.mu.Unlock()
	b, ok := t.buckets.Get(client)
	if !ok {
		b = &refusalBucket{credit: full, at: now}
		t.buckets.Add(client, b)
	}
	if elapsed := now.Sub(b.at); elapsed > 0 {
		// A clock that steps back earns nothing until it has caught up.
		b.credit = min(full, b.credit+elapsed)
		b.at = now
	}
	if b.credit < refusalEvery {
		return refusalEvery - b.credit
	}
	b.credit -= refusalEvery
	return 0
}
