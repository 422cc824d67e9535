package e2e

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Every method but GET and HEAD is 405 with Allow, with or without
// credentials, and CONNECT never turns the connection into a tunnel; HEAD is
// served without a body.
func TestAttackRequestsMethods(t *testing.T) {
	t.Parallel()
	p, up := startWithUpstream(t, nil, proxyOptions{})
	c := p.client("")
	good := basic(defaultUser, defaultPassword)
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND", "MKCOL", "BREW"} {
		for _, hdr := range []map[string]string{nil, authHeader(defaultUser, defaultPassword)} {
			r := do(t, c, m, p.URL+"/metrics", hdr)
			if r.Status != 405 || r.Header.Get("Allow") != "GET, HEAD" || r.Body != "Method Not Allowed\n" {
				t.Errorf("%s (auth %v): %d Allow=%q %q", m, hdr != nil, r.Status, r.Header.Get("Allow"), r.Body)
			}
		}
	}
	// CONNECT in authority-form to the upstream itself, then bytes that
	// would go through a tunnel: the 405 closes the connection, so they are
	// never tunnelled, nor read at all.
	rs := p.raw(t, "CONNECT "+up.Addr+" HTTP/1.1\r\nHost: "+up.Addr+"\r\nAuthorization: "+good+"\r\n\r\n"+
		rawGet("/debug/pprof/", good), 5*time.Second)
	if len(rs) != 1 || rs[0].Status != 405 || rs[0].Header.Get("Allow") != "GET, HEAD" || rs[0].Body != "Method Not Allowed\n" {
		t.Errorf("CONNECT then GET /debug/pprof/: %+v", rs)
	}
	one(t, "CONNECT to an outside port", p.raw(t, "CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\nConnection: close\r\n\r\n", 5*time.Second),
		405, "Method Not Allowed\n")
	one(t, "OPTIONS *", p.raw(t, "OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 5*time.Second), 405, "Method Not Allowed\n")
	if uris := up.URIs(); len(uris) != 0 {
		t.Errorf("upstream got %q", uris)
	}
	if r := do(t, c, "HEAD", p.URL+"/metrics", authHeader(defaultUser, defaultPassword)); r.Status != 200 || r.Body != "" {
		t.Errorf("HEAD /metrics: %d, body %q; want 200 without a body", r.Status, r.Body)
	}
}

// Request targets that are not a plain origin-form path are refused with 400
// before authentication, and nothing reaches the upstream; paths off the
// default allowlist (only /metrics) are 401 without credentials and 404
// with them, and the same raw request for /metrics is served.
func TestAttackRequestsTargets(t *testing.T) {
	t.Parallel()
	p, up := startWithUpstream(t, nil, proxyOptions{})
	good := basic(defaultUser, defaultPassword)
	const bad, goBad = "Bad Request\n", "400 Bad Request"
	cases := []struct{ target, body string }{
		// absolute-form and other non-origin forms
		{"http://" + up.Addr + "/debug/pprof/", bad},
		{"http://" + p.Addr + "/metrics", bad},
		{"https://example.com/metrics", bad},
		{"*", bad},
		{"127.0.0.1:22", goBad}, // authority-form: net/http refuses it itself
		{"metrics", goBad},
		// dot segments, plain and percent-encoded
		{"/metrics/../debug/pprof/", bad},
		{"/metrics/..", bad},
		{"/./metrics", bad},
		{"/metrics/.", bad},
		{"/metrics/./", bad},
		{"/%2e%2e/debug/pprof/", bad},
		{"/%2E%2E/debug/pprof/", bad},
		{"/metrics/%2e%2e/debug/pprof/", bad},
		{"/.%2e/debug/pprof/", bad},
		{"/%252e%252e/debug/pprof/", bad},
		{"/metr%69cs", bad}, // an escaped unreserved byte of an allowed path
		// encoded slashes and backslashes
		{"/debug%2fpprof/", bad},
		{"/debug%2Fpprof/heap", bad},
		{"/metrics%2f..%2fdebug%2fpprof%2f", bad},
		{"/metrics\\..\\debug\\pprof\\", bad},
		{"/metrics%5c..%5cdebug", bad},
		// double slashes
		{"//debug/pprof/", bad},
		{"//metrics", bad},
		{"///metrics", bad},
		{"/metrics//", bad},
		{"/debug//pprof/", bad},
		{"//" + up.Addr + "/metrics", bad},
		// control bytes, NUL, parameters, fragments, non-ASCII
		{"/metrics%00", bad},
		{"/metrics%0d%0aX-Injected:%201", bad},
		{"/metrics;jsessionid=1", bad},
		{"/metrics#fragment", bad},
		{"/metrics\xc3\xa9", bad},
		{"/" + strings.Repeat("a", 2000), bad},
	}
	for _, tc := range cases {
		for _, auth := range []string{"", good} {
			one(t, fmt.Sprintf("GET %q (auth %v)", tc.target, auth != ""), p.raw(t, rawGet(tc.target, auth), 5*time.Second), 400, tc.body)
		}
	}
	// Clean paths off the allowlist: 401 without credentials (nothing learnt
	// about which paths exist), 404 with them.
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/metrics/", "/METRICS", "/metrics.txt", "/-/", "/-/readyz", "/proxy/metrics/", "/nope"} {
		one(t, "anonymous "+path, p.raw(t, rawGet(path, ""), 5*time.Second), 401, "Unauthorized\n")
		one(t, "authenticated "+path, p.raw(t, rawGet(path, good), 5*time.Second), 404, "Not Found\n")
	}
	if uris := up.URIs(); len(uris) != 0 {
		t.Errorf("upstream got %q", uris)
	}
	// The control: the same raw request for /metrics is served.
	one(t, "GET /metrics", p.raw(t, rawGet("/metrics", good), 5*time.Second), 200, upBody)
}

