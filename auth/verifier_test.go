package auth

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"
)

const attacker = "203.0.113.7:40000"

func TestNoUsersAllowsEveryRequest(t *testing.T) {
	f := newFixture(t, nil)
	for _, res := range []Result{f.header(attacker), f.basic(attacker, "alice", "anything")} {
		wantAllowed(t, res, OutcomeNotRequired)
	}
	f.v.SetUsers(&Users{})
	wantAllowed(t, f.header(attacker), OutcomeNotRequired)
	if f.attempts(OutcomeOKCached)+f.attempts(OutcomeUnauthorized) != 0 || f.bcryptChecks() != 0 {
		t.Fatal("requests without users configured were counted")
	}
}

func TestRightPasswordIsVerifiedOnceThenCached(t *testing.T) {
	f := newFixture(t, map[string]string{"alice": hashOf(t, "right")})
	res := f.basic("192.0.2.1:1", "alice", "right")
	wantAllowed(t, res, OutcomeOK)
	if res.User() != "alice" {
		t.Fatalf("User = %q", res.User())
	}
	for range 3 {
		wantAllowed(t, f.basic("192.0.2.1:2", "alice", "right"), OutcomeOKCached)
	}
	if f.bcryptChecks() != 1 || f.attempts(OutcomeOK) != 1 || f.attempts(OutcomeOKCached) != 3 {
		t.Fatalf("bcrypt %v ok %v ok_cached %v", f.bcryptChecks(), f.attempts(OutcomeOK), f.attempts(OutcomeOKCached))
	}
}

// An attacker floods one address with fresh wrong passwords: five are checked at
// full speed, then the address waits 1, 2, 4, ... 60 s between checks, and every
// request in between is 429 with the exact seconds left.
func TestWrongPasswordFloodIsThrottledAfterBurst(t *testing.T) {
	f := newFixture(t, map[string]string{"alice": hashOf(t, "right")})
	guess := 0
	next := func() Result {
		guess++
		return f.basic(attacker, "alice", fmt.Sprintf("guess-%d", guess))
	}
	for range freeBurst {
		want401(t, next())
	}
	if f.bcryptChecks() != freeBurst || f.inBackoff() != 1 {
		t.Fatalf("bcrypt %v in back-off %v", f.bcryptChecks(), f.inBackoff())
	}
	want429(t, next(), OutcomeThrottled, "1")
	want429(t, next(), OutcomeThrottled, "1")
	f.clock.Advance(500 * time.Millisecond)
	want429(t, next(), OutcomeThrottled, "1") // 0.5 s left, rounded up

	f.clock.Advance(500 * time.Millisecond)
	for _, window := range []int{2, 4, 8, 16, 32, 60, 60} {
		want401(t, next()) // the window's one check
		want429(t, next(), OutcomeThrottled, strconv.Itoa(window))
		f.clock.Advance(time.Duration(window)*time.Second - time.Millisecond)
		want429(t, next(), OutcomeThrottled, "1")
		f.clock.Advance(time.Millisecond)
	}
	if got := f.bcryptChecks(); got != freeBurst+7 {
		t.Fatalf("bcrypt checks %v, want %d", got, freeBurst+7)
	}
	if f.attempts(OutcomeUnauthorized) != freeBurst+7 || f.attempts(OutcomeThrottled) != 3+7*2 {
		t.Fatalf("unauthorized %v throttled %v", f.attempts(OutcomeUnauthorized), f.attempts(OutcomeThrottled))
	}
}

