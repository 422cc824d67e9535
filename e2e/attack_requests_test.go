package e2e

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// atkRawGet is a raw HTTP/1.1 GET of target that closes the connection after
// the answer; auth "" sends no Authorization.
func atkRawGet(target, auth string) string {
	s := "GET " + target + " HTTP/1.1\r\nHost: metrics.example\r\n"
	if auth != "" {
		s += "Authorization: " + auth + "\r\n"
	}
	return s + "Connection: close\r\n\r\n"
}

// atkOne fails unless exactly one response came and it is status with body.
func atkOne(t *testing.T, what string, rs []atkRawResponse, status int, body string) {
	t.Helper()
	if len(rs) != 1 || rs[0].Status != status || rs[0].Body != body {
		t.Errorf("%s: got %+v, want one %d %q", what, rs, status, body)
	}
}

// Every method but GET and HEAD is 405 with Allow, with or without
// credentials, and CONNECT never turns the connection into a tunnel.
func TestAttackRequestsMethods(t *testing.T) {
	t.Parallel()
	up := atkStartUpstream(t, nil)
	p := atkStartProxy(t, atkProxyOptions{Upstream: up.URL})
	c := p.atkClient("")
	good := atkBasic(atkUser, atkPassword)
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND", "MKCOL", "BREW"} {
		for _, auth := range []string{"", good} {
			hdr := map[string]string{}
			if auth != "" {
				hdr["Authorization"] = auth
			}
			r := atkDo(t, c, m, p.URL+"/metrics", hdr)
			if r.Status != 405 || r.Header.Get("Allow") != "GET, HEAD" || r.Body != "method not allowed\n" {
				t.Errorf("%s (auth %v): %d Allow=%q %q", m, auth != "", r.Status, r.Header.Get("Allow"), r.Body)
			}
		}
	}
	// CONNECT in authority-form to the upstream itself, then bytes that
	// would go through a tunnel: the 405 closes the connection, so they are
	// never tunnelled, nor read at all.
	rs := p.atkRaw(t, "CONNECT "+up.Addr+" HTTP/1.1\r\nHost: "+up.Addr+"\r\nAuthorization: "+good+"\r\n\r\n"+
		atkRawGet("/debug/pprof/", good), 5*time.Second)
	if len(rs) != 1 || rs[0].Status != 405 || rs[0].Header.Get("Allow") != "GET, HEAD" || rs[0].Body != "method not allowed\n" {
		t.Errorf("CONNECT then GET /debug/pprof/: %+v", rs)
	}
	atkOne(t, "CONNECT to an outside port", p.atkRaw(t, "CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\nConnection: close\r\n\r\n", 5*time.Second),
		405, "method not allowed\n")
	atkOne(t, "OPTIONS *", p.atkRaw(t, "OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 5*time.Second), 405, "method not allowed\n")
	if uris := up.URIs(); len(uris) != 0 {
		t.Errorf("upstream got %q", uris)
	}
}

// Request targets that are not a plain origin-form path are refused with 400
// before authentication, and nothing reaches the upstream.
func TestAttackRequestsTargets(t *testing.T) {
	t.Parallel()
	up := atkStartUpstream(t, nil)
	p := atkStartProxy(t, atkProxyOptions{Upstream: up.URL, Args: []string{"--web.allowed-path=/metrics"}})
	good := atkBasic(atkUser, atkPassword)
	const bad, goBad = "bad request\n", "400 Bad Request"
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
			atkOne(t, fmt.Sprintf("GET %q (auth %v)", tc.target, auth != ""), p.atkRaw(t, atkRawGet(tc.target, auth), 5*time.Second), 400, tc.body)
		}
	}
	// Clean paths off the allowlist: 401 without credentials (nothing learnt
	// about which paths exist), 404 with them.
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/metrics/", "/METRICS", "/metrics.txt", "/", "/proxy/metrics/", "/nope"} {
		atkOne(t, "anonymous "+path, p.atkRaw(t, atkRawGet(path, ""), 5*time.Second), 401, "Unauthorized\n")
		atkOne(t, "authenticated "+path, p.atkRaw(t, atkRawGet(path, good), 5*time.Second), 404, "not found\n")
	}
	if uris := up.URIs(); len(uris) != 0 {
		t.Errorf("upstream got %q", uris)
	}
}

