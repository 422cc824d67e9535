package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

const (
	basicChallenge  = `Basic realm="metrics-proxy", charset="UTF-8"`
	bearerChallenge = `Bearer realm="metrics-proxy"`
)

// newTokenFixture is newFixture with tokens (name to token) configured too.
func newTokenFixture(t testing.TB, users, tokens map[string]string, tweak ...func(*Options)) *fixture {
	t.Helper()
	f := newFixture(t, users, tweak...)
	sums := make(map[string][sha256.Size]byte, len(tokens))
	for name, token := range tokens {
		sums[name] = TokenSHA256(token)
	}
	f.v.SetTokens(sums)
	return f
}

// bearer sends token from remote the way Prometheus does.
func (f *fixture) bearer(remote, token string) Result {
	return f.header(remote, "Bearer "+token)
}

// countBcrypt replaces bcrypt with a counter that accepts only right.
func countBcrypt(f *fixture, right string) *atomic.Int64 {
	var n atomic.Int64
	accept := mismatchUnless(right)
	f.v.compare = func(hash, password []byte) error {
		n.Add(1)
		return accept(hash, password)
	}
	return &n
}

// countTokenCompares counts the constant-time comparisons of token sums.
func countTokenCompares(f *fixture) *atomic.Int64 {
	var n atomic.Int64
	equal := f.v.tokenEqual
	f.v.tokenEqual = func(x, y []byte) int {
		n.Add(1)
		return equal(x, y)
	}
	return &n
}

// want401Challenging asserts a 401 whose WWW-Authenticate headers are exactly
// challenges, in order.
func want401Challenging(t *testing.T, res Result, challenges ...string) {
	t.Helper()
	if res.Allowed() || res.Outcome() != OutcomeUnauthorized {
		t.Fatalf("outcome %q allowed=%v, want unauthorized", res.Outcome(), res.Allowed())
	}
	rec := httptest.NewRecorder()
	res.WriteError(rec, httptest.NewRequest("GET", "/metrics", nil))
	if got := rec.Header().Values("WWW-Authenticate"); rec.Code != http.StatusUnauthorized ||
		!slices.Equal(got, challenges) || rec.Header().Get("Retry-After") != "" || rec.Body.String() != "Unauthorized\n" {
		t.Fatalf("got %d WWW-Authenticate %q Retry-After %q body %q, want 401 with %q",
			rec.Code, got, rec.Header().Get("Retry-After"), rec.Body.String(), challenges)
	}
	if res.Token() != "" || res.User() != "" {
		t.Fatalf("a refusal names token %q user %q", res.Token(), res.User())
	}
}

// wantToken asserts an allowed bearer result for the named token.
func wantToken(t *testing.T, res Result, name string) {
	t.Helper()
	wantAllowed(t, res, OutcomeOK)
	if res.Token() != name || res.User() != "" {
		t.Fatalf("Token %q User %q, want token %q and no user", res.Token(), res.User(), name)
	}
}

// attemptsOf reads metrics_proxy_auth_attempts_total{outcome} with testutil.
func attemptsOf(f *fixture, outcome string) float64 {
	return testutil.ToFloat64(f.v.metrics.attempts.WithLabelValues(outcome))
}

