package metricsserver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alloyci/hardened-runner/builds"
	"github.com/alloyci/hardened-runner/runnermetrics"
	"github.com/go-kit/log"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func handler() http.Handler {
	return NewHandler(runnermetrics.NewRegistry(builds.NewTracker(), nil), "metrics.internal", 5)
}

func do(h http.Handler, method, target, host string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	r.Host = host
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

var paths = []string{"/metrics", "/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/goroutine?debug=1",
	"/debug/pprof/cmdline", "/debug/pprof/symbol", "/debug/pprof/allocs", "/nope"}

// A page from attacker.example that rebinds its name to 127.0.0.1 sends its
// own Host: every path must refuse it before doing anything.
func TestHostGuardRefusesForeignHosts(t *testing.T) {
	h := handler()
	for _, host := range []string{"attacker.example", "attacker.example:9252", "127.0.0.1.attacker.example",
		"localhost.attacker.example", "192.0.2.1:9252", "0.0.0.0:9252", "[::]:9252", ""} {
		for _, p := range paths {
			for _, m := range []string{"GET", "HEAD", "POST"} {
				w := do(h, m, p, host)
				if w.Code != http.StatusMisdirectedRequest {
					t.Fatalf("%s %s Host %q: status %d, want 421", m, p, host, w.Code)
				}
			}
		}
	}
}

func TestHostGuardAcceptsLoopbackNames(t *testing.T) {
	h := handler()
	for _, host := range []string{"localhost", "localhost:9252", "LOCALHOST:1", "127.0.0.1", "127.0.0.1:9252",
		"[::1]:9252", "[::1]", "metrics.internal:9252", "Metrics.Internal"} {
		if w := do(h, "GET", "/metrics", host); w.Code != http.StatusOK {
			t.Errorf("Host %q: status %d, want 200", host, w.Code)
		}
	}
}

func TestOnlyGetAndHead(t *testing.T) {
	h := handler()
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"} {
		for _, p := range paths {
			w := do(h, m, p, "127.0.0.1:9252")
			if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
				t.Fatalf("%s %s: status %d Allow %q", m, p, w.Code, w.Header().Get("Allow"))
			}
		}
	}
	if w := do(h, "HEAD", "/metrics", "localhost"); w.Code != http.StatusOK {
		t.Fatalf("HEAD: %d", w.Code)
	}
}

func TestPprofEndpoints(t *testing.T) {
	h := handler()
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/symbol", "/debug/pprof/heap",
		"/debug/pprof/goroutine", "/debug/pprof/allocs", "/debug/pprof/block", "/debug/pprof/mutex",
		"/debug/pprof/threadcreate", "/debug/pprof/profile?seconds=1", "/debug/pprof/trace?seconds=1"} {
		if w := do(h, "GET", p, "localhost"); w.Code != http.StatusOK {
			t.Errorf("GET %s: %d %s", p, w.Code, w.Body)
		}
	}
	if w := do(h, "GET", "/debug/pprof/nosuch", "localhost"); w.Code != http.StatusNotFound {
		t.Errorf("unknown profile: %d", w.Code)
	}
}

// A local caller must not pin the runner for minutes in a profile or trace.
func TestPprofSecondsCapped(t *testing.T) {
	h := handler()
	for _, p := range []string{"/debug/pprof/profile?seconds=600", "/debug/pprof/trace?seconds=6",
		"/debug/pprof/heap?seconds=100000", "/debug/pprof/profile?seconds=1&seconds=600",
		"/debug/pprof/profile?seconds=-1", "/debug/pprof/trace?seconds=1e9", "/debug/pprof/profile?seconds=0"} {
		w := do(h, "GET", p, "localhost")
		if w.Code != http.StatusBadRequest || strings.TrimSpace(w.Body.String()) != "seconds must be a whole number from 1 to 5" {
			t.Errorf("GET %s: %d %q", p, w.Code, w.Body)
		}
	}
}

func TestMetricsExposition(t *testing.T) {
	h := handler()
	w := do(h, "GET", "/metrics", "localhost")
	if w.Code != http.StatusOK {
		t.Fatal(w.Code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string]struct {
		typ    dto.MetricType
		labels string
	}{
		"ci_runner_builds":       {dto.MetricType_GAUGE, "stage,state"},
		"ci_runner_version_info": {dto.MetricType_GAUGE, "architecture,branch,built_at,go_version,name,os,revision,version"},
		"go_goroutines":          {dto.MetricType_GAUGE, ""},
		"go_gc_duration_seconds": {dto.MetricType_SUMMARY, ""},
		"process_open_fds":       {dto.MetricType_GAUGE, ""},
	}
	for name, want := range checks {
		mf := mfs[name]
		if mf == nil {
			t.Errorf("family %s missing", name)
			continue
		}
		if mf.GetType() != want.typ {
			t.Errorf("%s type %v, want %v", name, mf.GetType(), want.typ)
		}
		var labels []string
		for _, l := range mf.Metric[0].Label {
			labels = append(labels, l.GetName())
		}
		if got := strings.Join(labels, ","); got != want.labels {
			t.Errorf("%s labels %q, want %q", name, got, want.labels)
		}
	}
	for name := range mfs {
		if !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") && !strings.HasPrefix(name, "ci_runner_") {
			t.Errorf("undocumented family %s", name)
		}
	}
}

