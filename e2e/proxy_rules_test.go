package e2e

// One test (or subtest) per rule of metrics-proxy, each against the real
// binaries: the public-door refusal, authentication and its back-off, client
// certificates, the request rules of the reverse proxy, the web config's life
// cycle, the proxy's own metrics, a password flood, and HTTP/2.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/crypto/bcrypt"

	"github.com/alloyci/hardened-runner/auth"
)

// rulesChallenge is the exact WWW-Authenticate of every 401.
const rulesChallenge = `Basic realm="metrics-proxy", charset="UTF-8"`

// rulesUpstreamBody is what the fake upstream serves at /metrics.
const rulesUpstreamBody = "# TYPE fake_upstream_up gauge\nfake_upstream_up 1\n"

// rulesSeen is one request as the fake upstream received it.
type rulesSeen struct {
	Path     string
	RawQuery string
	Header   http.Header
}

// rulesUpstream is a fake runner metrics server on 127.0.0.1 that records every
// request reaching it. It answers gzip when asked (Content-Encoding: gzip),
// sets headers the proxy must not relay (Set-Cookie, X-Upstream-Internal), and
// with ?sleep=3s waits that long (or until the proxy gives up) before answering.
type rulesUpstream struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen []rulesSeen
}

func newRulesUpstream(t *testing.T) *rulesUpstream {
	t.Helper()
	u := &rulesUpstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.seen = append(u.seen, rulesSeen{Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone()})
		u.mu.Unlock()
		if d, err := time.ParseDuration(r.URL.Query().Get("sleep")); err == nil {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Header().Set("Set-Cookie", "upstream-session=secret")
		w.Header().Set("X-Upstream-Internal", "127.0.0.1:9252")
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			io.WriteString(zw, rulesUpstreamBody)
			zw.Close()
			return
		}
		io.WriteString(w, rulesUpstreamBody)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// requests returns a copy of what reached the upstream so far.
func (u *rulesUpstream) requests() []rulesSeen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]rulesSeen(nil), u.seen...)
}

// rulesBasic is the Authorization value for user and password.
func rulesBasic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// rulesDo sends one request through c with optional basic auth and headers
// and returns the response with its whole body.
func rulesDo(t *testing.T, c *http.Client, method, url, user, password string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return resp, string(b)
}

