package e2e

// Attacks on the routes file and what came with it: path confusion between
// routes, forbidden-versus-unknown oracles, bearer-token tricks, the health
// endpoints without authentication, reloads that would widen access, and
// upstream headers on the new routes. Every upstream is a fake one that
// records what it was asked, so each test can say exactly which paths
// reached which exporter.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// routesDoor is a proxy with a routes file in front of two fake exporters:
// "runner" (its /metrics, and its pprof for oncall only) and "node" (its
// /metrics for everyone, and a prefix route /node/extra/ for everyone),
// with the users prometheus and oncall and the token node-scraper.
type routesDoor struct {
	*proxy
	Runner, Node *upstream
	Token        string
	TokenSum     string
}

// routesDoorFile is the routes file of routesDoor.
func routesDoorFile(runnerAddr, nodeAddr, sum string) string {
	return fmt.Sprintf(`routes:
  - name: runner
    path: /metrics
    upstream: http://%[1]s/metrics
  - name: node
    path: /node/metrics
    upstream: http://%[2]s/metrics
  - name: extra
    path: /node/extra/
    upstream: http://%[2]s/extra/
  - name: pprof
    path: /debug/pprof/
    upstream: http://%[1]s/debug/pprof/
    allow:
      users: [oncall]
tokens:
  node-scraper: %[3]s
`, runnerAddr, nodeAddr, sum)
}

func startRoutesDoor(t *testing.T, runnerH, nodeH http.HandlerFunc, args ...string) *routesDoor {
	t.Helper()
	d := &routesDoor{Runner: startUpstream(t, runnerH), Node: startUpstream(t, nodeH)}
	tokenFile, sum := newToken(t, t.TempDir())
	d.Token, d.TokenSum = strings.TrimSpace(readFile(t, tokenFile)), sum
	oncallHash := hashPassword(t, oncallPassword, 10)
	d.proxy = startProxy(t, proxyOptions{
		Web: func(k *pki) string {
			return tlsBlock(k) + usersBlock(defaultUser, defaultHash(t), oncallUser, oncallHash)
		},
		Routes: routesDoorFile(d.Runner.Addr, d.Node.Addr, sum),
		Args:   args,
	})
	// The proxy's own metrics are for the identities granted every route
	// (no admin: here): oncall reads them.
	d.User, d.Password = oncallUser, oncallPassword
	return d
}

// rawDump is one raw HTTP/1.1 exchange over a fresh TLS connection from
// src: the answer's status, whether it says Connection: close, every
// header (Date's value blanked) and the body; and whether the proxy closed
// the connection after it. The request is sent without Connection: close
// and followed by a second one, which a closed connection never answers.
func (p *proxy) rawDump(t *testing.T, src, method, target, auth string) (dump string, closed bool) {
	t.Helper()
	c := p.mustTLS(t, src)
	defer c.Close()
	req := method + " " + target + " HTTP/1.1\r\nHost: " + p.Addr + "\r\n"
	if auth != "" {
		req += "Authorization: " + auth + "\r\n"
	}
	req += "\r\n"
	// A second request on the same connection: answered only if the proxy
	// kept the connection.
	second := "GET /metrics HTTP/1.1\r\nHost: " + p.Addr + "\r\nAuthorization: " + basic(defaultUser, defaultPassword) + "\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(c, req+second); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Header.Set("Date", "-")
	var b strings.Builder
	fmt.Fprintf(&b, "%s close=%v\r\n", resp.Status, resp.Close)
	resp.Header.Write(&b)
	fmt.Fprintf(&b, "\n%s", body)
	_, err = http.ReadResponse(br, nil)
	return b.String(), err != nil
}

// readinessProbes are the requests an upstream got from the proxy's
// readiness probe.
func readinessProbes(u *upstream) []string {
	var out []string
	for _, r := range u.Requests() {
		if r.Header.Get("User-Agent") == "metrics-proxy-readiness" {
			out = append(out, r.RequestURI)
		}
	}
	return out
}

// debugURIs are the request targets an upstream got under /debug/.
func debugURIs(u *upstream) []string {
	var out []string
	for _, uri := range u.URIs() {
		if strings.HasPrefix(uri, "/debug") {
			out = append(out, uri)
		}
	}
	return out
}

// A user granted /metrics but not pprof tries every spelling of a path
// that might cross from one route to another, over HTTP/1.1 and HTTP/2:
// case, trailing slashes, a prefix route's neighbours, '//' and dot
// segments, percent-encoding, ';', queries that look like paths and
// absolute-form targets naming the upstream. Each gets the exact answer
// listed; the runner's fake exporter never sees a /debug/ path until
// oncall, who is granted pprof, asks; the node exporter never sees one at
// all; and no client path becomes a metric label.
func TestAttackRoutesPathConfusion(t *testing.T) {
	t.Parallel()
	d := startRoutesDoor(t, nil, nil)
	prom := basic(defaultUser, defaultPassword)
	tok := "Bearer " + d.Token
	const bad, notFound = "Bad Request\n", "Not Found\n"
	cases := []struct {
		target string
		status int
		body   string
	}{
		// The forbidden route and its neighbours: 404, like unknown paths.
		{"/debug/pprof/", 404, notFound},
		{"/debug/pprof/heap", 404, notFound},
		{"/debug/pprof/profile?seconds=1", 404, notFound},
		{"/debug/pprof", 404, notFound},
		{"/debug/", 404, notFound},
		{"/debug", 404, notFound},
		{"/DEBUG/pprof/heap", 404, notFound},
		{"/Debug/Pprof/", 404, notFound},
		{"/debug/pprof/heap/", 404, notFound},
		// Exact routes match exactly; a prefix route only below itself.
		{"/node/metrics/", 404, notFound},
		{"/node/metrics/debug/pprof/", 404, notFound},
		{"/node/metricsx", 404, notFound},
		{"/NODE/metrics", 404, notFound},
		{"/node/", 404, notFound},
		{"/node", 404, notFound},
		{"/node/extra", 404, notFound},
		{"/metrics/", 404, notFound},
		{"/metrics/debug/pprof/", 404, notFound},
		{"/Metrics", 404, notFound},
		// Dot segments, '//', encodings, ';', '\': 400 before any route.
		{"/node/metrics/../../debug/pprof/", 400, bad},
		{"/node/extra/../../debug/pprof/heap", 400, bad},
		{"/node/extra/..", 400, bad},
		{"/node/extra/./", 400, bad},
		{"/metrics/../debug/pprof/heap", 400, bad},
		{"/node/extra/%2e%2e/%2e%2e/debug/pprof/", 400, bad},
		{"/node/extra/..%2f..%2fdebug%2fpprof%2f", 400, bad},
		{"/debug%2fpprof%2fheap", 400, bad},
		{"/%64ebug/pprof/", 400, bad},
		{"/node/metrics%3f/../../debug/pprof/", 400, bad},
		{"//debug/pprof/", 400, bad},
		{"/node//extra/x", 400, bad},
		{"/node/extra//debug/pprof/", 400, bad},
		{"/debug;/pprof/", 400, bad},
		{"/debug/pprof;/heap", 400, bad},
		{"/node/metrics;/../../debug/pprof/", 400, bad},
		{"/node/extra\\..\\..\\debug\\pprof\\", 400, bad},
		// Absolute-form naming the runner's exporter or the proxy itself.
		{"http://" + d.Runner.Addr + "/debug/pprof/", 400, bad},
		{"http://" + d.Addr + "/debug/pprof/heap", 400, bad},
		{"https://" + d.Addr + "/node/metrics", 400, bad},
		{"http://" + d.Runner.Addr + "/metrics", 400, bad},
		// Queries that look like paths are only queries: the route's own
		// path goes upstream, the query after it, byte for byte.
		{"/node/metrics?x=../debug/pprof", 200, upBody},
		{"/node/metrics?/../../debug/pprof/heap", 200, upBody},
		{"/metrics?../debug/pprof/heap", 200, upBody},
		{"/node/extra/a?x=/debug/pprof/", 200, upBody},
		// Below the prefix route: its upstream path, then the rest.
		{"/node/extra/debug/pprof/heap", 200, upBody},
	}
	for _, auth := range []string{prom, tok} {
		for _, tc := range cases {
			one(t, fmt.Sprintf("GET %q (%.6s)", tc.target, auth), d.raw(t, rawGet(tc.target, auth), 5*time.Second), tc.status, tc.body)
		}
	}
	// The same over HTTP/2, including :path values net/http's HTTP/1.1
	// parser would never let through.
	for _, tc := range []struct{ path, want string }{
		{"/debug/pprof/heap", ":status 404"},
		{"/debug/pprof/", ":status 404"},
		{"/node/metrics/../../debug/pprof/", ":status 400"},
		{"/node/extra/%2e%2e/%2e%2e/debug/pprof/", ":status 400"},
		{"//debug/pprof/", ":status 400"},
		{"/debug/pprof;/heap", ":status 400"},
		{"http://" + d.Runner.Addr + "/debug/pprof/", ":status 400"},
		{"debug/pprof/", "RST_STREAM PROTOCOL_ERROR"},
		{"*", ":status 400"},
		{"", "RST_STREAM PROTOCOL_ERROR"},
		{"/node/metrics?x=../debug/pprof", ":status 200"},
	} {
		if got := h2Ask(t, d.proxy, tc.path, prom); got != tc.want {
			t.Errorf("h2 :path %q: %s, want %s", tc.path, got, tc.want)
		}
	}
	if got := debugURIs(d.Runner); len(got) != 0 {
		t.Errorf("the runner's exporter got /debug/ paths from a user not granted pprof: %q", got)
	}
	wantNode := []string{
		"/metrics?x=../debug/pprof", "/metrics?/../../debug/pprof/heap", "/extra/a?x=/debug/pprof/", "/extra/debug/pprof/heap",
	}
	wantNode = slices.Concat(wantNode, wantNode, []string{"/metrics?x=../debug/pprof"})
	if got := d.Node.URIs(); !slices.Equal(got, wantNode) {
		t.Errorf("node exporter got\n%q\nwant\n%q", got, wantNode)
	}
	if got := d.Runner.URIs(); !slices.Equal(got, []string{"/metrics?../debug/pprof/heap", "/metrics?../debug/pprof/heap"}) {
		t.Errorf("runner exporter got %q", got)
	}

	// oncall reaches pprof, and through the same spellings nothing more.
	oncall := basic(oncallUser, oncallPassword)
	one(t, "oncall /debug/pprof/heap", d.raw(t, rawGet("/debug/pprof/heap", oncall), 5*time.Second), 200, upBody)
	one(t, "oncall /debug/pprof/../../metrics", d.raw(t, rawGet("/debug/pprof/../../metrics", oncall), 5*time.Second), 400, bad)
	one(t, "oncall /debug/pprof", d.raw(t, rawGet("/debug/pprof", oncall), 5*time.Second), 404, notFound)
	if got := debugURIs(d.Runner); !slices.Equal(got, []string{"/debug/pprof/heap"}) {
		t.Errorf("runner exporter /debug/ paths: %q, want only oncall's", got)
	}
	// Route labels are the routes' names, never a client's path.
	m := d.selfMetrics(t, d.client(goodSrc))
	for _, line := range strings.Split(m, "\n") {
		if strings.Contains(line, "route=") && !hasRouteLabel(line) {
			t.Errorf("a route label that is not a route's name: %s", line)
		}
	}
	expectMetrics(t, m, map[string]float64{
		`metrics_proxy_route_requests_total{outcome="ok",route="node"}`:               5,
		`metrics_proxy_route_requests_total{outcome="ok",route="extra"}`:              4,
		`metrics_proxy_route_requests_total{outcome="ok",route="runner"}`:             2,
		`metrics_proxy_route_requests_total{outcome="ok",route="pprof"}`:              1,
		`metrics_proxy_route_requests_total{outcome="forbidden_route",route="pprof"}`: 2*4 + 2,
	})
}

