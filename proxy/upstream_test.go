package proxy

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNewRefusesBadOptions(t *testing.T) {
	for _, c := range []struct {
		name string
		o    Options
		want string // exact error text
	}{
		{"https upstream", Options{Upstream: "https://127.0.0.1:9252"},
			`upstream "https://127.0.0.1:9252": https is not supported; the runner's metrics server speaks plain http on loopback, use http://127.0.0.1:9252 or a unix: socket`},
		{"other scheme", Options{Upstream: "ftp://127.0.0.1:9252"},
			`upstream "ftp://127.0.0.1:9252": scheme must be http (or use unix:/path for a socket)`},
		{"no scheme", Options{Upstream: "127.0.0.1:9252"},
			`upstream "127.0.0.1:9252" has no scheme; write it as http://127.0.0.1:9252 or unix:/path`},
		{"no scheme, name", Options{Upstream: "localhost:9252"},
			`upstream "localhost:9252" has no scheme; write it as http://localhost:9252 or unix:/path`},
		{"unparsable", Options{Upstream: "http://u:s3cret@[::1"},
			`upstream is not a valid URL; use http://host:port[/prefix] or unix:/path`},
		{"no host", Options{Upstream: "http:///metrics"},
			`upstream "http:///metrics": missing host; use http://host:port, e.g. http://127.0.0.1:9252`},
		{"password redacted", Options{Upstream: "http://u:s3cret@127.0.0.1:9252"},
			`upstream "http://u:xxxxx@127.0.0.1:9252": credentials in the upstream URL are not supported (they would never be sent); remove them`},
		{"query", Options{Upstream: "http://127.0.0.1:9252/?x=1"},
			`upstream "http://127.0.0.1:9252/?x=1": remove the query or fragment; the client's query string is forwarded as is`},
		{"empty port", Options{Upstream: "http://127.0.0.1:"},
			`upstream "http://127.0.0.1:": empty port; use http://host:port`},
		{"dirty prefix", Options{Upstream: "http://127.0.0.1:9252/a/../b"},
			`upstream "http://127.0.0.1:9252/a/../b": path prefix path contains ".."; use a clean prefix such as /runner`},
		{"relative unix", Options{Upstream: "unix:run/m.sock"},
			`upstream "unix:run/m.sock": a unix socket must be given as unix:/absolute/path`},
		{"unix url form", Options{Upstream: "unix:///run/m.sock"},
			`upstream "unix:///run/m.sock": a unix socket must be given as unix:/absolute/path`},
		{"root allowed", Options{AllowedPaths: []string{"/"}},
			`allowed path "/" would forward every path, pprof included; list the paths you need, such as /metrics`},
		{"relative allowed", Options{AllowedPaths: []string{"metrics"}},
			`allowed path "metrics": path does not start with /; list clean absolute paths such as /metrics or /debug/pprof/`},
		{"dotted allowed", Options{AllowedPaths: []string{"/debug/../pprof/"}},
			`allowed path "/debug/../pprof/": path contains ".."; list clean absolute paths such as /metrics or /debug/pprof/`},
		{"shadows self metrics", Options{AllowedPaths: []string{"/proxy/"}},
			`allowed paths cover /proxy/metrics, where the proxy serves its own metrics; remove that entry`},
		{"negative timeout", Options{Timeout: -time.Second},
			`upstream timeout -1s is negative; use a positive duration such as 10s`},
		{"negative size", Options{MaxResponseBytes: -1},
			`maximum response size -1 is negative; use a positive number of bytes`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(c.o)
			if err == nil {
				t.Fatalf("New(%+v) succeeded, want error %q", c.o, c.want)
			}
			if err.Error() != c.want {
				t.Errorf("error:\n got %s\nwant %s", err, c.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error leaks the password: %s", err)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	h, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := h.up.url.String(); got != DefaultUpstream {
		t.Errorf("upstream %s, want %s", got, DefaultUpstream)
	}
	if h.timeout != DefaultTimeout || h.maxBytes != DefaultMaxResponseBytes {
		t.Errorf("timeout %s max %d, want %s %d", h.timeout, h.maxBytes, DefaultTimeout, DefaultMaxResponseBytes)
	}
	if !h.allow.allows("/metrics") || h.allow.allows("/debug/pprof/") || h.allow.allows("/debug/pprof/heap") {
		t.Error("default allowlist must be exactly /metrics")
	}
	if h.up.transport.Proxy != nil {
		t.Error("transport must not take a proxy from the environment")
	}
}

func TestUnixSocketUpstream(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "m.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	rec := &upstreamRecorder{}
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.record(r)
		io.WriteString(w, upstreamBody)
	}))
	up.Listener.Close()
	up.Listener = ln
	up.Start()
	t.Cleanup(up.Close)

	f := newFixture(t, Options{Upstream: "unix:" + sock}, nil)
	w := f.serve("GET", "/metrics", authorized())
	if w.Code != http.StatusOK || w.Body.String() != upstreamBody {
		t.Fatalf("status %d body %q, want 200 with the upstream's body", w.Code, w.Body.String())
	}
	if got := rec.only(t); got.Host != "localhost" || got.URI != "/metrics" {
		t.Errorf("upstream received Host %q URI %q, want localhost /metrics", got.Host, got.URI)
	}
}

