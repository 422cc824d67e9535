package auth

import (
	"net/netip"
	"testing"
	"time"
)

const flooder = "203.0.113.7:40000"

// countingCompare makes f's bcrypt accept only right and returns the number of
// comparisons run so far.
func countingCompare(f *fixture, right string) func() int {
	n := 0
	accept := mismatchUnless(right)
	f.v.compare = func(hash, password []byte) error {
		n++
		return accept(hash, password)
	}
	return func() int { return n }
}

// A 200-request flood repeating one wrong password from one address: the first
// request is checked by bcrypt (401), the next refusalBurst are refused from
// memory (401), and every later one is throttled with Retry-After: 1, with no
// bcrypt after the first. Another address keeps its own burst, and the right
// password from the flooding address is still checked and allowed.
func TestAttackRepeatedWrongPasswordIsThrottled(t *testing.T) {
	f := newFixture(t, map[string]string{"prometheus": hashOf(t, "right")})
	comparisons := countingCompare(f, "right")

	for i := range 200 {
		res := f.basic(flooder, "prometheus", "wrong")
		if i < 1+refusalBurst {
			want401(t, res)
		} else {
			want429(t, res, OutcomeThrottled, "1")
		}
	}
	if comparisons() != 1 || f.attempts(OutcomeUnauthorized) != 1+refusalBurst || f.attempts(OutcomeThrottled) != 200-1-refusalBurst {
		t.Fatalf("comparisons %d, unauthorized %v, throttled %v", comparisons(), f.attempts(OutcomeUnauthorized), f.attempts(OutcomeThrottled))
	}
	// The refusals were not charged to back-off: only the one check was.
	if f.inBackoff() != 0 {
		t.Fatalf("in back-off %v", f.inBackoff())
	}

	// Another address: the credential is known-wrong already, so no bcrypt,
	// and its own full burst of 401 before 429.
	for i := range 200 {
		res := f.basic("198.51.100.9:1", "prometheus", "wrong")
		if i < refusalBurst {
			want401(t, res)
		} else {
			want429(t, res, OutcomeThrottled, "1")
		}
	}
	if comparisons() != 1 {
		t.Fatalf("the second address cost %d comparisons", comparisons()-1)
	}

	// The bucket refills one refusal a second, up to the burst.
	f.clock.Advance(refusalEvery)
	want401(t, f.basic(flooder, "prometheus", "wrong"))
	want429(t, f.basic(flooder, "prometheus", "wrong"), OutcomeThrottled, "1")
	f.clock.Advance(refusalEvery / 4)
	want429(t, f.basic(flooder, "prometheus", "wrong"), OutcomeThrottled, "1") // 0.75 s left, rounded up
	f.clock.Advance(time.Hour)
	for range refusalBurst {
		want401(t, f.basic(flooder, "prometheus", "wrong"))
	}
	want429(t, f.basic(flooder, "prometheus", "wrong"), OutcomeThrottled, "1")

	// The right password, never seen, from the flooding address with its
	// bucket empty: checked at once and allowed, then answered from memory.
	wantAllowed(t, f.basic(flooder, "prometheus", "right"), OutcomeOK)
	wantAllowed(t, f.basic(flooder, "prometheus", "right"), OutcomeOKCached)
	if comparisons() != 2 {
		t.Fatalf("comparisons %d, want 2", comparisons())
	}
}