// hasRouteLabel reports whether a line's route label is one of
// routesDoor's route names.
func hasRouteLabel(line string) bool {
	for _, n := range []string{"runner", "node", "extra", "pprof"} {
		if strings.Contains(line, `route="`+n+`"`) {
			return true
		}
	}
	return false
}

// h2Ask sends one GET of path (any :path, as is) with auth over a new
// HTTP/2 connection and says how the stream ended: ":status N" (reading
// past a graceful GOAWAY, which refusals send), "RST_STREAM CODE", "GOAWAY
// CODE" for an error or "closed".
func h2Ask(t *testing.T, p *proxy, path, auth string) string {
	t.Helper()
	_, fr := p.h2Conn(t)
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", p.Addr}, {":path", path}, {"authorization", auth}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		f, err := fr.ReadFrame()
		if err != nil {
			return "closed"
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID == 1 {
				return ":status " + f.PseudoValue("status")
			}
		case *http2.GoAwayFrame:
			if f.ErrCode != http2.ErrCodeNo {
				return "GOAWAY " + f.ErrCode.String()
			}
		case *http2.RSTStreamFrame:
			return "RST_STREAM " + f.ErrCode.String()
		}
	}
	return "no answer"
}

// An authenticated identity cannot tell a route granted to others from a
// path no route serves: byte for byte the same answer (status, headers,
// Content-Length, body, the connection closed after it), over HTTP/1.1 and
// HTTP/2, GET and HEAD. Anonymous clients get one and the same 401 for the
// proxy's own pages, routes and unknown paths. The landing page lists only
// the identity's own routes, never an upstream address.
func TestAttackRoutesForbiddenLooksUnknown(t *testing.T) {
	t.Parallel()
	d := startRoutesDoor(t, nil, nil)
	for who, auth := range map[string]string{"prometheus": basic(defaultUser, defaultPassword), "token": "Bearer " + d.Token} {
		for _, method := range []string{"GET", "HEAD"} {
			forbidden, fClosed := d.rawDump(t, "", method, "/debug/pprof/heap", auth)
			unknown, uClosed := d.rawDump(t, "", method, "/debug/pprog/heap", auth)
			if forbidden != unknown || !fClosed || !uClosed {
				t.Errorf("%s %s: forbidden route (closed %v):\n%s\nunknown path (closed %v):\n%s", who, method, fClosed, forbidden, uClosed, unknown)
			}
			want := "404 Not Found close=true\r\nCache-Control: no-store\r\nContent-Length: 10\r\nContent-Type: text/plain; charset=utf-8\r\nDate: -\r\nX-Content-Type-Options: nosniff\r\n\n"
			if method == "GET" {
				want += "Not Found\n"
			}
			if forbidden != want {
				t.Errorf("%s %s forbidden route:\n%q\nwant\n%q", who, method, forbidden, want)
			}
		}
		h2 := d.h2Client("")
		var dumps []string
		for _, path := range []string{"/debug/pprof/heap", "/debug/pprog/heap"} {
			r := do(t, h2, "GET", d.URL+path, map[string]string{"Authorization": auth})
			r.Header.Del("Date")
			dumps = append(dumps, fmt.Sprintf("%d HTTP/%d %s%q", r.Status, r.Proto, headerString(r.Header), r.Body))
		}
		if dumps[0] != dumps[1] || !strings.HasPrefix(dumps[0], "404 HTTP/2 ") {
			t.Errorf("%s over HTTP/2: forbidden %s, unknown %s", who, dumps[0], dumps[1])
		}
	}

	// Anonymous: the same 401 everywhere, each from an address of its own
	// (so no refusal bucket runs dry).
	var first string
	for i, path := range []string{"/", "/-/ready", "/-/healthy", "/proxy/metrics", "/metrics", "/node/metrics", "/debug/pprof/", "/debug/pprof/heap", "/nope"} {
		got, closed := d.rawDump(t, fmt.Sprintf("127.0.1.%d", i+1), "GET", path, "")
		if i == 0 {
			first = got
			if !strings.HasPrefix(got, "401 Unauthorized close=true\r\n") || !strings.Contains(got, `Www-Authenticate: Basic realm="metrics-proxy", charset="UTF-8"`) {
				t.Errorf("anonymous /:\n%s", got)
			}
		}
		if got != first || !closed {
			t.Errorf("anonymous %s (closed %v):\n%s\nunlike anonymous /:\n%s", path, closed, got, first)
		}
	}

	// The landing page: the identity's own routes, in both forms, and no
	// upstream address, port or other identity's route.
	c := d.client(goodSrc)
	for _, tc := range []struct {
		who   string
		hdr   map[string]string
		pprof bool
	}{
		{"prometheus", authHeader(defaultUser, defaultPassword), false},
		{"token", bearer(d.Token), false},
		{"oncall", authHeader(oncallUser, oncallPassword), true},
	} {
		for _, accept := range []string{"", "text/html"} {
			hdr := map[string]string{"Accept": accept}
			for k, v := range tc.hdr {
				hdr[k] = v
			}
			r := do(t, c, "GET", d.URL+"/", hdr)
			if r.Status != 200 || strings.Contains(r.Body, "pprof") != tc.pprof || !strings.Contains(r.Body, "/node/extra/") {
				t.Errorf("%s landing (%q): %d, lists pprof %v (want %v):\n%s", tc.who, accept, r.Status, strings.Contains(r.Body, "pprof"), tc.pprof, r.Body)
			}
			for _, leak := range []string{d.Runner.Addr, d.Node.Addr, "127.0.0.1", "localhost", "http:", "oncall"} {
				if strings.Contains(r.Body, leak) && !(leak == "oncall" && tc.who == "oncall") {
					t.Errorf("%s landing (%q) shows %q:\n%s", tc.who, accept, leak, r.Body)
				}
			}
		}
	}
	if got := slices.Concat(d.Runner.URIs(), d.Node.URIs()); len(got) != 0 {
		t.Errorf("upstreams got %q", got)
	}
}

