package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/version"

	"github.com/alloyci/hardened-runner/access"
	"github.com/alloyci/hardened-runner/fairqueue"
	"github.com/alloyci/hardened-runner/internal/clocktest"
	"github.com/alloyci/hardened-runner/readiness"
	"github.com/alloyci/hardened-runner/refusal"
	"github.com/alloyci/hardened-runner/routes"
)

// Credentials idAuth knows besides fakeAuth's testUser.
const (
	oncallUser = "oncall"
	oncallPass = "pager duty"
	// nodeToken is the bearer token of the identity token:node-scraper.
	nodeToken = "node-scraper-test-token"
	// nodeTokenSHA256 is its sha256, for the routes file's tokens:.
	nodeTokenSHA256 = "e86ed4b26b34a2cf56351347d2269f10713fec0fd8f6511c2f5c49123d235f27"
	// openToken is let in with the zero Identity: what a door that
	// authenticates nothing (loopback) passes on.
	openToken = "let-me-in-as-nobody"
)

// idAuth is the Authorizer of the routes tests: it answers the identities
// the door would, and refuses anything else the way fakeAuth does.
type idAuth struct{}

func (idAuth) Authorize(r *http.Request) Decision {
	if u, p, ok := r.BasicAuth(); ok && (u == testUser && p == testPass || u == oncallUser && p == oncallPass) {
		return idDecision{decision{allowed: true, outcome: "ok"}, access.Identity{User: u}}
	}
	switch r.Header.Get("Authorization") {
	case "Bearer " + nodeToken:
		return idDecision{decision{allowed: true, outcome: "ok"}, access.Identity{Token: "node-scraper"}}
	case "Bearer " + openToken:
		return idDecision{decision{allowed: true, outcome: "ok"}, access.Identity{}}
	}
	return decision{outcome: "unauthorized"}
}

// idDecision is an allowed decision with a whole Identity.
type idDecision struct {
	decision
	id access.Identity
}

func (d idDecision) Identity() access.Identity { return d.id }

// as returns the request headers of one identity: prometheus and oncall
// (basic auth), token (node-scraper), none (the zero Identity), or
// anonymous (no credentials at all).
func as(who string) http.Header {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	switch who {
	case "prometheus":
		r.SetBasicAuth(testUser, testPass)
	case oncallUser:
		r.SetBasicAuth(oncallUser, oncallPass)
	case "token":
		r.Header.Set("Authorization", "Bearer "+nodeToken)
	case "none":
		r.Header.Set("Authorization", "Bearer "+openToken)
	case "anonymous":
	default:
		panic("unknown identity " + who)
	}
	return r.Header
}

// authLine is the Authorization header line of who, for raw requests.
func authLine(who string) string {
	if v := as(who).Get("Authorization"); v != "" {
		return "Authorization: " + v + "\r\n"
	}
	return ""
}

// hostRoutes is the routes file of most tests. {runner} and {node} are
// TCP upstreams on 127.0.0.1, {sock} a unix socket.
const hostRoutes = `routes:
  - name: runner
    path: /metrics
    upstream: http://{runner}/metrics
  - name: pprof
    path: /debug/pprof/
    upstream: http://{runner}/debug/pprof/
    allow:
      users: [oncall]
  - name: node
    path: /node/metrics
    upstream: http://{node}/metrics
    allow:
      users: [prometheus]
      tokens: [node-scraper]
  - name: sock
    path: /sock/
    upstream: unix:{sock}:/exporter/
  - name: sock-deep
    path: /sock/deep/
    upstream: http://{node}/deep/
tokens:
  node-scraper: ` + nodeTokenSHA256 + `
`

// runnerAndSockRoutes is hostRoutes after a reload that dropped node's
// server and gave the runner's routes new limits.
const runnerAndSockRoutes = `routes:
  - name: runner
    path: /metrics
    upstream: http://{runner}/metrics
    timeout: 30s
  - name: pprof
    path: /debug/pprof/
    upstream: http://{runner}/debug/pprof/
    max_response_bytes: 1048576
    allow:
      users: [oncall]
  - name: sock
    path: /sock/
    upstream: unix:{sock}:/exporter/
`

// routesFixture is a proxy with a routes table over three upstreams: two
// on 127.0.0.1 (runner, node) and one on a unix socket (sock). The table
// is swapped by reload, as a web config reload does.
type routesFixture struct {
	*fixture
	runner, node, sock *upstreamRecorder
	// addrs fill the routes file's placeholders: {runner}, {node}, {sock},
	// and {down} (a port nothing listens on) and {nosock} (a socket
	// path that does not exist).
	addrs  map[string]string
	tables atomic.Pointer[routes.Table]
}

// newRoutesFixture starts the upstreams (handlers by name; a missing one
// answers upstreamBody) and a proxy serving the table of content.
func newRoutesFixture(t *testing.T, o Options, content string, handlers map[string]http.HandlerFunc) *routesFixture {
	t.Helper()
	f := &routesFixture{addrs: map[string]string{}}
	var runnerSrv, nodeSrv *httptest.Server
	f.runner, runnerSrv = newUpstream(t, handlers["runner"])
	f.node, nodeSrv = newUpstream(t, handlers["node"])
	f.addrs["{runner}"] = runnerSrv.Listener.Addr().String()
	f.addrs["{node}"] = nodeSrv.Listener.Addr().String()
	f.sock, f.addrs["{sock}"] = newSocketUpstream(t, handlers["sock"])
	f.addrs["{down}"] = freePort(t)
	f.addrs["{nosock}"] = filepath.Join(t.TempDir(), "absent.sock")
	f.tables.Store(f.table(t, content))
	o.Routes = f.tables.Load
	if o.Authorizer == nil {
		o.Authorizer = idAuth{}
	}
	o.Upstream = "http://" + f.addrs["{runner}"] // unused: Routes is set
	f.fixture = newFixture(t, o, nil)
	return f
}

// newSocketUpstream starts a recording upstream on a unix socket.
func newSocketUpstream(t *testing.T, handle http.HandlerFunc) (*upstreamRecorder, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "exporter.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	rec := &upstreamRecorder{}
	if handle == nil {
		handle = func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, upstreamBody) }
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.record(r)
		handle(w, r)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return rec, sock
}