// A flood of fresh guesses every 100 ms for ten minutes gets 5 checks in its burst,
// at most 10 in any minute after that, and 19 in all.
func TestFloodGetsAtMostTenChecksPerMinute(t *testing.T) {
	f := newFixture(t, map[string]string{"alice": hashOf(t, "right")})
	start := f.clock.Now()
	var checks []time.Duration // when each check happened, from the start
	f.v.compare = func(hash, password []byte) error {
		checks = append(checks, f.clock.Now().Sub(start))
		return bcrypt.ErrMismatchedHashAndPassword
	}
	for i := range 6000 {
		f.basic(attacker, "alice", fmt.Sprintf("guess-%d", i))
		f.clock.Advance(100 * time.Millisecond)
	}
	if len(checks) != 19 {
		t.Fatalf("%d checks at %v, want 19", len(checks), checks)
	}
	want := []time.Duration{0, 100, 200, 300, 400, 1400, 3400, 7400, 15400, 31400}
	for at := 63400; at < 600000; at += 60000 {
		want = append(want, time.Duration(at))
	}
	for i := range want {
		if checks[i] != want[i]*time.Millisecond {
			t.Fatalf("check %d at %v, want %v (all: %v)", i, checks[i], want[i]*time.Millisecond, checks)
		}
	}
	burstEnd := checks[freeBurst-1]
	for i, at := range checks[freeBurst:] {
		inMinute := 0
		for _, other := range checks[freeBurst+i:] {
			if other-at < time.Minute {
				inMinute++
			}
		}
		if inMinute > 10 {
			t.Fatalf("%d checks in the minute after %v (burst ended at %v)", inMinute, at, burstEnd)
		}
	}
	if f.bcryptChecks() != 19 {
		t.Fatalf("metric says %v checks", f.bcryptChecks())
	}
}

// Prometheus and the attacker share an address (NAT): once Prometheus's password
// has been verified, the attacker's back-off never affects it.
func TestCachedRightPasswordPassesDuringBackoff(t *testing.T) {
	f := newFixture(t, map[string]string{"prometheus": hashOf(t, "right")})
	wantAllowed(t, f.basic(attacker, "prometheus", "right"), OutcomeOK)
	for i := range 20 {
		f.basic(attacker, "prometheus", fmt.Sprintf("guess-%d", i))
	}
	want429(t, f.basic(attacker, "prometheus", "another guess"), OutcomeThrottled, "1")
	checks := f.bcryptChecks()
	res := f.basic(attacker, "prometheus", "right")
	wantAllowed(t, res, OutcomeOKCached)
	if res.User() != "prometheus" || f.bcryptChecks() != checks {
		t.Fatalf("user %q, bcrypt checks %v -> %v", res.User(), checks, f.bcryptChecks())
	}
}

// Right after a restart, Prometheus behind the attacker's NAT address presents a
// password this process has never verified. It is throttled like any unknown
// credential, but gets the check when the window opens, because the attacker's
// repeated wrong passwords are answered from memory and do not take it; once
// they have emptied the address's refusal bucket they are throttled, and that
// does not take it either.
func TestNeverSeenRightPasswordGetsThroughWithinOneWindow(t *testing.T) {
	f := newFixture(t, map[string]string{"prometheus": hashOf(t, "right")})
	// Drive the address deep into back-off: 11 checked guesses, window now 60 s.
	for i := range 11 {
		want401(t, f.basic(attacker, "prometheus", fmt.Sprintf("guess-%d", i)))
		f.clock.Advance(backoffDelay(i - freeBurst + 1))
	}
	want401(t, f.basic(attacker, "prometheus", "guess-last"))
	checks := f.bcryptChecks()

	want429(t, f.basic("203.0.113.7:50000", "prometheus", "right"), OutcomeThrottled, "60")
	for i := range 59 {
		f.clock.Advance(time.Second)
		// The flood keeps repeating guesses already known to be wrong.
		want429(t, f.basic(attacker, "prometheus", "guess-last"), OutcomeThrottled, strconv.Itoa(59-i))
	}
	f.clock.Advance(time.Second)
	// The window is open: repeats are refused from memory and leave it open,
	// 401 for the refusal burst, then 429.
	for i := range 100 {
		res := f.basic(attacker, "prometheus", "guess-last")
		if i < refusalBurst {
			want401(t, res)
		} else {
			want429(t, res, OutcomeThrottled, "1")
		}
	}
	if f.bcryptChecks() != checks {
		t.Fatalf("repeated guesses cost %v bcrypt checks", f.bcryptChecks()-checks)
	}
	wantAllowed(t, f.basic("203.0.113.7:50000", "prometheus", "right"), OutcomeOK)
	if f.bcryptChecks() != checks+1 || f.inBackoff() != 0 {
		t.Fatalf("bcrypt checks +%v, in back-off %v", f.bcryptChecks()-checks, f.inBackoff())
	}
	// From now on it is answered from memory, whatever the address does.
	wantAllowed(t, f.basic("203.0.113.7:50000", "prometheus", "right"), OutcomeOKCached)
}