// The proxy's own pages tell an identity nothing the 404 hides: for
// prometheus, not granted pprof, /proxy/metrics (which names every route and
// counts forbidden routes apart) is the same 404 as an unknown path, and
// /-/ready judges only the routes it may use; oncall, granted every route,
// reads both in full.
func TestAttackRoutesSelfPagesOracle(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, nil)
	oncallHash := hashPassword(t, oncallPassword, 10)
	p := startProxy(t, proxyOptions{
		Web: func(k *pki) string {
			return tlsBlock(k) + usersBlock(defaultUser, defaultHash(t), oncallUser, oncallHash)
		},
		Routes: fmt.Sprintf(`routes:
  - name: runner
    path: /metrics
    upstream: %s/metrics
  - name: pprof
    path: /debug/pprof/
    upstream: http://%s/debug/pprof/
    allow:
      users: [oncall]
`, up.URL, freeAddr(t)),
	})
	c := p.client(goodSrc)
	unknown := p.getAs(t, c, "/no/such/page", defaultUser, defaultPassword)
	self := p.getAs(t, c, "/proxy/metrics", defaultUser, defaultPassword)
	unknown.Header.Del("Date")
	self.Header.Del("Date")
	if self.Status != 404 || self.Body != unknown.Body || headerString(self.Header) != headerString(unknown.Header) {
		t.Errorf("prometheus /proxy/metrics: %d %q\n%s\nwant exactly the unknown path's %d %q\n%s",
			self.Status, self.Body, headerString(self.Header), unknown.Status, unknown.Body, headerString(unknown.Header))
	}
	if r := p.getAs(t, c, "/-/ready", defaultUser, defaultPassword); r.Status != 200 || r.Body != "metrics-proxy is ready.\n" {
		t.Errorf("prometheus /-/ready: %d %q; want 200: the runner route it may use is up", r.Status, r.Body)
	}
	p.User, p.Password = oncallUser, oncallPassword
	if m := p.selfMetrics(t, c); !strings.Contains(m, `route="pprof"`) {
		t.Errorf("oncall, an admin by default, does not see the pprof route in /proxy/metrics")
	}
}

// profilingRoutes is a routes file with the runner's /metrics for everyone
// and two profiling routes for oncall only: the CPU profile as an exact
// route, and the rest of pprof as a prefix route.
func profilingRoutes(runnerURL, timeout string) string {
	return fmt.Sprintf(`routes:
  - name: runner
    path: /metrics
    upstream: %[1]s/metrics
  - name: cpu
    path: /debug/pprof/profile
    upstream: %[1]s/debug/pprof/profile
    timeout: %[2]s
    allow:
      users: [oncall]
  - name: pprof
    path: /debug/pprof/
    upstream: %[1]s/debug/pprof/
    allow:
      users: [oncall]
`, runnerURL, timeout)
}

// Nobody but oncall may make the runner profile itself, yet /-/ready
// probes every route's own upstream path, profiling routes included: an
// anonymous /-/ready (--web.health-without-auth), or one from prometheus,
// who is not granted pprof, sends GET /debug/pprof/profile and GET
// /debug/pprof/ to the runner.
func TestAttackRoutesReadyProbesProfiling(t *testing.T) {
	t.Parallel()
	oncallHash := hashPassword(t, oncallPassword, 10)
	web := func(k *pki) string {
		return tlsBlock(k) + usersBlock(defaultUser, defaultHash(t), oncallUser, oncallHash)
	}
	for _, tc := range []struct {
		who  string
		args []string
		hdr  map[string]string
		body string
	}{
		{"anonymous", []string{"--web.health-without-auth"}, nil, "OK\n"},
		{"prometheus", nil, authHeader(defaultUser, defaultPassword), "metrics-proxy is ready.\n"},
	} {
		up := startUpstream(t, nil)
		p := startProxy(t, proxyOptions{Web: web, Routes: profilingRoutes(up.URL, "60s"), Args: tc.args})
		r := do(t, p.client("127.0.1.1"), "GET", p.URL+"/-/ready", tc.hdr)
		if r.Status != 200 || r.Body != tc.body {
			t.Errorf("%s /-/ready: %d %q, want 200 %q", tc.who, r.Status, r.Body, tc.body)
		}
		if got := debugURIs(up); len(got) != 0 {
			t.Errorf("%s /-/ready made the runner's exporter serve %q (probes %q); nobody granted pprof asked for it", tc.who, got, readinessProbes(up))
		}
	}
}

// What that costs with the real runner: an anonymous /-/ready makes it
// take a 30 s CPU profile (pprof's default), and oncall, who is granted
// the route, gets the runner's 500 "cpu profiling already in use" until it
// ends. With a route timeout under 30 s the probe times out instead, so
// /-/ready reports a runner that serves as not ready, and every probe a
// second later starts the next profile.
func TestAttackRoutesReadyProbeHoldsCPUProfile(t *testing.T) {
	t.Parallel()
	_, runnerAddr := startRunner(t, "concurrent = 1\n", "--metrics-server", "127.0.0.1:0")
	oncallHash := hashPassword(t, oncallPassword, 10)
	p := startProxy(t, proxyOptions{
		Web: func(k *pki) string {
			return tlsBlock(k) + usersBlock(defaultUser, defaultHash(t), oncallUser, oncallHash)
		},
		Routes: profilingRoutes("http://"+runnerAddr, "60s"),
		Args:   []string{"--web.health-without-auth"},
	})
	// The anonymous /-/ready, not waited for: its probe takes 30 s.
	c := p.mustTLS(t, "127.0.1.1")
	defer c.Close()
	if _, err := io.WriteString(c, "GET /-/ready HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// The runner is profiling once its goroutines show pprof's handler
	// (read without profiling, so as not to compete with the probe).
	busy := false
	for range 200 {
		_, dump := httpGet(t, http.DefaultClient, "http://"+runnerAddr+"/debug/pprof/goroutine?debug=2", nil)
		if strings.Contains(dump, "net/http/pprof.Profile(") {
			busy = true
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if busy {
		t.Errorf("an anonymous /-/ready started a CPU profile on the runner")
	}
	r := p.getAs(t, p.client(goodSrc), "/debug/pprof/profile?seconds=1", oncallUser, oncallPassword)
	if r.Status != 200 {
		t.Errorf("oncall's CPU profile: %d %q, want 200", r.Status, r.Body)
	}

	// With a route timeout under pprof's 30 s, the probe never gets an
	// answer: a runner that serves is reported not ready, for good.
	_, runner2 := startRunner(t, "concurrent = 1\n", "--metrics-server", "127.0.0.1:0")
	p2 := startProxy(t, proxyOptions{
		Web: func(k *pki) string {
			return tlsBlock(k) + usersBlock(defaultUser, defaultHash(t), oncallUser, oncallHash)
		},
		Routes: profilingRoutes("http://"+runner2, "1s"),
	})
	if r := p2.get(t, p2.client(goodSrc), "/-/ready"); r.Status != 200 {
		t.Errorf("/-/ready with the runner up: %d %q, want 200", r.Status, r.Body)
	}
}

// floodReady sends anonymous GET /-/ready from workers addresses
// 127.0.1.1 and up until stop closes, each worker over a keep-alive client
// that counts the connections it dials. It returns the answers by status
// and body, how many answers did not close their connection, and the
// connections dialled.
func (p *proxy) floodReady(t *testing.T, workers int, stop <-chan struct{}) func() (answers map[string]int, kept, dials int) {
	var (
		mu      sync.Mutex
		answers = map[string]int{}
		kept    int
		dials   int
		wg      sync.WaitGroup
	)
	for w := range workers {
		c := p.client(fmt.Sprintf("127.0.1.%d", w+1))
		tr := c.Transport.(*http.Transport)
		dial := tr.DialContext
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			mu.Lock()
			dials++
			mu.Unlock()
			return dial(ctx, network, addr)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", p.URL+"/-/ready", nil)
				resp, err := c.Do(req)
				key := "error"
				closed := true
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					key = fmt.Sprintf("%d %q", resp.StatusCode, b)
					closed = resp.Close
				}
				mu.Lock()
				answers[key]++
				if !closed {
					kept++
				}
				mu.Unlock()
			}
		}()
	}
	return func() (map[string]int, int, int) { wg.Wait(); return answers, kept, dials }
}