// table parses content, its placeholders filled in, as routes.Parse does
// for the routes file.
func (f *routesFixture) table(t *testing.T, content string) *routes.Table {
	t.Helper()
	for k, v := range f.addrs {
		content = strings.ReplaceAll(content, k, v)
	}
	tab, problems, _ := routes.Parse([]byte(content))
	if len(problems) > 0 {
		t.Fatalf("routes.Parse: %q", problems)
	}
	return tab
}

// reload makes content the table in force.
func (f *routesFixture) reload(t *testing.T, content string) {
	t.Helper()
	f.tables.Store(f.table(t, content))
}

// get sends GET target as who.
func (f *routesFixture) get(target, who string) *httptest.ResponseRecorder {
	return f.serve(http.MethodGet, target, as(who))
}

// routeCount is metrics_proxy_route_requests_total{route, outcome}.
func routeCount(f *fixture, route, outcome string) float64 {
	return testutil.ToFloat64(f.h.metrics.routeRequests.WithLabelValues(route, outcome))
}

// assertRouteCount checks one route's outcome count.
func assertRouteCount(t *testing.T, f *fixture, route, outcome string, want float64) {
	t.Helper()
	if got := routeCount(f, route, outcome); got != want {
		t.Errorf("metrics_proxy_route_requests_total{route=%q,outcome=%q} = %v, want %v", route, outcome, got, want)
	}
}

// uris lists the request targets an upstream received, in order.
func uris(u *upstreamRecorder) []string {
	var out []string
	for _, r := range u.requests() {
		out = append(out, r.URI)
	}
	return out
}

// An exact route matches its path only and sends the upstream path; a
// prefix route matches everything below it and sends the rest after its
// upstream path; the longest prefix wins; the client's query goes along
// unchanged, to a TCP upstream and to a unix socket.
func TestRoutesMapPathsAndQuery(t *testing.T) {
	f := newRoutesFixture(t, Options{}, hostRoutes, nil)
	for _, c := range []struct {
		target string
		code   int
	}{
		{"/metrics?a=1", 200},
		{"/node/metrics?collect%5B%5D=cpu&format=text", 200},
		{"/node/metrics/more", 404}, // exact: nothing below it
		{"/sock/", 200},
		{"/sock/a/b?q=1&q=2", 200},
		{"/sock", 404}, // a prefix route matches its path with the /, and below
		{"/sock/deep/x?y=z", 200},
		{"/sock/deeper", 200}, // not below /sock/deep/
	} {
		if w := f.get(c.target, "prometheus"); w.Code != c.code {
			t.Errorf("GET %s: %d, want %d", c.target, w.Code, c.code)
		}
	}
	if got, want := uris(f.runner), []string{"/metrics?a=1"}; !slices.Equal(got, want) {
		t.Errorf("runner received %q, want %q", got, want)
	}
	if got, want := uris(f.node), []string{"/metrics?collect%5B%5D=cpu&format=text", "/deep/x?y=z"}; !slices.Equal(got, want) {
		t.Errorf("node received %q, want %q", got, want)
	}
	if got, want := uris(f.sock), []string{"/exporter/", "/exporter/a/b?q=1&q=2", "/exporter/deeper"}; !slices.Equal(got, want) {
		t.Errorf("the socket received %q, want %q", got, want)
	}
	if got := f.runner.requests()[0].Host; got != f.addrs["{runner}"] {
		t.Errorf("runner received Host %q, want its own address %q", got, f.addrs["{runner}"])
	}
	if got := f.sock.requests()[0].Host; got != "localhost" {
		t.Errorf("the socket received Host %q, want localhost", got)
	}
	assertRouteCount(t, f.fixture, "sock", outcomeOK, 3)
	assertRouteCount(t, f.fixture, "sock-deep", outcomeOK, 1)
	assertCount(t, f.fixture, refusal.ForbiddenPath.Outcome(), 2)
}

// An attacker with valid credentials probes for routes granted to others:
// each forbidden route answers exactly like a path no route serves, status,
// body and every header but Date, so nothing tells the two apart. The
// upstreams never hear of it; the operator sees it by route.
func TestAttackForbiddenRouteAnswersLikeAnUnknownPath(t *testing.T) {
	f := newRoutesFixture(t, Options{}, hostRoutes, nil)
	addr := f.front(t).Listener.Addr().String()
	answer := func(who, target string) string {
		resp, body := rawRequest(t, addr, "GET "+target+" HTTP/1.1\r\nHost: proxy.example\r\n"+authLine(who)+"\r\n")
		resp.Header.Del("Date")
		return resp.Status + "\n" + headerString(resp.Header) + "\n" + body
	}
	forbidden := map[string][]string{
		"prometheus": {"/debug/pprof/", "/debug/pprof/heap?debug=1"},
		"token":      {"/debug/pprof/cmdline"},
		"none":       {"/node/metrics", "/debug/pprof/"},
	}
	for who, targets := range forbidden {
		unknown := answer(who, "/no/such/route")
		if !strings.HasPrefix(unknown, "404 Not Found\n") || !strings.HasSuffix(unknown, "\nNot Found\n") {
			t.Fatalf("%s: unknown path answered\n%s", who, unknown)
		}
		for _, target := range targets {
			if got := answer(who, target); got != unknown {
				t.Errorf("%s GET %s answered\n%s\nunlike the unknown path's\n%s", who, target, got, unknown)
			}
		}
	}
	f.runner.untouched(t)
	f.node.untouched(t)

	assertRouteCount(t, f.fixture, "pprof", refusal.ForbiddenRoute.Outcome(), 4)
	assertRouteCount(t, f.fixture, "node", refusal.ForbiddenRoute.Outcome(), 1)
	assertRouteCount(t, f.fixture, "runner", refusal.ForbiddenRoute.Outcome(), 0)
	// Each refusal once overall, under its own outcome.
	assertCount(t, f.fixture, refusal.ForbiddenRoute.Outcome(), 5)
	assertCount(t, f.fixture, refusal.ForbiddenPath.Outcome(), 3)

	// The one it is granted to gets it.
	if w := f.get("/debug/pprof/heap?debug=1", oncallUser); w.Code != http.StatusOK {
		t.Fatalf("oncall GET /debug/pprof/heap: %d, want 200", w.Code)
	}
	if got := f.runner.only(t).URI; got != "/debug/pprof/heap?debug=1" {
		t.Errorf("runner received %s, want /debug/pprof/heap?debug=1", got)
	}
	assertRouteCount(t, f.fixture, "pprof", outcomeOK, 1)
}