// Thousands of failures from thousands of addresses (filling the known-wrong cache
// and the back-off table several times over) cannot evict a known-good credential.
func TestFailuresNeverEvictKnownGood(t *testing.T) {
	f := newFixture(t, map[string]string{"alice": hashOf(t, "right"), "bob": hashOf(t, "bobs")},
		func(o *Options) { o.MaxClients = 100 })
	f.v.compare = mismatchUnless("right")
	wantAllowed(t, f.basic("192.0.2.1:1", "alice", "right"), OutcomeOK)
	for i := range 5 * knownGoodSize {
		addr := fmt.Sprintf("[2001:db8:%x::1]:1", i)
		want401(t, f.basic(addr, []string{"alice", "bob", "nobody"}[i%3], fmt.Sprintf("wrong-%d", i)))
	}
	if f.bcryptChecks() != 1+5*knownGoodSize {
		t.Fatalf("bcrypt checks %v", f.bcryptChecks())
	}
	wantAllowed(t, f.basic("192.0.2.1:1", "alice", "right"), OutcomeOKCached)
	if f.bcryptChecks() != 1+5*knownGoodSize {
		t.Fatal("the known-good credential needed bcrypt again")
	}
}

func TestIPv6SameSlash64SharesBackoff(t *testing.T) {
	f := newFixture(t, map[string]string{"alice": hashOf(t, "right")})
	for i := range freeBurst {
		want401(t, f.basic("[2001:db8:1:2::1]:1000", "alice", fmt.Sprintf("guess-%d", i)))
	}
	// Another address in the same /64: same bucket.
	want429(t, f.basic("[2001:db8:1:2:ffff:ffff:ffff:fffe]:2000", "alice", "guess-x"), OutcomeThrottled, "1")
	// The neighbouring /64 is another client.
	want401(t, f.basic("[2001:db8:1:3::1]:1000", "alice", "guess-y"))
	if f.inBackoff() != 1 {
		t.Fatalf("in back-off %v", f.inBackoff())
	}

	// IPv4: by address, and an IPv4-mapped IPv6 address is the same client.
	for i := range freeBurst {
		want401(t, f.basic("198.51.100.1:1", "alice", fmt.Sprintf("v4-%d", i)))
	}
	want429(t, f.basic("[::ffff:198.51.100.1]:2", "alice", "v4-x"), OutcomeThrottled, "1")
	want401(t, f.basic("198.51.100.2:1", "alice", "v4-y"))
	if f.inBackoff() != 2 {
		t.Fatalf("in back-off %v", f.inBackoff())
	}
}

// With every bcrypt worker held by slow comparisons, a new credential is refused at
// once with 429 and Retry-After: 1, not queued; known-good credentials still pass,
// and being refused as busy is not charged to the client.
func TestBusyPoolAnswersAtOnce(t *testing.T) {
	f := newFixture(t, map[string]string{"alice": hashOf(t, "right")}, func(o *Options) { o.Workers = 2 })
	wantAllowed(t, f.basic("192.0.2.1:1", "alice", "right"), OutcomeOK)

	started, release := make(chan struct{}), make(chan struct{})
	f.v.compare = func(hash, password []byte) error {
		started <- struct{}{}
		<-release
		return bcrypt.ErrMismatchedHashAndPassword
	}
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.basic(fmt.Sprintf("198.51.100.%d:1", i+1), "alice", "slow")
		}()
	}
	<-started
	<-started

	for i := range 2 * freeBurst {
		want429(t, f.basic(attacker, "alice", fmt.Sprintf("guess-%d", i)), OutcomeBusy, "1")
	}
	wantAllowed(t, f.basic("192.0.2.1:1", "alice", "right"), OutcomeOKCached)
	close(release)
	wg.Wait()

	if f.attempts(OutcomeBusy) != 2*freeBurst || f.inBackoff() != 0 {
		t.Fatalf("busy %v, in back-off %v", f.attempts(OutcomeBusy), f.inBackoff())
	}
	// The busy answers were not charged: the attacker still has its whole burst.
	f.v.compare = mismatchUnless("right")
	for i := range freeBurst {
		want401(t, f.basic(attacker, "alice", fmt.Sprintf("later-%d", i)))
	}
	want429(t, f.basic(attacker, "alice", "later-x"), OutcomeThrottled, "1")
}