// freePort returns a 127.0.0.1 address nothing listens on.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestRefusedUpstreamIs502WithoutDetails(t *testing.T) {
	f := newFixture(t, Options{Upstream: "http://" + freePort(t)}, nil)
	srv := f.front(t)
	resp, body := rawRequest(t, srv.Listener.Addr().String(), "GET /metrics HTTP/1.1\r\nHost: x\r\n"+basicAuthLine()+"\r\n")
	if resp.StatusCode != http.StatusBadGateway || body != "Bad Gateway\n" {
		t.Fatalf("status %d body %q, want 502 %q", resp.StatusCode, body, "Bad Gateway\n")
	}
	for _, leak := range []string{"127.0.0.1", "refused", "dial"} {
		if strings.Contains(body, leak) || strings.Contains(headerString(resp.Header), leak) {
			t.Errorf("answer mentions %q", leak)
		}
	}
	assertOwnHeaders(t, resp.Header)
	logged := f.log.String()
	if !strings.Contains(logged, "level=error") || !strings.Contains(logged, "outcome=upstream_error") || !strings.Contains(logged, "refused") {
		t.Errorf("log lacks the error details:\n%s", logged)
	}
}

func TestScrapeTimeoutHeaderBoundsTheUpstream(t *testing.T) {
	release := make(chan struct{})
	// The upstream answers only when the proxy gives up on it (or at cleanup),
	// so the only way this request ends is the deadline from the header.
	f := newFixture(t, Options{Timeout: time.Hour}, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) })
	srv := f.front(t)
	resp, body := rawRequest(t, srv.Listener.Addr().String(), "GET /metrics HTTP/1.1\r\nHost: x\r\n"+basicAuthLine()+
		"X-Prometheus-Scrape-Timeout-Seconds: 0.2\r\n\r\n")
	if resp.StatusCode != http.StatusGatewayTimeout || body != "Gateway Timeout\n" {
		t.Fatalf("status %d body %q, want 504 %q", resp.StatusCode, body, "Gateway Timeout\n")
	}
	assertOwnHeaders(t, resp.Header)
	if got := f.up.only(t); got.Header.Get("X-Prometheus-Scrape-Timeout-Seconds") != "0.2" {
		t.Errorf("upstream did not receive the scrape timeout header: %v", got.Header)
	}
}

func TestUpstreamTimeoutChoice(t *testing.T) {
	h := &Handler{timeout: 10 * time.Second}
	for _, c := range []struct {
		header string
		want   time.Duration
	}{
		{"", 10 * time.Second},
		{"0.2", 200 * time.Millisecond},
		{"9.5", 9500 * time.Millisecond},
		{"10", 10 * time.Second},
		{"30", 10 * time.Second}, // never longer than Options.Timeout
		{"0", 10 * time.Second},
		{"-1", 10 * time.Second},
		{"NaN", 10 * time.Second},
		{"+Inf", 10 * time.Second},
		{"1e400", 10 * time.Second},
		{"abc", 10 * time.Second},
		{"0x1p-2", 250 * time.Millisecond}, // a valid Go float, still a number
	} {
		hdr := http.Header{}
		if c.header != "" {
			hdr.Set("X-Prometheus-Scrape-Timeout-Seconds", c.header)
		}
		if got := h.upstreamTimeout(hdr); got != c.want {
			t.Errorf("header %q: timeout %s, want %s", c.header, got, c.want)
		}
	}
}