// rulesRaw sends "GET target HTTP/1.1" byte for byte over a fresh TLS
// connection to the stack's proxy, so that no client library cleans the
// target, and returns the response with its body.
func rulesRaw(t *testing.T, s *stack, target string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	addr := strings.TrimPrefix(s.ProxyURL, "https://")
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: s.PKI.Pool, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", target, addr)
	for k, v := range hdr {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s (raw): %v", target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// rulesSelfMetrics reads the proxy's own /proxy/metrics with the stack's
// credentials and parses it.
func rulesSelfMetrics(t *testing.T, s *stack, c *http.Client) map[string]*dto.MetricFamily {
	t.Helper()
	resp, body := s.get(t, c, "/proxy/metrics", s.User, s.Password)
	if resp.StatusCode != 200 {
		t.Fatalf("/proxy/metrics: status %d, body %q", resp.StatusCode, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/proxy/metrics does not parse: %v", err)
	}
	return mfs
}

// rulesValue returns the value of the series of family name with exactly the
// given label pairs ("outcome", "ok", ...), failing the test if it is absent.
func rulesValue(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	mf := mfs[name]
	if mf == nil {
		t.Fatalf("metric family %s missing", name)
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, m := range mf.GetMetric() {
		if len(m.GetLabel()) != len(want) {
			continue
		}
		match := true
		for _, lp := range m.GetLabel() {
			if want[lp.GetName()] != lp.GetValue() {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Untyped != nil:
			return m.GetUntyped().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	t.Fatalf("no series %s%v", name, want)
	return 0
}

// rulesWaitCount waits (at most 20 s) until the process has logged s more
// than n times.
func rulesWaitCount(t *testing.T, p *proc, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for p.countLog(s) <= n {
		if time.Now().After(deadline) {
			t.Fatalf("%q logged %d times, waited for more; log:\n%s", s, p.countLog(s), p.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rulesTLSConfig is a web config serving the stack's certificate (startStack
// replaces %[1]s by the PKI directory) with the given extra lines.
func rulesTLSConfig(extra string) string {
	return "tls_server_config:\n  cert_file: %[1]s/server.crt\n  key_file: %[1]s/server.key\n" + extra
}

// rulesUsers is a basic_auth_users block.
func rulesUsers(user, hash string) string {
	return fmt.Sprintf("basic_auth_users:\n  %s: '%s'\n", user, hash)
}

// rulesFreePort returns a loopback TCP port nobody listens on right now.
func rulesFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// Rule 1: no insecure public door.
func TestProxyRulePublicDoor(t *testing.T) {
	p := newPKI(t)
	hash := hashPassword(t, "door-password", 10)
	tlsBlock := fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n", p.CertFile, p.KeyFile)
	const reachable = "which is reachable from the network, needs TLS and authentication, but "

	for _, tc := range []struct {
		name, config, want string
	}{
		{"users without TLS", rulesUsers("door", hash),
			" has no TLS (tls_server_config with cert_file and key_file); add them to the web config (see web-config.yml.example), or listen on loopback only (--web.listen-address=127.0.0.1:9253)"},
		{"TLS without authentication", tlsBlock,
			" has no authentication (basic_auth_users, or client_auth_type: RequireAndVerifyClientCert with client_ca_file);"},
		{"no web config", "", "no --web.config.file was given;"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"--web.listen-address", "0.0.0.0:0", "--upstream.url", "http://127.0.0.1:9"}
			want := reachable + tc.want
			if tc.config != "" {
				f := filepath.Join(t.TempDir(), "web.yml")
				writeFile(t, f, tc.config)
				args = append(args, "--web.config.file", f)
				want = reachable + f + tc.want
			}
			code, out := run(t, 10*time.Second, "metrics-proxy", args...)
			if code != 1 || !strings.Contains(out, `msg="refusing to start"`) || !strings.Contains(out, want) {
				t.Fatalf("exit %d, want 1 with %q; output:\n%s", code, want, out)
			}
			if strings.Contains(out, "msg=listening") {
				t.Fatalf("it served before refusing; output:\n%s", out)
			}
		})
	}

	t.Run("loopback without TLS starts with a warning", func(t *testing.T) {
		s := startStack(t, stackOptions{NoTLS: true})
		s.Proxy.waitLog(`level=warn .*msg="serving plain HTTP on loopback only: fine for tests and demos, use TLS for anything else"`)
		if !strings.HasPrefix(s.ProxyURL, "http://127.0.0.1:") {
			t.Fatalf("proxy URL %s", s.ProxyURL)
		}
		if resp, body := s.get(t, s.client(), "/metrics", s.User, s.Password); resp.StatusCode != 200 || !strings.Contains(body, "ci_runner_version_info{") {
			t.Fatalf("plain HTTP scrape: %d %.200q", resp.StatusCode, body)
		}
	})

	t.Run("public listener with TLS and users starts", func(t *testing.T) {
		up := newRulesUpstream(t)
		f := filepath.Join(t.TempDir(), "web.yml")
		writeFile(t, f, tlsBlock+rulesUsers("door", hash))
		pr := start(t, "metrics-proxy", "--web.listen-address", "0.0.0.0:0", "--web.config.file", f, "--upstream.url", up.srv.URL)
		port := pr.waitLog(`msg=listening address=\S*:(\d+) tls=true auth=basic`)
		if strings.Contains(pr.Logs(), "plain HTTP") {
			t.Fatalf("warned about plain HTTP; log:\n%s", pr.Logs())
		}
		// Bound to every interface, talked to on loopback only.
		url := "https://127.0.0.1:" + port + "/metrics"
		c := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.Pool}}}
		if resp, body := rulesDo(t, c, "GET", url, "door", "door-password", nil); resp.StatusCode != 200 || body != rulesUpstreamBody {
			t.Fatalf("authenticated: %d %q", resp.StatusCode, body)
		}
		if resp, _ := rulesDo(t, c, "GET", url, "", "", nil); resp.StatusCode != 401 {
			t.Fatalf("anonymous: %d, want 401", resp.StatusCode)
		}

		// An edit that drops the users is refused on reload: the running
		// public door keeps asking for the password.
		writeFile(t, f, tlsBlock)
		pr.waitLog(`msg="Web config reload failed; still serving the last good config".*` +
			regexp.QuoteMeta(f+": removing basic_auth_users needs a restart of metrics-proxy; the running config requires a password"))
		if resp, _ := rulesDo(t, c, "GET", url, "", "", nil); resp.StatusCode != 401 {
			t.Fatalf("anonymous after an edit dropping the users: %d, want 401", resp.StatusCode)
		}
		if resp, _ := rulesDo(t, c, "GET", url, "door", "door-password", nil); resp.StatusCode != 200 {
			t.Fatalf("authenticated after the refused edit: %d, want 200", resp.StatusCode)
		}
	})
}

// Rule 2: basic authentication, its back-off, and the hash rules.
func TestProxyRuleAuthentication(t *testing.T) {
	t.Run("right, wrong and unknown", func(t *testing.T) {
		s := startStack(t, stackOptions{})
		c := s.client()
		if resp, body := s.get(t, c, "/metrics", s.User, s.Password); resp.StatusCode != 200 || !strings.Contains(body, "ci_runner_version_info{") {
			t.Fatalf("right password: %d %.200q", resp.StatusCode, body)
		}
		for _, cred := range [][2]string{{s.User, "wrong password"}, {"nobody", s.Password}} {
			resp, body := s.get(t, c, "/metrics", cred[0], cred[1])
			if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != rulesChallenge || body != "Unauthorized\n" {
				t.Errorf("user %q: %d, WWW-Authenticate %q, body %q", cred[0], resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
			}
		}
	})

	t.Run("back-off after five failures spares the right password", func(t *testing.T) {
		// A cost-4 hash, so that the 6th guess surely comes within the 1 s
		// window the 5th opens; the cost does not enter the back-off rule.
		// The 429s are answered at once (--web.throttle-delay=0): the rule
		// under test is the back-off, and held-back answers would let the
		// window close between the guesses.
		s := startStack(t, stackOptions{WebConfig: rulesTLSConfig(rulesUsers("prometheus", hashPassword(t, "correct horse battery staple", 4))),
			ProxyArgs: []string{"--web.throttle-delay=0"}})
		c := s.client()
		// Known good before the guesses: bcrypt accepted it once.
		if resp, _ := s.get(t, c, "/metrics", s.User, s.Password); resp.StatusCode != 200 {
			t.Fatalf("right password: %d", resp.StatusCode)
		}
		// auth: the attempt that makes 5 failures opens a 1 s window.
		for i := 1; i <= 5; i++ {
			if resp, _ := s.get(t, c, "/metrics", s.User, fmt.Sprintf("guess-%d", i)); resp.StatusCode != 401 {
				t.Fatalf("guess %d: %d, want 401", i, resp.StatusCode)
			}
		}
		resp, body := s.get(t, c, "/metrics", s.User, "guess-6")
		// The seconds left of the 1 s window, rounded up.
		if ra := resp.Header.Get("Retry-After"); resp.StatusCode != 429 || ra != "1" || body != "Too Many Requests\n" {
			t.Fatalf("guess 6: %d, Retry-After %q, body %q; want 429, Retry-After 1", resp.StatusCode, ra, body)
		}
		// A repeated wrong guess is throttled too.
		if resp, _ := s.get(t, c, "/metrics", s.User, "guess-1"); resp.StatusCode != 429 {
			t.Fatalf("guess 1 again: %d, want 429", resp.StatusCode)
		}
		if resp, body := s.get(t, c, "/metrics", s.User, s.Password); resp.StatusCode != 200 || !strings.Contains(body, "ci_runner_version_info{") {
			t.Fatalf("right password while throttled: %d", resp.StatusCode)
		}
		mfs := rulesSelfMetrics(t, s, c)
		if got := rulesValue(t, mfs, "metrics_proxy_auth_attempts_total", "outcome", "throttled"); got != 2 {
			t.Errorf("throttled attempts %v, want 2", got)
		}
		if got := rulesValue(t, mfs, "metrics_proxy_auth_clients_in_backoff"); got != 1 {
			t.Errorf("clients in back-off %v, want 1", got)
		}
	})

	t.Run("check-config refuses example, malformed and cheap hashes", func(t *testing.T) {
		p := newPKI(t)
		tlsBlock := fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n", p.CertFile, p.KeyFile)
		for _, tc := range []struct{ user, hash, want string }{
			{"scraper-example", auth.ExampleHash, `basic_auth_users: user "scraper-example": password hash is the documented example hash, whose password is public`},
			{"scraper-short", "$2a$10$tooshort", `basic_auth_users: user "scraper-short": password hash is not a valid bcrypt hash: it is 15 characters long, a bcrypt hash has 60`},
			{"scraper-plain", "hunter2-plain-password", `basic_auth_users: user "scraper-plain": password hash is not a valid bcrypt hash`},
			{"scraper-cheap", hashPassword(t, "cheap", 4), `user "scraper-cheap": bcrypt cost 4 is below 10; regenerate with metrics-proxy hash-password`},
		} {
			f := filepath.Join(t.TempDir(), "web.yml")
			writeFile(t, f, tlsBlock+rulesUsers(tc.user, tc.hash))
			code, out := run(t, 20*time.Second, "metrics-proxy", "check-config", "--web.config.file", f)
			if code != 1 || !strings.Contains(out, f+": 1 problem(s):") || !strings.Contains(out, tc.want) {
				t.Errorf("%s: exit %d, want 1 with %q; output:\n%s", tc.user, code, tc.want, out)
			}
			if strings.Contains(out, tc.hash) {
				t.Errorf("%s: the output quotes the hash:\n%s", tc.user, out)
			}
		}
		// The control: a cost-10 hash passes.
		f := filepath.Join(t.TempDir(), "web.yml")
		writeFile(t, f, tlsBlock+rulesUsers("scraper-good", hashPassword(t, "good", 10)))
		if code, out := run(t, 20*time.Second, "metrics-proxy", "check-config", "--web.config.file", f); code != 0 || out != f+": OK\n" {
			t.Errorf("cost 10: exit %d, output:\n%s", code, out)
		}
	})

	t.Run("a cheap hash serves with a warning", func(t *testing.T) {
		s := startStack(t, stackOptions{WebConfig: rulesTLSConfig(rulesUsers("scraper-cheap", hashPassword(t, "cheap password", 4)))})
		s.Proxy.waitLog(`level=warn .*msg="Web config weakness" warning=".*user \\"scraper-cheap\\": bcrypt cost 4 is below 10`)
		if resp, _ := s.get(t, s.client(), "/metrics", "scraper-cheap", "cheap password"); resp.StatusCode != 200 {
			t.Fatalf("cost-4 user: %d, want 200", resp.StatusCode)
		}
	})

	t.Run("hash-password", func(t *testing.T) {
		for _, pw := range []string{"s3cret from stdin", strings.Repeat("x", 72)} {
			code, stdout, stderr := rulesRunStdin(t, pw+"\n", "hash-password")
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
		code, stdout, stderr := rulesRunStdin(t, strings.Repeat("x", 73)+"\n", "hash-password")
		want := "metrics-proxy hash-password: the password is 73 bytes long, but bcrypt uses only the first 72 bytes: choose a password of at most 72 bytes\n"
		if code != 1 || stdout != "" || stderr != want {
			t.Fatalf("73-byte password: exit %d, stdout %q, stderr %q; want exit 1 and %q", code, stdout, stderr, want)
		}
	})

	t.Run("hash-password refuses the costs check-config refuses", rulesHashPasswordCostTest)
}

// rulesHashPasswordCostTest: hash-password must not print a hash that
// check-config then refuses (its --help says "10 to 16").
func rulesHashPasswordCostTest(t *testing.T) {
	for _, cost := range []string{"4", "9"} {
		code, stdout, stderr := rulesRunStdin(t, "a fine password\n", "hash-password", "--cost", cost)
		want := "metrics-proxy hash-password: bcrypt cost " + cost + " is outside 10 to 16: use 10 or more (each step doubles the work)\n"
		if code != 1 || stdout != "" || stderr != want {
			t.Errorf("--cost %s: exit %d, stdout %q, stderr %q; want exit 1 and %q", cost, code, stdout, stderr, want)
		}
	}
}

// rulesRunStdin runs metrics-proxy with stdin and returns its exit code,
// standard output and standard error apart.
func rulesRunStdin(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "metrics-proxy"), args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("metrics-proxy %v did not exit within 20s", args)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// Rule 3: client certificates, alone or with basic auth.
func TestProxyRuleClientCertificates(t *testing.T) {
	mtls := "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: %[1]s/ca.crt\n"
	clientWith := func(s *stack, certs ...tls.Certificate) *http.Client {
		return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: s.PKI.Pool, Certificates: certs}}}
	}
	// handshakeRefused asserts that a request fails at TLS because the server
	// wants a certificate (TLS 1.3 reports it on the first read).
	handshakeRefused := func(t *testing.T, s *stack, c *http.Client, user, password string) {
		t.Helper()
		req, _ := http.NewRequest("GET", s.ProxyURL+"/metrics", nil)
		if user != "" {
			req.SetBasicAuth(user, password)
		}
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("without a client certificate: %d, want a failed handshake", resp.StatusCode)
		}
		if !strings.Contains(err.Error(), "tls: certificate required") {
			t.Fatalf("without a client certificate: %v, want the TLS alert certificate required", err)
		}
	}

	t.Run("certificate only", func(t *testing.T) {
		s := startStack(t, stackOptions{WebConfig: rulesTLSConfig(mtls)})
		s.Proxy.waitLog(`msg=listening .* tls=true auth=client-cert`)
		good := clientWith(s, s.PKI.clientCert(t, "prometheus-client"))
		if resp, body := s.get(t, good, "/metrics", "", ""); resp.StatusCode != 200 || !strings.Contains(body, "ci_runner_version_info{") {
			t.Fatalf("with a client certificate: %d %.200q", resp.StatusCode, body)
		}
		handshakeRefused(t, s, clientWith(s), "", "")
		// A certificate from another CA is refused at TLS too.
		other := newPKI(t)
		resp, err := clientWith(s, other.clientCert(t, "intruder")).Get(s.ProxyURL + "/metrics")
		if err == nil {
			resp.Body.Close()
			t.Fatalf("a foreign CA's certificate: %d, want a failed handshake", resp.StatusCode)
		}
		if !strings.Contains(err.Error(), "tls: unknown certificate authority") {
			t.Fatalf("a foreign CA's certificate: %v", err)
		}
		// Both refusals are counted; /proxy/metrics needs the certificate only.
		resp, body := s.get(t, good, "/proxy/metrics", "", "")
		if resp.StatusCode != 200 || !strings.Contains(body, "\nmetrics_proxy_tls_handshake_errors_total 2\n") {
			t.Fatalf("/proxy/metrics: %d, want 200 with metrics_proxy_tls_handshake_errors_total 2; body:\n%s", resp.StatusCode, body)
		}
	})

	t.Run("certificate and password", func(t *testing.T) {
		hash := hashPassword(t, "both", 10)
		s := startStack(t, stackOptions{WebConfig: rulesTLSConfig(mtls + rulesUsers("scraper", hash))})
		s.Proxy.waitLog(`msg=listening .* tls=true auth=basic\+client-cert`)
		withCert := clientWith(s, s.PKI.clientCert(t, "prometheus-client"))
		if resp, _ := s.get(t, withCert, "/metrics", "scraper", "both"); resp.StatusCode != 200 {
			t.Fatalf("certificate and password: %d, want 200", resp.StatusCode)
		}
		resp, _ := s.get(t, withCert, "/metrics", "", "")
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != rulesChallenge {
			t.Fatalf("certificate without password: %d %q, want 401", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
		handshakeRefused(t, s, clientWith(s), "scraper", "both")
	})
}

// Rule 4: what the reverse proxy forwards, and what it refuses.
func TestProxyRuleRequests(t *testing.T) {
	t.Run("methods, allowlist and path tricks", func(t *testing.T) {
		s := startStack(t, stackOptions{})
		c := s.client()
		authz := map[string]string{"Authorization": rulesBasic(s.User, s.Password)}
		for _, user := range []string{s.User, ""} {
			resp, body := rulesDo(t, c, "POST", s.ProxyURL+"/metrics", user, s.Password, nil)
			if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" || body != "method not allowed\n" {
				t.Errorf("POST (user %q): %d, Allow %q, body %q", user, resp.StatusCode, resp.Header.Get("Allow"), body)
			}
		}
		if resp, body := rulesDo(t, c, "HEAD", s.ProxyURL+"/metrics", s.User, s.Password, nil); resp.StatusCode != 200 || body != "" {
			t.Errorf("HEAD /metrics: %d, body %q; want 200 without a body", resp.StatusCode, body)
		}
		if resp, _ := s.get(t, c, "/debug/pprof/", s.User, s.Password); resp.StatusCode != 404 {
			t.Errorf("/debug/pprof/ authenticated, default allowlist: %d, want 404", resp.StatusCode)
		}
		if resp, _ := s.get(t, c, "/debug/pprof/", "", ""); resp.StatusCode != 401 {
			t.Errorf("/debug/pprof/ anonymous: %d, want 401", resp.StatusCode)
		}
		for _, target := range []string{"/metrics/../debug/pprof/", "//debug/pprof/", "/metrics/%2e%2e/debug/pprof/", "/./metrics"} {
			resp, body := rulesRaw(t, s, target, authz)
			if resp.StatusCode != 400 || body != "bad request\n" {
				t.Errorf("GET %s: %d %q, want 400", target, resp.StatusCode, body)
			}
		}
		// The control: the same raw request for /metrics is served.
		if resp, _ := rulesRaw(t, s, "/metrics", authz); resp.StatusCode != 200 {
			t.Errorf("GET /metrics (raw): %d", resp.StatusCode)
		}
	})

	t.Run("pprof when allowed on purpose", func(t *testing.T) {
		s := startStack(t, stackOptions{ProxyArgs: []string{"--web.allowed-path=/metrics", "--web.allowed-path=/debug/pprof/"}})
		c := s.client()
		if resp, body := s.get(t, c, "/debug/pprof/", s.User, s.Password); resp.StatusCode != 200 || !strings.Contains(body, "goroutine") {
			t.Fatalf("/debug/pprof/: %d %.200q", resp.StatusCode, body)
		}
		if resp, _ := s.get(t, c, "/metrics", s.User, s.Password); resp.StatusCode != 200 {
			t.Fatalf("/metrics: %d", resp.StatusCode)
		}
	})

	t.Run("headers in and out", func(t *testing.T) {
		up := newRulesUpstream(t)
		s := startStack(t, stackOptions{Upstream: up.srv.URL})
		resp, body := rulesDo(t, s.client(), "GET", s.ProxyURL+"/metrics?x=1", s.User, s.Password, map[string]string{
			"Cookie":                              "session=let-me-in",
			"Accept":                              "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
			"Accept-Encoding":                     "gzip",
			"X-Prometheus-Scrape-Timeout-Seconds": "9",
			"X-Forwarded-For":                     "192.0.2.1",
		})
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if got := resp.Header.Get("Content-Type"); got != "text/plain; version=0.0.4; charset=utf-8" {
			t.Errorf("Content-Type %q", got)
		}
		if got := resp.Header.Get("Content-Encoding"); got != "gzip" {
			t.Errorf("Content-Encoding %q, want gzip", got)
		}
		if zr, err := gzip.NewReader(strings.NewReader(body)); err != nil {
			t.Errorf("body is not gzip: %v", err)
		} else if plain, _ := io.ReadAll(zr); string(plain) != rulesUpstreamBody {
			t.Errorf("body %q", plain)
		}
		for _, h := range []string{"Set-Cookie", "X-Upstream-Internal"} {
			if v := resp.Header.Get(h); v != "" {
				t.Errorf("upstream header %s relayed: %q", h, v)
			}
		}
		seen := up.requests()
		if len(seen) != 1 || seen[0].Path != "/metrics" || seen[0].RawQuery != "x=1" {
			t.Fatalf("upstream saw %+v, want one GET /metrics?x=1", seen)
		}
		h := seen[0].Header
		for _, k := range []string{"Authorization", "Cookie", "X-Forwarded-For", "Forwarded"} {
			if v, ok := h[k]; ok {
				t.Errorf("%s reached the upstream: %q", k, v)
			}
		}
		for k, want := range map[string]string{
			"Accept":                              "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
			"Accept-Encoding":                     "gzip",
			"X-Prometheus-Scrape-Timeout-Seconds": "9",
		} {
			if got := h.Get(k); got != want {
				t.Errorf("upstream got %s %q, want %q", k, got, want)
			}
		}
	})

	t.Run("scrape timeout shortens the wait", func(t *testing.T) {
		up := newRulesUpstream(t)
		s := startStack(t, stackOptions{Upstream: up.srv.URL})
		resp, body := rulesDo(t, s.client(), "GET", s.ProxyURL+"/metrics?sleep=3s", s.User, s.Password,
			map[string]string{"X-Prometheus-Scrape-Timeout-Seconds": "0.5"})
		if resp.StatusCode != 504 || body != "upstream timed out\n" {
			t.Fatalf("%d %q, want 504", resp.StatusCode, body)
		}
	})

	t.Run("upstream down", func(t *testing.T) {
		s := startStack(t, stackOptions{Upstream: fmt.Sprintf("http://127.0.0.1:%d", rulesFreePort(t))})
		resp, body := s.get(t, s.client(), "/metrics", s.User, s.Password)
		if resp.StatusCode != 502 || body != "upstream unavailable\n" {
			t.Fatalf("%d %q, want 502", resp.StatusCode, body)
		}
		for _, leak := range []string{"127.0.0.1", "refused"} {
			if strings.Contains(body, leak) {
				t.Errorf("the 502 body says %q: %q", leak, body)
			}
		}
		s.Proxy.waitLog(`msg="upstream request failed" outcome=upstream_error`)
	})
}

// Rule 5: the web config's life cycle: SIGHUP, a broken edit, a new password,
// a rotated certificate.
func TestProxyRuleConfigLifecycle(t *testing.T) {
	s := startStack(t, stackOptions{})
	c := s.client()
	if resp, _ := s.get(t, c, "/metrics", s.User, s.Password); resp.StatusCode != 200 {
		t.Fatalf("right password: %d", resp.StatusCode)
	}

	// SIGHUP with nothing changed reloads once and succeeds.
	s.Proxy.cmd.Process.Signal(syscall.SIGHUP)
	s.Proxy.waitLog(`msg="SIGHUP: web config reloaded"`)
	mfs := rulesSelfMetrics(t, s, c)
	if got := rulesValue(t, mfs, "metrics_proxy_config_reloads_total", "result", "success"); got != 1 {
		t.Errorf("successful reloads %v after one SIGHUP, want 1", got)
	}

	// A broken edit is seen by the watcher, refused, and the old config serves.
	const failed = "Web config reload failed"
	writeFile(t, s.WebConfig, "tls_server_config:\n  cert_file: [unclosed\n")
	s.Proxy.waitLog(failed)
	if resp, _ := s.get(t, c, "/metrics", s.User, s.Password); resp.StatusCode != 200 {
		t.Fatalf("right password after a broken edit: %d", resp.StatusCode)
	}
	if resp, _ := s.get(t, s.client(), "/metrics", s.User, s.Password); resp.StatusCode != 200 {
		t.Fatalf("right password on a new connection after a broken edit: %d", resp.StatusCode)
	}
	mfs = rulesSelfMetrics(t, s, c)
	if got := rulesValue(t, mfs, "metrics_proxy_config_last_reload_successful"); got != 0 {
		t.Errorf("metrics_proxy_config_last_reload_successful %v after a broken edit, want 0", got)
	}
	// SIGHUP tries the broken file again and refuses it again.
	n := s.Proxy.countLog(failed)
	s.Proxy.cmd.Process.Signal(syscall.SIGHUP)
	rulesWaitCount(t, s.Proxy, failed, n)
	if strings.Count(s.Proxy.Logs(), `msg="SIGHUP: web config reloaded"`) != 1 {
		t.Errorf("SIGHUP claims to have reloaded the broken file; log:\n%s", s.Proxy.Logs())
	}

	// A new password replaces the old one.
	const reloaded = `msg="Web config reloaded"`
	n = s.Proxy.countLog(reloaded)
	newPassword := "a brand new password"
	writeFile(t, s.WebConfig, fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n", s.PKI.CertFile, s.PKI.KeyFile)+
		rulesUsers(s.User, hashPassword(t, newPassword, 10)))
	rulesWaitCount(t, s.Proxy, reloaded, n)
	// The store logs "reloaded" just before it hands the users to the
	// verifier, so the old (known-good) password may pass a moment longer;
	// it costs nothing to ask again.
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, _ := s.get(t, c, "/metrics", s.User, s.Password)
		if resp.StatusCode == 200 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		if resp.StatusCode != 401 {
			t.Errorf("old password after the change: %d, want 401", resp.StatusCode)
		}
		break
	}
	if resp, _ := s.get(t, c, "/metrics", s.User, newPassword); resp.StatusCode != 200 {
		t.Fatalf("new password: %d, want 200", resp.StatusCode)
	}
	s.Password = newPassword
	mfs = rulesSelfMetrics(t, s, c)
	if got := rulesValue(t, mfs, "metrics_proxy_config_last_reload_successful"); got != 1 {
		t.Errorf("metrics_proxy_config_last_reload_successful %v after a good edit, want 1", got)
	}

	// A rotated certificate is served to the next connection.
	addr := strings.TrimPrefix(s.ProxyURL, "https://")
	served := func() *big.Int {
		t.Helper()
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: s.PKI.Pool})
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber
	}
	oldSerial := served()
	certFile, _ := s.PKI.issue(t, "server", time.Now().Add(-time.Hour), time.Now().Add(48*time.Hour), x509.ExtKeyUsageServerAuth)
	newSerial := rulesSerial(t, certFile)
	if newSerial.Cmp(oldSerial) == 0 {
		t.Fatal("the new certificate has the old serial")
	}
	deadline = time.Now().Add(20 * time.Second)
	for served().Cmp(newSerial) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("still serving serial %v, want %v; log:\n%s", served(), newSerial, s.Proxy.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if resp, _ := s.get(t, s.client(), "/metrics", s.User, s.Password); resp.StatusCode != 200 {
		t.Fatalf("scrape over the new certificate: %d", resp.StatusCode)
	}
	mfs = rulesSelfMetrics(t, s, s.client())
	if got := rulesValue(t, mfs, "metrics_proxy_config_last_reload_successful"); got != 1 {
		t.Errorf("metrics_proxy_config_last_reload_successful %v after the rotation, want 1", got)
	}
	leaf := rulesLeaf(t, certFile)
	if got := rulesValue(t, mfs, "metrics_proxy_tls_certificate_not_after_seconds"); got != float64(leaf.NotAfter.Unix()) {
		t.Errorf("metrics_proxy_tls_certificate_not_after_seconds %v, want the new certificate's %d", got, leaf.NotAfter.Unix())
	}
}

func rulesLeaf(t *testing.T, certFile string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s holds no PEM", certFile)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

func rulesSerial(t *testing.T, certFile string) *big.Int {
	t.Helper()
	return rulesLeaf(t, certFile).SerialNumber
}

// Rule 6: the proxy's own metrics: behind auth, never forwarded, exact counts.
func TestProxyRuleOwnMetrics(t *testing.T) {
	up := newRulesUpstream(t)
	s := startStack(t, stackOptions{Upstream: up.srv.URL})
	c := s.client()

	resp, _ := s.get(t, c, "/proxy/metrics", "", "") // 1: unauthorized
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != rulesChallenge {
		t.Fatalf("/proxy/metrics anonymous: %d, want 401", resp.StatusCode)
	}
	for i := 0; i < 2; i++ { // 2, 3: ok (bcrypt, then cached)
		if resp, body := s.get(t, c, "/metrics", s.User, s.Password); resp.StatusCode != 200 || body != rulesUpstreamBody {
			t.Fatalf("/metrics: %d %q", resp.StatusCode, body)
		}
	}
	if resp, _ := s.get(t, c, "/metrics", s.User, "wrong"); resp.StatusCode != 401 { // 4: unauthorized (bcrypt)
		t.Fatalf("wrong password: %d", resp.StatusCode)
	}
	if resp, _ := rulesDo(t, c, "POST", s.ProxyURL+"/metrics", s.User, s.Password, nil); resp.StatusCode != 405 { // 5: method_not_allowed
		t.Fatalf("POST: %d", resp.StatusCode)
	}
	if resp, _ := s.get(t, c, "/debug/pprof/", s.User, s.Password); resp.StatusCode != 404 { // 6: forbidden_path (cached)
		t.Fatalf("/debug/pprof/: %d", resp.StatusCode)
	}
	if resp, _ := rulesRaw(t, s, "//metrics", nil); resp.StatusCode != 400 { // 7: bad_request, before auth
		t.Fatalf("//metrics: %d", resp.StatusCode)
	}
	mfs := rulesSelfMetrics(t, s, c) // 8: ok (cached), counted before it is served

	for outcome, want := range map[string]float64{
		"ok": 3, "unauthorized": 2, "method_not_allowed": 1, "forbidden_path": 1, "bad_request": 1,
		"throttled": 0, "busy": 0, "upstream_error": 0, "upstream_timeout": 0, "response_too_large": 0,
	} {
		if got := rulesValue(t, mfs, "metrics_proxy_requests_total", "outcome", outcome); got != want {
			t.Errorf(`metrics_proxy_requests_total{outcome=%q} = %v, want %v`, outcome, got, want)
		}
	}
	for outcome, want := range map[string]float64{"ok": 1, "ok_cached": 3, "unauthorized": 2, "throttled": 0, "busy": 0} {
		if got := rulesValue(t, mfs, "metrics_proxy_auth_attempts_total", "outcome", outcome); got != want {
			t.Errorf(`metrics_proxy_auth_attempts_total{outcome=%q} = %v, want %v`, outcome, got, want)
		}
	}
	for name, want := range map[string]float64{
		"metrics_proxy_auth_bcrypt_checks_total":          2,
		"metrics_proxy_upstream_request_duration_seconds": 2, // sample count
		"metrics_proxy_tls_handshake_errors_total":        0,
		"metrics_proxy_config_last_reload_successful":     1,
		"metrics_proxy_auth_clients_in_backoff":           0,
	} {
		if got := rulesValue(t, mfs, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if mf := mfs["metrics_proxy_build_info"]; mf == nil || len(mf.GetMetric()) != 1 || mf.GetMetric()[0].GetGauge().GetValue() != 1 {
		t.Errorf("metrics_proxy_build_info: %v, want one series of value 1", mf)
	}
	seen := up.requests()
	if len(seen) != 2 {
		t.Fatalf("upstream saw %d requests, want the 2 allowed scrapes: %+v", len(seen), seen)
	}
	for _, r := range seen {
		if r.Path != "/metrics" {
			t.Errorf("upstream saw %s", r.Path)
		}
	}
}

// Rule 7: a short wrong-password flood neither stalls a good scraper nor buys
// the attacker more bcrypt checks than auth's schedule allows.
func TestProxyRuleFloodKeepsScrapesFlowing(t *testing.T) {
	const (
		workers  = 32
		duration = 3 * time.Second
	)
	s := startStack(t, stackOptions{}) // cost-10 hash
	good := s.client()
	if resp, _ := s.get(t, good, "/metrics", s.User, s.Password); resp.StatusCode != 200 {
		t.Fatalf("right password: %d", resp.StatusCode)
	}
	before := rulesValue(t, rulesSelfMetrics(t, s, good), "metrics_proxy_auth_bcrypt_checks_total")
	if before != 1 {
		t.Fatalf("bcrypt checks before the flood %v, want 1 (the good client's)", before)
	}

	var (
		mu       sync.Mutex
		statuses = map[int]int{}
		errs     []error
		wg       sync.WaitGroup
	)
	end := time.Now().Add(duration)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := s.client()
			defer c.CloseIdleConnections()
			for i := 0; time.Now().Before(end); i++ {
				req, _ := http.NewRequest("GET", s.ProxyURL+"/metrics", nil)
				req.SetBasicAuth(s.User, fmt.Sprintf("flood-%d-%d", w, i))
				resp, err := c.Do(req)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					statuses[resp.StatusCode]++
				}
				mu.Unlock()
				if err != nil {
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	scrapes := 0
	for time.Now().Before(end) {
		resp, body := s.get(t, good, "/metrics", s.User, s.Password)
		if resp.StatusCode != 200 || !strings.Contains(body, "ci_runner_version_info{") {
			t.Errorf("good scrape %d during the flood: %d", scrapes, resp.StatusCode)
		}
		scrapes++
		time.Sleep(200 * time.Millisecond)
	}
	wg.Wait()

	if len(errs) > 0 {
		t.Errorf("%d flood requests failed, first: %v", len(errs), errs[0])
	}
	for code := range statuses {
		if code != 401 && code != 429 {
			t.Errorf("the flood got %d (%d times); only 401 and 429 are right", code, statuses[code])
		}
	}
	if statuses[401] < 5 {
		t.Errorf("the flood got %d 401s, want at least the free burst of 5", statuses[401])
	}
	// auth's schedule: 5 free failures, the 5th opening a 1 s window, each
	// further check doubling it (checks at t5, t5+1 s, t5+3 s, t5+7 s, ...,
	// where t5 is the 5th check, at or after the flood's start). A flood of
	// 3 s therefore gets at most 5 + 2 checks; with the good client's one
	// before it, at most 8 in all.
	mfs := rulesSelfMetrics(t, s, good)
	total := rulesValue(t, mfs, "metrics_proxy_auth_bcrypt_checks_total")
	if flood := total - before; flood < 5 || flood > 7 || total > 8 {
		t.Errorf("bcrypt checks: %v in all, %v by the flood; want the flood's between 5 and 7, at most 8 in all", total, flood)
	}
	t.Logf("flood: %v responses; %d good scrapes; %v bcrypt checks in all", statuses, scrapes, total)
}

// Rule 8: the same answers over HTTP/2.
func TestProxyRuleHTTP2(t *testing.T) {
	s := startStack(t, stackOptions{})
	h2 := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: s.PKI.Pool}, ForceAttemptHTTP2: true}}
	check := func(method, path, user string, want int) *http.Response {
		t.Helper()
		resp, _ := rulesDo(t, h2, method, s.ProxyURL+path, user, s.Password, nil)
		if resp.ProtoMajor != 2 {
			t.Fatalf("%s %s: %s, want HTTP/2", method, path, resp.Proto)
		}
		if resp.StatusCode != want {
			t.Errorf("%s %s (user %q): %d, want %d", method, path, user, resp.StatusCode, want)
		}
		return resp
	}
	if resp := check("GET", "/metrics", "", 401); resp.Header.Get("WWW-Authenticate") != rulesChallenge {
		t.Errorf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
	}
	check("GET", "/metrics", s.User, 200)
	if resp := check("POST", "/metrics", s.User, 405); resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("Allow %q", resp.Header.Get("Allow"))
	}
	// net/http does not clean the path: it reaches the proxy as sent.
	check("GET", "/metrics/../debug/pprof/", s.User, 400)
	check("GET", "/debug/pprof/", s.User, 404)

	// http2: false in the web config: the same client gets HTTP/1.1.
	s1 := startStack(t, stackOptions{WebConfig: rulesTLSConfig("http_server_config:\n  http2: false\n" +
		rulesUsers("prometheus", hashPassword(t, "correct horse battery staple", 10)))})
	h1 := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: s1.PKI.Pool}, ForceAttemptHTTP2: true}}
	if resp, _ := s1.get(t, h1, "/metrics", s1.User, s1.Password); resp.StatusCode != 200 || resp.ProtoMajor != 1 {
		t.Errorf("http2: false: %d over %s, want 200 over HTTP/1.1", resp.StatusCode, resp.Proto)
	}
}
