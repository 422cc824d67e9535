package e2e

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const atkChallenge = `Basic realm="metrics-proxy", charset="UTF-8"`

// atkCredCase is one Authorization attempt, sent from its own loopback source
// address so that no case is answered 429 because of an earlier one.
type atkCredCase struct {
	name   string
	auth   []string // Authorization header values, in order (none: no header)
	status int
	body   string
	reason string // the failure reason the log must give; "" for none
}

func (c atkCredCase) run(t *testing.T, p *atkProxy, src string) {
	t.Helper()
	req, err := http.NewRequest("GET", p.URL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range c.auth {
		req.Header.Add("Authorization", v)
	}
	resp, err := p.atkClient(src).Do(req)
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if resp.StatusCode != c.status || b.String() != c.body {
		t.Errorf("%s: got %d %q, want %d %q", c.name, resp.StatusCode, b.String(), c.status, c.body)
	}
	if c.status == 401 {
		if got := resp.Header.Get("WWW-Authenticate"); got != atkChallenge {
			t.Errorf("%s: WWW-Authenticate %q", c.name, got)
		}
	}
	if c.reason != "" {
		p.waitLog(`msg="authentication failed" outcome=unauthorized reason="` + regexp.QuoteMeta(c.reason) + `" client=` + regexp.QuoteMeta(src) + `:\d+`)
	}
}

// Malformed Authorization headers are refused with 401 (or 431 when larger
// than the header limit) without ever running bcrypt, and none of them keeps
// the right credential out.
func TestAttackCredentialsMalformed(t *testing.T) {
	t.Parallel()
	up := atkStartUpstream(t, nil)
	p := atkStartProxy(t, atkProxyOptions{Upstream: up.URL})
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	long := strings.Repeat("A", 20<<10)
	const tooLarge = "431 Request Header Fields Too Large"
	cases := []atkCredCase{
		{"no header", nil, 401, "Unauthorized\n", "no Authorization header"},
		{"malformed base64", []string{"Basic !!!not*base64!!!"}, 401, "Unauthorized\n", "credentials are not valid base64"},
		{"unpadded base64", []string{"Basic " + base64.RawStdEncoding.EncodeToString([]byte(atkUser+":"+atkPassword+"x"))}, 401, "Unauthorized\n", "credentials are not valid base64"},
		{"two spaces after Basic", []string{"Basic  " + b64(atkUser+":"+atkPassword)}, 401, "Unauthorized\n", "credentials are not valid base64"},
		{"no colon", []string{"Basic " + b64(atkUser+atkPassword)}, 401, "Unauthorized\n", "credentials lack the ':' between user and password"},
		{"Bearer scheme", []string{"Bearer " + b64(atkUser+":"+atkPassword)}, 401, "Unauthorized\n", "not Basic authentication"},
		{"empty user", []string{"Basic " + b64(":"+atkPassword)}, 401, "Unauthorized\n", "empty user name"},
		{"two Authorization headers", []string{atkBasic(atkUser, atkPassword), atkBasic(atkUser, "wrong")}, 401, "Unauthorized\n", "more than one Authorization header"},
		// Beyond --web.max-header-bytes (8192 by default) net/http answers
		// before the proxy's handler: nothing is decoded, logged or charged.
		{"user of 20 KiB", []string{atkBasic(long, atkPassword)}, 431, tooLarge, ""},
		{"password of 20 KiB", []string{atkBasic(atkUser, long)}, 431, tooLarge, ""},
	}
	for i, c := range cases {
		c.run(t, p, fmt.Sprintf("127.0.1.%d", i+1))
	}

	// The scheme is case-insensitive (RFC 9110), and the right credential
	// still works from the address all of the above came from too.
	c := p.atkClient("")
	lower := atkDo(t, c, "GET", p.URL+"/metrics", map[string]string{"Authorization": "basic " + b64(atkUser+":"+atkPassword)})
	ok := p.atkAuthGet(t, c, "/metrics")
	if lower.Status != 200 || lower.Body != "atk_up 1\n" || ok.Status != 200 || ok.Body != "atk_up 1\n" {
		t.Fatalf("right credential: lower-case scheme %d %q, Basic %d %q", lower.Status, lower.Body, ok.Status, ok.Body)
	}
	if uris := up.URIs(); len(uris) != 2 {
		t.Errorf("upstream got %q, want the two authenticated scrapes only", uris)
	}
	m := p.atkSelfMetrics(t, c)
	for series, want := range map[string]float64{
		`metrics_proxy_auth_attempts_total{outcome="unauthorized"}`: 8,
		`metrics_proxy_auth_attempts_total{outcome="throttled"}`:    0,
		// Only the first right credential ran bcrypt; no malformed header did.
		`metrics_proxy_auth_bcrypt_checks_total`:               1,
		`metrics_proxy_requests_total{outcome="unauthorized"}`: 8,
	} {
		if got := atkMetric(m, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
}

// Well-formed credentials that are not a configured user's own: a password
// under another user's name, a name differing in case or bytes, non-UTF-8,
// over-long values. All 401; only the pairs as configured get in.
func TestAttackCredentialsWrongIdentity(t *testing.T) {
	t.Parallel()
	const pwAlice, pwBob = "alice-Secret-1", "bob-Secret-2"
	up := atkStartUpstream(t, nil)
	hashAlice, hashBob := atkHashed(t, pwAlice, 10), atkHashed(t, pwBob, 10)
	p := atkStartProxy(t, atkProxyOptions{
		Upstream: up.URL,
		// Large enough that the over-long credentials reach the proxy's own check.
		Args: []string{"--web.max-header-bytes=65536"},
		Web: func(k *pki) string {
			return atkTLSHeader(k) + fmt.Sprintf("basic_auth_users:\n  alice: '%s'\n  bob: '%s'\n", hashAlice, hashBob)
		},
	})

	long := strings.Repeat("B", 20<<10)
	cases := []atkCredCase{
		{"bob with alice's password", []string{atkBasic("bob", pwAlice)}, 401, "Unauthorized\n", "wrong password"},
		{"alice with bob's password", []string{atkBasic("alice", pwBob)}, 401, "Unauthorized\n", "wrong password"},
		{"unknown user with a real password", []string{atkBasic("mallory", pwAlice)}, 401, "Unauthorized\n", "unknown user"},
		{"user name in another case", []string{atkBasic("Alice", pwAlice)}, 401, "Unauthorized\n", "unknown user"},
		{"non-UTF-8 user", []string{atkBasic("\xff\xfealice", pwAlice)}, 401, "Unauthorized\n", "unknown user"},
		{"non-UTF-8 password", []string{atkBasic("alice", pwAlice+"\xff\xfe")}, 401, "Unauthorized\n", "wrong password"},
		{"password with a trailing space", []string{atkBasic("alice", pwAlice+" ")}, 401, "Unauthorized\n", "wrong password"},
		{"user of 20 KiB", []string{atkBasic(long, pwAlice)}, 401, "Unauthorized\n", "Authorization header too long"},
		{"password of 20 KiB", []string{atkBasic("alice", long)}, 401, "Unauthorized\n", "Authorization header too long"},
		{"password over bcrypt's 72 bytes, right prefix", []string{atkBasic("alice", pwAlice+strings.Repeat("x", 72))}, 401, "Unauthorized\n", "password longer than bcrypt's 72 bytes"},
	}
	for i, c := range cases {
		c.run(t, p, fmt.Sprintf("127.0.2.%d", i+1))
	}
	// The non-UTF-8 name is logged escaped, never raw.
	if logs := p.Logs(); strings.Contains(logs, "\xff") || !strings.Contains(logs, `user=\xff\xfealice`) {
		t.Errorf("non-UTF-8 user name not logged escaped:\n%s", logs)
	}

	c := p.atkClient("")
	for user, pw := range map[string]string{"alice": pwAlice, "bob": pwBob} {
		r := atkDo(t, c, "GET", p.URL+"/metrics", map[string]string{"Authorization": atkBasic(user, pw)})
		if r.Status != 200 || r.Body != "atk_up 1\n" {
			t.Errorf("%s with own password: %d %q", user, r.Status, r.Body)
		}
	}
	r := atkDo(t, c, "GET", p.URL+"/proxy/metrics", map[string]string{"Authorization": atkBasic("alice", pwAlice)})
	// Seven wrong pairs and two right ones ran bcrypt; the three over-long
	// ones were refused before it.
	for series, want := range map[string]float64{
		`metrics_proxy_auth_bcrypt_checks_total`:                    9,
		`metrics_proxy_auth_attempts_total{outcome="unauthorized"}`: 10,
		`metrics_proxy_auth_attempts_total{outcome="ok"}`:           2,
	} {
		if got := atkMetric(r.Body, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if n := len(up.Requests()); n != 2 {
		t.Errorf("upstream got %d requests, want 2", n)
	}
}

// With 50 users, each user's own password works and the next user's password
// under that name does not.
func TestAttackCredentialsManyUsers(t *testing.T) {
	t.Parallel()
	const n = 50
	up := atkStartUpstream(t, nil)
	var users strings.Builder
	pw := make([]string, n)
	for i := range n {
		pw[i] = fmt.Sprintf("pw-%02d-%x", i, i*7919)
		// Cost 4 keeps 150 hashes and checks cheap; the proxy warns about
		// it and serves.
		fmt.Fprintf(&users, "  user%02d: '%s'\n", i, hashPassword(t, pw[i], 4))
	}
	p := atkStartProxy(t, atkProxyOptions{Upstream: up.URL, Web: func(k *pki) string {
		return atkTLSHeader(k) + "basic_auth_users:\n" + users.String()
	}})

	good := p.atkClient("")
	for i := range n {
		user := fmt.Sprintf("user%02d", i)
		r := atkDo(t, good, "GET", p.URL+"/metrics", map[string]string{"Authorization": atkBasic(user, pw[i])})
		if r.Status != 200 {
			t.Errorf("%s with own password: %d", user, r.Status)
		}
		swapped := pw[(i+1)%n]
		r = atkDo(t, p.atkClient(fmt.Sprintf("127.0.3.%d", i+1)), "GET", p.URL+"/metrics",
			map[string]string{"Authorization": atkBasic(user, swapped)})
		if r.Status != 401 || r.Header.Get("WWW-Authenticate") != atkChallenge {
			t.Errorf("%s with user%02d's password: %d", user, (i+1)%n, r.Status)
		}
	}
	r := atkDo(t, good, "GET", p.URL+"/proxy/metrics", map[string]string{"Authorization": atkBasic("user00", pw[0])})
	for series, want := range map[string]float64{
		`metrics_proxy_auth_attempts_total{outcome="ok"}`:           n,
		`metrics_proxy_auth_attempts_total{outcome="unauthorized"}`: n,
		`metrics_proxy_auth_attempts_total{outcome="throttled"}`:    0,
	} {
		if got := atkMetric(r.Body, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if got := len(up.Requests()); got != n {
		t.Errorf("upstream got %d requests, want %d", got, n)
	}
}

// Password guessing from one address: five free failures, then 429 with
// Retry-After and no bcrypt for anything but the one check per window;
// repeating a rejected password costs nothing; the address's own known-good
// credential and other addresses are never held back; the failure log is
// rate limited.
func TestAttackCredentialsGuessingThrottled(t *testing.T) {
	t.Parallel()
	up := atkStartUpstream(t, nil)
	// --web.throttle-delay=0: the 429s come at once, so 40 of them take no
	// time; the delay itself is exercised by the flood and secrets tests.
	p := atkStartProxy(t, atkProxyOptions{Upstream: up.URL, Args: []string{"--web.throttle-delay=0"}})
	const src = "127.0.10.1"
	c := p.atkClient(src)
	get := func(pw string) atkResult {
		t.Helper()
		return atkDo(t, c, "GET", p.URL+"/metrics", map[string]string{"Authorization": atkBasic(atkUser, pw)})
	}
	if r := get(atkPassword); r.Status != 200 {
		t.Fatalf("right password: %d", r.Status)
	}
	for i := range 5 {
		if r := get(fmt.Sprintf("guess-%d", i)); r.Status != 401 {
			t.Fatalf("free guess %d: %d", i, r.Status)
		}
	}
	statuses := map[int]int{}
	for i := range 30 {
		r := get(fmt.Sprintf("fresh-guess-%d", i))
		statuses[r.Status]++
		switch r.Status {
		case 401:
		case 429:
			n, err := strconv.Atoi(r.Header.Get("Retry-After"))
			if err != nil || n < 1 || n > 60 || r.Body != "Too Many Requests\n" {
				t.Errorf("429: Retry-After %q, body %q", r.Header.Get("Retry-After"), r.Body)
			}
		default:
			t.Errorf("fresh guess %d: %d", i, r.Status)
		}
	}
	if statuses[429] == 0 {
		t.Errorf("30 guesses after the free burst were never throttled: %v", statuses)
	}
	body := p.atkSelfMetrics(t, c) // the known-good credential passes even now
	checks := atkMetric(body, "metrics_proxy_auth_bcrypt_checks_total")
	// One check for the right password, five for the burst, one per 401
	// after it; none for a 429.
	if want := float64(1 + 5 + statuses[401]); checks != want {
		t.Errorf("bcrypt checks = %v, want %v (%v)", checks, want, statuses)
	}
	if got := atkMetric(body, "metrics_proxy_auth_clients_in_backoff"); got != 1 {
		t.Errorf("clients in back-off = %v, want 1", got)
	}
	// Repeating a rejected password: answered from memory, no bcrypt.
	for range 10 {
		if r := get("guess-0"); r.Status != 429 && r.Status != 401 {
			t.Errorf("repeated guess: %d", r.Status)
		}
	}
	if r := get(atkPassword); r.Status != 200 || r.Body != "atk_up 1\n" {
		t.Errorf("right password from the throttled address: %d", r.Status)
	}
	// Another address is not affected (and its known-good credential needs
	// no bcrypt either).
	if r := atkDo(t, p.atkClient("127.0.10.2"), "GET", p.URL+"/metrics", map[string]string{"Authorization": atkBasic(atkUser, atkPassword)}); r.Status != 200 {
		t.Errorf("right password from another address: %d", r.Status)
	}
	body = p.atkSelfMetrics(t, c)
	if got := atkMetric(body, "metrics_proxy_auth_bcrypt_checks_total"); got != checks {
		t.Errorf("bcrypt checks after the repeats = %v, want still %v", got, checks)
	}
	// 45 failures; the log holds at most a burst of ten and about one a
	// second after it.
	if n := p.countLog(`msg="authentication failed"`); n >= 45 || n < 10 {
		t.Errorf("%d failed-auth log lines for 45 failures", n)
	}
}

// A bcrypt flood: 32 addresses sending fresh wrong passwords as fast as they
// can while a client that authenticated before scrapes twice a second. Every
// scrape succeeds, the flood only ever gets 401 or 429, and the proxy stays
// small. Not parallel: it is meant to saturate both cores.
func TestAttackCredentialsBcryptFloodDuringScrapes(t *testing.T) {
	up := atkStartUpstream(t, nil)
	p := atkStartProxy(t, atkProxyOptions{Upstream: up.URL})
	good := p.atkClient("")
	if r := p.atkAuthGet(t, good, "/metrics"); r.Status != 200 {
		t.Fatalf("first scrape: %d", r.Status)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	flood := map[string]int{}
	for a := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := p.atkClient(fmt.Sprintf("127.0.11.%d", a+1))
			for i := range 200 {
				select {
				case <-stop:
					return
				default:
				}
				r, err := atkTry(c, "GET", p.URL+"/metrics", map[string]string{"Authorization": atkBasic(atkUser, fmt.Sprintf("flood-%d-%d", a, i))})
				key := fmt.Sprint(r.Status)
				if err != nil {
					key = "error"
				}
				mu.Lock()
				flood[key]++
				mu.Unlock()
			}
		}()
	}
	var failed []string
	for i := range 6 {
		r, err := atkTry(good, "GET", p.URL+"/metrics", map[string]string{"Authorization": atkBasic(atkUser, atkPassword)})
		if err != nil || r.Status != 200 || r.Body != "atk_up 1\n" {
			failed = append(failed, fmt.Sprintf("scrape %d: %d %v", i, r.Status, err))
		}
		time.Sleep(500 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if len(failed) > 0 {
		t.Errorf("scrapes failed during the flood: %q", failed)
	}
	for k, n := range flood {
		if k != "401" && k != "429" {
			t.Errorf("flood got %d answers %s", n, k)
		}
	}
	if flood["429"] == 0 {
		t.Errorf("the flood was never refused with 429: %v", flood)
	}
	body := p.atkSelfMetrics(t, good)
	if atkMetric(body, `metrics_proxy_auth_attempts_total{outcome="busy"}`)+atkMetric(body, `metrics_proxy_auth_attempts_total{outcome="throttled"}`) != float64(flood["429"]) {
		t.Errorf("429s %d do not match busy+throttled in:\n%s", flood["429"], body)
	}
	if rss := atkRSSKiB(t, p.cmd.Process.Pid); rss > 64<<10 {
		t.Errorf("proxy VmRSS %d KiB during a bcrypt flood, want under 64 MiB", rss)
	}
}
