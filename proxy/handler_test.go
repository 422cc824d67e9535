package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"github.com/alloyci/hardened-runner/refusal"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/alloyci/hardened-runner/access"
	"github.com/alloyci/hardened-runner/internal/logtest"
)

// syncBuffer captures log output from concurrent goroutines.
type syncBuffer = logtest.Buffer

// Test credentials accepted by fakeAuth.
const (
	testUser = "prometheus"
	testPass = "correct horse"
)

// seen is one request as the upstream received it.
type seen struct {
	Method string
	URI    string // RequestURI: path and query exactly as sent
	Host   string
	Header http.Header
	Body   []byte
}

// upstreamRecorder is a fake runner metrics server that records every request.
type upstreamRecorder struct {
	mu   sync.Mutex
	reqs []seen
}

func (u *upstreamRecorder) record(r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	defer u.mu.Unlock()
	u.reqs = append(u.reqs, seen{Method: r.Method, URI: r.RequestURI, Host: r.Host, Header: r.Header.Clone(), Body: body})
}

func (u *upstreamRecorder) requests() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.reqs)
}

// only returns the single request the upstream received, failing otherwise.
func (u *upstreamRecorder) only(t *testing.T) seen {
	t.Helper()
	reqs := u.requests()
	if len(reqs) != 1 {
		t.Fatalf("upstream received %d requests, want exactly 1: %+v", len(reqs), reqs)
	}
	return reqs[0]
}

func (u *upstreamRecorder) untouched(t *testing.T) {
	t.Helper()
	if reqs := u.requests(); len(reqs) != 0 {
		t.Fatalf("upstream received %d requests, want none: %+v", len(reqs), reqs)
	}
}

const upstreamBody = "ci_runner_builds{stage=\"build\"} 1\n"

// newUpstream starts a recording upstream on 127.0.0.1. handle answers after
// recording; nil answers a small metrics page.
func newUpstream(t *testing.T, handle http.HandlerFunc) (*upstreamRecorder, *httptest.Server) {
	t.Helper()
	rec := &upstreamRecorder{}
	if handle == nil {
		handle = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			io.WriteString(w, upstreamBody)
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.record(r)
		handle(w, r)
	}))
	t.Cleanup(srv.Close)
	return rec, srv
}

// fakeAuth accepts testUser/testPass; other requests are refused with deny
// ("unauthorized" when empty), the way auth.Verifier answers.
type fakeAuth struct{ deny string }

func (a fakeAuth) Authorize(r *http.Request) Decision {
	if u, p, ok := r.BasicAuth(); ok && u == testUser && p == testPass {
		return decision{allowed: true, outcome: "ok", user: u}
	}
	if a.deny != "" {
		return decision{outcome: a.deny}
	}
	return decision{outcome: "unauthorized"}
}

type decision struct {
	allowed bool
	outcome string
	user    string
}

func (d decision) Allowed() bool   { return d.allowed }
func (d decision) Outcome() string { return d.outcome }
func (d decision) Identity() access.Identity {
	return access.Identity{User: d.user}
}
func (d decision) WriteError(w http.ResponseWriter, _ *http.Request) {
	if d.outcome == "unauthorized" {
		w.Header().Set("WWW-Authenticate", `Basic realm="metrics"`)
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, "unauthorized\n")
		return
	}
	w.Header().Set("Retry-After", "5")
	w.WriteHeader(http.StatusTooManyRequests)
	io.WriteString(w, "Too Many Requests\n")
}

// fixture is a proxy in front of a recording upstream.
type fixture struct {
	h   *Handler
	reg *prometheus.Registry
	up  *upstreamRecorder
	log *syncBuffer
}

// newFixture builds a proxy to a recording upstream (unless o.Upstream is set)
// with fakeAuth, a fresh registry served at /proxy/metrics, and a logger.
func newFixture(t *testing.T, o Options, handle http.HandlerFunc) *fixture {
	t.Helper()
	f := &fixture{reg: prometheus.NewRegistry(), log: &syncBuffer{}}
	if o.Upstream == "" {
		var srv *httptest.Server
		f.up, srv = newUpstream(t, handle)
		o.Upstream = srv.URL
	}
	if o.Authorizer == nil {
		o.Authorizer = fakeAuth{}
	}
	o.Registerer, o.Gatherer = f.reg, f.reg
	o.Logger = log.NewLogfmtLogger(f.log)
	h, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(h.CloseIdleConnections)
	f.h = h
	return f
}