// A query on /metrics reaches the upstream byte for byte; only the
// allowlisted request headers go with it, never credentials, cookies or
// forwarding headers; a query Go cannot parse is dropped, never passed on.
func TestAttackRequestsQueryAndHeadersUpstream(t *testing.T) {
	t.Parallel()
	up := atkStartUpstream(t, nil)
	p := atkStartProxy(t, atkProxyOptions{Upstream: up.URL})
	good := atkBasic(atkUser, atkPassword)
	const query = "match[]=up&x=%2F..%2Fdebug%2Fpprof%2F&empty=&dup=1&dup=2&q=%25252e&plus=a+b"
	raw := "GET /metrics?" + query + " HTTP/1.1\r\nHost: metrics.example\r\nAuthorization: " + good + "\r\n" +
		"Accept: text/plain;version=0.0.4\r\nAccept-Encoding: gzip\r\nUser-Agent: atk/1\r\nX-Prometheus-Scrape-Timeout-Seconds: 5\r\n" +
		"Cookie: session=atk-cookie\r\nProxy-Authorization: " + good + "\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Host: evil.example\r\n" +
		"Forwarded: for=203.0.113.9\r\nX-Real-Ip: 203.0.113.9\r\nConnection: keep-alive, X-Hop\r\nX-Hop: hop\r\nTe: trailers\r\n" +
		"Upgrade: websocket\r\nX-Atk-Other: 1\r\n\r\n" +
		atkRawGet("/metrics?a=1;b=2", good)
	rs := p.atkRaw(t, raw, 5*time.Second)
	if len(rs) != 2 || rs[0].Status != 200 || rs[0].Body != "atk_up 1\n" || rs[1].Status != 200 {
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
}

// Header blocks over --web.max-header-bytes are 431, a single huge header or
// thousands of small ones; hundreds of small ones within the limit pass and
// none of them reaches the upstream.
func TestAttackRequestsLargeHeaders(t *testing.T) {
	t.Parallel()
	up := atkStartUpstream(t, nil)
	p := atkStartProxy(t, atkProxyOptions{Upstream: up.URL})
	good := atkBasic(atkUser, atkPassword)
	const tooLarge = "431 Request Header Fields Too Large"

	big := "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: " + good + "\r\nX-Big: " + strings.Repeat("a", 20<<10) + "\r\n\r\n"
	atkOne(t, "one 20 KiB header", p.atkRaw(t, big, 5*time.Second), 431, tooLarge)

	var many strings.Builder
	many.WriteString("GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: " + good + "\r\n")
	for i := range 2000 {
		fmt.Fprintf(&many, "X-Atk-%d: v\r\n", i)
	}
	atkOne(t, "2000 headers", p.atkRaw(t, many.String()+"\r\n", 5*time.Second), 431, tooLarge)

	hdr := map[string]string{"Authorization": good}
	for i := range 300 {
		hdr[fmt.Sprintf("X-Atk-%d", i)] = "v"
	}
	r := atkDo(t, p.atkClient(""), "GET", p.URL+"/metrics", hdr)
	if r.Status != 200 || r.Body != "atk_up 1\n" {
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
	m := p.atkSelfMetrics(t, p.atkClient(""))
	for series, want := range map[string]float64{
		`metrics_proxy_requests_total{outcome="ok"}`:           2,
		`metrics_proxy_requests_total{outcome="unauthorized"}`: 0,
		`metrics_proxy_requests_total{outcome="bad_request"}`:  0,
	} {
		if got := atkMetric(m, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
}

// HTTP/2 gets the same rules as HTTP/1.1.
func TestAttackRequestsHTTP2(t *testing.T) {
	t.Parallel()
	up := atkStartUpstream(t, nil)
	p := atkStartProxy(t, atkProxyOptions{Upstream: up.URL})
	h2 := p.atkH2Client("")
	good := atkBasic(atkUser, atkPassword)

	get := func(path, method string, hdr map[string]string) atkResult {
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
		resp, err := h2.Do(req)
		if err != nil {
			t.Fatalf("h2 %s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		if resp.ProtoMajor != 2 {
			t.Fatalf("h2 %s %s: answered over %s", method, path, resp.Proto)
		}
		return atkResult{Status: resp.StatusCode, Proto: resp.ProtoMajor, Header: resp.Header, Body: b.String()}
	}
	auth := map[string]string{"Authorization": good}
	if r := get("/metrics", "GET", auth); r.Status != 200 || r.Body != "atk_up 1\n" {
		t.Errorf("h2 scrape: %d %q", r.Status, r.Body)
	}
	if r := get("/metrics", "GET", nil); r.Status != 401 || r.Header.Get("WWW-Authenticate") != atkChallenge {
		t.Errorf("h2 anonymous: %d %q", r.Status, r.Header.Get("WWW-Authenticate"))
	}
	if r := get("/metrics", "GET", map[string]string{"Authorization": atkBasic(atkUser, "wrong")}); r.Status != 401 {
		t.Errorf("h2 wrong password: %d", r.Status)
	}
	for _, m := range []string{"POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH"} {
		if r := get("/metrics", m, auth); r.Status != 405 || r.Header.Get("Allow") != "GET, HEAD" || r.Body != "method not allowed\n" {
			t.Errorf("h2 %s: %d %q %q", m, r.Status, r.Header.Get("Allow"), r.Body)
		}
	}
	for _, path := range []string{"/metrics/../debug/pprof/", "/%2e%2e/debug/pprof/", "/%2E%2E/debug/pprof/", "/%252e%252e/", "/debug%2fpprof/", "//debug/pprof/", "/metrics//", "/./metrics"} {
		if r := get(path, "GET", auth); r.Status != 400 || r.Body != "bad request\n" {
			t.Errorf("h2 %s: %d %q", path, r.Status, r.Body)
		}
	}
	if r := get("/debug/pprof/", "GET", auth); r.Status != 404 || r.Body != "not found\n" {
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
	if got := atkH2RawHeaders(t, p, "/metrics", good, many); got != ":status 431" {
		t.Errorf("h2 400 headers of 64 bytes: %s, want :status 431", got)
	}
	if got := atkH2RawHeaders(t, p, "/metrics", good, [][2]string{{"x-big", strings.Repeat("a", 20<<10)}}); got != "GOAWAY COMPRESSION_ERROR" {
		t.Errorf("h2 one 20 KiB header: %s, want GOAWAY COMPRESSION_ERROR", got)
	}
	if uris := up.URIs(); !slices.Equal(uris, []string{"/metrics", "/metrics?match[]=up&x=%2F..%2F"}) {
		t.Errorf("upstream got %q", uris)
	}
}

// atkH2RawHeaders opens an h2 connection, sends one GET with the extra
// headers, and says how the server answered: ":status N", "GOAWAY CODE",
// "RST_STREAM CODE" or "closed".
func atkH2RawHeaders(t *testing.T, p *atkProxy, path, auth string, extra [][2]string) string {
	t.Helper()
	c, err := tls.DialWithDialer(atkDialerFrom(""), "tcp", p.Addr, &tls.Config{RootCAs: p.PKI.Pool, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.ConnectionState().NegotiatedProtocol != "h2" {
		t.Fatalf("ALPN gave %q", c.ConnectionState().NegotiatedProtocol)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
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
	up := atkStartUpstream(t, nil)
	p := atkStartProxy(t, atkProxyOptions{Upstream: up.URL})
	good := atkBasic(atkUser, atkPassword)
	head := "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: " + good + "\r\n"
	hidden := "GET /metrics?smuggled=1 HTTP/1.1\r\nHost: x\r\nAuthorization: " + good + "\r\nConnection: close\r\n\r\n"

	// Two different Content-Lengths: net/http's own 400, connection closed.
	atkOne(t, "two Content-Lengths", p.atkRaw(t, head+"Content-Length: 0\r\nContent-Length: "+fmt.Sprint(len(hidden))+"\r\n\r\n"+hidden, 3*time.Second),
		400, "400 Bad Request")
	// Transfer-Encodings other than a single "chunked": 501, closed.
	for _, te := range []string{"Transfer-Encoding: chunked, identity\r\n", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "Transfer-Encoding: xchunked\r\n"} {
		atkOne(t, te, p.atkRaw(t, head+te+"\r\n0\r\n\r\n"+hidden, 3*time.Second), 501, "Unsupported transfer encoding")
	}
	// A space before the colon (read as Transfer-Encoding by some parsers).
	atkOne(t, "Transfer-Encoding with a space before the colon", p.atkRaw(t, head+"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n"+hidden, 3*time.Second),
		400, "400 Bad Request: invalid header name")
	// A signed Content-Length.
	atkOne(t, "Content-Length: +N", p.atkRaw(t, head+"Content-Length: +"+fmt.Sprint(len(hidden))+"\r\n\r\n"+hidden, 3*time.Second),
		400, "400 Bad Request")
	// A GET with a Content-Length body that holds a request: a GET has no
	// body, so it is refused and the connection closed; the hidden request
	// never runs.
	atkOne(t, "request hidden in a Content-Length body", p.atkRaw(t, head+"Content-Length: "+fmt.Sprint(len(hidden))+"\r\n\r\n"+hidden, 3*time.Second),
		400, "bad request\n")
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
		atkOne(t, "Content-Length with Transfer-Encoding ("+strings.SplitN(order, ":", 2)[0]+" first)",
			p.atkRaw(t, head+order+"\r\n0\r\n\r\n"+hidden, 3*time.Second), 400, "bad request\n")
	}
	for _, u := range up.URIs() {
		if strings.Contains(u, "smuggled") {
			t.Errorf("the request hidden after a CL+TE body reached the upstream: %q", up.URIs())
			break
		}
	}
}