// With mixed costs, every bcrypt check costs exactly the work of one comparison
// at the highest cost (2^6 rounds here), so neither an unknown name nor a user
// with a cheap hash answers faster: a known user of cost c is compared with its
// own hash, then with dummies of costs c .. 5, whether or not the password was
// right; unknown users with one dummy of cost 6. A cached credential costs none.
func TestEveryCheckCostsTheHighestCost(t *testing.T) {
	hashes := map[string]string{
		"low":  hashAt(t, "low-right", 4),
		"mid":  hashAt(t, "mid-right", 5),
		"high": hashAt(t, "high-right", 6),
	}
	f := newFixture(t, hashes)
	type comparison struct {
		cost int
		own  bool // against the user's own hash
	}
	var got []comparison
	f.v.compare = func(hash, password []byte) error {
		c, err := bcrypt.Cost(hash)
		if err != nil {
			t.Fatalf("compared against a malformed hash: %v", err)
		}
		own := false
		for _, h := range hashes {
			own = own || h == string(hash)
		}
		got = append(got, comparison{c, own})
		return bcrypt.CompareHashAndPassword(hash, password) // real bcrypt: dummies must not match
	}
	tests := []struct {
		user, password string
		ok             bool
		want           []comparison
	}{
		{"low", "wrong", false, []comparison{{4, true}, {4, false}, {5, false}}},
		{"low", "low-right", true, []comparison{{4, true}, {4, false}, {5, false}}},
		{"mid", "wrong", false, []comparison{{5, true}, {5, false}}},
		{"mid", "mid-right", true, []comparison{{5, true}, {5, false}}},
		{"high", "wrong", false, []comparison{{6, true}}},
		{"high", "high-right", true, []comparison{{6, true}}},
		{"mallory", "low-right", false, []comparison{{6, false}}},
	}
	for i, tt := range tests {
		got = nil
		res := f.basic(fmt.Sprintf("192.0.2.%d:1", i+1), tt.user, tt.password)
		if tt.ok {
			wantAllowed(t, res, OutcomeOK)
		} else {
			want401(t, res)
		}
		rounds := 0
		for _, c := range got {
			rounds += 1 << c.cost
		}
		if !slices.Equal(got, tt.want) || rounds != 1<<6 {
			t.Errorf("%s/%s: comparisons %+v (%d rounds), want %+v (64 rounds)", tt.user, tt.password, got, rounds, tt.want)
		}
	}
	if f.bcryptChecks() != float64(len(tests)) {
		t.Fatalf("bcrypt checks %v, want %d: the metric counts checks, not padding", f.bcryptChecks(), len(tests))
	}
	got = nil
	wantAllowed(t, f.basic("192.0.2.1:1", "low", "low-right"), OutcomeOKCached)
	if len(got) != 0 {
		t.Fatalf("a cached credential ran %d comparisons", len(got))
	}
	// A reload to one cost drops the padding.
	u, err := ParseUsers(map[string]string{"low": hashes["low"]})
	if err != nil {
		t.Fatal(err)
	}
	f.v.SetUsers(u)
	for _, user := range []string{"low", "mallory"} {
		got = nil
		want401(t, f.basic("198.51.100.1:1", user, "another"))
		if !slices.Equal(got, []comparison{{4, user == "low"}}) {
			t.Errorf("%s after the reload: comparisons %+v, want one of cost 4", user, got)
		}
	}
}