// front serves the proxy on 127.0.0.1 the way cmd/metrics-proxy does (minus
// TLS), with Go's built-in "OPTIONS *" answer disabled as cmd must do.
func (f *fixture) front(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(f.h)
	srv.Config.DisableGeneralOptionsHandler = true
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// serve runs one crafted request through the handler. target is the raw
// request target; the request is built by hand so that nothing normalises it.
func (f *fixture) serve(method, target string, hdr http.Header) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Method = method
	r.RequestURI = target
	if u, err := url.ParseRequestURI(target); err == nil {
		r.URL = u
	} else {
		r.URL = &url.URL{Path: target}
	}
	for k, v := range hdr {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

// authorized returns a header with the test credentials.
func authorized() http.Header {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(testUser, testPass)
	return r.Header
}

// rawRequest writes req byte for byte to addr and reads one response, so the
// request target reaches the server exactly as an attacker would send it.
func rawRequest(t *testing.T, addr, req string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A safety net against a hung test, not an assertion on time.
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading response to %q: %v", req, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return resp, string(body)
}

// basicAuthLine is the Authorization header line for the test credentials.
func basicAuthLine() string { return "Authorization: " + authorized().Get("Authorization") + "\r\n" }

// assertOwnHeaders checks the headers on every answer the proxy writes itself.
func assertOwnHeaders(t *testing.T, h http.Header) {
	t.Helper()
	if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
	}
	if got := h.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
}

func TestMethodsOtherThanGetAndHeadAre405(t *testing.T) {
	f := newFixture(t, Options{AllowedPaths: []string{"/metrics", "/debug/pprof/"}}, nil)
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "PROPFIND", "get"} {
		t.Run(m, func(t *testing.T) {
			// Even with valid credentials: the method alone decides.
			w := f.serve(m, "/metrics", authorized())
			if w.Code != http.StatusMethodNotAllowed {
				t.Fatalf("%s /metrics: status %d, want 405", m, w.Code)
			}
			if got := w.Header().Get("Allow"); got != "GET, HEAD" {
				t.Errorf("Allow = %q, want %q", got, "GET, HEAD")
			}
			if got := w.Body.String(); got != "Method Not Allowed\n" {
				t.Errorf("body = %q", got)
			}
			assertOwnHeaders(t, w.Header())
		})
	}
	f.up.untouched(t)
}

func TestMethodAttacksOverTheWire(t *testing.T) {
	f := newFixture(t, Options{AllowedPaths: []string{"/metrics", "/debug/pprof/"}}, nil)
	srv := f.front(t)
	upHost := strings.TrimPrefix(mustUpstreamURL(t, f), "http://")
	for name, req := range map[string]string{
		// Tunnel to the runner's metrics port through the proxy.
		"CONNECT": "CONNECT " + upHost + " HTTP/1.1\r\nHost: " + upHost + "\r\n" + basicAuthLine() + "\r\n",
		// Server-wide OPTIONS, answered 200 by net/http unless disabled.
		"OPTIONS *": "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
		"TRACE":     "TRACE /metrics HTTP/1.1\r\nHost: x\r\n" + basicAuthLine() + "\r\n",
		"POST":      "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n" + basicAuthLine() + "\r\nabc",
	} {
		t.Run(name, func(t *testing.T) {
			resp, _ := rawRequest(t, srv.Listener.Addr().String(), req)
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
				t.Fatalf("status %d Allow %q, want 405 with Allow: GET, HEAD", resp.StatusCode, resp.Header.Get("Allow"))
			}
		})
	}
	f.up.untouched(t)
}

