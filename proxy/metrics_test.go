package proxy

import (
	"fmt"
	"github.com/alloyci/hardened-runner/refusal"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/time/rate"
)

func counterValue(t *testing.T, f *fixture, outcome string) float64 {
	t.Helper()
	return testutil.ToFloat64(f.h.metrics.requests.WithLabelValues(outcome))
}

func TestEveryOutcomeStartsAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := newMetrics(reg, &router{pools: map[string]*pool{}}); err != nil {
		t.Fatal(err)
	}
	want := requestsExposition(nil)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "metrics_proxy_requests_total"); err != nil {
		t.Error(err)
	}
	// A second proxy on the same registry is a wiring mistake, reported.
	if _, err := newMetrics(reg, &router{pools: map[string]*pool{}}); err == nil || !strings.Contains(err.Error(), "give each proxy its own registry") {
		t.Errorf("second registration: err %v", err)
	}
}

func TestDenialOutcomes(t *testing.T) {
	for _, deny := range []string{"throttled", "busy"} {
		f := newFixture(t, Options{Authorizer: fakeAuth{deny: deny}}, nil)
		w := f.serve("GET", "/metrics", nil)
		if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "5" {
			t.Errorf("%s: status %d Retry-After %q, want the Authorizer's 429", deny, w.Code, w.Header().Get("Retry-After"))
		}
		assertOwnHeaders(t, w.Header())
		assertCount(t, f, deny, 1)
		f.up.untouched(t)
	}
	// An outcome outside the label set never becomes a label value.
	f := newFixture(t, Options{Authorizer: fakeAuth{deny: "alice from 10.0.0.1"}}, nil)
	f.serve("GET", "/metrics", nil)
	assertCount(t, f, refusal.Unauthorized.Outcome(), 1)
	if n := testutil.CollectAndCount(f.h.metrics.requests); n != len(allOutcomes()) {
		t.Errorf("%d outcome series, want %d", n, len(allOutcomes()))
	}
}

// The held-back 429s moved to package auth with the semaphore (auth/hold_test.go).

func TestProxyMetricsAreServedLocallyWithExactCounts(t *testing.T) {
	f := newFixture(t, Options{}, nil)
	for _, r := range []struct {
		method, target string
		auth           bool
	}{
		{"GET", "/metrics", true},        // ok
		{"HEAD", "/metrics", true},       // ok
		{"GET", "/metrics", false},       // unauthorized
		{"GET", "/debug/pprof/", false},  // unauthorized
		{"POST", "/metrics", true},       // method_not_allowed
		{"GET", "/../metrics", true},     // bad_request
		{"GET", "//metrics", false},      // bad_request
		{"GET", "/debug/pprof/", true},   // forbidden_path
		{"GET", "/proxy/metrics", false}, // unauthorized
	} {
		var hdr http.Header
		if r.auth {
			hdr = authorized()
		}
		f.serve(r.method, r.target, hdr)
	}
	if n := len(f.up.requests()); n != 2 {
		t.Fatalf("upstream received %d requests, want 2", n)
	}

	resp := authorizedGet(t, f.front(t), "/proxy/metrics")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/proxy/metrics: status %d", resp.StatusCode)
	}
	assertOwnHeaders(t, resp.Header)
	if n := len(f.up.requests()); n != 2 {
		t.Errorf("/proxy/metrics reached the upstream")
	}
	// The scrape of /proxy/metrics is itself counted as ok before it renders.
	for _, line := range []string{
		`metrics_proxy_requests_total{outcome="ok"} 3`,
		`metrics_proxy_requests_total{outcome="rate_limited"} 0`,
		`metrics_proxy_requests_total{outcome="unauthorized"} 3`,
		`metrics_proxy_requests_total{outcome="method_not_allowed"} 1`,
		`metrics_proxy_requests_total{outcome="bad_request"} 2`,
		`metrics_proxy_requests_total{outcome="forbidden_path"} 1`,
		`metrics_proxy_requests_total{outcome="upstream_error"} 0`,
		`metrics_proxy_upstream_request_duration_seconds_count 2`,
	} {
		if !strings.Contains(string(body), line+"\n") {
			t.Errorf("/proxy/metrics lacks %q", line)
		}
	}

	want := requestsExposition(map[string]int{"bad_request": 2, "forbidden_path": 1, "method_not_allowed": 1, "ok": 3, "unauthorized": 3})
	if err := testutil.GatherAndCompare(f.reg, strings.NewReader(want), "metrics_proxy_requests_total"); err != nil {
		t.Error(err)
	}
}