// sanRoutes grants /node/metrics to the client certificate SAN scraper.test.
const sanRoutes = `routes:
  - name: node
    path: /node/metrics
    upstream: http://{node}/metrics
    allow:
      client_sans: [scraper.test]
`

// getOverTLS sends GET target as who on a connection in state.
func (f *routesFixture) getOverTLS(target, who string, state *tls.ConnectionState) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	r.Header = as(who)
	r.TLS = state
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

// A verified client certificate's SAN is an identity a route can grant
// when client certificates are required and verified; an unverified
// certificate names nobody.
func TestClientSANGrantsARoute(t *testing.T) {
	f := newRoutesFixture(t, Options{ClientCertsIdentify: func() bool { return true }}, sanRoutes, nil)
	leaf := &x509.Certificate{DNSNames: []string{"scraper.test"}}
	for _, c := range []struct {
		name  string
		state *tls.ConnectionState
		code  int
	}{
		{"verified", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}, VerifiedChains: [][]*x509.Certificate{{leaf}}}, 200},
		{"unverified", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}, 404},
		{"other name", &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{DNSNames: []string{"attacker.test"}}}}}, 404},
	} {
		if w := f.getOverTLS("/node/metrics", "none", c.state); w.Code != c.code {
			t.Errorf("%s certificate: %d, want %d", c.name, w.Code, c.code)
		}
	}
	if n := len(f.node.requests()); n != 1 {
		t.Errorf("node received %d requests, want 1", n)
	}
}

// Under VerifyClientCertIfGiven (or without a client CA), a certificate
// "verified" against some CA names nobody: the attack of a client with a
// publicly signed certificate carrying a granted SAN.
func TestClientSANIgnoredUnlessCertsAreRequired(t *testing.T) {
	f := newRoutesFixture(t, Options{ClientCertsIdentify: func() bool { return false }}, sanRoutes, nil)
	leaf := &x509.Certificate{DNSNames: []string{"scraper.test"}}
	w := f.getOverTLS("/node/metrics", "prometheus", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}, VerifiedChains: [][]*x509.Certificate{{leaf}}})
	if w.Code != 404 || w.Body.String() != "Not Found\n" {
		t.Errorf("granted SAN without required certificates: %d %q, want 404", w.Code, w.Body.String())
	}
	if n := len(f.node.requests()); n != 0 {
		t.Errorf("node received %d requests, want 0", n)
	}
}

// waitInUse waits until the upstream slots in use reach n. The deadline
// only guards against a hang.
func waitInUse(t *testing.T, f *fixture, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for f.h.router.sum((*fairqueue.Queue).InUse) < n {
		if time.Now().After(deadline) {
			t.Fatalf("upstream slots in use never reached %d", n)
		}
		time.Sleep(time.Millisecond)
	}
}

// poolKeys lists the upstream servers the router keeps a pool for.
func poolKeys(r *router) []string {
	var keys []string
	r.each(func(p *pool) { keys = append(keys, p.key) })
	sort.Strings(keys)
	return keys
}

func sorted(s ...string) []string {
	sort.Strings(s)
	return s
}

// Routes to one upstream server share its pool, so its slots bound the
// server whichever route asks, and a reload neither multiplies them (the
// pool outlives the table) nor keeps a removed upstream's.
func TestRoutesToOneServerShareOnePool(t *testing.T) {
	release := make(chan struct{})
	f := newRoutesFixture(t, Options{UpstreamSlots: 1, UpstreamQueue: -1}, hostRoutes, map[string]http.HandlerFunc{
		"runner": func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/metrics" {
				<-release
			}
			io.WriteString(w, upstreamBody)
		},
	})
	free := sync.OnceFunc(func() { close(release) })
	t.Cleanup(free) // before the upstream's Close, which waits for its handlers
	rt := f.h.router.current()
	runnerPool := rt.byName["runner"].pool
	if rt.byName["pprof"].pool != runnerPool {
		t.Fatal("runner and pprof, one server, have two pools")
	}
	if rt.byName["node"].pool != rt.byName["sock-deep"].pool || rt.byName["node"].pool == runnerPool || rt.byName["sock"].pool == runnerPool {
		t.Fatal("pools do not follow the upstream servers")
	}
	nodeKey, runnerKey, sockKey := "tcp:"+f.addrs["{node}"], "tcp:"+f.addrs["{runner}"], "unix:"+f.addrs["{sock}"]
	if got, want := poolKeys(f.h.router), sorted(nodeKey, runnerKey, sockKey); !slices.Equal(got, want) {
		t.Fatalf("pools %q, want %q", got, want)
	}

	// A scrape holds the runner's one slot...
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() { done <- f.get("/metrics", "prometheus") }()
	waitInUse(t, f.fixture, 1)
	// ...so the runner's pprof, on the same server, must wait (and may not).
	w := f.get("/debug/pprof/heap", oncallUser)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" || w.Body.String() != "Service Unavailable\n" {
		t.Errorf("pprof while the runner's slot is taken: %d Retry-After %q %q, want the proxy's 503", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	assertRouteCount(t, f.fixture, "pprof", refusal.UpstreamBusy.Outcome(), 1)
	// Another server's slots are its own.
	if w := f.get("/node/metrics", "prometheus"); w.Code != http.StatusOK {
		t.Errorf("node while the runner's slot is taken: %d, want 200", w.Code)
	}

	// A reload that changes the runner's routes and drops node.
	f.reload(t, runnerAndSockRoutes)
	rt = f.h.router.current()
	if _, ok := rt.byName["node"]; ok {
		t.Fatal("the reload did not apply")
	}
	if rt.byName["runner"].pool != runnerPool || rt.byName["pprof"].pool != runnerPool {
		t.Error("the reload made the runner a new pool")
	}
	if got, want := poolKeys(f.h.router), sorted(runnerKey, sockKey); !slices.Equal(got, want) {
		t.Errorf("pools after the reload %q, want %q: the removed upstream's pool is kept", got, want)
	}
	// The scrape from before the reload still holds the runner's slot, and
	// the new table's routes see it.
	if w := f.get("/debug/pprof/heap", oncallUser); w.Code != http.StatusServiceUnavailable {
		t.Errorf("pprof after the reload, the slot still taken: %d, want 503", w.Code)
	}
	free()
	if w := <-done; w.Code != http.StatusOK || w.Body.String() != upstreamBody {
		t.Fatalf("the held scrape: %d %q", w.Code, w.Body)
	}
	if w := f.get("/debug/pprof/heap", oncallUser); w.Code != http.StatusOK {
		t.Errorf("pprof once the slot is free: %d, want 200", w.Code)
	}
	assertRouteCount(t, f.fixture, "pprof", refusal.UpstreamBusy.Outcome(), 2)
	assertRouteCount(t, f.fixture, "runner", outcomeOK, 1)
}