// mustUpstreamURL returns the upstream the fixture proxies to.
func mustUpstreamURL(t *testing.T, f *fixture) string {
	t.Helper()
	return "http://" + f.h.router.current().table.Routes[0].Upstream.Host
}

func TestAbsoluteFormIsRejected(t *testing.T) {
	f := newFixture(t, Options{}, nil)
	upHost := strings.TrimPrefix(mustUpstreamURL(t, f), "http://")

	t.Run("over the wire", func(t *testing.T) {
		srv := f.front(t)
		for _, target := range []string{
			"http://127.0.0.1:1/metrics",
			"http://" + upHost + "/metrics", // the runner itself, by its loopback address
			"HTTP://" + upHost + "/metrics",
		} {
			resp, body := rawRequest(t, srv.Listener.Addr().String(),
				"GET "+target+" HTTP/1.1\r\nHost: "+upHost+"\r\n"+basicAuthLine()+"\r\n")
			if resp.StatusCode != http.StatusBadRequest || body != "Bad Request\n" {
				t.Errorf("GET %s: status %d body %q, want 400 %q", target, resp.StatusCode, body, "Bad Request\n")
			}
			assertOwnHeaders(t, resp.Header)
		}
	})

	t.Run("handler", func(t *testing.T) {
		// Parsed as a server would: URL.Host set.
		if w := f.serve("GET", "http://127.0.0.1:1/metrics", authorized()); w.Code != http.StatusBadRequest {
			t.Errorf("absolute-form: status %d, want 400", w.Code)
		}
		// Only the raw target gives it away: still refused.
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/metrics", nil)
		r.RequestURI = "http://127.0.0.1:1/metrics"
		r.Header = authorized()
		f.h.ServeHTTP(w, r)
		if w.Code != http.StatusBadRequest {
			t.Errorf("absolute RequestURI with a path-only URL: status %d, want 400", w.Code)
		}
		// Asterisk-form on GET.
		if w := f.serve("GET", "*", authorized()); w.Code != http.StatusBadRequest {
			t.Errorf("GET *: status %d, want 400", w.Code)
		}
	})
	f.up.untouched(t)
}

// pathAttacks are request targets that try to reach something other than an
// allowlisted path, or that an upstream might read differently than the proxy.
// All are refused with 400 before authentication.
var pathAttackTargets = []string{
	"/metrics/../debug/pprof/",
	"/metrics/../debug/pprof/heap",
	"//debug/pprof/",
	"/%2e%2e/debug/pprof/",
	"/%2E%2E/debug/pprof/",
	"/.%2e/debug/pprof/",
	"/%252e%252e/debug/pprof/",
	"/metrics%2f..%2fdebug",
	"/metrics%2F..%2Fdebug",
	"/metrics/.",
	"/metrics/..",
	"/./metrics",
	"/metrics%00",
	"/metrics%2f",
	"/debug\\pprof\\",
	"/debug%5cpprof%5c",
	"/debug/pprof//heap",
	"/debug/pprof/..;/heap",
	"/metrics;jsessionid=1",
	"/metrics...",
	"/m%65trics",
}

func TestPathAttacksAreRejectedBeforeTheUpstream(t *testing.T) {
	f := newFixture(t, Options{AllowedPaths: []string{"/metrics", "/debug/pprof/"}}, nil)
	srv := f.front(t)
	for _, target := range pathAttackTargets {
		t.Run(target, func(t *testing.T) {
			// With valid credentials (so a slip would reach the upstream) and
			// without (syntax is judged before authentication): both 400.
			for _, hdr := range []string{basicAuthLine(), ""} {
				resp, body := rawRequest(t, srv.Listener.Addr().String(), "GET "+target+" HTTP/1.1\r\nHost: x\r\n"+hdr+"\r\n")
				if resp.StatusCode != http.StatusBadRequest || body != "Bad Request\n" {
					t.Errorf("GET %s (auth %v): status %d body %q, want 400", target, hdr != "", resp.StatusCode, body)
				}
			}
			if w := f.serve("GET", target, authorized()); w.Code != http.StatusBadRequest {
				t.Errorf("handler GET %s: status %d, want 400", target, w.Code)
			}
		})
	}
	// Bytes net/http refuses on the wire, judged by the handler on its own.
	handlerOnly := []string{"/metrics\x00", "/metrics\n", "/met rics", "/metrics\x7f", "/m\xc3\xa9trics", "/metrics#x"}
	for _, target := range handlerOnly {
		if w := f.serve("GET", target, authorized()); w.Code != http.StatusBadRequest {
			t.Errorf("handler GET %q: status %d, want 400", target, w.Code)
		}
	}
	f.up.untouched(t)
	// Every wire request was judged by the handler, not refused by net/http.
	assertCount(t, f, refusal.BadRequest.Outcome(), float64(3*len(pathAttackTargets)+len(handlerOnly)))
	assertCount(t, f, refusal.Unauthorized.Outcome(), 0)
}