// A query on /metrics reaches the upstream byte for byte; only the
// allowlisted request headers go with it, never credentials, cookies or
// forwarding headers; a query Go cannot parse is dropped, never passed on.
// On the way back the content type and encoding are relayed, the
// upstream's other headers (Set-Cookie, internal addresses) are not.
func TestAttackRequestsQueryAndHeadersUpstream(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, gzipUpstream)
	p := startProxy(t, proxyOptions{Upstream: up.URL})
	good := basic(defaultUser, defaultPassword)
	const query = "match[]=up&x=%2F..%2Fdebug%2Fpprof%2F&empty=&dup=1&dup=2&q=%25252e&plus=a+b"
	raw := "GET /metrics?" + query + " HTTP/1.1\r\nHost: metrics.example\r\nAuthorization: " + good + "\r\n" +
		"Accept: text/plain;version=0.0.4\r\nAccept-Encoding: gzip\r\nUser-Agent: atk/1\r\nX-Prometheus-Scrape-Timeout-Seconds: 5\r\n" +
		"Cookie: session=atk-cookie\r\nProxy-Authorization: " + good + "\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Host: evil.example\r\n" +
		"Forwarded: for=203.0.113.9\r\nX-Real-Ip: 203.0.113.9\r\nConnection: keep-alive, X-Hop\r\nX-Hop: hop\r\nTe: trailers\r\n" +
		"Upgrade: websocket\r\nX-Atk-Other: 1\r\n\r\n" +
		rawGet("/metrics?a=1;b=2", good)
	rs := p.raw(t, raw, 5*time.Second)
	if len(rs) != 2 || rs[0].Status != 200 || gunzip(t, rs[0].Body) != upBody || rs[1].Status != 200 || rs[1].Body != upBody {
		t.Fatalf("responses: %+v", rs)
	}
	got := up.Requests()
	if len(got) != 2 {
		t.Fatalf("upstream got %d requests", len(got))
	}
	r := got[0]
	if r.Method != "GET" || r.RequestURI != "/metrics?"+query || r.Host != up.Addr || r.BodyLen != 0 {
		t.Errorf("upstream request: %s %q Host %q body %d", r.Method, r.RequestURI, r.Host, r.BodyLen)
	}
	var names []string
	for k := range r.Header {
		names = append(names, k)
	}
	slices.Sort(names)
	if want := []string{"Accept", "Accept-Encoding", "User-Agent", "X-Prometheus-Scrape-Timeout-Seconds"}; !slices.Equal(names, want) {
		t.Errorf("upstream saw headers %q, want exactly %q", names, want)
	}
	if r.Header.Get("Accept") != "text/plain;version=0.0.4" || r.Header.Get("User-Agent") != "atk/1" || r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds") != "5" {
		t.Errorf("forwarded header values changed: %v", r.Header)
	}
	// "a=1;b=2" is not a valid query for Go: it is dropped, not forwarded.
	if got[1].RequestURI != "/metrics" {
		t.Errorf("query with ';' reached the upstream as %q", got[1].RequestURI)
	}

	// A scrape as Prometheus sends it, through net/http.
	hdr := authHeader(defaultUser, defaultPassword)
	for k, v := range map[string]string{
		"Cookie":                              "session=let-me-in",
		"Accept":                              "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
		"Accept-Encoding":                     "gzip",
		"X-Prometheus-Scrape-Timeout-Seconds": "9",
		"X-Forwarded-For":                     "192.0.2.1",
	} {
		hdr[k] = v
	}
	resp := do(t, p.client(""), "GET", p.URL+"/metrics?x=1", hdr)
	if resp.Status != 200 {
		t.Fatalf("status %d", resp.Status)
	}
	if got := resp.Header.Get("Content-Type"); got != "text/plain; version=0.0.4; charset=utf-8" {
		t.Errorf("Content-Type %q", got)
	}
	if got := resp.Header.Get("Content-Encoding"); got != "gzip" {
		t.Errorf("Content-Encoding %q, want gzip", got)
	}
	if plain := gunzip(t, resp.Body); plain != upBody {
		t.Errorf("body %q", plain)
	}
	for _, h := range []string{"Set-Cookie", "X-Upstream-Internal"} {
		if v := resp.Header.Get(h); v != "" {
			t.Errorf("upstream header %s relayed: %q", h, v)
		}
	}
	got = up.Requests()
	if len(got) != 3 || got[2].Method != "GET" || got[2].RequestURI != "/metrics?x=1" {
		t.Fatalf("upstream saw %+v, want a third request, GET /metrics?x=1", got)
	}
	for _, k := range []string{"Authorization", "Cookie", "X-Forwarded-For", "Forwarded"} {
		if v, ok := got[2].Header[k]; ok {
			t.Errorf("%s reached the upstream: %q", k, v)
		}
	}
	for _, k := range []string{"Accept", "Accept-Encoding", "X-Prometheus-Scrape-Timeout-Seconds"} {
		if v := got[2].Header.Get(k); v != hdr[k] {
			t.Errorf("upstream got %s %q, want %q", k, v, hdr[k])
		}
	}
}