// routeExposition is the exact exposition of
// metrics_proxy_route_requests_total for the named routes, every outcome at
// 0 but the given ones ("route/outcome").
func routeExposition(names []string, nonZero map[string]int) string {
	outcomes := slices.Clone(routeOutcomes())
	sort.Strings(outcomes)
	var b strings.Builder
	b.WriteString("# HELP metrics_proxy_route_requests_total Authenticated requests for a route, by route (its name in the routes file) and outcome: ok, forbidden_route, upstream_busy, upstream_error, upstream_timeout, response_too_large, upstream_5xx, client_canceled.\n")
	b.WriteString("# TYPE metrics_proxy_route_requests_total counter\n")
	for _, o := range outcomes {
		for _, n := range names {
			fmt.Fprintf(&b, "metrics_proxy_route_requests_total{outcome=%q,route=%q} %d\n", o, n, nonZero[n+"/"+o])
		}
	}
	return b.String()
}

// durationRoutes lists the routes with a duration histogram.
func durationRoutes(t *testing.T, f *fixture) []string {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		if mf.GetName() != "metrics_proxy_route_upstream_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			names = append(names, m.GetLabel()[0].GetValue())
		}
	}
	sort.Strings(names)
	return names
}

// Every route's series exist at 0 from the start; after a reload the
// scrape of /proxy/metrics shows the new routes at 0 and nothing of a
// removed one, so no stale route is exported forever.
func TestRouteSeriesFollowTheTable(t *testing.T) {
	f := newRoutesFixture(t, Options{}, hostRoutes, nil)
	before := []string{"node", "pprof", "runner", "sock", "sock-deep"}
	if err := testutil.GatherAndCompare(f.reg, strings.NewReader(routeExposition(before, nil)), "metrics_proxy_route_requests_total"); err != nil {
		t.Errorf("at the start: %v", err)
	}
	f.get("/metrics", "prometheus")
	f.get("/debug/pprof/", "prometheus")
	if got := durationRoutes(t, f.fixture); !slices.Equal(got, before) {
		t.Errorf("duration series for %q, want %q", got, before)
	}

	f.reload(t, strings.Replace(runnerAndSockRoutes, "name: sock\n", "name: sock-v2\n", 1))
	// oncall is granted every route after the reload: an admin by default.
	w := f.get("/proxy/metrics", "oncall")
	after := []string{"pprof", "runner", "sock-v2"}
	want := routeExposition(after, map[string]int{"runner/ok": 1, "pprof/forbidden_route": 1})
	if err := testutil.GatherAndCompare(f.reg, strings.NewReader(want), "metrics_proxy_route_requests_total"); err != nil {
		t.Errorf("after the reload: %v", err)
	}
	if got := durationRoutes(t, f.fixture); !slices.Equal(got, after) {
		t.Errorf("duration series after the reload for %q, want %q", got, after)
	}
	// The scrape that noticed the reload already shows it.
	body := w.Body.String()
	for _, gone := range []string{`route="node"`, `route="sock"`, `route="sock-deep"`} {
		if strings.Contains(body, gone) {
			t.Errorf("/proxy/metrics after the reload still has %s", gone)
		}
	}
	if !strings.Contains(body, `metrics_proxy_route_requests_total{outcome="ok",route="sock-v2"} 0`+"\n") {
		t.Errorf("/proxy/metrics after the reload lacks the new route at 0:\n%s", body)
	}
}

// timeoutRoutes give one route a short timeout and two routes a small size
// limit, on the same servers as routes with the defaults.
const timeoutRoutes = `routes:
  - name: runner
    path: /metrics
    upstream: http://{runner}/metrics
  - name: slow
    path: /slow
    upstream: http://{runner}/slow
    timeout: 100ms
  - name: big
    path: /big
    upstream: http://{node}/big
    max_response_bytes: 10
  - name: exact
    path: /exact
    upstream: http://{node}/big
    max_response_bytes: 19
  - name: page
    path: /page
    upstream: http://{node}/big
`

// bigBody is what the node upstream answers for /big: 19 bytes.
const bigBody = "more than ten bytes"