// After a reload that changes alice's hash, her old password stops working at once,
// although it was cached; bob, unchanged, keeps his fast path across the reload.
func TestChangedHashInvalidatesCachedPassword(t *testing.T) {
	bob := hashOf(t, "bobs")
	f := newFixture(t, map[string]string{"alice": hashOf(t, "old"), "bob": bob})
	wantAllowed(t, f.basic("192.0.2.1:1", "alice", "old"), OutcomeOK)
	wantAllowed(t, f.basic("192.0.2.1:1", "bob", "bobs"), OutcomeOK)

	u, err := ParseUsers(map[string]string{"alice": hashOf(t, "new"), "bob": bob})
	if err != nil {
		t.Fatal(err)
	}
	f.v.SetUsers(u)
	want401(t, f.basic("192.0.2.1:1", "alice", "old"))
	wantAllowed(t, f.basic("192.0.2.1:1", "alice", "new"), OutcomeOK)
	wantAllowed(t, f.basic("192.0.2.1:1", "bob", "bobs"), OutcomeOKCached)

	// A removed user's cached password stops working too.
	u, _ = ParseUsers(map[string]string{"alice": hashOf(t, "new")})
	f.v.SetUsers(u)
	want401(t, f.basic("192.0.2.1:1", "bob", "bobs"))
}

// Headers that carry no usable credential are 401 without bcrypt; each distinct one
// counts as a failure (so they cannot be used to dodge back-off), a missing header
// does not (it is how browsers ask for the challenge). Both spend the address's
// refusal bucket.
func TestMalformedCredentialsAre401WithoutBcrypt(t *testing.T) {
	f := newFixture(t, map[string]string{"alice": hashOf(t, "right")})
	for range refusalBurst {
		want401(t, f.header(attacker))
	}
	want429(t, f.header(attacker), OutcomeThrottled, "1")
	// Had the missing headers been charged to back-off, the address would be
	// in back-off now and the malformed headers below would get 429.
	f.clock.Advance(refusalBurst * refusalEvery)
	malformed := [][]string{
		{"Bearer abc"},
		{"Basic !!!"},
		{"Basic " + b64("alice")},
		{"Basic " + b64(":right")},
		{"Basic " + b64("alice:right"), "Basic " + b64("alice:right")},
	}
	for _, h := range malformed {
		want401(t, f.header(attacker, h...))
	}
	// Repeating one is refused from memory, throttled while in back-off.
	want429(t, f.header(attacker, malformed[0]...), OutcomeThrottled, "1")
	want429(t, f.header(attacker, "Basic "+b64("alice:"+strings.Repeat("p", 73))), OutcomeThrottled, "1")
	if f.bcryptChecks() != 0 {
		t.Fatalf("bcrypt checks %v", f.bcryptChecks())
	}
}

// A password longer than bcrypt's 72 bytes can never match: 401 without bcrypt,
// but charged like any other guess.
func TestOverlongPasswordIs401WithoutBcryptButCharged(t *testing.T) {
	f := newFixture(t, map[string]string{"alice": hashOf(t, strings.Repeat("p", 72))})
	for i := range freeBurst {
		want401(t, f.basic(attacker, "alice", strings.Repeat("p", 72)+strconv.Itoa(i)))
	}
	want429(t, f.basic(attacker, "alice", strings.Repeat("p", 80)), OutcomeThrottled, "1")
	if f.bcryptChecks() != 0 || f.inBackoff() != 1 {
		t.Fatalf("bcrypt %v in back-off %v", f.bcryptChecks(), f.inBackoff())
	}
}