func TestOpenMetricsNegotiation(t *testing.T) {
	r := httptest.NewRequest("GET", "/metrics", nil)
	r.Host = "localhost"
	r.Header.Set("Accept", "application/openmetrics-text;version=1.0.0")
	w := httptest.NewRecorder()
	handler().ServeHTTP(w, r)
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") {
		t.Fatalf("Content-Type %q", ct)
	}
	if !strings.HasSuffix(w.Body.String(), "# EOF\n") {
		t.Fatal("no OpenMetrics EOF marker")
	}
}

type fakeResolver struct{}

func (fakeResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return nil, errors.New("no DNS in tests")
}

func newServer() *Server {
	return New(Options{Gatherer: runnermetrics.NewRegistry(builds.NewTracker(), nil), Resolver: fakeResolver{}})
}

func get(t *testing.T, c *http.Client, url string) int {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestServeMovesAndRefusals(t *testing.T) {
	s := newServer()
	defer s.Shutdown(context.Background())
	ctx := context.Background()
	if err := s.Serve(ctx, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	first := s.Addrs()[0].String()
	if code := get(t, http.DefaultClient, "http://"+first+"/metrics"); code != 200 {
		t.Fatalf("status %d", code)
	}
	// A non-loopback address is refused and the old server keeps serving.
	for _, bad := range []string{":0", "0.0.0.0:0", "[::]:0", "192.0.2.1:0", "not an address"} {
		if err := s.Serve(ctx, bad); err == nil {
			t.Fatalf("Serve(%q) accepted", bad)
		}
		if got := s.Addrs()[0].String(); got != first {
			t.Fatalf("server moved to %s after refusing %q", got, bad)
		}
	}
	if code := get(t, http.DefaultClient, "http://"+first+"/metrics"); code != 200 {
		t.Fatalf("old server not serving: %d", code)
	}
	// Moving to a unix socket closes the TCP port.
	sock := filepath.Join(t.TempDir(), "m.sock")
	if err := s.Serve(ctx, "unix:"+sock); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", first, time.Second); err == nil {
		c.Close()
		t.Fatalf("old address %s still accepts connections", first)
	}
	uc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	if code := get(t, uc, "http://localhost/metrics"); code != 200 {
		t.Fatalf("unix socket: %d", code)
	}
	// Empty disables.
	if err := s.Serve(ctx, ""); err != nil || s.Addrs() != nil {
		t.Fatalf("disable: %v %v", err, s.Addrs())
	}
}

func TestServeOverlappingAddress(t *testing.T) {
	s := newServer()
	defer s.Shutdown(context.Background())
	ctx := context.Background()
	l, _ := net.Listen("tcp4", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := s.Serve(ctx, addr); err != nil {
		t.Fatal(err)
	}
	// The same socket under another spelling: the old server must let go of it.
	if err := s.Serve(ctx, "[::ffff:127.0.0.1]:"+strconv.Itoa(port)); err != nil {
		t.Fatal(err)
	}
	if code := get(t, http.DefaultClient, "http://"+addr+"/metrics"); code != 200 {
		t.Fatalf("status %d", code)
	}
}

// On a unix socket, the "listening" line and Addrs name the socket's final
// path, where clients connect, never the temporary name it was made under.
func TestServeUnixLogsFinalPath(t *testing.T) {
	var logs bytes.Buffer
	s := New(Options{
		Logger:   log.NewLogfmtLogger(log.NewSyncWriter(&logs)),
		Gatherer: runnermetrics.NewRegistry(builds.NewTracker(), nil),
		Resolver: fakeResolver{},
	})
	defer s.Shutdown(context.Background())
	sock := filepath.Join(t.TempDir(), "metrics.sock")
	if err := s.Serve(context.Background(), "unix:"+sock); err != nil {
		t.Fatal(err)
	}
	want := `level=info msg="metrics server listening" addr=unix:` + sock + "\n"
	if got := logs.String(); got != want {
		t.Fatalf("log:\n%s\nwant:\n%s", got, want)
	}
	if a := s.Addrs(); len(a) != 1 || a[0].String() != sock {
		t.Fatalf("Addrs() = %v, want [%s]", a, sock)
	}
}