// --web.health-without-auth: an anonymous /-/ready flood from 8 addresses
// while node's exporter answers 503. Every answer is the bare 503, each
// closes its connection (one connection dialled per request), the failing
// exporter gets at most one probe per second of flood (plus the first),
// the runner's exporter, scraped meanwhile, none; and every scrape of the
// good client from 127.0.0.2 is served.
func TestAttackRoutesReadyFloodWithoutAuth(t *testing.T) {
	t.Parallel()
	runner := startUpstream(t, nil)
	node := startUpstream(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) })
	p := startProxy(t, proxyOptions{
		Routes: fmt.Sprintf("routes:\n  - {name: runner, path: /metrics, upstream: %s/metrics}\n  - {name: node, path: /node/metrics, upstream: %s/metrics}\n", runner.URL, node.URL),
		Args:   []string{"--web.health-without-auth"},
	})
	good := p.client(goodSrc)
	if r := p.get(t, good, "/metrics"); r.Status != 200 {
		t.Fatalf("first scrape: %d", r.Status)
	}
	stopScrapes := make(chan struct{})
	scraped := p.keepScraping(good, 100*time.Millisecond, 1000, stopScrapes)
	stop := make(chan struct{})
	start := time.Now()
	wait := p.floodReady(t, 8, stop)
	time.Sleep(3 * time.Second)
	close(stop)
	answers, kept, dials := wait()
	elapsed := time.Since(start)
	close(stopScrapes)
	scraped().check(t, "good scrapes during the /-/ready flood", 10)

	n := 0
	for k, v := range answers {
		n += v
		if k != `503 "Service Unavailable\n"` {
			t.Errorf("flood answer %s: %d times", k, v)
		}
	}
	if n < 100 || kept != 0 || dials != n {
		t.Errorf("flood: %d answers, %d kept their connection, %d connections dialled; want at least 100, 0 kept, one connection per answer", n, kept, dials)
	}
	probes := readinessProbes(node)
	if limit := int(elapsed/time.Second) + 2; len(probes) > limit || len(probes) < 1 {
		t.Errorf("node's exporter got %d probes in %v of flood (%q), want 1 to %d", len(probes), elapsed, probes, limit)
	}
	if got := readinessProbes(runner); len(got) != 0 {
		t.Errorf("the runner's exporter, scraped all along, got probes %q", got)
	}
	// Nothing of it is counted as a request, nor as an authenticated one.
	expectMetrics(t, p.selfMetrics(t, good), map[string]float64{
		outcome("unauthorized"):                           0,
		`metrics_proxy_auth_attempts_total{outcome="ok"}`: 1,
	})
	t.Logf("%d anonymous /-/ready answered, %d probes of node", n, len(probes))
}

// Two routes to one exporter (as examples/routes.yml has the runner's
// /metrics and its pprof): /-/ready probes it once per route, at the same
// time, so the exporter carries two probes at once where one was promised
// ("one probe at a time per upstream").
func TestAttackRoutesReadyOneProbePerUpstream(t *testing.T) {
	t.Parallel()
	var (
		mu             sync.Mutex
		inFlight, most int
	)
	slowDown := func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		mu.Unlock()
		time.Sleep(300 * time.Millisecond)
		mu.Lock()
		inFlight--
		mu.Unlock()
		http.Error(w, "down", http.StatusServiceUnavailable)
	}
	up := startUpstream(t, slowDown)
	p := startProxy(t, proxyOptions{
		Routes: fmt.Sprintf("routes:\n  - {name: runner, path: /metrics, upstream: %[1]s/metrics}\n  - {name: runner-build, path: /build/metrics, upstream: %[1]s/build/metrics}\n", up.URL),
		Args:   []string{"--web.health-without-auth"},
	})
	r := do(t, p.client("127.0.1.1"), "GET", p.URL+"/-/ready", nil)
	mu.Lock()
	got := most
	mu.Unlock()
	if r.Status != 503 || got != 1 {
		t.Errorf("/-/ready: %d; the exporter carried %d probes at once (%q), want 503 and 1", r.Status, got, readinessProbes(up))
	}
}

// --web.health-without-auth answers exactly /-/healthy and /-/ready to
// anyone, with the status alone: no route name, no upstream, the same bare
// answer whatever credentials (right, wrong, a token) come with it; each
// answer closes its connection, over HTTP/1.1 (a pipelined request is
// never read) and HTTP/2 (GOAWAY). Neighbouring paths still need
// authentication.
func TestAttackRoutesHealthWithoutAuthSaysOnlyStatus(t *testing.T) {
	t.Parallel()
	d := startRoutesDoor(t, nil, nil, "--web.health-without-auth")
	want := "200 OK close=true\r\nCache-Control: no-store\r\nContent-Length: 3\r\nContent-Type: text/plain; charset=utf-8\r\nDate: -\r\nX-Content-Type-Options: nosniff\r\n\nOK\n"
	for i, auth := range []string{"", basic(defaultUser, defaultPassword), basic(oncallUser, oncallPassword), basic(defaultUser, "wrong"), "Bearer " + d.Token, "Bearer " + strings.Repeat("x", 43)} {
		for _, path := range []string{"/-/healthy", "/-/ready", "/-/ready?verbose=1"} {
			got, closed := d.rawDump(t, fmt.Sprintf("127.0.1.%d", i+1), "GET", path, auth)
			if got != want || !closed {
				t.Errorf("%s with %.12q (closed %v):\n%s\nwant\n%s", path, auth, closed, got, want)
			}
		}
	}
	for _, path := range []string{"/-/ready/", "/-/readyz", "/-/healthy/", "/-/", "/-", "/-/Ready"} {
		one(t, "anonymous "+path, d.raw(t, rawGet(path, ""), 5*time.Second), 401, "Unauthorized\n")
	}
	// HTTP/2: the answer, then GOAWAY, and nothing more on the connection.
	c, fr := d.h2Conn(t)
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", d.Addr}, {":path", "/-/ready"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	statuses, goAway, err := doorH2Drain(c, fr, 5*time.Second)
	if !slices.Equal(statuses, []string{"200"}) || !goAway || !closedByPeer(err) {
		t.Errorf("h2 anonymous /-/ready: statuses %q, GOAWAY %v, end %v; want 200, GOAWAY, closed by the proxy", statuses, goAway, err)
	}
	if got := debugURIs(d.Node); len(got) != 0 {
		t.Errorf("node exporter got %q", got)
	}
}

