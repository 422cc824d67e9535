package e2e

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// challenge is the exact WWW-Authenticate of every 401.
const challenge = `Basic realm="metrics-proxy", charset="UTF-8"`

// credCase is one Authorization attempt, sent from its own loopback source
// address so that no case is answered 429 because of an earlier one.
type credCase struct {
	name   string
	auth   []string // Authorization header values, in order (none: no header)
	status int
	body   string
	reason string // the failure reason the log must give; "" for none
}

func (c credCase) run(t *testing.T, p *proxy, src string) {
	t.Helper()
	req, err := http.NewRequest("GET", p.URL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range c.auth {
		req.Header.Add("Authorization", v)
	}
	r, err := send(p.client(src), req)
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	if r.Status != c.status || r.Body != c.body {
		t.Errorf("%s: got %d %q, want %d %q", c.name, r.Status, r.Body, c.status, c.body)
	}
	if c.status == 401 {
		if got := r.Header.Get("WWW-Authenticate"); got != challenge {
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
	p, up := startWithUpstream(t, nil, proxyOptions{})
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	long := strings.Repeat("A", 20<<10)
	const tooLarge = "431 Request Header Fields Too Large"
	cases := []credCase{
		{"no header", nil, 401, "Unauthorized\n", "no Authorization header"},
		{"malformed base64", []string{"Basic !!!not*base64!!!"}, 401, "Unauthorized\n", "credentials are not valid base64"},
		{"unpadded base64", []string{"Basic " + base64.RawStdEncoding.EncodeToString([]byte(defaultUser+":"+defaultPassword+"x"))}, 401, "Unauthorized\n", "credentials are not valid base64"},
		{"two spaces after Basic", []string{"Basic  " + b64(defaultUser+":"+defaultPassword)}, 401, "Unauthorized\n", "credentials are not valid base64"},
		{"no colon", []string{"Basic " + b64(defaultUser+defaultPassword)}, 401, "Unauthorized\n", "credentials lack the ':' between user and password"},
		{"Bearer scheme", []string{"Bearer " + b64(defaultUser+":"+defaultPassword)}, 401, "Unauthorized\n", "not Basic authentication"},
		{"empty user", []string{"Basic " + b64(":"+defaultPassword)}, 401, "Unauthorized\n", "empty user name"},
		{"two Authorization headers", []string{basic(defaultUser, defaultPassword), basic(defaultUser, "wrong")}, 401, "Unauthorized\n", "more than one Authorization header"},
		// Beyond --web.max-header-bytes (8192 by default) net/http answers
		// before the proxy's handler: nothing is decoded, logged or charged.
		{"user of 20 KiB", []string{basic(long, defaultPassword)}, 431, tooLarge, ""},
		{"password of 20 KiB", []string{basic(defaultUser, long)}, 431, tooLarge, ""},
	}
	for i, c := range cases {
		c.run(t, p, fmt.Sprintf("127.0.1.%d", i+1))
	}

	// The scheme is case-insensitive (RFC 9110), and the right credential
	// still works from the address all of the above came from too.
	c := p.client("")
	lower := do(t, c, "GET", p.URL+"/metrics", map[string]string{"Authorization": "basic " + b64(defaultUser+":"+defaultPassword)})
	ok := p.get(t, c, "/metrics")
	if lower.Status != 200 || lower.Body != upBody || ok.Status != 200 || ok.Body != upBody {
		t.Fatalf("right credential: lower-case scheme %d %q, Basic %d %q", lower.Status, lower.Body, ok.Status, ok.Body)
	}
	if uris := up.URIs(); len(uris) != 2 {
		t.Errorf("upstream got %q, want the two authenticated scrapes only", uris)
	}
	m := p.selfMetrics(t, c)
	expectMetrics(t, m, map[string]float64{
		authOutcome("unauthorized"): 8,
		authOutcome("throttled"):    0,
		// Only the first right credential ran bcrypt; no malformed header did.
		`metrics_proxy_auth_bcrypt_checks_total`: 1,
		outcome("unauthorized"):                  8,
	})
}

// Well-formed credentials that are not a configured user's own: a password
// under another user's name, a name differing in case or bytes, non-UTF-8,
// over-long values. All 401; only the pairs as configured get in.
func TestAttackCredentialsWrongIdentity(t *testing.T) {
	t.Parallel()
	const pwAlice, pwBob = "alice-Secret-1", "bob-Secret-2"
	up := startUpstream(t, nil)
	hashAlice, hashBob := hashPassword(t, pwAlice, 10), hashPassword(t, pwBob, 10)
	p := startProxy(t, proxyOptions{
		Upstream: up.URL,
		// Large enough that the over-long credentials reach the proxy's own check.
		Args: []string{"--web.max-header-bytes=65536"},
		Web: func(k *pki) string {
			return tlsBlock(k) + usersBlock("alice", hashAlice, "bob", hashBob)
		},
	})

	long := strings.Repeat("B", 20<<10)
	cases := []credCase{
		{"bob with alice's password", []string{basic("bob", pwAlice)}, 401, "Unauthorized\n", "wrong password"},
		{"alice with bob's password", []string{basic("alice", pwBob)}, 401, "Unauthorized\n", "wrong password"},
		{"unknown user with a real password", []string{basic("mallory", pwAlice)}, 401, "Unauthorized\n", "unknown user"},
		{"user name in another case", []string{basic("Alice", pwAlice)}, 401, "Unauthorized\n", "unknown user"},
		{"non-UTF-8 user", []string{basic("\xff\xfealice", pwAlice)}, 401, "Unauthorized\n", "unknown user"},
		{"non-UTF-8 password", []string{basic("alice", pwAlice+"\xff\xfe")}, 401, "Unauthorized\n", "wrong password"},
		{"password with a trailing space", []string{basic("alice", pwAlice+" ")}, 401, "Unauthorized\n", "wrong password"},
		{"user of 20 KiB", []string{basic(long, pwAlice)}, 401, "Unauthorized\n", "Authorization header too long"},
		{"password of 20 KiB", []string{basic("alice", long)}, 401, "Unauthorized\n", "Authorization header too long"},
		{"password over bcrypt's 72 bytes, right prefix", []string{basic("alice", pwAlice+strings.Repeat("x", 72))}, 401, "Unauthorized\n", "password longer than bcrypt's 72 bytes"},
	}
	for i, c := range cases {
		c.run(t, p, fmt.Sprintf("127.0.2.%d", i+1))
	}
	// The non-UTF-8 name is logged escaped, never raw.
	if logs := p.Logs(); strings.Contains(logs, "\xff") || !strings.Contains(logs, `user=\xff\xfealice`) {
		t.Errorf("non-UTF-8 user name not logged escaped:\n%s", logs)
	}

	c := p.client("")
	for user, pw := range map[string]string{"alice": pwAlice, "bob": pwBob} {
		r := do(t, c, "GET", p.URL+"/metrics", map[string]string{"Authorization": basic(user, pw)})
		if r.Status != 200 || r.Body != upBody {
			t.Errorf("%s with own password: %d %q", user, r.Status, r.Body)
		}
	}
	r := do(t, c, "GET", p.URL+"/proxy/metrics", map[string]string{"Authorization": basic("alice", pwAlice)})
	// Seven wrong pairs and two right ones ran bcrypt; the three over-long
	// ones were refused before it.
	expectMetrics(t, r.Body, map[string]float64{
		`metrics_proxy_auth_bcrypt_checks_total`: 9,
		authOutcome("unauthorized"):              10,
		authOutcome("ok"):                        2,
	})
	if n := len(up.Requests()); n != 2 {
		t.Errorf("upstream got %d requests, want 2", n)
	}
}

// With 50 users, each user's own password works and the next user's password
// under that name does not.
func TestAttackCredentialsManyUsers(t *testing.T) {
	t.Parallel()
	const n = 50
	up := startUpstream(t, nil)
	var users strings.Builder
	pw := make([]string, n)
	for i := range n {
		pw[i] = fmt.Sprintf("pw-%02d-%x", i, i*7919)
		// Cost 4 keeps 150 hashes and checks cheap; the proxy warns about
		// it and serves.
		fmt.Fprintf(&users, "  user%02d: '%s'\n", i, hashPassword(t, pw[i], 4))
	}
	p := startProxy(t, proxyOptions{Upstream: up.URL, Web: func(k *pki) string {
		return tlsBlock(k) + "basic_auth_users:\n" + users.String()
	}})

	good := p.client("")
	for i := range n {
		user := fmt.Sprintf("user%02d", i)
		if r := p.getAs(t, good, "/metrics", user, pw[i]); r.Status != 200 {
			t.Errorf("%s with own password: %d", user, r.Status)
		}
		r := p.getAs(t, p.client(fmt.Sprintf("127.0.3.%d", i+1)), "/metrics", user, pw[(i+1)%n])
		if r.Status != 401 || r.Header.Get("WWW-Authenticate") != challenge {
			t.Errorf("%s with user%02d's password: %d", user, (i+1)%n, r.Status)
		}
	}
	p.User, p.Password = "user00", pw[0]
	expectMetrics(t, p.selfMetrics(t, good), map[string]float64{
		authOutcome("ok"):           n,
		authOutcome("unauthorized"): n,
		authOutcome("throttled"):    0,
	})
	if got := len(up.Requests()); got != n {
		t.Errorf("upstream got %d requests, want %d", got, n)
	}
}

// Password guessing from one address: five free failures, then 429 with
// Retry-After (the seconds left of the 1 s window the fifth opened, then up
// to 60) and no bcrypt for anything but the one check per window;
// repeating a rejected password costs nothing; the address's own known-good
// credential and other addresses are never held back; the failure log is
// rate limited.
func TestAttackCredentialsGuessingThrottled(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, nil)
	// A cost-4 hash, so that the 6th guess surely comes within the 1 s
	// window the 5th opens; the cost does not enter the back-off rule.
	// --web.throttle-delay=0: the 429s come at once, so 40 of them take no
	// time and the window cannot close between the guesses; the delay
	// itself is exercised by the flood and secrets tests.
	p := startProxy(t, proxyOptions{Upstream: up.URL, Args: []string{"--web.throttle-delay=0"}, Web: func(k *pki) string {
		return tlsBlock(k) + usersBlock(defaultUser, hashPassword(t, defaultPassword, 4))
	}})
	const src = "127.0.10.1"
	c := p.client(src)
	get := func(pw string) result {
		t.Helper()
		return p.getAs(t, c, "/metrics", defaultUser, pw)
	}
	// Known good before the guesses: bcrypt accepted it once.
	if r := get(defaultPassword); r.Status != 200 {
		t.Fatalf("right password: %d", r.Status)
	}
	// The attempt that makes 5 failures opens a 1 s window.
	for i := 1; i <= 5; i++ {
		if r := get(fmt.Sprintf("guess-%d", i)); r.Status != 401 {
			t.Fatalf("free guess %d: %d", i, r.Status)
		}
	}
	if r := get("guess-6"); r.Status != 429 || r.Header.Get("Retry-After") != "1" || r.Body != "Too Many Requests\n" {
		t.Fatalf("guess 6: %d, Retry-After %q, body %q; want 429, Retry-After 1", r.Status, r.Header.Get("Retry-After"), r.Body)
	}
	// A repeated wrong guess is throttled too.
	if r := get("guess-1"); r.Status != 429 {
		t.Fatalf("guess 1 again: %d, want 429", r.Status)
	}
	if r := get(defaultPassword); r.Status != 200 || r.Body != upBody {
		t.Fatalf("right password while throttled: %d", r.Status)
	}
	expectMetrics(t, p.selfMetrics(t, c), map[string]float64{
		authOutcome("throttled"):                2,
		"metrics_proxy_auth_clients_in_backoff": 1,
	})

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
	body := p.selfMetrics(t, c) // the known-good credential passes even now
	checks := metric(body, "metrics_proxy_auth_bcrypt_checks_total")
	// One check for the right password, five for the burst, one per 401
	// after it; none for a 429.
	if want := float64(1 + 5 + statuses[401]); checks != want {
		t.Errorf("bcrypt checks = %v, want %v (%v)", checks, want, statuses)
	}
	if got := metric(body, "metrics_proxy_auth_clients_in_backoff"); got != 1 {
		t.Errorf("clients in back-off = %v, want 1", got)
	}
	// Repeating a rejected password: answered from memory, no bcrypt.
	for range 10 {
		if r := get("guess-1"); r.Status != 429 && r.Status != 401 {
			t.Errorf("repeated guess: %d", r.Status)
		}
	}
	if r := get(defaultPassword); r.Status != 200 || r.Body != upBody {
		t.Errorf("right password from the throttled address: %d", r.Status)
	}
	// Another address is not affected (and its known-good credential needs
	// no bcrypt either).
	if r := p.get(t, p.client("127.0.10.2"), "/metrics"); r.Status != 200 {
		t.Errorf("right password from another address: %d", r.Status)
	}
	if got := metric(p.selfMetrics(t, c), "metrics_proxy_auth_bcrypt_checks_total"); got != checks {
		t.Errorf("bcrypt checks after the repeats = %v, want still %v", got, checks)
	}
	// 47 failures; the log holds at most a burst of ten and about one a
	// second after it.
	if n := p.countLog(`msg="authentication failed"`); n >= 47 || n < 10 {
		t.Errorf("%d failed-auth log lines for 47 failures", n)
	}
}

// A bcrypt flood from one address (32 workers sending fresh wrong passwords
// for 3 s) neither stalls a good scraper nor buys the attacker more bcrypt
// checks than auth's schedule allows: the flood only ever gets 401 or 429,
// at least its 5 free failures are 401, and it gets at most 7 checks. Not
// parallel: it is meant to saturate both cores.
func TestAttackCredentialsBcryptFloodOneSource(t *testing.T) {
	const duration = 3 * time.Second
	p, _ := startWithUpstream(t, nil, proxyOptions{}) // cost-10 hash
	good := p.client("")
	if r := p.get(t, good, "/metrics"); r.Status != 200 {
		t.Fatalf("right password: %d", r.Status)
	}
	before := metric(p.selfMetrics(t, good), "metrics_proxy_auth_bcrypt_checks_total")
	if before != 1 {
		t.Fatalf("bcrypt checks before the flood %v, want 1 (the good client's)", before)
	}
	stop := make(chan struct{})
	flood := p.floodWrongPasswords(32, 1<<20, func(int) *http.Client { return p.client("") }, stop)
	scrapes := p.keepScraping(good, 200*time.Millisecond, 1<<20, stop)
	time.Sleep(duration)
	close(stop)
	statuses := flood()
	scrapes().check(t, "good client during the flood", 1)

	for k, n := range statuses {
		if k != "401" && k != "429" {
			t.Errorf("the flood got %s %d times; only 401 and 429 are right", k, n)
		}
	}
	if statuses["401"] < 5 {
		t.Errorf("the flood got %d 401s, want at least the free burst of 5", statuses["401"])
	}
	// auth's schedule: 5 free failures, the 5th opening a 1 s window, each
	// further check doubling it (checks at t5, t5+1 s, t5+3 s, t5+7 s, ...,
	// where t5 is the 5th check, at or after the flood's start). A flood of
	// 3 s therefore gets at most 5 + 2 checks; with the good client's one
	// before it, at most 8 in all.
	total := metric(p.selfMetrics(t, good), "metrics_proxy_auth_bcrypt_checks_total")
	if flood := total - before; flood < 5 || flood > 7 || total > 8 {
		t.Errorf("bcrypt checks: %v in all, %v by the flood; want the flood's between 5 and 7, at most 8 in all", total, flood)
	}
	t.Logf("flood: %v responses; %v bcrypt checks in all", statuses, total)
}

// A bcrypt flood: 32 addresses sending fresh wrong passwords as fast as they
// can while a client that authenticated before scrapes twice a second. Every
// scrape succeeds, the flood only ever gets 401 or 429, and the proxy stays
// small. Not parallel: it is meant to saturate both cores.
func TestAttackCredentialsBcryptFloodDuringScrapes(t *testing.T) {
	p, _ := startWithUpstream(t, nil, proxyOptions{})
	good := p.client("")
	if r := p.get(t, good, "/metrics"); r.Status != 200 {
		t.Fatalf("first scrape: %d", r.Status)
	}
	stop := make(chan struct{})
	flood := p.floodWrongPasswords(32, 200, func(w int) *http.Client { return p.client(fmt.Sprintf("127.0.11.%d", w+1)) }, stop)
	scrapes := p.keepScraping(good, 500*time.Millisecond, 6, nil)()
	close(stop)
	statuses := flood()
	scrapes.check(t, "good client during the flood", 6)
	for k, n := range statuses {
		if k != "401" && k != "429" {
			t.Errorf("flood got %d answers %s", n, k)
		}
	}
	if statuses["429"] == 0 {
		t.Errorf("the flood was never refused with 429: %v", statuses)
	}
	body := p.selfMetrics(t, good)
	if metric(body, authOutcome("busy"))+metric(body, authOutcome("throttled")) != float64(statuses["429"]) {
		t.Errorf("429s %d do not match busy+throttled in:\n%s", statuses["429"], body)
	}
	if rss := rssKiB(t, p.cmd.Process.Pid); rss > 64<<10 {
		t.Errorf("proxy VmRSS %d KiB during a bcrypt flood, want under 64 MiB", rss)
	}
}

// Client certificates authenticate alone (a certificate from another CA, or
// none, fails the TLS handshake, and both failures are counted) or together
// with a password (then each is needed: the certificate alone gets 401).
func TestAttackCredentialsClientCertificates(t *testing.T) {
	t.Parallel()
	mtls := func(k *pki) string {
		return tlsBlock(k) + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: " + k.CAFile + "\n"
	}
	clientWith := func(p *proxy, certs ...tls.Certificate) *http.Client {
		c := p.client("")
		c.Transport.(*http.Transport).TLSClientConfig.Certificates = certs
		return c
	}
	// handshakeRefused asserts that a request fails at TLS with the alert
	// want (TLS 1.3 reports it on the first read).
	handshakeRefused := func(t *testing.T, what string, p *proxy, c *http.Client, hdr map[string]string, want string) {
		t.Helper()
		r, err := try(c, "GET", p.URL+"/metrics", hdr)
		if err == nil {
			t.Fatalf("%s: %d, want a failed handshake", what, r.Status)
		}
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: %v, want the TLS alert %s", what, err, want)
		}
	}

	t.Run("certificate only", func(t *testing.T) {
		p, _ := startWithUpstream(t, nil, proxyOptions{Web: mtls})
		p.waitLog(`msg=listening .* tls=true auth=client-cert`)
		good := clientWith(p, p.PKI.clientCert(t, "prometheus-client"))
		if r := p.getAs(t, good, "/metrics", "", ""); r.Status != 200 || r.Body != upBody {
			t.Fatalf("with a client certificate: %d %.200q", r.Status, r.Body)
		}
		handshakeRefused(t, "without a client certificate", p, clientWith(p), nil, "tls: certificate required")
		other := newPKI(t)
		handshakeRefused(t, "a foreign CA's certificate", p, clientWith(p, other.clientCert(t, "intruder")), nil, "tls: unknown certificate authority")
		// Both refusals are counted; /proxy/metrics needs the certificate only.
		m, _ := scrape(t, good, p.URL+"/proxy/metrics", nil)
		expectMetrics(t, m, map[string]float64{"metrics_proxy_tls_handshake_errors_total": 2})
	})

	t.Run("certificate and password", func(t *testing.T) {
		p, _ := startWithUpstream(t, nil, proxyOptions{Web: func(k *pki) string { return mtls(k) + usersBlock("scraper", defaultHash(t)) }})
		p.waitLog(`msg=listening .* tls=true auth=basic\+client-cert`)
		withCert := clientWith(p, p.PKI.clientCert(t, "prometheus-client"))
		if r := p.getAs(t, withCert, "/metrics", "scraper", defaultPassword); r.Status != 200 {
			t.Fatalf("certificate and password: %d, want 200", r.Status)
		}
		if r := p.getAs(t, withCert, "/metrics", "", ""); r.Status != 401 || r.Header.Get("WWW-Authenticate") != challenge {
			t.Fatalf("certificate without password: %d %q, want 401", r.Status, r.Header.Get("WWW-Authenticate"))
		}
		handshakeRefused(t, "password without a certificate", p, clientWith(p), authHeader("scraper", defaultPassword), "tls: certificate required")
	})
}

// hash-password prints one bcrypt hash of the password on its standard
// input, at cost 10 by default, for passwords up to bcrypt's 72 bytes; a
// longer password, or a cost that check-config would refuse (its --help
// says "10 to 16"), is refused with exit 1 and nothing on standard output.
func TestAttackCredentialsHashPassword(t *testing.T) {
	t.Parallel()
	for _, pw := range []string{"s3cret from stdin", strings.Repeat("x", 72)} {
		code, stdout, stderr := runStdin(t, pw+"\n", "hash-password")
		hash := strings.TrimSuffix(stdout, "\n")
		if code != 0 || strings.Contains(hash, "\n") {
			t.Fatalf("%d-byte password: exit %d, stdout %q, stderr %q", len(pw), code, stdout, stderr)
		}
		if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)); err != nil {
			t.Fatalf("%d-byte password: the printed hash does not verify: %v", len(pw), err)
		}
		if cost, _ := bcrypt.Cost([]byte(hash)); cost != 10 {
			t.Errorf("default cost %d, want 10", cost)
		}
	}
	code, stdout, stderr := runStdin(t, strings.Repeat("x", 73)+"\n", "hash-password")
	if code != 1 || stdout != "" {
		t.Errorf("73-byte password: exit %d, stdout %q; want exit 1 and nothing", code, stdout)
	}
	wantProblems(t, "73-byte password", stderr, problem{"the password is 73 bytes long", "bcrypt uses only the first 72 bytes"})
	for _, cost := range []string{"4", "9"} {
		code, stdout, stderr := runStdin(t, "a fine password\n", "hash-password", "--cost", cost)
		if code != 1 || stdout != "" {
			t.Errorf("--cost %s: exit %d, stdout %q; want exit 1 and nothing", cost, code, stdout)
		}
		wantProblems(t, "--cost "+cost, stderr, problem{"bcrypt cost " + cost, "is outside 10 to 16"})
	}
}