// offByOne returns token with its byte at i changed to another b64token byte.
func offByOne(token string, i int) string {
	b := []byte(token)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

// wantNoSecrets fails if the log holds any of the tokens, or a piece of one
// long enough to matter.
func wantNoSecrets(t *testing.T, f *fixture, tokens ...string) {
	t.Helper()
	out := f.logs.String()
	for _, tok := range tokens {
		for _, leak := range []string{tok, tok[:min(len(tok), 16)], tok[max(0, len(tok)-16):]} {
			if strings.Contains(out, leak) {
				t.Fatalf("log contains %q:\n%s", leak, out)
			}
		}
	}
}

// Prometheus shares an address with someone guessing passwords. The address
// is in back-off, yet the right token passes every time, without bcrypt and
// without lifting the back-off for the guesser; a wrong token from there is
// throttled with the back-off's Retry-After and does not spend the refusal
// bucket.
func TestRightTokenPassesDuringPasswordBackoff(t *testing.T) {
	prom, _ := GenerateToken()
	f := newTokenFixture(t, map[string]string{"alice": hashOf(t, "right")}, map[string]string{"prometheus": prom})
	checks := countBcrypt(f, "right")
	for i := range freeBurst {
		want401Challenging(t, f.basic(attacker, "alice", fmt.Sprintf("guess-%d", i)), basicChallenge, bearerChallenge)
	}
	want429(t, f.basic(attacker, "alice", "guess-x"), OutcomeThrottled, "1")
	if f.inBackoff() != 1 || checks.Load() != freeBurst {
		t.Fatalf("in back-off %v, bcrypt comparisons %d", f.inBackoff(), checks.Load())
	}

	for range 100 {
		wantToken(t, f.bearer(attacker, prom), "prometheus")
	}
	wrong, _ := GenerateToken()
	want429(t, f.bearer(attacker, wrong), OutcomeThrottled, "1")
	// The guesser is still in back-off: the right token reset nothing.
	want429(t, f.basic(attacker, "alice", "guess-y"), OutcomeThrottled, "1")
	if f.inBackoff() != 1 || checks.Load() != freeBurst || f.bcryptChecks() != freeBurst {
		t.Fatalf("in back-off %v, bcrypt comparisons %d (metric %v)", f.inBackoff(), checks.Load(), f.bcryptChecks())
	}
	if attemptsOf(f, OutcomeOK) != 100 || attemptsOf(f, OutcomeOKCached) != 0 ||
		attemptsOf(f, OutcomeUnauthorized) != freeBurst || attemptsOf(f, OutcomeThrottled) != 3 {
		t.Fatalf("ok %v ok_cached %v unauthorized %v throttled %v", attemptsOf(f, OutcomeOK),
			attemptsOf(f, OutcomeOKCached), attemptsOf(f, OutcomeUnauthorized), attemptsOf(f, OutcomeThrottled))
	}
	// Once the window is over, the throttled wrong token had not touched the
	// refusal bucket: the whole burst is left.
	f.clock.Advance(time.Second)
	for range refusalBurst {
		want401Challenging(t, f.bearer(attacker, wrong), basicChallenge, bearerChallenge)
	}
	want429(t, f.bearer(attacker, wrong), OutcomeThrottled, "1")
	wantNoSecrets(t, f, prom, wrong)
}

// A flood of fresh wrong tokens from one address: the refusal burst is 401,
// then 429 at one a second, each 429 held back by the throttle delay; no
// bcrypt ever runs, nothing is charged to back-off, and the right token still
// passes from the flooded address.
func TestWrongTokenFloodIsRefusedWithoutBcrypt(t *testing.T) {
	prom, _ := GenerateToken()
	f := newTokenFixture(t, map[string]string{"alice": hashOf(t, "right")}, map[string]string{"prometheus": prom},
		func(o *Options) { o.ThrottleDelay = 3 * time.Second })
	var held time.Duration
	f.v.hold.wait = func(_ context.Context, d time.Duration) { held += d }
	checks := countBcrypt(f, "right")
	const flood = 1000
	var sent []string
	for i := range flood {
		tok, _ := GenerateToken()
		sent = append(sent, tok)
		res := f.bearer(attacker, tok)
		held = 0
		if i < refusalBurst {
			want401Challenging(t, res, basicChallenge, bearerChallenge)
			if held != 0 {
				t.Fatalf("401 number %d held back %v", i+1, held)
			}
			continue
		}
		want429(t, res, OutcomeThrottled, "1")
		if held != 3*time.Second {
			t.Fatalf("429 number %d held back %v, want the throttle delay of 3s", i+1-refusalBurst, held)
		}
	}
	if checks.Load() != 0 || f.bcryptChecks() != 0 || f.inBackoff() != 0 {
		t.Fatalf("bcrypt comparisons %d (metric %v), in back-off %v", checks.Load(), f.bcryptChecks(), f.inBackoff())
	}
	if attemptsOf(f, OutcomeUnauthorized) != refusalBurst || attemptsOf(f, OutcomeThrottled) != flood-refusalBurst {
		t.Fatalf("unauthorized %v throttled %v", attemptsOf(f, OutcomeUnauthorized), attemptsOf(f, OutcomeThrottled))
	}
	wantToken(t, f.bearer(attacker, prom), "prometheus")
	f.clock.Advance(refusalEvery)
	want401Challenging(t, f.bearer(attacker, sent[0]), basicChallenge, bearerChallenge)
	want429(t, f.bearer(attacker, sent[1]), OutcomeThrottled, "1")

	// The log names the kind, never the token, and is rate limited as ever:
	// its burst, then one line for the second that passed.
	lines := f.logs.Lines(`msg="authentication failed"`)
	if len(lines) != logBurst+1 {
		t.Fatalf("%d log lines, want %d", len(lines), logBurst+1)
	}
	want := `level=warn msg="authentication failed" outcome=unauthorized reason="bearer token matches no configured token" client=203.0.113.7:40000 credential="bearer token"`
	if lines[0] != want {
		t.Fatalf("log line %s\nwant %s", lines[0], want)
	}
	wantNoSecrets(t, f, append(sent, prom)...)
}

// A token one byte away from the right one, anywhere, or one byte longer or
// shorter, matches nothing.
func TestTokenOneByteOffIsRefused(t *testing.T) {
	prom, _ := GenerateToken()
	f := newTokenFixture(t, nil, map[string]string{"prometheus": prom})
	near := []string{offByOne(prom, 0), offByOne(prom, len(tokenPrefix)), offByOne(prom, len(prom)-1), prom + "A", prom[:len(prom)-1]}
	for i, tok := range near {
		want401Challenging(t, f.bearer(fmt.Sprintf("192.0.2.%d:1", i+1), tok), bearerChallenge)
	}
	wantToken(t, f.bearer("192.0.2.1:1", prom), "prometheus")
	if attemptsOf(f, OutcomeUnauthorized) != float64(len(near)) || attemptsOf(f, OutcomeOK) != 1 {
		t.Fatalf("unauthorized %v ok %v", attemptsOf(f, OutcomeUnauthorized), attemptsOf(f, OutcomeOK))
	}
	wantNoSecrets(t, f, append(near, prom)...)
}

// Malformed tokens (too short, too long, characters outside b64token) are
// malformed credentials: 401 without bcrypt, and each new one charged to
// back-off like a wrong password, so the sixth from one address is 429. The
// right token still passes from there.
func TestMalformedTokensAreChargedLikeWrongPasswords(t *testing.T) {
	prom, _ := GenerateToken()
	f := newTokenFixture(t, map[string]string{"alice": hashOf(t, "right")}, map[string]string{"prometheus": prom})
	checks := countBcrypt(f, "right")
	malformed := []struct{ token, reason string }{
		{prom[:21], reasonTokenTooShort},
		{prom + strings.Repeat("A", 513-len(prom)), reasonTokenTooLong},
		{prom[:30] + "!" + prom[31:], reasonTokenChars},
		{prom[:30] + "=" + prom[31:], reasonTokenChars},
		{prom[:30] + " " + prom[31:], reasonTokenChars},
	}
	for _, m := range malformed {
		want401Challenging(t, f.bearer(attacker, m.token), basicChallenge, bearerChallenge)
	}
	want429(t, f.bearer(attacker, prom[:30]+"\xff"+prom[31:]), OutcomeThrottled, "1")
	if checks.Load() != 0 || f.bcryptChecks() != 0 || f.inBackoff() != 1 {
		t.Fatalf("bcrypt comparisons %d, in back-off %v", checks.Load(), f.inBackoff())
	}
	wantToken(t, f.bearer(attacker, prom), "prometheus")

	lines := f.logs.Lines(`msg="authentication failed"`)
	for i, m := range malformed {
		want := `level=warn msg="authentication failed" outcome=unauthorized reason="` + m.reason + `" client=203.0.113.7:40000 credential="bearer token"`
		if lines[i] != want {
			t.Fatalf("log line %d: %s\nwant %s", i, lines[i], want)
		}
	}
	var toks []string
	for _, m := range malformed {
		toks = append(toks, m.token)
	}
	wantNoSecrets(t, f, append(toks, prom)...)
}

func TestParseBearer(t *testing.T) {
	tok22 := strings.Repeat("a", 22)
	tok512 := strings.Repeat("Z", 510) + "=="
	for _, tc := range []struct {
		header, token, reason string
	}{
		{"Bearer " + tok22, tok22, ""},
		{"bEARER " + tok22, tok22, ""},
		{"Bearer " + tok512, tok512, ""},
		{"Bearer AZaz09-._~+/AZaz09-._~+/==", "AZaz09-._~+/AZaz09-._~+/==", ""},
		{"Bearer " + strings.Repeat("a", 21), "", reasonTokenTooShort},
		{"Bearer " + strings.Repeat("a", 20) + "==", strings.Repeat("a", 20) + "==", ""}, // bytes, padding included
		{"Bearer ", "", reasonTokenTooShort},
		{"Bearer " + strings.Repeat("a", 513), "", reasonTokenTooLong},
		{"Bearer " + strings.Repeat("a", 100000), "", reasonTokenTooLong},
		{"Bearer  " + tok22, "", reasonTokenChars},
		{"Bearer " + tok22 + " ", "", reasonTokenChars},
		{"Bearer " + strings.Repeat("=", 22), "", reasonTokenChars},
		{"Bearer " + tok22[:10] + "=" + tok22[11:], "", reasonTokenChars},
		{"Bearer " + tok22[:10] + "\n" + tok22[11:], "", reasonTokenChars},
		{"Bearer " + tok22[:10] + "é" + tok22[12:], "", reasonTokenChars},
		{"Bearer " + tok22[:10] + "," + tok22[11:], "", reasonTokenChars},
	} {
		if !isBearer(tc.header) {
			t.Fatalf("isBearer(%q) = false", tc.header)
		}
		token, reason := parseBearer(tc.header)
		if token != tc.token || reason != tc.reason {
			t.Errorf("parseBearer(%.40q) = %.40q, %q; want %.40q, %q", tc.header, token, reason, tc.token, tc.reason)
		}
	}
	for _, h := range []string{"Bearer", "Bearer\t" + tok22, "Bearerx " + tok22, "Basic " + tok22, ""} {
		if isBearer(h) {
			t.Errorf("isBearer(%q) = true", h)
		}
	}
}

// With only tokens configured, a Basic credential can never be right: 401
// with only the Bearer challenge, no bcrypt (there are no dummy hashes to
// compare against, which must not panic), charged like a wrong password.
func TestBasicAgainstTokensOnly(t *testing.T) {
	prom, _ := GenerateToken()
	for name, setUsers := range map[string]func(*Verifier){
		"never set":     func(*Verifier) {},
		"set to nil":    func(v *Verifier) { v.SetUsers(nil) },
		"set to empty":  func(v *Verifier) { v.SetUsers(&Users{}) },
		"parsed, empty": func(v *Verifier) { u, _ := ParseUsers(nil); v.SetUsers(u) },
	} {
		t.Run(name, func(t *testing.T) {
			f := newTokenFixture(t, nil, map[string]string{"prometheus": prom})
			setUsers(f.v)
			checks := countBcrypt(f, "right")
			for i := range freeBurst {
				want401Challenging(t, f.basic(attacker, "alice", fmt.Sprintf("right-%d", i)), bearerChallenge)
			}
			want429(t, f.basic(attacker, "alice", "right"), OutcomeThrottled, "1")
			want429(t, f.basic(attacker, "alice", "right-0"), OutcomeThrottled, "1") // known wrong, in back-off
			if checks.Load() != 0 || f.bcryptChecks() != 0 || f.inBackoff() != 1 {
				t.Fatalf("bcrypt comparisons %d, in back-off %v", checks.Load(), f.inBackoff())
			}
			want401Challenging(t, f.header("192.0.2.1:1"), bearerChallenge)
			wantToken(t, f.bearer(attacker, prom), "prometheus")
			line := f.logs.Lines(`msg="authentication failed"`)[0]
			if want := `level=warn msg="authentication failed" outcome=unauthorized reason="Basic authentication without basic_auth_users configured" client=203.0.113.7:40000 user=alice`; line != want {
				t.Fatalf("log line %s\nwant %s", line, want)
			}
		})
	}
}

// Without tokens, Bearer is what it always was: not Basic, so malformed, and
// the challenge is Basic only. Removing the tokens makes a right one fail.
func TestBearerAgainstUsersOnly(t *testing.T) {
	prom, sum := GenerateToken()
	f := newFixture(t, map[string]string{"alice": hashOf(t, "right")})
	checks := countBcrypt(f, "right")
	compares := countTokenCompares(f)
	want401Challenging(t, f.bearer("192.0.2.1:1", prom), basicChallenge)

	f.v.SetTokens(map[string][sha256.Size]byte{"prometheus": sum})
	wantToken(t, f.bearer("192.0.2.1:1", prom), "prometheus")
	f.v.SetTokens(nil)
	want401Challenging(t, f.bearer("192.0.2.2:1", prom), basicChallenge)
	f.v.SetTokens(map[string][sha256.Size]byte{})
	want401Challenging(t, f.bearer("192.0.2.3:1", prom), basicChallenge)
	if checks.Load() != 0 || compares.Load() != 1 {
		t.Fatalf("bcrypt comparisons %d, token comparisons %d", checks.Load(), compares.Load())
	}
	want := `level=warn msg="authentication failed" outcome=unauthorized reason="not Basic authentication" client=192.0.2.1:1 user=`
	if line := f.logs.Lines(`msg="authentication failed"`)[0]; line != want {
		t.Fatalf("log line %s\nwant %s", line, want)
	}
	wantNoSecrets(t, f, prom)
}

// With both configured, a 401 offers both schemes, Basic first; 429s offer
// none. With neither, nothing is required.
func TestChallengesFollowTheConfiguration(t *testing.T) {
	prom, sum := GenerateToken()
	f := newTokenFixture(t, map[string]string{"alice": hashOf(t, "right")}, map[string]string{"prometheus": prom},
		func(o *Options) { o.Realm = "runner-1 metrics" })
	f.v.compare = mismatchUnless("right")
	both := []string{`Basic realm="runner-1 metrics", charset="UTF-8"`, `Bearer realm="runner-1 metrics"`}
	want401Challenging(t, f.header("192.0.2.1:1"), both...)
	want401Challenging(t, f.basic("192.0.2.2:1", "alice", "wrong"), both...)
	want401Challenging(t, f.header("192.0.2.3:1", "Digest username=alice"), both...)
	want401Challenging(t, f.header("192.0.2.4:1", "Bearer "+prom, "Bearer "+prom), both...)
	wantAllowed(t, f.basic("192.0.2.5:1", "alice", "right"), OutcomeOK)
	wantToken(t, f.bearer("192.0.2.6:1", prom), "prometheus")
	lines := f.logs.Lines(`msg="authentication failed"`)
	if !strings.Contains(lines[2], `reason="neither Basic nor Bearer authentication"`) ||
		!strings.Contains(lines[3], `reason="more than one Authorization header"`) {
		t.Fatalf("log lines:\n%s", strings.Join(lines, "\n"))
	}

	f.v.SetUsers(nil)
	want401Challenging(t, f.header("192.0.2.7:1"), `Bearer realm="runner-1 metrics"`)
	f.v.SetTokens(nil)
	wantAllowed(t, f.header("192.0.2.8:1"), OutcomeNotRequired)
	wantAllowed(t, f.bearer("192.0.2.8:1", prom), OutcomeNotRequired)
	f.v.SetTokens(map[string][sha256.Size]byte{"prometheus": sum})
	want401Challenging(t, f.header("192.0.2.9:1"), `Bearer realm="runner-1 metrics"`)
}

// Timing cannot be asserted reliably, so the test asserts what makes the
// check constant-time: every configured sum is compared whichever token
// matched, the first, the last or none. Two names with one sum resolve to the
// first name.
func TestTokenCheckComparesEveryToken(t *testing.T) {
	tokens := map[string]string{}
	for i := range 50 {
		tokens[fmt.Sprintf("t%02d", i)], _ = GenerateToken()
	}
	f := newTokenFixture(t, nil, tokens)
	compares := countTokenCompares(f)
	for _, name := range []string{"t00", "t25", "t49"} {
		compares.Store(0)
		wantToken(t, f.bearer("192.0.2.1:1", tokens[name]), name)
		if compares.Load() != 50 {
			t.Fatalf("token %s: %d comparisons, want 50", name, compares.Load())
		}
	}
	compares.Store(0)
	wrong, _ := GenerateToken()
	want401Challenging(t, f.bearer("192.0.2.1:1", wrong), bearerChallenge)
	if compares.Load() != 50 {
		t.Fatalf("wrong token: %d comparisons, want 50", compares.Load())
	}

	tokens["a-duplicate"], tokens["z-duplicate"] = tokens["t10"], tokens["t10"]
	f = newTokenFixture(t, nil, tokens)
	wantToken(t, f.bearer("192.0.2.1:1", tokens["t10"]), "a-duplicate")
}

// Token attempts are counted under the existing outcomes; no label ever holds
// a token, a token name or an address.
func TestTokenMetricsHaveFixedLabels(t *testing.T) {
	prom, _ := GenerateToken()
	f := newTokenFixture(t, nil, map[string]string{"prometheus-secret-name": prom})
	for range 3 {
		wantToken(t, f.bearer(attacker, prom), "prometheus-secret-name")
	}
	for range 12 {
		f.bearer(attacker, offByOne(prom, 10))
	}
	f.bearer(attacker, "short")
	if attemptsOf(f, OutcomeOK) != 3 || attemptsOf(f, OutcomeUnauthorized) != 10 || attemptsOf(f, OutcomeThrottled) != 3 ||
		attemptsOf(f, OutcomeOKCached) != 0 || attemptsOf(f, OutcomeBusy) != 0 || f.bcryptChecks() != 0 {
		t.Fatalf("ok %v unauthorized %v throttled %v", attemptsOf(f, OutcomeOK), attemptsOf(f, OutcomeUnauthorized), attemptsOf(f, OutcomeThrottled))
	}
	if n := testutil.CollectAndCount(f.v.metrics.attempts); n != 5 {
		t.Fatalf("%d attempt series, want the 5 outcomes", n)
	}
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() != "outcome" || strings.Contains(lp.GetValue(), "prometheus") || strings.Contains(lp.GetValue(), "mpt_") {
					t.Errorf("label %s=%q", lp.GetName(), lp.GetValue())
				}
			}
		}
	}
}