// Bearer-token tricks against a door with users and the token
// node-scraper (granted the routes open to everyone, not pprof). Each gets
// the exact answer listed, no bcrypt runs for any of them, and nothing
// unauthenticated reaches an exporter.
func TestAttackRoutesTokenTricks(t *testing.T) {
	t.Parallel()
	d := startRoutesDoor(t, nil, nil, "--web.throttle-delay=1ms")
	tok := d.Token
	sum := sha256.Sum256([]byte(tok))
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	const unauth, tooLarge = "Unauthorized\n", "431 Request Header Fields Too Large"
	cases := []struct {
		what   string
		raw    string // header lines, each ending in CRLF
		target string
		status int
		body   string
	}{
		{"right token", "Authorization: Bearer " + tok + "\r\n", "/node/metrics", 200, upBody},
		{"lower-case scheme", "Authorization: bearer " + tok + "\r\n", "/node/metrics", 200, upBody},
		{"upper-case scheme", "Authorization: BEARER " + tok + "\r\n", "/node/metrics", 200, upBody},
		// HTTP/1.1 strips the spaces around a field value before anyone sees it.
		{"trailing spaces (OWS)", "Authorization: Bearer " + tok + "   \r\n", "/node/metrics", 200, upBody},
		{"token, pprof", "Authorization: Bearer " + tok + "\r\n", "/debug/pprof/heap", 404, "Not Found\n"},
		{"two spaces", "Authorization: Bearer  " + tok + "\r\n", "/node/metrics", 401, unauth},
		{"tab", "Authorization: Bearer\t" + tok + "\r\n", "/node/metrics", 401, unauth},
		{"no space", "Authorization: Bearer" + tok + "\r\n", "/node/metrics", 401, unauth},
		{"space inside", "Authorization: Bearer " + tok[:20] + " " + tok[20:] + "\r\n", "/node/metrics", 401, unauth},
		{"padding added", "Authorization: Bearer " + tok + "=\r\n", "/node/metrics", 401, unauth},
		{"one byte short", "Authorization: Bearer " + tok[:len(tok)-1] + "\r\n", "/node/metrics", 401, unauth},
		{"the other case", "Authorization: Bearer " + strings.ToUpper(tok) + "\r\n", "/node/metrics", 401, unauth},
		{"its sha256 as the token", "Authorization: Bearer " + d.TokenSum + "\r\n", "/node/metrics", 401, unauth},
		{"its sha256, upper case", "Authorization: Bearer " + strings.ToUpper(d.TokenSum) + "\r\n", "/node/metrics", 401, unauth},
		{"its sha256 in base64", "Authorization: Bearer " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\n", "/node/metrics", 401, unauth},
		{"its name", "Authorization: Bearer node-scraper-node-scraper\r\n", "/node/metrics", 401, unauth},
		{"Basic with the token as password", "Authorization: Basic " + b64("node-scraper:"+tok) + "\r\n", "/node/metrics", 401, unauth},
		{"Basic with the token as user", "Authorization: Basic " + b64(tok+":") + "\r\n", "/node/metrics", 401, unauth},
		{"token and Basic: two headers", "Authorization: Bearer " + tok + "\r\nAuthorization: " + basic(defaultUser, defaultPassword) + "\r\n", "/node/metrics", 401, unauth},
		{"the token twice", "Authorization: Bearer " + tok + "\r\nAuthorization: Bearer " + tok + "\r\n", "/node/metrics", 401, unauth},
		{"both in one header", "Authorization: Bearer " + tok + ", " + basic(defaultUser, defaultPassword) + "\r\n", "/node/metrics", 401, unauth},
		{"Proxy-Authorization", "Proxy-Authorization: Bearer " + tok + "\r\n", "/node/metrics", 401, unauth},
		{"X-Auth-Token", "X-Auth-Token: " + tok + "\r\n", "/node/metrics", 401, unauth},
		{"Cookie", "Cookie: token=" + tok + "\r\n", "/node/metrics", 401, unauth},
		{"in the query", "", "/node/metrics?access_token=" + tok, 401, unauth},
		{"in the query, as bearer", "", "/node/metrics?authorization=Bearer%20" + tok, 401, unauth},
		{"token of 513 bytes", "Authorization: Bearer " + tok + strings.Repeat("A", 513-len(tok)) + "\r\n", "/node/metrics", 401, unauth},
		{"token of 8 KiB", "Authorization: Bearer " + strings.Repeat("A", 8<<10) + "\r\n", "/node/metrics", 401, unauth},
		{"token of 16 KiB", "Authorization: Bearer " + strings.Repeat("A", 16<<10) + "\r\n", "/node/metrics", 431, tooLarge},
		{"empty token", "Authorization: Bearer \r\n", "/node/metrics", 401, unauth},
		{"token of '='", "Authorization: Bearer " + strings.Repeat("=", 30) + "\r\n", "/node/metrics", 401, unauth},
	}
	for i, tc := range cases {
		c := d.mustTLS(t, fmt.Sprintf("127.0.1.%d", i+1))
		rs := exchange(t, c, "GET "+tc.target+" HTTP/1.1\r\nHost: x\r\n"+tc.raw+"Connection: close\r\n\r\n", 5*time.Second)
		c.Close()
		one(t, tc.what, rs, tc.status, tc.body)
		if len(rs) == 1 && tc.status == 401 {
			if got := rs[0].Header.Values("Www-Authenticate"); !slices.Equal(got, []string{`Basic realm="metrics-proxy", charset="UTF-8"`, `Bearer realm="metrics-proxy"`}) {
				t.Errorf("%s: WWW-Authenticate %q", tc.what, got)
			}
		}
	}
	// Over HTTP/2 the value is as sent: a trailing space is part of it.
	if got := h2Ask(t, d.proxy, "/node/metrics", "Bearer "+tok+" "); got != ":status 401" {
		t.Errorf("h2 token with a trailing space: %s, want :status 401", got)
	}
	if got := h2Ask(t, d.proxy, "/node/metrics", "Bearer "+tok); got != ":status 200" {
		t.Errorf("h2 token: %s, want :status 200", got)
	}
	want := slices.Repeat([]string{"/metrics"}, 5)
	if got := d.Node.URIs(); !slices.Equal(got, want) {
		t.Errorf("node exporter got %q, want %q", got, want)
	}
	m := d.selfMetrics(t, d.client(goodSrc))
	expectMetrics(t, m, map[string]float64{
		// The two Basic attempts with the token (a user that does not
		// exist costs what a real one does), and the good client's own
		// password, to read these; no Bearer attempt.
		"metrics_proxy_auth_bcrypt_checks_total": 3,
	})
}

// 60 fresh wrong tokens from one address: 401 for the refusal burst, 429
// after, and no bcrypt; then the right token from that same address, and
// from the good client's, passes at once, and the address's back-off does
// not spill onto the good client.
func TestAttackRoutesWrongTokenFloodThenRightToken(t *testing.T) {
	t.Parallel()
	d := startRoutesDoor(t, nil, nil, "--web.throttle-delay=1ms")
	const src = "127.0.1.77"
	c := d.client(src)
	counts := map[int]int{}
	start := time.Now()
	for i := range 60 {
		wrong := fmt.Sprintf("mpt_%043d", i)
		r := do(t, c, "GET", d.URL+"/node/metrics", bearer(wrong))
		counts[r.Status]++
	}
	// The refusal bucket: a burst of 10, one more a second.
	if most := 10 + int(time.Since(start)/time.Second); counts[401]+counts[429] != 60 || counts[401] < 10 || counts[401] > most {
		t.Errorf("wrong tokens: %v, want 10 to %d × 401 and the rest 429", counts, most)
	}
	for _, tc := range []struct{ src, path string }{{src, "/node/metrics"}, {src, "/metrics"}, {goodSrc, "/node/metrics"}} {
		if r := do(t, d.client(tc.src), "GET", d.URL+tc.path, bearer(d.Token)); r.Status != 200 || r.Body != upBody {
			t.Errorf("right token from %s after the flood, %s: %d %q", tc.src, tc.path, r.Status, r.Body)
		}
	}
	// Still nothing more than the token grants.
	if r := do(t, c, "GET", d.URL+"/debug/pprof/", bearer(d.Token)); r.Status != 404 {
		t.Errorf("right token, pprof: %d", r.Status)
	}
	// An address in password back-off: the right token still passes, and
	// does not lift the back-off for the next password guess.
	const guesser = "127.0.1.78"
	gc := d.client(guesser)
	var guesses []int
	for i := range 7 {
		guesses = append(guesses, d.getAs(t, gc, "/metrics", defaultUser, fmt.Sprintf("guess-%d", i)).Status)
	}
	if want := []int{401, 401, 401, 401, 401, 429, 429}; !slices.Equal(guesses, want) {
		t.Errorf("password guesses: %v, want %v (5 free failures, then back-off)", guesses, want)
	}
	if r := do(t, gc, "GET", d.URL+"/node/metrics", bearer(d.Token)); r.Status != 200 {
		t.Errorf("right token from an address in back-off: %d", r.Status)
	}
	if r := d.getAs(t, gc, "/metrics", defaultUser, "guess-after-token"); r.Status != 429 {
		t.Errorf("a password guess right after the token: %d, want 429 (the token lifts no back-off)", r.Status)
	}
	m := d.selfMetrics(t, d.client(goodSrc))
	expectMetrics(t, m, map[string]float64{
		authOutcome("ok"): 6, // 5 right tokens, 1 password
		// The 5 guesses before the back-off, and the good client's password.
		"metrics_proxy_auth_bcrypt_checks_total": 6,
	})
	if got, want := len(d.Node.URIs())+len(d.Runner.URIs()), 4; got != want {
		t.Errorf("exporters got %d requests, want %d", got, want)
	}
}

// waitWatching waits until p's watcher watches the routes file's
// directory (it starts just after the proxy listens, and a change before
// that is only seen by the 30 s poll): it touches a file there until the
// debug log reports the directory changed.
func (p *proxy) waitWatching(t *testing.T) {
	t.Helper()
	touch := filepath.Join(filepath.Dir(p.RoutesFile), "watch-probe")
	for i := range 500 {
		writeFile(t, touch, strconv.Itoa(i))
		if strings.Contains(p.Logs(), `msg="Web config directory changed"`) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the proxy never saw its routes file's directory change")
}

// writeRoutesHalf truncates p's routes file and writes head, as a slow
// editor or a copy cut short would, and waits until the proxy has looked
// at it (whatever it decided); finish then writes the rest and waits for
// the complete file to be applied.
func (p *proxy) writeRoutesHalf(t *testing.T, head string) (finish func(rest string)) {
	t.Helper()
	p.waitWatching(t)
	before := p.countLog(reloadFailed) + p.countLog(reloaded)
	f, err := os.OpenFile(p.RoutesFile, os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(head); err != nil {
		t.Fatal(err)
	}
	f.Sync()
	for range 1000 {
		if p.countLog(reloadFailed)+p.countLog(reloaded) > before {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return func(rest string) {
		t.Helper()
		n := p.countLog(reloaded)
		if _, err := f.WriteString(rest); err != nil {
			t.Fatal(err)
		}
		f.Close()
		p.waitCount(reloaded, n+1)
	}
}

// A routes file whose last lines are a route's allow: (node for the token
// node-scraper only), cut just before them by a half-finished write. The
// half parses, and it is the same route without allow:, which means every
// authenticated client: prometheus, never granted node, reads node's
// exporter until the rest of the file arrives. Dropping an authentication
// factor in such a write is refused (it needs a restart); dropping a
// route's allow: widens it silently.
func TestAttackRoutesReloadTruncatedAllowWidensRoute(t *testing.T) {
	t.Parallel()
	node := startUpstream(t, nil)
	tokenFile, sum := newToken(t, t.TempDir())
	token := strings.TrimSpace(readFile(t, tokenFile))
	head := fmt.Sprintf("tokens:\n  node-scraper: %s\nroutes:\n  - name: node\n    path: /node/metrics\n    upstream: %s/metrics\n", sum, node.URL)
	const allow = "    allow:\n      tokens: [node-scraper]\n"
	p := startProxy(t, proxyOptions{Routes: head + allow})
	c := p.client(goodSrc)
	if r := do(t, c, "GET", p.URL+"/node/metrics", bearer(token)); r.Status != 200 {
		t.Fatalf("node-scraper: %d", r.Status)
	}
	if r := p.get(t, c, "/node/metrics"); r.Status != 404 {
		t.Fatalf("prometheus before: %d, want 404", r.Status)
	}
	finish := p.writeRoutesHalf(t, head)
	if r := p.get(t, p.client(goodSrc), "/node/metrics"); r.Status != 404 {
		t.Errorf("prometheus while the routes file is half written: %d %.40q, want 404 (node is node-scraper's only)", r.Status, r.Body)
	}
	finish(allow)
	if r := p.get(t, p.client(goodSrc), "/node/metrics"); r.Status != 404 {
		t.Errorf("prometheus after: %d, want 404", r.Status)
	}
}

// The same cut before the allow: of a profiling route: the half-written
// route to /debug/pprof/ names nobody, so it is open to nobody (not to
// everyone); prometheus gets 404 throughout and the runner's exporter
// never sees a /debug/ path from it. The complete file gives oncall pprof
// back.
func TestAttackRoutesReloadTruncatedProfilingStaysClosed(t *testing.T) {
	t.Parallel()
	runner := startUpstream(t, nil)
	oncallHash := hashPassword(t, oncallPassword, 10)
	head := fmt.Sprintf("routes:\n  - name: runner\n    path: /metrics\n    upstream: %[1]s/metrics\n  - name: pprof\n    path: /debug/pprof/\n    upstream: %[1]s/debug/pprof/\n", runner.URL)
	const allow = "    allow:\n      users: [oncall]\n"
	p := startProxy(t, proxyOptions{
		Web: func(k *pki) string {
			return tlsBlock(k) + usersBlock(defaultUser, defaultHash(t), oncallUser, oncallHash)
		},
		Routes: head + allow,
	})
	check := func(when string, oncallStatus int) {
		t.Helper()
		c := p.client(goodSrc)
		if r := p.get(t, c, "/debug/pprof/heap"); r.Status != 404 || r.Body != "Not Found\n" {
			t.Errorf("prometheus /debug/pprof/heap %s: %d %q, want 404", when, r.Status, r.Body)
		}
		if r := p.getAs(t, c, "/debug/pprof/heap", oncallUser, oncallPassword); r.Status != oncallStatus {
			t.Errorf("oncall /debug/pprof/heap %s: %d, want %d", when, r.Status, oncallStatus)
		}
	}
	check("before", 200)
	finish := p.writeRoutesHalf(t, head)
	p.waitCount(reloaded, 1)
	check("while the routes file is half written", 404)
	finish(allow)
	check("after", 200)
	if got := debugURIs(runner); !slices.Equal(got, []string{"/debug/pprof/heap", "/debug/pprof/heap"}) {
		t.Errorf("runner exporter /debug/ paths: %q, want oncall's two", got)
	}
	if !strings.Contains(p.Logs(), "names nobody under allow:, so nobody can use it") {
		t.Errorf("no warning that the half-written pprof route names nobody")
	}
}

// Routes files whose node route points somewhere that is not this host's
// loopback, swapped in one after another: every one is refused with the
// reason, the last good routes keep serving node from its loopback
// exporter, and the reload metrics count them.
func TestAttackRoutesReloadNonLoopbackUpstreamRefused(t *testing.T) {
	t.Parallel()
	d := startRoutesDoor(t, nil, nil)
	c := d.client(goodSrc)
	good := readFile(t, d.RoutesFile)
	nodeUp := "upstream: http://" + d.Node.Addr + "/metrics"
	d.waitWatching(t)
	for i, tc := range []struct{ upstream, reason string }{
		{"http://10.0.0.1:9100/metrics", `host \"10.0.0.1\" is not on this host`},
		{"http://192.0.2.1:80/metrics", `host \"192.0.2.1\" is not on this host`},
		{"http://0.0.0.0:9100/metrics", `host \"0.0.0.0\" is not on this host`},
		{"http://[::]:9100/metrics", `host \"::\" is not on this host`},
		{"http://[::ffff:10.0.0.1]:9100/metrics", `is not on this host`},
		{"http://example.com:9100/metrics", `host \"example.com\" is not on this host`},
		{"http://127.0.0.1.nip.io:9100/metrics", `is not on this host`},
		{"http://localhost.example.com:9100/metrics", `is not on this host`},
		{"http://2130706433:9100/metrics", `is not on this host`},
		{"http://0x7f000001:9100/metrics", `is not on this host`},
		{"http://127.1:9100/metrics", `is not on this host`},
		{"http://0177.0.0.1:9100/metrics", `is not on this host`},
		{"http://127.0.0.1:9100@10.0.0.1:9100/metrics", "contains credentials"},
		{"http://10.0.0.1:9100#@127.0.0.1:9100/metrics", "query or fragment"},
		{"http://[fe80::1%25lo]:9100/metrics", "IPv6 zone"},
		{"https://127.0.0.1:9100/metrics", "uses https"},
		{"ftp://127.0.0.1:9100/metrics", "scheme other than http"},
		{"10.0.0.1:9100", "has no scheme"},
		{"unix:run/node.sock", "absolute socket path"},
		{"http://127.0.0.1:9100/../debug/pprof/", "path is not clean"},
	} {
		replaceAtomically(t, d.RoutesFile, strings.Replace(good, nodeUp, "upstream: "+tc.upstream, 1))
		d.waitCount(reloadFailed, i+1)
		line := nthLine(d.Logs(), reloadFailed, i+1)
		if !strings.Contains(line, "route node: upstream") || !strings.Contains(line, tc.reason) {
			t.Errorf("%s: reload refused with\n%s\nwant route node: upstream ... %s", tc.upstream, line, tc.reason)
		}
		if r := d.get(t, c, "/node/metrics"); r.Status != 200 || r.Body != upBody {
			t.Errorf("after %s: /node/metrics %d %q", tc.upstream, r.Status, r.Body)
		}
	}
	if got := len(d.Node.URIs()); got != 20 {
		t.Errorf("the loopback node exporter served %d scrapes, want all 20", got)
	}
	d.expectReloads(t, false, "failure", 20)
	expectMetrics(t, d.selfMetrics(t, c), map[string]float64{`metrics_proxy_config_reloads_total{result="success"}`: 0})
}

// nthLine is the n-th line (from 1) of s that contains sub.
func nthLine(s, sub string, n int) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			if n--; n == 0 {
				return l
			}
		}
	}
	return ""
}

// A door whose only credential is one bearer token (TLS, no users): routes
// files that would remove it (no tokens:, an empty tokens:, the file
// emptied, the file deleted) are refused on reload, anonymous requests
// stay 401 and the token keeps working; replacing it with another token is
// a reload like any other.
func TestAttackRoutesReloadTokensOnlyDoorKeepsItsToken(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, nil)
	tokenFile, sum := newToken(t, t.TempDir())
	token := strings.TrimSpace(readFile(t, tokenFile))
	routesHead := fmt.Sprintf("routes:\n  - name: runner\n    path: /metrics\n    upstream: %s/metrics\n", up.URL)
	p := startProxy(t, proxyOptions{
		Web:    func(k *pki) string { return tlsBlock(k) },
		Routes: routesHead + "tokens:\n  node-scraper: " + sum + "\n",
	})
	p.waitLog(`auth=token `)
	check := func(when string) {
		t.Helper()
		if r := do(t, p.client(goodSrc), "GET", p.URL+"/metrics", bearer(token)); r.Status != 200 {
			t.Errorf("token %s: %d", when, r.Status)
		}
		if r := do(t, p.client("127.0.1.50"), "GET", p.URL+"/metrics", nil); r.Status != 401 && r.Status != 429 {
			t.Errorf("anonymous %s: %d, want 401", when, r.Status)
		}
	}
	check("at start")
	p.waitWatching(t)
	for i, broken := range []string{
		routesHead,
		routesHead + "tokens: {}\n",
		routesHead + "tokens:\n",
		"",
	} {
		replaceAtomically(t, p.RoutesFile, broken)
		p.waitCount(reloadFailed, i+1)
		check(fmt.Sprintf("after routes file #%d", i+1))
	}
	if !strings.Contains(p.Logs(), "removing tokens (the routes file's tokens:) needs a restart of metrics-proxy") {
		t.Errorf("no refusal naming the removed tokens")
	}
	os.Remove(p.RoutesFile)
	p.waitCount(reloadFailed, 5)
	check("after the routes file was deleted")

	// Rotating the token is not removing it.
	newFile, newSum := newToken(t, t.TempDir())
	replaceAtomically(t, p.RoutesFile, routesHead+"tokens:\n  node-scraper: "+newSum+"\n")
	p.waitCount(reloaded, 1)
	if r := do(t, p.client(goodSrc), "GET", p.URL+"/metrics", bearer(strings.TrimSpace(readFile(t, newFile)))); r.Status != 200 {
		t.Errorf("new token: %d", r.Status)
	}
	if r := do(t, p.client("127.0.1.51"), "GET", p.URL+"/metrics", bearer(token)); r.Status != 401 {
		t.Errorf("old token after the rotation: %d, want 401", r.Status)
	}
}

// hostileExporter answers every request with headers a proxy must not
// relay: cookies, redirects into the runner's pprof, a challenge of its
// own, security policies, its own address; preceded by a 103 Early Hints
// carrying some of them. The status is the last path segment's when it is
// a number.
func hostileExporter(runnerAddr string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Link", "</debug/pprof/>; rel=preload")
		h.Set("Set-Cookie", "early=1")
		w.WriteHeader(http.StatusEarlyHints)
		h = w.Header()
		for k, v := range map[string]string{
			"Set-Cookie":                   "session=exporter; Path=/",
			"Location":                     "http://" + runnerAddr + "/debug/pprof/",
			"Content-Location":             "/debug/pprof/heap",
			"Refresh":                      "0; url=http://" + runnerAddr + "/debug/pprof/",
			"Www-Authenticate":             `Basic realm="node"`,
			"Strict-Transport-Security":    "max-age=0",
			"Content-Security-Policy":      "default-src *",
			"Access-Control-Allow-Origin":  "*",
			"Access-Control-Allow-Headers": "Authorization",
			"Server":                       "node_exporter/1.0 (" + runnerAddr + ")",
			"X-Upstream":                   runnerAddr,
			"Alt-Svc":                      `h2=":9252"`,
			"Trailer":                      "X-Trailer",
			"Content-Type":                 "text/plain; version=0.0.4",
			"X-Content-Type-Options":       "sniff",
			"Cache-Control":                "public, max-age=3600",
		} {
			h.Set(k, v)
		}
		status := 200
		if i := strings.LastIndex(r.URL.Path, "/"); i >= 0 {
			if n, err := strconv.Atoi(r.URL.Path[i+1:]); err == nil {
				status = n
			}
		}
		w.WriteHeader(status)
		io.WriteString(w, upBody)
		w.Header().Set("X-Trailer", "t")
	}
}