func TestNoPathOracleForAnonymousClients(t *testing.T) {
	f := newFixture(t, Options{AllowedPaths: []string{"/metrics", "/debug/pprof/"}}, nil)
	srv := f.front(t)
	var first string
	for _, target := range []string{"/metrics", "/debug/pprof/", "/debug/pprof/heap", "/nonexistent", "/Metrics", "/proxy/metrics", "/"} {
		resp, body := rawRequest(t, srv.Listener.Addr().String(), "GET "+target+" HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("anonymous GET %s: status %d, want 401", target, resp.StatusCode)
		}
		resp.Header.Del("Date")
		got := resp.Status + "|" + body + "|" + headerString(resp.Header)
		if first == "" {
			first = got
		} else if got != first {
			t.Errorf("anonymous GET %s answered differently:\n got %s\nwant %s", target, got, first)
		}
	}
	f.up.untouched(t)
}

func headerString(h http.Header) string {
	var b strings.Builder
	h.Write(&b)
	return b.String()
}

func TestAuthorizedButNotAllowlistedIs404(t *testing.T) {
	f := newFixture(t, Options{}, nil) // default: only /metrics
	for _, target := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/Metrics", "/metrics/", "/METRICS", "/metricsx", "/-/", "/-/healthyx"} {
		w := f.serve("GET", target, authorized())
		if w.Code != http.StatusNotFound || w.Body.String() != "Not Found\n" {
			t.Errorf("GET %s: status %d body %q, want 404 %q", target, w.Code, w.Body.String(), "Not Found\n")
		}
		assertOwnHeaders(t, w.Header())
	}
	f.up.untouched(t)
}

func TestPprofSubtreeForwardsQuery(t *testing.T) {
	f := newFixture(t, Options{AllowedPaths: []string{"/metrics", "/debug/pprof/"}}, nil)
	resp := authorizedGet(t, f.front(t), "/debug/pprof/heap?debug=1&gc=1")
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	got := f.up.only(t)
	if got.Method != "GET" || got.URI != "/debug/pprof/heap?debug=1&gc=1" {
		t.Errorf("upstream received %s %s, want GET /debug/pprof/heap?debug=1&gc=1", got.Method, got.URI)
	}
}

