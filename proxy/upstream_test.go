package proxy

import (
	"cmp"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alloyci/hardened-runner/routes"
)

func TestNewRefusesBadOptions(t *testing.T) {
	for _, c := range []struct {
		name string
		o    Options
		want string // exact error text
	}{
		{"negative timeout", Options{Timeout: -time.Second},
			`upstream timeout -1s is negative; use a positive duration such as 10s`},
		{"negative size", Options{MaxResponseBytes: -1},
			`maximum response size -1 is negative; use a positive number of bytes`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(c.o)
			if err == nil || err.Error() != c.want {
				t.Fatalf("New(%+v) error %v, want %q", c.o, err, c.want)
			}
		})
	}
}

// Without a routes table, the flags' upstream and paths are judged by
// routes.Default (its tests hold every message); New refuses what it
// refuses, word for word.
func TestNewRefusesBadLegacyFlags(t *testing.T) {
	for _, o := range []Options{
		{Upstream: "https://127.0.0.1:9252"},
		{Upstream: "http://u:s3cret@127.0.0.1:9252"},
		{Upstream: "http://192.0.2.1:9252"},
		{AllowedPaths: []string{"/"}},
		{AllowedPaths: []string{"/proxy/"}},
		{AllowedPaths: []string{"/debug/../pprof/"}},
	} {
		paths := o.AllowedPaths
		if paths == nil {
			paths = []string{"/metrics"}
		}
		_, want := routes.Default(cmp.Or(o.Upstream, DefaultUpstream), paths)
		_, err := New(o)
		if want == nil || err == nil || err.Error() != want.Error() {
			t.Errorf("New(%+v) error %v, want routes.Default's %v", o, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error leaks the password: %s", err)
		}
	}
}

func TestNewDefaults(t *testing.T) {
	h, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	rt := h.router.current()
	if n := len(rt.table.Routes); n != 1 {
		t.Fatalf("%d routes, want 1", n)
	}
	s := rt.served[&rt.table.Routes[0]]
	if got := "http://" + s.route.Upstream.Host; got != DefaultUpstream {
		t.Errorf("upstream %s, want %s", got, DefaultUpstream)
	}
	if s.timeout != DefaultTimeout || s.maxBytes != DefaultMaxResponseBytes {
		t.Errorf("timeout %s max %d, want %s %d", s.timeout, s.maxBytes, DefaultTimeout, DefaultMaxResponseBytes)
	}
	for p, want := range map[string]bool{"/metrics": true, "/debug/pprof/": false, "/debug/pprof/heap": false} {
		if _, ok := rt.table.Match(p); ok != want {
			t.Errorf("default routes match %s: %v, want %v", p, ok, want)
		}
	}
	if s.pool.transport.Proxy != nil {
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
		if got, _ := upstreamTimeout(hdr, 10*time.Second); got != c.want {
			t.Errorf("header %q: timeout %s, want %s", c.header, got, c.want)
		}
	}
}