// The node routes (exact and prefix) relay the exporter's status and body
// and none of its other headers: every answer, 200, a 302 pointing into
// pprof, its own 401 challenge, over HTTP/1.1 and HTTP/2, carries exactly
// Content-Type, the proxy's nosniff and no-store, and Date (no trailer);
// no 1xx reaches the client.
func TestAttackRoutesUpstreamHeadersDropped(t *testing.T) {
	t.Parallel()
	runner := startUpstream(t, nil)
	d := &routesDoor{Runner: runner}
	d.Node = startUpstream(t, hostileExporter(runner.Addr))
	d.proxy = startProxy(t, proxyOptions{Routes: routesDoorFile(runner.Addr, d.Node.Addr, strings.Repeat("ab", 32))})
	// Chunked (the exporter declares a trailer), so no Content-Length.
	want := []string{"Cache-Control", "Content-Type", "Date", "X-Content-Type-Options"}
	for _, c := range []*http.Client{d.client(goodSrc), d.h2Client(goodSrc)} {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		for path, status := range map[string]int{"/node/metrics": 200, "/node/extra/302": 302, "/node/extra/301": 301, "/node/extra/401": 401, "/node/extra/201": 201} {
			r := d.get(t, c, path)
			var names []string
			for k := range r.Header {
				names = append(names, k)
			}
			slices.Sort(names)
			if r.Status != status || r.Body != upBody || !slices.Equal(names, want) ||
				r.Header.Get("Cache-Control") != "no-store" || r.Header.Get("X-Content-Type-Options") != "nosniff" || r.Header.Get("Content-Type") != "text/plain; version=0.0.4" {
				t.Errorf("HTTP/%d %s: %d %q\n%s", r.Proto, path, r.Status, r.Body, headerString(r.Header))
			}
		}
	}
	// Raw, so that a relayed 103 would show as a response of its own.
	good := basic(defaultUser, defaultPassword)
	one(t, "raw /node/metrics", d.raw(t, rawGet("/node/metrics", good), 5*time.Second), 200, upBody)
	one(t, "raw /node/extra/302", d.raw(t, rawGet("/node/extra/302", good), 5*time.Second), 302, upBody)
	if got := debugURIs(runner); len(got) != 0 {
		t.Errorf("runner exporter got %q", got)
	}
}