// gzipUpstream answers upBody, gzipped when the request accepts it, with
// headers the proxy must not relay.
func gzipUpstream(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Set-Cookie", "upstream-session=secret")
	w.Header().Set("X-Upstream-Internal", "127.0.0.1:9252")
	if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		io.WriteString(w, upBody)
		return
	}
	w.Header().Set("Content-Encoding", "gzip")
	zw := gzip.NewWriter(w)
	io.WriteString(zw, upBody)
	zw.Close()
}

// gunzip is the gzip body b uncompressed.
func gunzip(t *testing.T, b string) string {
	t.Helper()
	zr, err := gzip.NewReader(strings.NewReader(b))
	if err != nil {
		t.Errorf("body is not gzip: %v", err)
		return b
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Errorf("gzip body: %v", err)
	}
	return string(plain)
}

// Header blocks over --web.max-header-bytes are 431, a single huge header or
// thousands of small ones; hundreds of small ones within the limit pass and
// none of them reaches the upstream.
func TestAttackRequestsLargeHeaders(t *testing.T) {
	t.Parallel()
	p, up := startWithUpstream(t, nil, proxyOptions{})
	good := basic(defaultUser, defaultPassword)
	const tooLarge = "431 Request Header Fields Too Large"

	big := "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: " + good + "\r\nX-Big: " + strings.Repeat("a", 20<<10) + "\r\n\r\n"
	one(t, "one 20 KiB header", p.raw(t, big, 5*time.Second), 431, tooLarge)

	var many strings.Builder
	many.WriteString("GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: " + good + "\r\n")
	for i := range 2000 {
		fmt.Fprintf(&many, "X-Atk-%d: v\r\n", i)
	}
	one(t, "2000 headers", p.raw(t, many.String()+"\r\n", 5*time.Second), 431, tooLarge)

	hdr := authHeader(defaultUser, defaultPassword)
	for i := range 300 {
		hdr[fmt.Sprintf("X-Atk-%d", i)] = "v"
	}
	r := do(t, p.client(""), "GET", p.URL+"/metrics", hdr)
	if r.Status != 200 || r.Body != upBody {
		t.Fatalf("300 small headers: %d %q", r.Status, r.Body)
	}
	reqs := up.Requests()
	if len(reqs) != 1 {
		t.Fatalf("upstream got %d requests, want 1", len(reqs))
	}
	for k := range reqs[0].Header {
		if strings.HasPrefix(k, "X-Atk-") {
			t.Errorf("upstream saw %s", k)
		}
	}
	// The 431s were answered by net/http before the handler: the proxy
	// counted only the scrape it served and this /proxy/metrics request.
	m := p.selfMetrics(t, p.client(""))
	expectMetrics(t, m, map[string]float64{
		outcome("ok"):           2,
		outcome("unauthorized"): 0,
		outcome("bad_request"):  0,
	})
}