// Requests without credentials are not charged to back-off, but a flood of them
// is throttled after the burst; a browser's first request elsewhere still gets
// the plain 401 challenge, and the flooding address's credentials are unaffected.
func TestAttackNoCredentialsFloodIsThrottled(t *testing.T) {
	f := newFixture(t, map[string]string{"prometheus": hashOf(t, "right"), "alice": hashOf(t, "alices")})
	comparisons := countingCompare(f, "right")
	wantAllowed(t, f.basic(flooder, "alice", "right"), OutcomeOK) // known-good before the flood

	for i := range 200 {
		res := f.header(flooder)
		if i < refusalBurst {
			want401(t, res)
		} else {
			want429(t, res, OutcomeThrottled, "1")
		}
	}
	want401(t, f.header("192.0.2.50:5000")) // a browser asking for the challenge
	wantAllowed(t, f.basic(flooder, "alice", "right"), OutcomeOKCached)
	wantAllowed(t, f.basic(flooder, "prometheus", "right"), OutcomeOK) // never seen: checked at once
	if comparisons() != 2 || f.inBackoff() != 0 {
		t.Fatalf("comparisons %d, in back-off %v", comparisons(), f.inBackoff())
	}
}

// Malformed headers spend the bucket too, even when each is new; one refused by
// the bucket is not also charged to back-off.
func TestAttackMalformedHeadersSpendTheBucket(t *testing.T) {
	f := newFixture(t, map[string]string{"alice": hashOf(t, "right")})
	comparisons := countingCompare(f, "right")
	for range refusalBurst {
		want401(t, f.header(flooder))
	}
	want429(t, f.header(flooder, "Bearer a"), OutcomeThrottled, "1")
	f.clock.Advance(refusalEvery)
	want401(t, f.header(flooder, "Bearer b"))
	want429(t, f.header(flooder, "Bearer c"), OutcomeThrottled, "1")
	if comparisons() != 0 || f.inBackoff() != 0 {
		t.Fatalf("comparisons %d, in back-off %v", comparisons(), f.inBackoff())
	}
}

// A never-seen credential neither consults nor spends the bucket, and never
// waits for it: with the bucket empty, fresh guesses get exactly the back-off
// curve's checks, as without any refusals.
func TestBucketLeavesTheBackoffWindowAlone(t *testing.T) {
	f := newFixture(t, map[string]string{"alice": hashOf(t, "right")})
	comparisons := countingCompare(f, "right")
	flood := f.clock.Now()
	for range refusalBurst {
		want401(t, f.header(flooder))
	}
	for i := range freeBurst {
		want401(t, f.basic(flooder, "alice", "fresh-"+string(rune('a'+i))))
	}
	want429(t, f.basic(flooder, "alice", "fresh-x"), OutcomeThrottled, "1") // back-off
	f.clock.Advance(backoffBase)
	want401(t, f.basic(flooder, "alice", "fresh-y")) // the window's check, bucket still empty
	if comparisons() != freeBurst+1 {
		t.Fatalf("comparisons %d, want %d", comparisons(), freeBurst+1)
	}
	b, ok := f.v.refusals.buckets.Peek(clientKey(flooder))
	if !ok || b.credit != 0 || !b.at.Equal(flood) {
		t.Fatalf("bucket %+v: want it untouched since the flood at %s", b, flood)
	}
}

func TestRefusalTableIsBounded(t *testing.T) {
	tbl := newRefusalTable(3)
	now := time.Unix(0, 0)
	for i := range 10 {
		tbl.take(netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 32), now)
	}
	if n := tbl.buckets.Len(); n != 3 {
		t.Fatalf("table holds %d buckets, want 3", n)
	}
}

// A clock stepping back neither refills the bucket nor breaks it.
func TestRefusalBucketClockStepsBack(t *testing.T) {
	tbl := newRefusalTable(1)
	client := clientKey(flooder)
	now := time.Unix(1000, 0)
	for range refusalBurst {
		if wait := tbl.take(client, now); wait != 0 {
			t.Fatalf("wait %s within the burst", wait)
		}
	}
	if wait := tbl.take(client, now.Add(-time.Hour)); wait != refusalEvery {
		t.Fatalf("wait %s after the clock stepped back, want %s", wait, refusalEvery)
	}
	if wait := tbl.take(client, now.Add(refusalEvery)); wait != 0 {
		t.Fatalf("wait %s a second later, want a token", wait)
	}
}