// An upstream host of "localhost." passes the loopback rule (a trailing
// dot is the same name), but it is not pinned to loopback: the proxy
// resolves it at every dial, and Go's resolver matches /etc/hosts'
// "localhost" only without the dot, so "localhost." goes to DNS, which
// decides where the scrapes (and their answers) go. Here the DNS server
// does not know the name, so the node exporter listening on loopback at
// that very port is never reached: 502. The promise is one of two: such
// an upstream is refused, or it is dialled on loopback.
func TestAttackRoutesUpstreamLocalhostDotStaysLoopback(t *testing.T) {
	t.Parallel()
	node := startUpstream(t, nil)
	_, port, _ := net.SplitHostPort(node.Addr)
	k := newPKI(t)
	web := filepath.Join(k.Dir, "web.yml")
	writeFile(t, web, tlsBlock(k)+usersBlock(defaultUser, defaultHash(t)))
	routesFile := filepath.Join(k.Dir, "routes.yml")
	writeFile(t, routesFile, "routes:\n  - {name: node, path: /node/metrics, upstream: 'http://localhost.:"+port+"/metrics'}\n")
	pr := start(t, "metrics-proxy", withoutSourceLimits([]string{"--web.listen-address", "127.0.0.1:0", "--web.config.file", web, "--web.routes.file", routesFile})...)
	for !strings.Contains(pr.Logs(), "msg=listening") {
		select {
		case <-pr.done:
			return // refused: one of the two promises
		case <-time.After(20 * time.Millisecond):
		}
	}
	p := &proxy{proc: pr, PKI: k, User: defaultUser, Password: defaultPassword}
	p.Addr = pr.waitLog(`msg=listening address=(\S+)`)
	p.URL = "https://" + p.Addr
	r := p.get(t, p.client(goodSrc), "/node/metrics")
	if r.Status != 200 || r.Body != upBody || len(node.URIs()) != 1 {
		t.Errorf("/node/metrics through http://localhost.:%s: %d %q; the loopback exporter on that port got %q", port, r.Status, r.Body, node.URIs())
	}
}