// A route's timeout and size limit apply to that route only: the slow
// route's 100ms ends its own request with 504, while a request on the same
// server under the default timeout, started earlier, is still waiting; a
// body over one route's limit is refused there and served on the others.
func TestRouteTimeoutAndSizeLimit(t *testing.T) {
	clock := clocktest.New(time.Now())
	release := make(chan struct{})
	f := newRoutesFixture(t, Options{Timeout: time.Hour, Now: clock.Now}, timeoutRoutes, map[string]http.HandlerFunc{
		"runner": func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
				io.WriteString(w, upstreamBody)
			case <-r.Context().Done():
			}
		},
		"node": func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, bigBody) },
	})
	free := sync.OnceFunc(func() { close(release) })
	t.Cleanup(free) // before the upstream's Close, which waits for its handlers
	srv := f.front(t)

	done := make(chan *httptest.ResponseRecorder, 1)
	go func() { done <- f.get("/metrics", "prometheus") }()
	waitInUse(t, f.fixture, 1)

	resp, body := rawRequest(t, srv.Listener.Addr().String(), "GET /slow HTTP/1.1\r\nHost: x\r\n"+authLine("prometheus")+"\r\n")
	if resp.StatusCode != http.StatusGatewayTimeout || body != "Gateway Timeout\n" {
		t.Errorf("slow route: %d %q, want 504 %q", resp.StatusCode, body, "Gateway Timeout\n")
	}
	select {
	case w := <-done:
		t.Fatalf("the runner route, started before the slow one, ended first: %d %q", w.Code, w.Body)
	default:
	}
	free()
	if w := <-done; w.Code != http.StatusOK || w.Body.String() != upstreamBody {
		t.Errorf("runner route: %d %q, want 200 with the page", w.Code, w.Body)
	}
	assertRouteCount(t, f.fixture, "slow", refusal.UpstreamTimeout.Outcome(), 1)
	assertRouteCount(t, f.fixture, "runner", refusal.UpstreamTimeout.Outcome(), 0)
	assertRouteCount(t, f.fixture, "runner", outcomeOK, 1)
	assertCount(t, f.fixture, refusal.UpstreamTimeout.Outcome(), 1)

	for _, c := range []struct {
		target, body string
		code         int
	}{
		{"/big", "Bad Gateway\n", http.StatusBadGateway},
		{"/exact", bigBody, http.StatusOK}, // at the limit
		{"/page", bigBody, http.StatusOK},  // the default limit
	} {
		if w := f.get(c.target, "prometheus"); w.Code != c.code || w.Body.String() != c.body {
			t.Errorf("GET %s: %d %q, want %d %q", c.target, w.Code, w.Body, c.code, c.body)
		}
	}
	assertRouteCount(t, f.fixture, "big", refusal.ResponseTooLarge.Outcome(), 1)
	assertRouteCount(t, f.fixture, "exact", outcomeOK, 1)
	assertRouteCount(t, f.fixture, "page", outcomeOK, 1)
	assertCount(t, f.fixture, refusal.ResponseTooLarge.Outcome(), 1)

	// Readiness is per upstream server: the slow route's timeout was its
	// server's doing, but the same server answered the runner route after
	// it, and that evidence stands. Every server served, so none is probed.
	probesBefore := len(f.runner.requests()) + len(f.node.requests())
	w := f.get("/-/ready", "prometheus")
	if want := "metrics-proxy is ready.\n"; w.Code != http.StatusOK || w.Body.String() != want {
		t.Errorf("/-/ready: %d %q, want 200 %q", w.Code, w.Body, want)
	}
	if n := len(f.runner.requests()) + len(f.node.requests()); n != probesBefore {
		t.Errorf("/-/ready sent %d probes, want none: every route has evidence", n-probesBefore)
	}
}

// landingOwn are the proxy's own lines of the text landing page for an
// identity that is not an admin: in hostRoutes nobody is granted every
// route, so nobody sees /proxy/metrics.
const landingOwn = "/-/healthy\thealth\n/-/ready\treadiness of every route's upstream\n"

// The landing page lists what this identity may use and nothing else, as
// text for scripts and as HTML for a browser.
func TestLandingPagePerIdentity(t *testing.T) {
	f := newRoutesFixture(t, Options{}, hostRoutes, nil)
	everyone := "/metrics\troute runner\n"
	sock := "/sock/\troute sock\n/sock/deep/\troute sock-deep\n"
	for _, c := range []struct {
		who, signedIn string
		text          string
	}{
		{"prometheus", "prometheus", everyone + "/node/metrics\troute node\n" + sock + landingOwn},
		{oncallUser, "oncall", everyone + "/debug/pprof/\troute pprof\n" + sock + landingOwn},
		{"token", "token:node-scraper", everyone + "/node/metrics\troute node\n" + sock + landingOwn},
		{"none", "", everyone + sock + landingOwn},
	} {
		w := f.get("/", c.who)
		if w.Code != http.StatusOK || w.Body.String() != c.text || w.Header().Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Errorf("%s GET /: %d %q\n%q\nwant 200 text/plain\n%q", c.who, w.Code, w.Header().Get("Content-Type"), w.Body, c.text)
		}
		assertOwnHeaders(t, w.Header())

		hdr := as(c.who)
		hdr.Set("Accept", "text/html,application/xhtml+xml")
		w = f.serve(http.MethodGet, "/", hdr)
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "text/html; charset=utf-8" ||
			w.Header().Get("Content-Security-Policy") != "default-src 'none'; style-src 'unsafe-inline'" {
			t.Errorf("%s GET / as HTML: %d Content-Type %q CSP %q", c.who, w.Code, w.Header().Get("Content-Type"), w.Header().Get("Content-Security-Policy"))
		}
		if want := landingHTML(version.Version, c.signedIn, c.text); w.Body.String() != want {
			t.Errorf("%s HTML landing page:\n%s\nwant:\n%s", c.who, w.Body, want)
		}
	}
	f.runner.untouched(t)
	f.node.untouched(t)
	f.sock.untouched(t)
}

// landingHTML is the exact HTML landing page for the text page's lines.
func landingHTML(ver, who, text string) string {
	var items strings.Builder
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		p, desc, _ := strings.Cut(line, "\t")
		fmt.Fprintf(&items, "<li><a href=\"%s\">%s</a>: %s</li>\n", p, p, html.EscapeString(desc))
	}
	signedIn := ""
	if who != "" {
		signedIn = "<div>Signed in as: " + who + "</div>"
	}
	return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<title>metrics-proxy</title>