func TestOnlyAllowlistedHeadersReachTheUpstream(t *testing.T) {
	var gz bytes.Buffer
	gz.WriteString("\x1f\x8b pretend gzip bytes")
	f := newFixture(t, Options{}, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/openmetrics-text; version=1.0.0; charset=utf-8")
		h.Set("Content-Encoding", "gzip")
		h.Set("Set-Cookie", "session=upstream")
		h.Set("Location", "http://127.0.0.1:9252/elsewhere")
		h.Set("X-Runner-Internal", "secret")
		h.Set("Connection", "X-Hop")
		h.Set("X-Hop", "1")
		w.Write(gz.Bytes())
	})
	srv := f.front(t)
	upHost := strings.TrimPrefix(mustUpstreamURL(t, f), "http://")

	resp, body := rawRequest(t, srv.Listener.Addr().String(), "GET /metrics HTTP/1.1\r\n"+
		"Host: proxy.example\r\n"+
		basicAuthLine()+
		"Cookie: session=attacker\r\n"+
		"Proxy-Authorization: Basic cHJveHk6cHJveHk=\r\n"+
		"X-Forwarded-For: 10.0.0.1\r\n"+
		"X-Forwarded-Host: evil.example\r\n"+
		"X-Forwarded-Proto: https\r\n"+
		"Forwarded: for=10.0.0.1\r\n"+
		"X-Real-Ip: 10.0.0.1\r\n"+
		"Connection: keep-alive, X-Custom\r\n"+
		"X-Custom: hop\r\n"+
		"Te: trailers\r\n"+
		"Upgrade: websocket\r\n"+
		"Accept: application/openmetrics-text;version=1.0.0\r\n"+
		"Accept-Encoding: gzip\r\n"+
		"User-Agent: Prometheus/3.0\r\n"+
		"X-Prometheus-Scrape-Timeout-Seconds: 9.5\r\n"+
		"\r\n")

	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	got := f.up.only(t)
	want := http.Header{
		"Accept":                              {"application/openmetrics-text;version=1.0.0"},
		"Accept-Encoding":                     {"gzip"},
		"User-Agent":                          {"Prometheus/3.0"},
		"X-Prometheus-Scrape-Timeout-Seconds": {"9.5"},
	}
	if headerString(got.Header) != headerString(want) {
		t.Errorf("upstream received headers:\n%s\nwant exactly:\n%s", headerString(got.Header), headerString(want))
	}
	if got.Host != upHost {
		t.Errorf("upstream Host = %q, want %q", got.Host, upHost)
	}
	if len(got.Body) != 0 {
		t.Errorf("upstream received a body %q, want none", got.Body)
	}
	if got.URI != "/metrics" || got.Method != "GET" {
		t.Errorf("upstream received %s %s, want GET /metrics", got.Method, got.URI)
	}

	if ct := resp.Header.Get("Content-Type"); ct != "application/openmetrics-text; version=1.0.0; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	if ce := resp.Header.Get("Content-Encoding"); ce != "gzip" {
		t.Errorf("Content-Encoding = %q, want gzip", ce)
	}
	if body != gz.String() {
		t.Errorf("body = %q, want the upstream's bytes unchanged %q", body, gz.String())
	}
	for _, k := range []string{"Set-Cookie", "Location", "X-Runner-Internal", "X-Hop"} {
		if v, ok := resp.Header[k]; ok {
			t.Errorf("response carries %s: %q; it must not reach the client", k, v)
		}
	}
	assertOwnHeaders(t, resp.Header)
}

func TestHeadIsForwardedAsHead(t *testing.T) {
	f := newFixture(t, Options{}, nil)
	w := f.serve("HEAD", "/metrics", authorized())
	if w.Code != http.StatusOK {
		t.Fatalf("status %d, want 200", w.Code)
	}
	if got := f.up.only(t); got.Method != "HEAD" || got.URI != "/metrics" {
		t.Errorf("upstream received %s %s, want HEAD /metrics", got.Method, got.URI)
	}
}

func TestUpstreamStatusPassesThrough(t *testing.T) {
	f := newFixture(t, Options{}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "collecting\n")
	})
	w := f.serve("GET", "/metrics", authorized())
	if w.Code != http.StatusServiceUnavailable || w.Body.String() != "collecting\n" {
		t.Fatalf("status %d body %q, want the upstream's 503 %q", w.Code, w.Body.String(), "collecting\n")
	}
}

func TestUpstreamPathPrefix(t *testing.T) {
	rec, up := newUpstream(t, nil)
	f := newFixture(t, Options{Upstream: up.URL + "/runner/"}, nil)
	if w := f.serve("GET", "/metrics?x=1", authorized()); w.Code != http.StatusOK {
		t.Fatalf("status %d, want 200", w.Code)
	}
	if got := rec.only(t); got.URI != "/runner/metrics?x=1" {
		t.Errorf("upstream received %s, want /runner/metrics?x=1", got.URI)
	}
}