func TestBackoffIsForgottenAfterTenQuietMinutes(t *testing.T) {
	f := newFixture(t, map[string]string{"alice": hashOf(t, "right")})
	f.v.compare = mismatchUnless("right")
	for i := range freeBurst {
		want401(t, f.basic(attacker, "alice", fmt.Sprintf("guess-%d", i)))
	}
	f.clock.Advance(forgetAfter - time.Second)
	if f.inBackoff() != 1 {
		t.Fatalf("in back-off %v", f.inBackoff())
	}
	f.clock.Advance(time.Second)
	if f.inBackoff() != 0 {
		t.Fatalf("in back-off %v after %s", f.inBackoff(), forgetAfter)
	}
	for i := range freeBurst {
		want401(t, f.basic(attacker, "alice", fmt.Sprintf("again-%d", i)))
	}
	want429(t, f.basic(attacker, "alice", "again-x"), OutcomeThrottled, "1")
}

func TestWriteErrorResponses(t *testing.T) {
	f := newFixture(t, map[string]string{"alice": hashOf(t, "right")}, func(o *Options) { o.Realm = "runner-1 metrics" })
	rec := httptest.NewRecorder()
	f.header(attacker).WriteError(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusUnauthorized ||
		rec.Header().Get("WWW-Authenticate") != `Basic realm="runner-1 metrics", charset="UTF-8"` ||
		rec.Header().Get("Content-Type") != "text/plain; charset=utf-8" ||
		rec.Header().Get("X-Content-Type-Options") != "nosniff" ||
		rec.Header().Get("Cache-Control") != "no-store" ||
		rec.Body.String() != "Unauthorized\n" {
		t.Fatalf("401: %d %v %q", rec.Code, rec.Header(), rec.Body.String())
	}
}

func TestNewVerifierRefusals(t *testing.T) {
	for _, realm := range []string{`a"b`, `a\b`, "a\nb", "caf\u00e9", strings.Repeat("r", 129)} {
		if _, err := NewVerifier(Options{Realm: realm}); err == nil {
			t.Errorf("realm %q accepted", realm)
		}
	}
	reg := prometheus.NewRegistry()
	if _, err := NewVerifier(Options{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	_, err := NewVerifier(Options{Registerer: reg})
	if err == nil || !strings.HasPrefix(err.Error(), "registering the auth metrics: ") ||
		!strings.HasSuffix(err.Error(), "; give each Verifier its own registry, or wrap the Registerer with a distinguishing label") {
		t.Fatalf("second registration: %v", err)
	}
}

// The metrics exist from the start, with their documented names and outcomes, and
// an attack never puts a user name or address into a label.
func TestMetricsHaveFixedLabels(t *testing.T) {
	f := newFixture(t, map[string]string{"alice": hashOf(t, "right")})
	for _, o := range []string{OutcomeOKCached, OutcomeOK, OutcomeUnauthorized, OutcomeThrottled, OutcomeBusy} {
		if f.attempts(o) != 0 {
			t.Fatalf("%s starts at %v", o, f.attempts(o))
		}
	}
	if f.bcryptChecks() != 0 || f.inBackoff() != 0 {
		t.Fatal("metrics do not start at zero")
	}
	for i := range 8 {
		f.basic(attacker, "mallory-the-attacker", fmt.Sprintf("guess-%d", i))
	}
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "metrics_proxy_auth_") || mf.GetHelp() == "" {
			t.Errorf("metric %s, help %q", mf.GetName(), mf.GetHelp())
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() != "outcome" || strings.Contains(lp.GetValue(), "mallory") || strings.Contains(lp.GetValue(), "203.0.113") {
					t.Errorf("label %s=%q", lp.GetName(), lp.GetValue())
				}
			}
		}
	}
	if len(mfs) != 3 {
		t.Fatalf("%d metric families", len(mfs))
	}
	if f.attempts(OutcomeUnauthorized) != freeBurst || f.attempts(OutcomeThrottled) != 3 || f.inBackoff() != 1 {
		t.Fatalf("unauthorized %v throttled %v in back-off %v", f.attempts(OutcomeUnauthorized), f.attempts(OutcomeThrottled), f.inBackoff())
	}
}