<style>
body { font-family: -apple-system,BlinkMacSystemFont,Segoe UI,Roboto,Helvetica Neue,Arial,sans-serif; margin: 0; }
header { background-color: #e6522c; color: #fff; font-size: 1rem; padding: 1rem; }
main { padding: 1rem; }
</style>
</head>
<body>
<header><h1>metrics-proxy</h1></header>
<main>
<h2>The one door to this host's metrics</h2>
<div>Version: ` + ver + `</div>
` + signedIn + `
<ul>
` + items.String() + `</ul>
</main>
</body>
</html>
`
}

// A route path may hold any character safepath accepts, RFC 3986
// sub-delims included. Each link of the HTML landing page, followed the way
// a browser does (the attribute's entities decoded, nothing else), reaches
// its page: a link the proxy itself answers 400 is a broken page.
func TestLandingPageLinksLeadToTheirPages(t *testing.T) {
	f := newRoutesFixture(t, Options{}, `routes:
  - name: odd
    path: /o'd(d)/a&b+c!$*,=:@~/
    upstream: http://{node}/odd/
  - name: runner
    path: /metrics
    upstream: http://{runner}/metrics
`, nil)
	hdr := as("prometheus")
	hdr.Set("Accept", "text/html")
	page := f.serve(http.MethodGet, "/", hdr).Body.String()
	hrefs := regexp.MustCompile(`<a href="([^"]*)">([^<]*)</a>`).FindAllStringSubmatch(page, -1)
	var got []string
	for _, m := range hrefs {
		link, text := html.UnescapeString(m[1]), html.UnescapeString(m[2])
		got = append(got, link)
		if link != text {
			t.Errorf("link %q shows as %q", link, text)
		}
		if w := f.get(link, "prometheus"); w.Code != http.StatusOK {
			t.Errorf("following %s (href %q): %d, want 200", link, m[1], w.Code)
		}
	}
	want := []string{"/o'd(d)/a&b+c!$*,=:@~/", "/metrics", "/proxy/metrics", "/-/healthy", "/-/ready"}
	if !slices.Equal(got, want) {
		t.Errorf("links %q, want %q", got, want)
	}
	if got := uris(f.node); !slices.Equal(got, []string{"/odd/"}) {
		t.Errorf("node received %q, want /odd/", got)
	}
}

// anonymousAnswer is the exact answer to an anonymous GET of target.
func anonymousAnswer(t *testing.T, addr, target string) string {
	t.Helper()
	resp, body := rawRequest(t, addr, "GET "+target+" HTTP/1.1\r\nHost: x\r\n\r\n")
	resp.Header.Del("Date")
	return resp.Status + "\n" + headerString(resp.Header) + "\n" + body
}

// Without HealthWithoutAuth the proxy's own pages are for authenticated
// clients only: an anonymous client gets the Authorizer's 401 for them, the
// same answer as for any route, and no upstream is probed for it.
func TestAttackAnonymousOwnPagesGetTheAuthorizers401(t *testing.T) {
	f := newRoutesFixture(t, Options{}, hostRoutes, nil)
	addr := f.front(t).Listener.Addr().String()
	want := anonymousAnswer(t, addr, "/metrics")
	if !strings.HasPrefix(want, "401 Unauthorized\n") || !strings.Contains(want, "Www-Authenticate: Basic realm=\"metrics\"\r\n") || !strings.HasSuffix(want, "\nunauthorized\n") {
		t.Fatalf("anonymous /metrics answered\n%s\nwant fakeAuth's 401", want)
	}
	targets := []string{"/", "/-/ready", "/-/healthy", "/proxy/metrics", "/debug/pprof/", "/no/such/route"}
	for _, target := range targets {
		if got := anonymousAnswer(t, addr, target); got != want {
			t.Errorf("anonymous GET %s answered\n%s\nwant the Authorizer's 401\n%s", target, got, want)
		}
	}
	f.runner.untouched(t)
	f.node.untouched(t)
	f.sock.untouched(t)
	assertCount(t, f.fixture, refusal.Unauthorized.Outcome(), float64(1+len(targets)))
	assertCount(t, f.fixture, outcomeOK, 0)
}

// downRoutes: the runner answers, node's port has nobody behind it.
const downRoutes = `routes:
  - name: runner
    path: /metrics
    upstream: http://{runner}/metrics
  - name: node
    path: /node/metrics
    upstream: http://{down}/metrics
`

// /-/healthy and /-/ready for an authenticated client: a status line, and
// when not ready, which route's upstream is not and why.
func TestHealthAndReadyWithAuth(t *testing.T) {
	f := newRoutesFixture(t, Options{Now: clocktest.New(time.Now()).Now}, downRoutes, nil)
	for _, c := range []struct {
		target, body string
		code         int
	}{
		{"/-/healthy", "metrics-proxy is healthy.\n", 200},
		{"/-/ready", "metrics-proxy is not ready:\nroute node: connection refused (is it running?)\n", 503},
	} {
		w := f.get(c.target, "prometheus")
		if w.Code != c.code || w.Body.String() != c.body || w.Header().Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Errorf("GET %s: %d %q %q, want %d %q", c.target, w.Code, w.Header().Get("Content-Type"), w.Body, c.code, c.body)
		}
		assertOwnHeaders(t, w.Header())
	}
	// The runner was probed once: it had no evidence yet.
	if got := f.runner.only(t); got.URI != "/metrics" || got.Header.Get("User-Agent") != "metrics-proxy-readiness" {
		t.Errorf("runner probe %s User-Agent %q, want /metrics by metrics-proxy-readiness", got.URI, got.Header.Get("User-Agent"))
	}

	// A socket that is not there, and a failing upstream, by name.
	f.reload(t, `routes:
  - name: runner
    path: /metrics
    upstream: http://{runner}/metrics
  - name: sock
    path: /sock/
    upstream: unix:{nosock}:/exporter/
`)
	want := "metrics-proxy is not ready:\nroute sock: socket does not exist (is it running?)\n"
	if w := f.get("/-/ready", "prometheus"); w.Code != http.StatusServiceUnavailable || w.Body.String() != want {
		t.Errorf("/-/ready with a missing socket: %d %q, want 503 %q", w.Code, w.Body, want)
	}
	// The reload forgot node's failure: a table without it is ready.
	f.reload(t, "routes:\n  - name: runner\n    path: /metrics\n    upstream: http://{runner}/metrics\n")
	if w := f.get("/-/ready", "prometheus"); w.Code != http.StatusOK || w.Body.String() != "metrics-proxy is ready.\n" {
		t.Errorf("/-/ready after the reload: %d %q, want 200 %q", w.Code, w.Body, "metrics-proxy is ready.\n")
	}
}