func TestGenerateToken(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		token, sum := GenerateToken()
		if seen[token] {
			t.Fatalf("token repeated: %d distinct before it", len(seen))
		}
		seen[token] = true
		raw, err := base64.RawURLEncoding.Strict().DecodeString(strings.TrimPrefix(token, "mpt_"))
		if !strings.HasPrefix(token, "mpt_") || len(token) != 47 || err != nil || len(raw) != 32 {
			t.Fatalf("token of %d bytes, prefix %q, decoding %d bytes, %v", len(token), token[:4], len(raw), err)
		}
		if sum != sha256.Sum256([]byte(token)) || TokenSHA256(token) != sum {
			t.Fatal("the sum is not the SHA-256 of the token")
		}
		if got, reason := parseBearer("Bearer " + token); got != token || reason != "" {
			t.Fatalf("a generated token does not parse: %s", reason)
		}
	}
}

// Requests, user reloads and token reloads at once, for the race detector:
// whatever interleaving, a request sees one generation, so the right token
// and the right password pass, and no request finds neither configured.
func TestConcurrentTokensUsersAndReloads(t *testing.T) {
	prom, sum := GenerateToken()
	hash := hashOf(t, "right")
	f := newTokenFixture(t, map[string]string{"alice": hash}, map[string]string{"prometheus": prom})
	f.v.compare = mismatchUnless("right")
	u, err := ParseUsers(map[string]string{"alice": hash, "bob": hashOf(t, "bobs")})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var notRequired atomic.Int64
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				var res Result
				switch i % 5 {
				case 0:
					res = f.bearer("192.0.2.1:1", prom)
				case 1:
					res = f.basic("192.0.2.1:1", "alice", "right")
				case 2:
					res = f.bearer(fmt.Sprintf("198.51.100.%d:1", g), offByOne(prom, 9))
				case 3:
					f.v.SetUsers(u)
				case 4:
					f.v.SetTokens(map[string][sha256.Size]byte{"prometheus": sum, fmt.Sprint(g): TokenSHA256(fmt.Sprint("other-", g))})
				}
				if res.Outcome() == OutcomeNotRequired {
					notRequired.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if notRequired.Load() != 0 {
		t.Fatalf("%d requests saw neither users nor tokens", notRequired.Load())
	}
	if res := f.bearer("192.0.2.1:1", prom); !res.Allowed() || res.Token() != "prometheus" {
		t.Fatalf("right token: %s %q", res.Outcome(), res.Token())
	}
	wantAllowed(t, f.basic("192.0.2.1:1", "alice", "right"), OutcomeOKCached)
}

// The price of refusing a flood from one address that repeats a wrong
// credential, once its refusal bucket is empty (the steady state: 429 from
// the bucket): a wrong token against 10 and 100 configured tokens, and a
// wrong password already known to be wrong.
func BenchmarkAuthorizeWrongToken(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("tokens=%d", n), func(b *testing.B) {
			tokens := map[string]string{}
			for i := range n {
				tokens[fmt.Sprint("t", i)], _ = GenerateToken()
			}
			f := newTokenFixture(b, map[string]string{"alice": hashOf(b, "right")}, tokens)
			wrong, _ := GenerateToken()
			r := httptest.NewRequest(http.MethodGet, "https://proxy.example/metrics", nil)
			r.RemoteAddr = attacker
			r.Header.Set("Authorization", "Bearer "+wrong)
			benchmarkRefusals(b, f, r)
		})
	}
}

func BenchmarkAuthorizeRepeatedWrongPassword(b *testing.B) {
	f := newTokenFixture(b, map[string]string{"alice": hashOf(b, "right")}, nil)
	r := httptest.NewRequest(http.MethodGet, "https://proxy.example/metrics", nil)
	r.RemoteAddr = attacker
	r.SetBasicAuth("alice", "wrong")
	benchmarkRefusals(b, f, r)
}

// benchmarkRefusals sends r until the refusal bucket is empty, then measures.
func benchmarkRefusals(b *testing.B, f *fixture, r *http.Request) {
	for range refusalBurst + 1 {
		f.v.Authorize(r)
	}
	if res := f.v.Authorize(r); res.Outcome() != OutcomeThrottled {
		b.Fatalf("outcome %s, want throttled", res.Outcome())
	}
	b.ReportAllocs()
	for b.Loop() {
		f.v.Authorize(r)
	}
	if f.bcryptChecks() > 1 {
		b.Fatalf("%v bcrypt checks", f.bcryptChecks())
	}
}