func TestNilAuthorizerAllowsAll(t *testing.T) {
	rec, up := newUpstream(t, nil)
	h, err := New(Options{Upstream: up.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.CloseIdleConnections)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	if w.Code != http.StatusOK || w.Body.String() != upstreamBody {
		t.Fatalf("status %d body %q, want 200 with the upstream's body", w.Code, w.Body.String())
	}
	rec.only(t)
	// Without a Gatherer /proxy/metrics is just an unknown path.
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/proxy/metrics", nil))
	if w.Code != http.StatusNotFound {
		t.Errorf("/proxy/metrics without Gatherer: status %d, want 404", w.Code)
	}
}

func TestSecurityHeadersOnEveryAnswer(t *testing.T) {
	f := newFixture(t, Options{}, nil)
	for _, c := range []struct {
		method, target string
		hdr            http.Header
		code           int
	}{
		{"POST", "/metrics", authorized(), 405},
		{"GET", "/%2e", authorized(), 400},
		{"GET", "/metrics", nil, 401},
		{"GET", "/nope", authorized(), 404},
		{"GET", "/proxy/metrics", authorized(), 200},
		{"GET", "/metrics", authorized(), 200},
	} {
		w := f.serve(c.method, c.target, c.hdr)
		if w.Code != c.code {
			t.Errorf("%s %s: status %d, want %d", c.method, c.target, w.Code, c.code)
		}
		assertOwnHeaders(t, w.Header())
	}
}

// Content-Length with Transfer-Encoding: chunked, the classic smuggling shape:
// net/http frames by the chunked encoding, so a front end that frames by
// Content-Length would hide a second request after the body. A GET with any
// body is refused and the connection closed, so the hidden request never runs.
func TestSmuggledRequestNeverReachesTheUpstream(t *testing.T) {
	for _, framing := range []string{
		"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
		"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
	} {
		f := newFixture(t, Options{}, nil)
		srv := f.front(t)
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		hidden := "GET /metrics?smuggled=1 HTTP/1.1\r\nHost: proxy.example\r\n" + basicAuthLine() + "\r\n"
		fmt.Fprintf(c, "GET /metrics HTTP/1.1\r\nHost: proxy.example\r\n%s%s\r\n0\r\n\r\n%s", basicAuthLine(), framing, hidden)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		all, _ := io.ReadAll(c) // the server must close: ReadAll returns at EOF
		c.Close()
		if !strings.HasPrefix(string(all), "HTTP/1.1 400 ") || strings.Count(string(all), "HTTP/1.1 ") != 1 ||
			!strings.Contains(string(all), "Connection: close") {
			t.Errorf("%q: got\n%s", framing, all)
		}
		f.up.untouched(t)
		assertCount(t, f, refusal.BadRequest.Outcome(), 1)
	}
}

// Every refusal closes the connection, so an anonymous client cannot keep a
// connection slot with one request per idle timeout.
func TestRefusalsCloseTheConnection(t *testing.T) {
	f := newFixture(t, Options{Authorizer: fakeAuth{}}, nil)
	for _, tc := range []struct {
		method, target string
		hdr            http.Header
	}{
		{"GET", "/metrics", nil},               // 401
		{"POST", "/metrics", authorized()},     // 405
		{"GET", "/a/../metrics", authorized()}, // 400
		{"GET", "/debug/pprof/", authorized()}, // 404
	} {
		w := f.serve(tc.method, tc.target, tc.hdr)
		if w.Code == http.StatusOK || w.Header().Get("Connection") != "close" {
			t.Errorf("%s %s: %d, Connection %q; want a refusal with Connection: close", tc.method, tc.target, w.Code, w.Header().Get("Connection"))
		}
	}
	if w := f.serve("GET", "/metrics", authorized()); w.Code != http.StatusOK || w.Header().Get("Connection") != "" {
		t.Errorf("authorized scrape: %d, Connection %q", w.Code, w.Header().Get("Connection"))
	}
}

// authorizedGet sends GET path with the test credentials to srv (the proxy
// behind a real server, see fixture.front).
func authorizedGet(t *testing.T, srv *httptest.Server, path string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL+path, nil)
	req.SetBasicAuth(testUser, testPass)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}