// With HealthWithoutAuth a load balancer asks without credentials and gets
// the status alone, never a route's name or error; so does everyone else
// on those two paths. The rest still needs credentials.
func TestHealthWithoutAuthSaysOnlyTheStatus(t *testing.T) {
	f := newRoutesFixture(t, Options{HealthWithoutAuth: true, Now: clocktest.New(time.Now()).Now}, downRoutes, nil)
	for _, who := range []string{"anonymous", "prometheus"} {
		for _, c := range []struct {
			target, body string
			code         int
		}{
			{"/-/healthy", "OK\n", 200},
			{"/-/ready", "Service Unavailable\n", 503},
		} {
			w := f.get(c.target, who)
			if w.Code != c.code || w.Body.String() != c.body || w.Header().Get("Content-Type") != "text/plain; charset=utf-8" {
				t.Errorf("%s GET %s: %d %q %q, want %d %q", who, c.target, w.Code, w.Header().Get("Content-Type"), w.Body, c.code, c.body)
			}
			if w.Header().Get("Connection") != "close" {
				t.Errorf("%s GET %s: Connection %q, want close", who, c.target, w.Header().Get("Connection"))
			}
			assertOwnHeaders(t, w.Header())
		}
	}
	for _, target := range []string{"/", "/metrics", "/proxy/metrics"} {
		if w := f.get(target, "anonymous"); w.Code != http.StatusUnauthorized || w.Body.String() != "unauthorized\n" {
			t.Errorf("anonymous GET %s: %d %q, want the Authorizer's 401", target, w.Code, w.Body)
		}
	}
	// Up again: node's port now answers.
	f.reload(t, "routes:\n  - name: runner\n    path: /metrics\n    upstream: http://{runner}/metrics\n")
	if w := f.get("/-/ready", "anonymous"); w.Code != http.StatusOK || w.Body.String() != "OK\n" {
		t.Errorf("anonymous /-/ready once every upstream answers: %d %q, want 200 OK", w.Code, w.Body)
	}
}

// /-/ready takes real traffic as evidence: a scrape that succeeded spares
// the probe until it is DefaultFresh old; a 5xx stands as a failure for
// DefaultRetry, then the upstream is probed again.
func TestReadinessCountsRealTraffic(t *testing.T) {
	clock := clocktest.New(time.Now())
	var failing atomic.Bool
	f := newRoutesFixture(t, Options{Now: clock.Now}, "routes:\n  - name: runner\n    path: /metrics\n    upstream: http://{runner}/metrics\n", map[string]http.HandlerFunc{
		"runner": func(w http.ResponseWriter, r *http.Request) {
			if failing.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			io.WriteString(w, upstreamBody)
		},
	})
	ready := func(wantCode int, wantBody string, wantRequests int) {
		t.Helper()
		w := f.get("/-/ready", "prometheus")
		if w.Code != wantCode || w.Body.String() != wantBody {
			t.Errorf("/-/ready: %d %q, want %d %q", w.Code, w.Body, wantCode, wantBody)
		}
		if n := len(f.runner.requests()); n != wantRequests {
			t.Errorf("the runner has received %d requests, want %d", n, wantRequests)
		}
	}
	const isReady = "metrics-proxy is ready.\n"

	if w := f.get("/metrics", "prometheus"); w.Code != http.StatusOK {
		t.Fatalf("scrape: %d", w.Code)
	}
	ready(200, isReady, 1) // the scrape is the evidence
	clock.Advance(readiness.DefaultFresh - time.Nanosecond)
	ready(200, isReady, 1)
	clock.Advance(time.Nanosecond)
	ready(200, isReady, 2) // too old: probed
	probe := f.runner.requests()[1]
	want := http.Header{"Accept": {"text/plain"}, "User-Agent": {"metrics-proxy-readiness"}}
	if probe.Method != "GET" || probe.URI != "/metrics" || headerString(probe.Header) != headerString(want) {
		t.Errorf("probe %s %s with\n%s\nwant GET /metrics with exactly\n%s", probe.Method, probe.URI, headerString(probe.Header), headerString(want))
	}
	ready(200, isReady, 2) // the probe is evidence too

	failing.Store(true)
	if w := f.get("/metrics", "prometheus"); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("failing scrape: %d, want the upstream's 503", w.Code)
	}
	notReady := "metrics-proxy is not ready:\nroute runner: upstream answered 5xx\n"
	ready(503, notReady, 3)
	clock.Advance(readiness.DefaultRetry - time.Nanosecond)
	ready(503, notReady, 3)
	failing.Store(false)
	clock.Advance(time.Nanosecond)
	ready(200, isReady, 4) // probed again, and it is back
}

// A scraper's own tiny X-Prometheus-Scrape-Timeout-Seconds running out says
// nothing about the upstream: it is not recorded as its failure, so
// /-/ready asks the upstream itself. A client that hangs up neither.
func TestReadinessIgnoresTheClientsOwnTimeout(t *testing.T) {
	clock := clocktest.New(time.Now())
	f := newRoutesFixture(t, Options{Now: clock.Now}, "routes:\n  - name: runner\n    path: /metrics\n    upstream: http://{runner}/metrics\n", map[string]http.HandlerFunc{
		"runner": func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds") != "" || r.URL.Query().Has("hang") {
				<-r.Context().Done() // slower than the client will wait
				return
			}
			io.WriteString(w, upstreamBody)
		},
	})
	hdr := as("prometheus")
	hdr.Set("X-Prometheus-Scrape-Timeout-Seconds", "0.05")
	if w := f.serve(http.MethodGet, "/metrics", hdr); w.Code != http.StatusGatewayTimeout {
		t.Fatalf("scrape with a 50ms timeout: %d, want 504", w.Code)
	}
	assertRouteCount(t, f.fixture, "runner", refusal.UpstreamTimeout.Outcome(), 1)

	// The client hangs up mid-scrape.
	ctx, cancel := context.WithCancel(context.Background())
	r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/metrics?hang", nil)
	r.Header = as("prometheus")
	go func() {
		// Once the upstream has the request (ctx ends anyway with ServeHTTP).
		for len(f.runner.requests()) < 2 && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	f.h.ServeHTTP(httptest.NewRecorder(), r)
	cancel()
	assertRouteCount(t, f.fixture, "runner", outcomeClientCanceled, 1)

	w := f.get("/-/ready", "prometheus")
	if w.Code != http.StatusOK || w.Body.String() != "metrics-proxy is ready.\n" {
		t.Errorf("/-/ready: %d %q, want 200: neither failure was the upstream's", w.Code, w.Body)
	}
	reqs := f.runner.requests()
	if len(reqs) != 3 || reqs[2].Header.Get("User-Agent") != "metrics-proxy-readiness" {
		t.Errorf("the runner received %d requests, want the two scrapes and a probe: %+v", len(reqs), reqs)
	}
}