// Concurrent requests and reloads, for the race detector, with the pool and the
// back-off table contended.
func TestConcurrentAuthorizeAndReload(t *testing.T) {
	hash := hashOf(t, "right")
	f := newFixture(t, map[string]string{"alice": hash})
	f.v.compare = mismatchUnless("right")
	u, err := ParseUsers(map[string]string{"alice": hash, "bob": hashOf(t, "bobs")})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				switch i % 4 {
				case 0:
					f.basic("192.0.2.1:1", "alice", "right")
				case 1:
					f.basic(fmt.Sprintf("198.51.100.%d:1", g), "alice", fmt.Sprintf("w-%d-%d", g, i))
				case 2:
					f.v.SetUsers(u)
				case 3:
					f.clock.Advance(time.Second)
					f.metric("metrics_proxy_auth_clients_in_backoff")
				}
			}
		}()
	}
	wg.Wait()
	wantAllowed(t, f.basic("192.0.2.1:1", "alice", "right"), OutcomeOKCached)
}

// A Prometheus that opens several connections at once right after a restart
// presents one new credential on all of them: they share one bcrypt check and
// none is refused as busy, even with a single worker.
func TestConcurrentFirstContactSharesOneCheck(t *testing.T) {
	f := newFixture(t, map[string]string{"alice": hashOf(t, "right")}, func(o *Options) { o.Workers = 1 })
	started, release := make(chan struct{}), make(chan struct{})
	f.v.compare = func(hash, password []byte) error {
		close(started)
		<-release
		return bcrypt.CompareHashAndPassword(hash, password)
	}
	const n = 8
	results := make(chan Result, n)
	go func() { results <- f.basic("192.0.2.1:1000", "alice", "right") }()
	<-started
	for i := range n - 1 {
		go func() { results <- f.basic(fmt.Sprintf("192.0.2.1:%d", 1001+i), "alice", "right") }()
	}
	// Let the others reach the shared check (or the cache, if they are late:
	// either way no second bcrypt may run and none may be refused).
	time.Sleep(100 * time.Millisecond)
	close(release)
	for range n {
		if res := <-results; !res.Allowed() {
			t.Fatalf("a first-contact request was refused: %s", res.Outcome())
		}
	}
	if got := f.metric("metrics_proxy_auth_bcrypt_checks_total"); got != 1 {
		t.Fatalf("bcrypt checks = %v, want 1", got)
	}
	if busy := f.attempts(OutcomeBusy); busy != 0 {
		t.Fatalf("busy answers = %v, want 0", busy)
	}
}

// One address gets one bcrypt comparison at a time: a flood's concurrent
// guesses are throttled instead of occupying every worker, so another client
// still gets its check.
func TestOneCheckAtATimePerClient(t *testing.T) {
	f := newFixture(t, map[string]string{"alice": hashOf(t, "right")}, func(o *Options) { o.Workers = 2 })
	started, release := make(chan struct{}, 1), make(chan struct{})
	f.v.compare = func(hash, password []byte) error {
		started <- struct{}{}
		<-release
		return bcrypt.CompareHashAndPassword(hash, password)
	}
	done := make(chan Result)
	go func() { done <- f.basic(attacker, "alice", "guess-1") }()
	<-started

	want429(t, f.basic(attacker, "alice", "guess-2"), OutcomeThrottled, "1")
	if got := f.metric("metrics_proxy_auth_bcrypt_checks_total"); got != 1 {
		t.Fatalf("bcrypt checks = %v, want 1: the second guess must not run", got)
	}
	// Another client is not held up by the attacker's running check.
	go func() { done <- f.basic("192.0.2.1:1", "alice", "right") }()
	<-started
	close(release)
	results := []Result{<-done, <-done}
	allowed := 0
	for _, r := range results {
		if r.Allowed() {
			allowed++
		}
	}
	if allowed != 1 {
		t.Fatalf("results %v %v: want the other client's right password allowed", results[0].Outcome(), results[1].Outcome())
	}
	// The throttled guess was not charged: the attacker's burst is intact
	// apart from its one checked guess.
	f.v.compare = mismatchUnless("right")
	for i := range freeBurst - 1 {
		want401(t, f.basic(attacker, "alice", fmt.Sprintf("later-%d", i)))
	}
	want429(t, f.basic(attacker, "alice", "later-x"), OutcomeThrottled, "1")
}
