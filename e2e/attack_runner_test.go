package e2e

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

const (
	misdirected = "misdirected request: this server answers only requests for localhost or a loopback address\n"
	secondsCap  = "seconds must be a whole number from 1 to 30\n"
)

// The runner's server answers 421 to any Host that is not a loopback name or
// literal, on every path and for every method, before anything else (DNS
// rebinding from a local browser).
func TestAttackRunnerHostGuard(t *testing.T) {
	t.Parallel()
	_, addr := startRunner(t, "concurrent = 1\n", "--metrics-server", "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(addr)
	base := "http://" + addr
	c := &http.Client{Timeout: 10 * time.Second}

	foreign := []string{"attacker.example", "attacker.example:" + port, "localhost.attacker.example", "127.0.0.1.nip.io",
		"evil.localhost", "0.0.0.0:" + port, "[::]:" + port, "127.1", "2130706433", "192.0.2.1:" + port}
	paths := []string{"/metrics", "/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/profile?seconds=600", "/nope", "/"}
	methods := []string{"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"}
	for _, host := range foreign {
		for _, path := range paths {
			for _, m := range methods {
				r := do(t, c, m, base+path, map[string]string{"Host": host})
				wantBody := misdirected
				if m == "HEAD" {
					wantBody = ""
				}
				if r.Status != http.StatusMisdirectedRequest || r.Body != wantBody || r.Header.Get("X-Content-Type-Options") != "nosniff" {
					t.Errorf("%s %s Host %q: %d %q", m, path, host, r.Status, r.Body)
				}
			}
		}
	}
	// An empty Host (HTTP/1.1) and no Host at all (HTTP/1.0) are foreign too.
	for _, raw := range []string{
		"GET /metrics HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n",
		"GET /debug/pprof/ HTTP/1.0\r\n\r\n",
	} {
		conn, err := dialerFrom("").Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		one(t, fmt.Sprintf("%q", raw), exchange(t, conn, raw, 10*time.Second), 421, misdirected)
		conn.Close()
	}
	// Loopback names and literals in any spelling are served.
	for _, host := range []string{"localhost", "LOCALHOST:" + port, "localhost.", "127.0.0.1", "127.0.0.1:" + port, "127.0.0.2", "[::1]:" + port, "[::ffff:127.0.0.1]"} {
		if r := do(t, c, "GET", base+"/metrics", map[string]string{"Host": host}); r.Status != 200 || !strings.Contains(r.Body, "ci_runner_builds{") {
			t.Errorf("Host %q: %d", host, r.Status)
		}
	}
	// With a good Host, methods other than GET and HEAD are 405.
	for _, m := range []string{"POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"} {
		r := do(t, c, m, base+"/metrics", nil)
		if r.Status != 405 || r.Header.Get("Allow") != "GET, HEAD" || r.Body != "method not allowed: use GET or HEAD\n" {
			t.Errorf("%s with a loopback Host: %d %q %q", m, r.Status, r.Header.Get("Allow"), r.Body)
		}
	}
}

// pprof's ?seconds= is capped at 30, for every value given and every pprof
// endpoint, so a local caller cannot pin the runner for minutes.
func TestAttackRunnerPprofSecondsCap(t *testing.T) {
	t.Parallel()
	_, addr := startRunner(t, "concurrent = 1\n", "--metrics-server", "127.0.0.1:0")
	c := &http.Client{Timeout: 10 * time.Second}
	for _, q := range []string{
		"/debug/pprof/profile?seconds=600",
		"/debug/pprof/trace?seconds=600",
		"/debug/pprof/profile?seconds=31",
		"/debug/pprof/trace?seconds=0",
		"/debug/pprof/profile?seconds=-1",
		"/debug/pprof/profile?seconds=1.5",
		"/debug/pprof/profile?seconds=1e3",
		"/debug/pprof/profile?seconds=%36%30%30",
		"/debug/pprof/profile?seconds=9999999999999999999999",
		"/debug/pprof/profile?seconds=",
		"/debug/pprof/trace?seconds=5&seconds=600",
		"/debug/pprof/heap?seconds=600",
		"/debug/pprof/allocs?seconds=600",
		"/debug/pprof/goroutine?seconds=600",
	} {
		r := do(t, c, "GET", "http://"+addr+q, nil)
		if r.Status != 400 || r.Body != secondsCap {
			t.Errorf("%s: %d %q", q, r.Status, r.Body)
		}
	}
}

// pprof allowed on purpose through the proxy (--web.allowed-path) is
// served, alongside /metrics, and the runner's cap holds through it: the
// query is forwarded unchanged and the runner's 400 comes back. A foreign
// Host sent to the proxy never reaches the runner.
func TestAttackRunnerPprofCapThroughProxy(t *testing.T) {
	t.Parallel()
	s := startStack(t, proxyOptions{Args: []string{"--web.allowed-path=/metrics", "--web.allowed-path=/debug/pprof/"}})
	c := s.client("")
	if r := s.get(t, c, "/debug/pprof/"); r.Status != 200 || !strings.Contains(r.Body, "goroutine") {
		t.Fatalf("/debug/pprof/: %d %.200q", r.Status, r.Body)
	}
	if r := s.get(t, c, "/metrics"); r.Status != 200 {
		t.Fatalf("/metrics: %d", r.Status)
	}
	for _, path := range []string{"/debug/pprof/profile?seconds=600", "/debug/pprof/trace?seconds=600"} {
		if r := s.get(t, c, path); r.Status != 400 || r.Body != secondsCap {
			t.Errorf("%s through the proxy: %d %q", path, r.Status, r.Body)
		}
	}
	// The proxy states the upstream's own Host.
	hdr := authHeader(s.User, s.Password)
	hdr["Host"] = "attacker.example"
	if r := do(t, c, "GET", s.URL+"/metrics", hdr); r.Status != 200 || !strings.Contains(r.Body, "ci_runner_builds{") {
		t.Errorf("foreign Host through the proxy: %d", r.Status)
	}
}