// A request that read the table just before a reload must not put the
// older table back once the newer one serves: that would drop the new
// routes' series with their counts, their readiness evidence and the pools
// of new upstreams (whose slots in use a fresh pool would not know of).
func TestRouterNeverGoesBackToAnOlderTable(t *testing.T) {
	f := newRoutesFixture(t, Options{}, hostRoutes, nil)
	older := f.table(t, hostRoutes)
	newer := f.table(t, strings.NewReplacer("name: node\n", "name: node-v2\n",
		"tokens:\n", "  - name: spare\n    path: /spare\n    upstream: http://{down}/metrics\ntokens:\n").Replace(hostRoutes))
	var inForce atomic.Pointer[routes.Table]
	inForce.Store(older)
	var once atomic.Bool
	f.h.router.tables = func() *routes.Table {
		tab := inForce.Load()
		if once.CompareAndSwap(false, true) {
			// This caller has read older. Before it goes on, a reload makes
			// newer the table, and a request is served by it.
			inForce.Store(newer)
			if w := f.get("/node/metrics", "prometheus"); w.Code != http.StatusOK {
				t.Errorf("node-v2 during the reload: %d", w.Code)
			}
		}
		return tab
	}
	if w := f.get("/metrics", "prometheus"); w.Code != http.StatusOK {
		t.Fatalf("the request that read the older table: %d", w.Code)
	}
	if got := f.h.router.cur.Load().table; got != newer {
		t.Errorf("the routing in force is of the older table, after the newer one served")
	}
	want := routeExposition([]string{"node-v2", "pprof", "runner", "sock", "sock-deep", "spare"}, map[string]int{"node-v2/ok": 1, "runner/ok": 1})
	if err := testutil.GatherAndCompare(f.reg, strings.NewReader(want), "metrics_proxy_route_requests_total"); err != nil {
		t.Error(err)
	}
	if got := poolKeys(f.h.router); !slices.Contains(got, "tcp:"+f.addrs["{down}"]) {
		t.Errorf("pools %q: the new upstream's pool was dropped", got)
	}
}

// The attack: an identity granted only some routes reads the proxy's own
// pages to learn the others. /proxy/metrics is for admins (by default the
// identities granted every route) and answers others exactly like an
// unknown path; /-/ready names only the routes the identity may use.
func TestSelfPagesDoNotRevealOtherRoutes(t *testing.T) {
	f := newRoutesFixture(t, Options{Now: clocktest.New(time.Now()).Now}, `routes:
  - name: runner
    path: /metrics
    upstream: http://{runner}/metrics
  - name: secret
    path: /secret/metrics
    upstream: http://{down}/metrics
    allow:
      users: [oncall]
`, nil)
	unknown := f.get("/no/such/page", "prometheus")
	self := f.get("/proxy/metrics", "prometheus")
	if self.Code != 404 || self.Body.String() != unknown.Body.String() || headerString(self.Header()) != headerString(unknown.Header()) {
		t.Errorf("non-admin /proxy/metrics: %d %q %v, want exactly the unknown path's %d %q %v",
			self.Code, self.Body, self.Header(), unknown.Code, unknown.Body, unknown.Header())
	}
	if w := f.get("/-/ready", "prometheus"); w.Code != 200 || w.Body.String() != "metrics-proxy is ready.\n" {
		t.Errorf("prometheus /-/ready: %d %q, want 200: the down route is not its business", w.Code, w.Body)
	}
	if w := f.get("/-/ready", "oncall"); w.Code != 503 || w.Body.String() != "metrics-proxy is not ready:\nroute secret: connection refused (is it running?)\n" {
		t.Errorf("oncall /-/ready: %d %q", w.Code, w.Body)
	}
	w := f.get("/proxy/metrics", "oncall")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `route="secret"`) {
		t.Errorf("admin /proxy/metrics: %d, secret route shown: %v", w.Code, strings.Contains(w.Body.String(), `route="secret"`))
	}
	lines := func(who string) string { return f.get("/", who).Body.String() }
	if strings.Contains(lines("prometheus"), "/proxy/metrics") || !strings.Contains(lines("oncall"), "/proxy/metrics") {
		t.Errorf("landing pages:\nprometheus:\n%s\noncall:\n%s", lines("prometheus"), lines("oncall"))
	}
}

// Routes to one server are one readiness check: two routes on a server
// with no evidence cost one probe, reported under both names.
func TestReadyProbesEachServerOnce(t *testing.T) {
	f := newRoutesFixture(t, Options{Now: clocktest.New(time.Now()).Now}, `routes:
  - name: a
    path: /a
    upstream: http://{down}/a
  - name: b
    path: /b
    upstream: http://{down}/b
  - name: runner
    path: /metrics
    upstream: http://{runner}/metrics
`, nil)
	w := f.get("/-/ready", "prometheus")
	if want := "metrics-proxy is not ready:\nroutes a, b: connection refused (is it running?)\n"; w.Code != 503 || w.Body.String() != want {
		t.Errorf("/-/ready: %d %q, want 503 %q", w.Code, w.Body, want)
	}
	if n := len(f.runner.requests()); n != 1 {
		t.Errorf("runner probed %d times, want 1", n)
	}
}