// HTTP/2 gets the same rules as HTTP/1.1, and http2: false in the web config
// turns it off.
func TestAttackRequestsHTTP2(t *testing.T) {
	t.Parallel()
	p, up := startWithUpstream(t, nil, proxyOptions{})
	h2 := p.h2Client("")
	good := basic(defaultUser, defaultPassword)

	get := func(path, method string, hdr map[string]string) result {
		t.Helper()
		req, err := http.NewRequest(method, p.URL+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		// Opaque carries the path exactly as written: no cleaning, no
		// re-encoding.
		req.URL = &url.URL{Scheme: "https", Host: p.Addr, Opaque: "//" + p.Addr + path}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		r, err := send(h2, req)
		if err != nil {
			t.Fatalf("h2 %s %s: %v", method, path, err)
		}
		if r.Proto != 2 {
			t.Fatalf("h2 %s %s: answered over HTTP/%d", method, path, r.Proto)
		}
		return r
	}
	auth := authHeader(defaultUser, defaultPassword)
	if r := get("/metrics", "GET", auth); r.Status != 200 || r.Body != upBody {
		t.Errorf("h2 scrape: %d %q", r.Status, r.Body)
	}
	if r := get("/metrics", "GET", nil); r.Status != 401 || r.Header.Get("WWW-Authenticate") != challenge {
		t.Errorf("h2 anonymous: %d %q", r.Status, r.Header.Get("WWW-Authenticate"))
	}
	if r := get("/metrics", "GET", authHeader(defaultUser, "wrong")); r.Status != 401 {
		t.Errorf("h2 wrong password: %d", r.Status)
	}
	for _, m := range []string{"POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH"} {
		if r := get("/metrics", m, auth); r.Status != 405 || r.Header.Get("Allow") != "GET, HEAD" || r.Body != "Method Not Allowed\n" {
			t.Errorf("h2 %s: %d %q %q", m, r.Status, r.Header.Get("Allow"), r.Body)
		}
	}
	for _, path := range []string{"/metrics/../debug/pprof/", "/%2e%2e/debug/pprof/", "/%2E%2E/debug/pprof/", "/%252e%252e/", "/debug%2fpprof/", "//debug/pprof/", "/metrics//", "/./metrics"} {
		if r := get(path, "GET", auth); r.Status != 400 || r.Body != "Bad Request\n" {
			t.Errorf("h2 %s: %d %q", path, r.Status, r.Body)
		}
	}
	if r := get("/debug/pprof/", "GET", auth); r.Status != 404 || r.Body != "Not Found\n" {
		t.Errorf("h2 /debug/pprof/: %d %q", r.Status, r.Body)
	}
	// A query passes unchanged over h2 too.
	if r := get("/metrics?match[]=up&x=%2F..%2F", "GET", auth); r.Status != 200 {
		t.Errorf("h2 query: %d", r.Status)
	}
	// Go's h2 client refuses to send a header list over the server's
	// advertised limit, so send them with a raw framer. 400 copies of one
	// header (HPACK sends each copy as a one-byte index, so the block fits
	// one frame) add up to 40 KiB decoded: 431. One value larger than the
	// whole limit is a connection error (the HPACK decoder refuses the
	// string before allocating it).
	many := make([][2]string, 400)
	for i := range many {
		many[i] = [2]string{"x-atk", strings.Repeat("v", 64)}
	}
	if got := h2RawHeaders(t, p, "/metrics", good, many); got != ":status 431" {
		t.Errorf("h2 400 headers of 64 bytes: %s, want :status 431", got)
	}
	if got := h2RawHeaders(t, p, "/metrics", good, [][2]string{{"x-big", strings.Repeat("a", 20<<10)}}); got != "GOAWAY COMPRESSION_ERROR" {
		t.Errorf("h2 one 20 KiB header: %s, want GOAWAY COMPRESSION_ERROR", got)
	}
	if uris := up.URIs(); !slices.Equal(uris, []string{"/metrics", "/metrics?match[]=up&x=%2F..%2F"}) {
		t.Errorf("upstream got %q", uris)
	}

	// http2: false in the web config: a client that would take HTTP/2 gets
	// HTTP/1.1.
	p1 := startProxy(t, proxyOptions{Upstream: up.URL, Web: func(k *pki) string {
		return tlsBlock(k) + "http_server_config:\n  http2: false\n" + usersBlock(defaultUser, defaultHash(t))
	}})
	h1 := p1.client("")
	h1.Transport.(*http.Transport).ForceAttemptHTTP2 = true
	if r := p1.get(t, h1, "/metrics"); r.Status != 200 || r.Proto != 1 {
		t.Errorf("http2: false: %d over HTTP/%d, want 200 over HTTP/1.1", r.Status, r.Proto)
	}
}

// h2RawHeaders opens an h2 connection, sends one GET with the extra
// headers, and says how the server answered: ":status N", "GOAWAY CODE",
// "RST_STREAM CODE" or "closed".
func h2RawHeaders(t *testing.T, p *proxy, path, auth string, extra [][2]string) string {
	t.Helper()
	_, fr := p.h2Conn(t)
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	fields := append([][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", p.Addr}, {":path", path}, {"authorization", auth}}, extra...)
	for _, f := range fields {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	b := block.Bytes()
	const chunk = 16 << 10
	first := b[:min(chunk, len(b))]
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: first, EndStream: true, EndHeaders: len(b) <= chunk}); err != nil {
		t.Fatal(err)
	}
	for rest := b[len(first):]; len(rest) > 0; {
		n := min(chunk, len(rest))
		if err := fr.WriteContinuation(1, n == len(rest), rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
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
			return "GOAWAY " + f.ErrCode.String()
		case *http2.RSTStreamFrame:
			return "RST_STREAM " + f.ErrCode.String()
		}
	}
	return "no answer"
}

// Request-smuggling shapes, sent raw: conflicting framing is refused with an
// error status, and a request hidden in a body never reaches the upstream.
func TestAttackRequestsSmuggling(t *testing.T) {
	t.Parallel()
	p, up := startWithUpstream(t, nil, proxyOptions{})
	good := basic(defaultUser, defaultPassword)
	head := "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: " + good + "\r\n"
	hidden := "GET /metrics?smuggled=1 HTTP/1.1\r\nHost: x\r\nAuthorization: " + good + "\r\nConnection: close\r\n\r\n"

	// Two different Content-Lengths: net/http's own 400, connection closed.
	one(t, "two Content-Lengths", p.raw(t, head+"Content-Length: 0\r\nContent-Length: "+fmt.Sprint(len(hidden))+"\r\n\r\n"+hidden, 3*time.Second),
		400, "400 Bad Request")
	// Transfer-Encodings other than a single "chunked": 501, closed.
	for _, te := range []string{"Transfer-Encoding: chunked, identity\r\n", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "Transfer-Encoding: xchunked\r\n"} {
		one(t, te, p.raw(t, head+te+"\r\n0\r\n\r\n"+hidden, 3*time.Second), 501, "Unsupported transfer encoding")
	}
	// A space before the colon (read as Transfer-Encoding by some parsers).
	one(t, "Transfer-Encoding with a space before the colon", p.raw(t, head+"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n"+hidden, 3*time.Second),
		400, "400 Bad Request: invalid header name")
	// A signed Content-Length.
	one(t, "Content-Length: +N", p.raw(t, head+"Content-Length: +"+fmt.Sprint(len(hidden))+"\r\n\r\n"+hidden, 3*time.Second),
		400, "400 Bad Request")
	// A GET with a Content-Length body that holds a request: a GET has no
	// body, so it is refused and the connection closed; the hidden request
	// never runs.
	one(t, "request hidden in a Content-Length body", p.raw(t, head+"Content-Length: "+fmt.Sprint(len(hidden))+"\r\n\r\n"+hidden, 3*time.Second),
		400, "Bad Request\n")
	if uris := up.URIs(); len(uris) != 0 {
		t.Errorf("upstream got %q, want nothing", uris)
	}

	// Content-Length together with Transfer-Encoding: chunked, whose chunked
	// body ends before the hidden request. RFC 9112 section 6.1: such a
	// message "ought to be handled as an error", and a server that
	// processes it anyway "MUST close the connection after responding".
	for _, order := range []string{
		"Content-Length: " + fmt.Sprint(5+len(hidden)) + "\r\nTransfer-Encoding: chunked\r\n",
		"Transfer-Encoding: chunked\r\nContent-Length: " + fmt.Sprint(5+len(hidden)) + "\r\n",
	} {
		one(t, "Content-Length with Transfer-Encoding ("+strings.SplitN(order, ":", 2)[0]+" first)",
			p.raw(t, head+order+"\r\n0\r\n\r\n"+hidden, 3*time.Second), 400, "Bad Request\n")
	}
	for _, u := range up.URIs() {
		if strings.Contains(u, "smuggled") {
			t.Errorf("the request hidden after a CL+TE body reached the upstream: %q", up.URIs())
			break
		}
	}
}

// The proxy's own metrics are behind authentication, never forwarded, and
// count every request exactly once under its outcome, before it is served.
func TestAttackRequestsOwnMetrics(t *testing.T) {
	t.Parallel()
	p, up := startWithUpstream(t, nil, proxyOptions{})
	c := p.client("")

	r := p.getAs(t, c, "/proxy/metrics", "", "") // 1: unauthorized
	if r.Status != 401 || r.Header.Get("WWW-Authenticate") != challenge {
		t.Fatalf("/proxy/metrics anonymous: %d, want 401", r.Status)
	}
	for range 2 { // 2, 3: ok (bcrypt, then cached)
		if r := p.get(t, c, "/metrics"); r.Status != 200 || r.Body != upBody {
			t.Fatalf("/metrics: %d %q", r.Status, r.Body)
		}
	}
	if r := p.getAs(t, c, "/metrics", defaultUser, "wrong"); r.Status != 401 { // 4: unauthorized (bcrypt)
		t.Fatalf("wrong password: %d", r.Status)
	}
	if r := do(t, c, "POST", p.URL+"/metrics", authHeader(defaultUser, defaultPassword)); r.Status != 405 { // 5: method_not_allowed
		t.Fatalf("POST: %d", r.Status)
	}
	if r := p.get(t, c, "/debug/pprof/"); r.Status != 404 { // 6: forbidden_path (cached)
		t.Fatalf("/debug/pprof/: %d", r.Status)
	}
	one(t, "//metrics", p.raw(t, rawGet("//metrics", ""), 5*time.Second), 400, "Bad Request\n") // 7: bad_request, before auth
	// 8: ok (cached), counted before it is served.
	m, mfs := scrape(t, c, p.URL+"/proxy/metrics", authHeader(defaultUser, defaultPassword))

	want := map[string]float64{
		"metrics_proxy_auth_bcrypt_checks_total":                2,
		"metrics_proxy_upstream_request_duration_seconds_count": 2,
		"metrics_proxy_tls_handshake_errors_total":              0,
		"metrics_proxy_config_last_reload_successful":           1,
		"metrics_proxy_auth_clients_in_backoff":                 0,
	}
	for o, n := range map[string]float64{
		"ok": 3, "unauthorized": 2, "method_not_allowed": 1, "forbidden_path": 1, "bad_request": 1,
		"throttled": 0, "busy": 0, "upstream_error": 0, "upstream_timeout": 0, "response_too_large": 0,
	} {
		want[outcome(o)] = n
	}
	for o, n := range map[string]float64{"ok": 1, "ok_cached": 3, "unauthorized": 2, "throttled": 0, "busy": 0} {
		want[authOutcome(o)] = n
	}
	expectMetrics(t, m, want)
	if mf := mfs["metrics_proxy_build_info"]; mf == nil || len(mf.GetMetric()) != 1 || mf.GetMetric()[0].GetGauge().GetValue() != 1 {
		t.Errorf("metrics_proxy_build_info: %v, want one series of value 1", mf)
	}
	if uris := up.URIs(); !slices.Equal(uris, []string{"/metrics", "/metrics"}) {
		t.Errorf("upstream saw %q, want the 2 allowed scrapes", uris)
	}
}