// startProxyEnv is startProxy's start with extra environment variables
// for the proxy, its web config and routes file given.
func startProxyEnv(t *testing.T, k *pki, web, routes string, env ...string) *proxy {
	t.Helper()
	webFile, routesFile := filepath.Join(k.Dir, "web.yml"), filepath.Join(k.Dir, "routes.yml")
	writeFile(t, webFile, web)
	writeFile(t, routesFile, routes)
	cmd := exec.Command(filepath.Join(binDir, "metrics-proxy"), withoutSourceLimits([]string{"--web.listen-address", "127.0.0.1:0", "--web.config.file", webFile, "--web.routes.file", routesFile, "--log.level", "debug"})...)
	cmd.Env = append(os.Environ(), env...)
	p := &proxy{proc: startCmd(t, cmd), PKI: k, WebConfig: webFile, RoutesFile: routesFile, User: defaultUser, Password: defaultPassword}
	p.Addr = p.waitLog(`msg=listening address=(\S+)`)
	p.URL = "https://" + p.Addr
	return p
}

// client_sans with client_auth_type VerifyClientCertIfGiven: the proxy
// warns that such grants "match nobody" (and, without client_ca_file, that
// certificates checked against the system roots "authenticate nobody"),
// yet a verified certificate's SANs do match: prometheus, not granted
// pprof, sends a certificate naming localhost along with its password and
// reads pprof, which the routes file grants to client_sans [localhost].
// Without client_ca_file the certificate only has to chain to a system
// root (SSL_CERT_FILE stands in for the system roots here: any public CA).
func TestAttackRoutesClientSANsWithoutRequiredCerts(t *testing.T) {
	t.Parallel()
	for _, withCA := range []bool{true, false} {
		runner := startUpstream(t, nil)
		k := newPKI(t)
		web := tlsBlock(k) + "  client_auth_type: VerifyClientCertIfGiven\n"
		var env []string
		if withCA {
			web += "  client_ca_file: " + k.CAFile + "\n"
		} else {
			env = append(env, "SSL_CERT_FILE="+k.CAFile)
		}
		web += usersBlock(defaultUser, defaultHash(t))
		routes := fmt.Sprintf("routes:\n  - {name: runner, path: /metrics, upstream: %[1]s/metrics}\n  - name: pprof\n    path: /debug/pprof/\n    upstream: %[1]s/debug/pprof/\n    allow:\n      client_sans: [localhost]\n", runner.URL)
		p := startProxyEnv(t, k, web, routes, env...)
		if !strings.Contains(p.Logs(), "they match nobody") {
			t.Errorf("CA %v: no warning that the client_sans grant matches nobody", withCA)
		}
		c := p.client(goodSrc)
		c.Transport.(*http.Transport).TLSClientConfig.Certificates = []tls.Certificate{k.clientCert(t, "prometheus-client")}
		r := p.get(t, c, "/debug/pprof/heap")
		if r.Status != 404 {
			t.Errorf("client_ca_file %v: prometheus with a certificate naming localhost: /debug/pprof/heap %d, want 404 (the grant matches nobody, the proxy says); runner exporter got %q", withCA, r.Status, debugURIs(runner))
		}
	}
}

// client_sans grant only names from certificates the handshake verified:
// with RequestClientCert and RequireAnyClientCert a certificate from a CA
// nobody configured, naming the granted SAN, grants nothing (404 next to
// the password's 200 on /metrics); with RequireAndVerifyClientCert the
// configured CA's certificate naming it reads pprof, and one not naming it
// gets 404.
func TestAttackRoutesClientSANsNeedVerifiedCert(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mode      string
		ca        bool
		sans      string // the granted SAN
		wantPprof int
	}{
		{"RequestClientCert", false, "localhost", 404},
		{"RequireAnyClientCert", false, "localhost", 404},
		{"RequireAndVerifyClientCert", true, "localhost", 200},
		{"RequireAndVerifyClientCert", true, "oncall.example", 404},
	} {
		runner := startUpstream(t, nil)
		k := newPKI(t)
		web := tlsBlock(k) + "  client_auth_type: " + tc.mode + "\n"
		if tc.ca {
			web += "  client_ca_file: " + k.CAFile + "\n"
		}
		web += usersBlock(defaultUser, defaultHash(t))
		routes := fmt.Sprintf("routes:\n  - {name: runner, path: /metrics, upstream: %[1]s/metrics}\n  - name: pprof\n    path: /debug/pprof/\n    upstream: %[1]s/debug/pprof/\n    allow:\n      client_sans: [%[2]s]\n", runner.URL, tc.sans)
		p := startProxyEnv(t, k, web, routes)
		cert := k.clientCert(t, "client")
		if !tc.ca {
			cert = newPKI(t).clientCert(t, "stranger") // a CA nobody configured
		}
		c := p.client(goodSrc)
		c.Transport.(*http.Transport).TLSClientConfig.Certificates = []tls.Certificate{cert}
		m, pp := p.get(t, c, "/metrics"), p.get(t, c, "/debug/pprof/heap")
		if m.Status != 200 || pp.Status != tc.wantPprof {
			t.Errorf("%s, grant %s: /metrics %d, /debug/pprof/heap %d; want 200, %d", tc.mode, tc.sans, m.Status, pp.Status, tc.wantPprof)
		}
		want := 0
		if tc.wantPprof == 200 {
			want = 1
		}
		if len(debugURIs(runner)) != want {
			t.Errorf("%s, grant %s: runner exporter got %q", tc.mode, tc.sans, debugURIs(runner))
		}
	}
}