func TestUpstreamFailuresAreCounted(t *testing.T) {
	f := newFixture(t, Options{Upstream: "http://" + freePort(t)}, nil)
	f.serve("GET", "/metrics", authorized())
	assertCount(t, f, refusal.UpstreamError.Outcome(), 1)
	assertCount(t, f, outcomeOK, 0)
	if got := testutil.CollectAndCount(f.h.metrics.duration); got != 1 {
		t.Errorf("duration series %d, want 1", got)
	}

	g := newFixture(t, Options{MaxResponseBytes: 10}, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "more than ten bytes")
	})
	g.serve("GET", "/metrics", authorized())
	assertCount(t, g, refusal.ResponseTooLarge.Outcome(), 1)
}

// rate_limit from the web config: a bucket shared by every client, applied
// after authentication, so anonymous requests cannot spend it and lock out a
// scraper with the right password.
func TestRateLimitFromWebConfig(t *testing.T) {
	l := rate.NewLimiter(rate.Every(time.Hour), 2)
	f := newFixture(t, Options{Authorizer: fakeAuth{}, RateLimiter: func() *rate.Limiter { return l }}, nil)
	for i := range 10 {
		if w := f.serve("GET", "/metrics", nil); w.Code != http.StatusUnauthorized {
			t.Fatalf("anonymous request %d: %d", i, w.Code)
		}
	}
	for i := range 2 {
		if w := f.serve("GET", "/metrics", authorized()); w.Code != http.StatusOK {
			t.Fatalf("authorized request %d after the anonymous ones: %d", i, w.Code)
		}
	}
	w := f.serve("GET", "/metrics", authorized())
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1" || w.Body.String() != "Too Many Requests\n" {
		t.Fatalf("over the limit: %d Retry-After %q body %q", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	assertCount(t, f, refusal.RateLimited.Outcome(), 1)
	if n := len(f.up.requests()); n != 2 {
		t.Fatalf("upstream saw %d requests, want 2", n)
	}
}

// Without authentication (a loopback demo), a web page in a local browser
// could reach the proxy by DNS rebinding, and the proxy rewrites Host, so the
// runner's guard would not see it: the proxy refuses foreign Hosts itself.
func TestLoopbackHostsOnlyWithoutAuthentication(t *testing.T) {
	f := newFixture(t, Options{LoopbackHostsOnly: func() bool { return true }}, nil)
	for _, host := range []string{"attacker.example", "attacker.example:9253", "127.0.0.1.nip.io", ""} {
		r := httptest.NewRequest("GET", "/metrics", nil)
		r.Host = host
		w := httptest.NewRecorder()
		f.h.ServeHTTP(w, r)
		if w.Code != http.StatusMisdirectedRequest {
			t.Errorf("Host %q: %d, want 421", host, w.Code)
		}
	}
	f.up.untouched(t)
	for _, host := range []string{"localhost:9253", "127.0.0.1:9253", "[::1]:9253"} {
		r := httptest.NewRequest("GET", "/metrics", nil)
		r.Header = authorized()
		r.Host = host
		w := httptest.NewRecorder()
		f.h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			t.Errorf("Host %q: %d, want 200", host, w.Code)
		}
	}
}

// requestsExposition is the exact exposition of metrics_proxy_requests_total
// with every outcome at 0 but the given ones: the label set is fixed, so a
// new or missing outcome fails the comparison.
func requestsExposition(nonZero map[string]int) string {
	outcomes := []string{"bad_request", "busy", "client_canceled", "forbidden_path", "forbidden_route", "method_not_allowed", "ok",
		"rate_limited", "response_too_large", "throttled", "unauthorized", "upstream_5xx", "upstream_busy",
		"upstream_error", "upstream_timeout"}
	var b strings.Builder
	b.WriteString("# HELP metrics_proxy_requests_total Requests handled by the metrics proxy, by outcome: ok, unauthorized, throttled, busy, method_not_allowed, bad_request, forbidden_path (no route for the path), forbidden_route (a route this identity may not use; answered like forbidden_path), upstream_error, upstream_timeout, response_too_large, rate_limited (the web config's rate_limit), upstream_busy (no upstream slot before the deadline: the proxy's own 503), upstream_5xx (relayed, the upstream failed), client_canceled (the client went away first).\n")
	b.WriteString("# TYPE metrics_proxy_requests_total counter\n")
	for _, o := range outcomes {
		fmt.Fprintf(&b, "metrics_proxy_requests_total{outcome=%q} %d\n", o, nonZero[o])
	}
	return b.String()
}
