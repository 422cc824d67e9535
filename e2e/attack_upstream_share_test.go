package e2e

// Attacks on the upstream through the door: one authenticated client
// hogging the runner's few request slots, upstream failures and client
// cancellations counted under their own outcomes, 1xx answers, hop-by-hop
// headers named by the client, and the log volume a failing upstream can
// make.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// shareDelta returns, for each outcome, how much its counter grew from m0
// to m1 (-1 if a series is missing from either).
func shareDelta(m0, m1 string, outcomes ...string) map[string]float64 {
	d := map[string]float64{}
	for _, o := range outcomes {
		a, b := metric(m0, outcome(o)), metric(m1, outcome(o))
		if a < 0 || b < 0 {
			d[o] = -1
			continue
		}
		d[o] = b - a
	}
	return d
}

// shareExpectDelta checks the growth of each outcome's counter.
func shareExpectDelta(t *testing.T, m0, m1 string, want map[string]float64) {
	t.Helper()
	var names []string
	for o := range want {
		names = append(names, o)
	}
	got := shareDelta(m0, m1, names...)
	for o, w := range want {
		if got[o] != w {
			t.Errorf("requests_total{outcome=%q} grew by %v, want %v", o, got[o], w)
		}
	}
}

// shareCheckSafetyHeaders checks the two headers every final answer carries.
func shareCheckSafetyHeaders(t *testing.T, what string, h http.Header) {
	t.Helper()
	if got := h.Values("X-Content-Type-Options"); len(got) != 1 || got[0] != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options %q, want exactly nosniff", what, got)
	}
	if got := h.Values("Cache-Control"); len(got) != 1 || got[0] != "no-store" {
		t.Errorf("%s: Cache-Control %q, want exactly no-store", what, got)
	}
}

// shareCheckBusy checks the proxy's own 503 for a request that found no
// upstream slot.
func shareCheckBusy(t *testing.T, what string, r result) {
	t.Helper()
	if r.Status != 503 || r.Body != "Service Unavailable\n" || r.Header.Get("Retry-After") != "1" {
		t.Errorf("%s: %d %q Retry-After %q, want 503 \"Service Unavailable\\n\" Retry-After 1", what, r.Status, r.Body, r.Header.Get("Retry-After"))
	}
	shareCheckSafetyHeaders(t, what, r.Header)
}

// One authenticated client cannot take the runner's request slots from the
// others: a hog (its own user, from 127.0.0.1) keeps 32 requests in flight
// for 3 s against an upstream that serves 8 at once and answers 503 beyond,
// like the runner, while the good client scrapes every 100 ms from
// 127.0.0.2. The proxy never has more than --upstream.max-concurrent (8)
// calls upstream, and one client never more than half of them, so the
// upstream never answers 503; every good scrape is
// 200, and whatever the hog is refused is the proxy's own 503 with
// Retry-After: 1, counted as upstream_busy, one for one.
func TestShareAuthenticatedHog(t *testing.T) {
	const upstreamSlots, hogInFlight, hogCap = 8, 32, 20000
	const hogUser, hogPassword = "hog", "atk-hog password that is right"
	var cur, peak, over atomic.Int32
	slots := make(chan struct{}, upstreamSlots)
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case slots <- struct{}{}:
		default:
			over.Add(1)
			http.Error(w, "too many requests at once", http.StatusServiceUnavailable)
			return
		}
		n := cur.Add(1)
		for {
			old := peak.Load()
			if n <= old || peak.CompareAndSwap(old, n) {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
		cur.Add(-1)
		<-slots
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		io.WriteString(w, upBody)
	})
	goodHash, hogHash := hashPassword(t, defaultPassword, 10), hashPassword(t, hogPassword, 10)
	p := startProxy(t, proxyOptions{Upstream: up.URL, Args: []string{
		"--upstream.max-concurrent=8", "--upstream.max-queue=64", "--web.handshake-rate-per-source=1000"},
		Web: func(k *pki) string {
			return tlsBlock(k) + usersBlock(defaultUser, goodHash, hogUser, hogHash)
		}})
	good := p.client(goodSrc)
	if r := p.get(t, good, "/metrics"); r.Status != 200 {
		t.Fatalf("good client before the hog: %d", r.Status)
	}
	m0 := p.selfMetrics(t, good)

	hog := p.client("127.0.0.1")
	hog.Transport.(*http.Transport).MaxIdleConnsPerHost = 2 * hogInFlight
	stop := make(chan struct{})
	var (
		sent, ok, busy, errs atomic.Int64
		mu                   sync.Mutex
		wrong                []string
		wg                   sync.WaitGroup
	)
	for range hogInFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if sent.Add(1) > hogCap {
					return
				}
				r, err := try(hog, "GET", p.URL+"/metrics", map[string]string{"Authorization": basic(hogUser, hogPassword)})
				switch {
				case err != nil:
					errs.Add(1)
					mu.Lock()
					wrong = append(wrong, err.Error())
					mu.Unlock()
				case r.Status == 200 && r.Body == upBody:
					ok.Add(1)
				case r.Status == 503 && r.Body == "Service Unavailable\n" && r.Header.Get("Retry-After") == "1":
					busy.Add(1)
					// Refused at once: retry soon (not after Retry-After),
					// without spinning the two cores.
					time.Sleep(20 * time.Millisecond)
				default:
					mu.Lock()
					wrong = append(wrong, fmt.Sprintf("%d %q Retry-After %q", r.Status, r.Body, r.Header.Get("Retry-After")))
					mu.Unlock()
				}
			}
		}()
	}
	scrapes := p.keepScraping(good, 100*time.Millisecond, 30, nil)()
	close(stop)
	wg.Wait()

	if sent.Load() > hogCap {
		t.Errorf("the hog reached its cap of %d requests before the good client's scrapes ended", hogCap)
	}
	scrapes.check(t, "good client while the hog keeps 32 in flight", 30)
	if len(wrong) > 0 {
		t.Errorf("%d hog requests got something other than 200 or the proxy's 503, e.g. %q", len(wrong), wrong[0])
	}
	// The hog holds at most half of the slots; the good client's one scrape
	// at a time may overlap it.
	if got := peak.Load(); got < upstreamSlots/2 || got > upstreamSlots/2+1 {
		t.Errorf("upstream peak concurrency %d, want %d (the hog's half of the slots) or one more (the good client)", got, upstreamSlots/2)
	}
	if got := over.Load(); got != 0 {
		t.Errorf("upstream answered 503 (over its %d slots) %d times, want 0", upstreamSlots, got)
	}
	m1 := p.selfMetrics(t, good)
	shareExpectDelta(t, m0, m1, map[string]float64{
		"upstream_5xx":     0,
		"upstream_busy":    float64(busy.Load()),
		"upstream_error":   0,
		"upstream_timeout": 0,
		// The hog's and the good client's 200s, and the second metrics read.
		"ok": float64(ok.Load()) + float64(scrapes.n) + 1,
	})
	t.Logf("hog: %d answered 200, %d upstream busy, %d errors", ok.Load(), busy.Load(), errs.Load())
}

// When no upstream slot frees in time the proxy answers itself, 503 with
// Retry-After: 1 and "upstream busy", counted as upstream_busy, without
// asking the upstream: with 1 slot and a queue of 2, of three requests (from
// three sources) behind one the upstream holds, exactly one is refused at
// once (queue full); and
// a request whose scrape timeout passes while it waits for the held slot is
// refused the same way, not answered 504.
func TestShareUpstreamBusy(t *testing.T) {
	// ?hold=K waits for release[K]; the map is not written after this.
	release := map[string]chan struct{}{"1": make(chan struct{}), "2": make(chan struct{})}
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if k := r.URL.Query().Get("hold"); k != "" {
			select {
			case <-release[k]:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, upBody)
	})
	p := startProxy(t, proxyOptions{Upstream: up.URL, Args: []string{"--upstream.max-concurrent=1", "--upstream.max-queue=2"}})
	meter := p.client(goodSrc)
	m0 := p.selfMetrics(t, meter)
	auth := map[string]string{"Authorization": basic(defaultUser, defaultPassword)}
	held := func(n int) {
		t.Helper()
		eventually(t, fmt.Sprintf("%d held requests upstream", n), func() bool {
			k := 0
			for _, u := range up.URIs() {
				if strings.Contains(u, "hold=") {
					k++
				}
			}
			return k == n
		})
	}

	// One request holds the only slot.
	first := make(chan result, 1)
	go func() { r, _ := try(p.client(""), "GET", p.URL+"/metrics?hold=1", auth); first <- r }()
	held(1)
	// Three more, from three sources (so no client's own share of the
	// queue is what refuses them): two wait in the queue, one is refused at
	// once.
	answers := make(chan result, 3)
	for _, src := range []string{"127.0.0.1", "127.0.0.3", "127.0.0.4"} {
		go func() {
			r, err := try(p.client(src), "GET", p.URL+"/metrics", auth)
			if err != nil {
				r = result{Body: err.Error()}
			}
			answers <- r
		}()
	}
	select {
	case r := <-answers:
		shareCheckBusy(t, "request with the queue full", r)
	case <-time.After(10 * time.Second):
		t.Fatal("no request refused with 1 slot held and a queue of 2")
	}
	close(release["1"])
	if r := <-first; r.Status != 200 {
		t.Errorf("request that held the slot: %d %q", r.Status, r.Body)
	}
	for range 2 {
		r := <-answers
		if r.Status != 200 || r.Body != upBody {
			t.Errorf("queued request: %d %q, want 200", r.Status, r.Body)
		}
	}
	if n := len(up.Requests()); n != 3 {
		t.Errorf("upstream got %d requests, want 3 (the refused one never reaches it)", n)
	}

	// The slot held again; a request with a 0.5 s scrape timeout waits for
	// it in vain.
	up2done := make(chan result, 1)
	go func() { r, _ := try(p.client(""), "GET", p.URL+"/metrics?hold=2", auth); up2done <- r }()
	held(2)
	r := do(t, p.client(""), "GET", p.URL+"/metrics", map[string]string{
		"Authorization": basic(defaultUser, defaultPassword), "X-Prometheus-Scrape-Timeout-Seconds": "0.5"})
	shareCheckBusy(t, "request whose deadline passed waiting for a slot", r)
	close(release["2"])
	if r := <-up2done; r.Status != 200 {
		t.Errorf("second request that held the slot: %d %q", r.Status, r.Body)
	}

	m1 := p.selfMetrics(t, meter)
	shareExpectDelta(t, m0, m1, map[string]float64{"upstream_busy": 2, "upstream_timeout": 0, "upstream_error": 0})
}

// An upstream 5xx is relayed (status and body) but is not a success: it is
// counted as upstream_5xx, and ok does not grow for it.
func TestShareUpstream5xxIsNotOK(t *testing.T) {
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "atk_fail 1\n")
	})
	p := startProxy(t, proxyOptions{Upstream: up.URL})
	c := p.client(goodSrc)
	m0 := p.selfMetrics(t, c)
	r := p.get(t, p.client(""), "/metrics")
	if r.Status != 500 || r.Body != "atk_fail 1\n" {
		t.Errorf("upstream 500: client got %d %q, want it relayed", r.Status, r.Body)
	}
	shareCheckSafetyHeaders(t, "relayed 500", r.Header)
	m1 := p.selfMetrics(t, c)
	// ok grows by one: the second /proxy/metrics read, not the 500.
	shareExpectDelta(t, m0, m1, map[string]float64{"upstream_5xx": 1, "ok": 1, "upstream_error": 0})
}

// A client that gives up while the proxy waits for the upstream is counted
// as client_canceled, not as an upstream failure: once over HTTP/1.1 (the
// connection closed) and once over HTTP/2 (the stream reset).
func TestShareClientResetIsItsOwnOutcome(t *testing.T) {
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(15 * time.Second):
		}
	})
	p := startProxy(t, proxyOptions{Upstream: up.URL, Args: []string{"--upstream.timeout=10s"}})
	meter := p.client(goodSrc)
	m0 := p.selfMetrics(t, meter)
	for i, c := range []*http.Client{p.client(""), p.h2Client("")} {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", p.URL+"/metrics", nil)
		req.SetBasicAuth(defaultUser, defaultPassword)
		done := make(chan error, 1)
		go func() {
			resp, err := c.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			done <- err
		}()
		eventually(t, "the request reached the upstream", func() bool { return len(up.Requests()) == i+1 })
		cancel()
		if err := <-done; err == nil {
			t.Errorf("request %d: got an answer after canceling", i)
		}
		p.waitMetric(t, meter, outcome("client_canceled"), metric(m0, outcome("client_canceled"))+float64(i+1))
	}
	m1 := p.selfMetrics(t, meter)
	shareExpectDelta(t, m0, m1, map[string]float64{"client_canceled": 2, "upstream_error": 0, "upstream_timeout": 0})
}

// 1xx answers of the upstream never reach the client: an upstream 103 Early
// Hints carrying Set-Cookie and Location before its 200 shows the client
// (HTTP/1.1 and HTTP/2) no 1xx, and the final answer has neither header and
// carries X-Content-Type-Options: nosniff and Cache-Control: no-store.
func TestShareNo1xxRelayed(t *testing.T) {
	addr := startRawUpstream(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nSet-Cookie: runner=secret\r\nLocation: http://"+c.LocalAddr().String()+"/debug/pprof/\r\n"+
				"Link: </debug/pprof/>; rel=preload\r\n\r\n"+
				"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"+rawBody)
		}
	})
	p := startProxy(t, proxyOptions{Upstream: "http://" + addr})
	for _, h2 := range []bool{false, true} {
		c := p.client("")
		if h2 {
			c = p.h2Client("")
		}
		var infos []string
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
				infos = append(infos, fmt.Sprintf("%d %v", code, h))
				return nil
			},
		})
		req, _ := http.NewRequestWithContext(ctx, "GET", p.URL+"/metrics", nil)
		req.SetBasicAuth(defaultUser, defaultPassword)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("h2=%v: %v", h2, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if len(infos) != 0 {
			t.Errorf("h2=%v: client got 1xx answers %q", h2, infos)
		}
		if resp.StatusCode != 200 || string(b) != upBody || resp.ProtoMajor != map[bool]int{false: 1, true: 2}[h2] {
			t.Errorf("h2=%v: HTTP/%d %d %q", h2, resp.ProtoMajor, resp.StatusCode, b)
		}
		for _, h := range []string{"Set-Cookie", "Location", "Link"} {
			if v := resp.Header.Values(h); len(v) != 0 {
				t.Errorf("h2=%v: final answer has %s %q", h2, h, v)
			}
		}
		shareCheckSafetyHeaders(t, fmt.Sprintf("h2=%v final answer", h2), resp.Header)
	}
}

// Headers the client names in its Connection header are hop-by-hop for that
// request: with "Connection: User-Agent, X-Prometheus-Scrape-Timeout-Seconds"
// neither of them is sent upstream, while Accept (not named) still is.
func TestShareConnectionNamedHeadersDropped(t *testing.T) {
	p, up := startWithUpstream(t, nil, proxyOptions{})
	r := do(t, p.client(""), "GET", p.URL+"/metrics", map[string]string{
		"Authorization":                       basic(defaultUser, defaultPassword),
		"Connection":                          "User-Agent, X-Prometheus-Scrape-Timeout-Seconds",
		"User-Agent":                          "x",
		"X-Prometheus-Scrape-Timeout-Seconds": "5",
		"Accept":                              "text/plain",
	})
	if r.Status != 200 || r.Body != upBody {
		t.Fatalf("scrape: %d %q", r.Status, r.Body)
	}
	reqs := up.Requests()
	if len(reqs) != 1 {
		t.Fatalf("upstream got %d requests, want 1", len(reqs))
	}
	h := reqs[0].Header
	if got := h.Values("User-Agent"); len(got) == 1 && got[0] == "x" || len(got) > 1 {
		t.Errorf("upstream User-Agent %q: the client's, named in Connection, was forwarded", got)
	}
	if got := h.Values("X-Prometheus-Scrape-Timeout-Seconds"); len(got) != 0 {
		t.Errorf("upstream X-Prometheus-Scrape-Timeout-Seconds %q, named in Connection, was forwarded", got)
	}
	if got := h.Values("Accept"); len(got) != 1 || got[0] != "text/plain" {
		t.Errorf("upstream Accept %q, want text/plain (not named in Connection)", got)
	}
}

// shareLoudLines returns the lines of s logged at warn or error level.
func shareLoudLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "level=warn") || strings.Contains(l, "level=error") {
			out = append(out, l)
		}
	}
	return out
}

// A failing upstream cannot make the proxy log a line per request: warn and
// error lines are rate-limited to a burst of 10, then 1 per second, plus a
// line summing up what was suppressed. 50 requests whose scrape timeout
// (1e-9 s) has passed before the upstream is asked are 50 × 504 but log at
// most 11 warn/error lines (one more per whole second they took, should
// they take longer), and a later line reports how many were suppressed.
func TestShareLogLinesRateLimited(t *testing.T) {
	const n = 50
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(15 * time.Second):
		}
	})
	p := startProxy(t, proxyOptions{Upstream: up.URL, Args: []string{"--web.handshake-rate-per-source=1000"}})
	c := p.client("")
	if r := p.get(t, c, "/proxy/metrics"); r.Status != 200 {
		t.Fatalf("/proxy/metrics: %d", r.Status)
	}
	before := len(p.Logs())
	start := time.Now()
	hdr := map[string]string{"Authorization": basic(defaultUser, defaultPassword), "X-Prometheus-Scrape-Timeout-Seconds": "1e-9"}
	for i := range n {
		r := do(t, c, "GET", p.URL+"/metrics", hdr)
		if r.Status != 504 || r.Body != "Gateway Timeout\n" {
			t.Errorf("request %d: %d %q, want 504 \"Gateway Timeout\\n\"", i, r.Status, r.Body)
		}
	}
	took := time.Since(start)
	loud := shareLoudLines(p.Logs()[before:])
	allowed := 10 + 1 + int(took/time.Second)
	if len(loud) > allowed {
		t.Errorf("%d warn/error lines for %d failed requests in %v, want at most %d:\n%s", len(loud), n, took, allowed, strings.Join(loud, "\n"))
	}
	m := p.selfMetrics(t, c)
	if got := metric(m, outcome("upstream_timeout")); got != n {
		t.Errorf("upstream_timeout = %v, want %d", got, n)
	}
	// The dropped lines are summed up in one line, soon after (the proxy
	// writes it some seconds later): what was logged and what was
	// suppressed add up to the 50 failures.
	rx := regexp.MustCompile(`\bsuppressed=(\d+)`)
	var sum []string
	for range 200 {
		if sum = rx.FindStringSubmatch(p.Logs()[before:]); sum != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if sum == nil {
		t.Fatalf("no line summing up the suppressed lines 20 s after the failures")
	}
	logged := strings.Count(p.Logs()[before:], `msg="upstream request failed"`)
	if suppressed, _ := strconv.Atoi(sum[1]); logged+suppressed != n {
		t.Errorf("%d failures logged and %q suppressed, want them to add up to %d", logged, sum[0], n)
	}
	t.Logf("%d warn/error lines for %d requests in %v; %s", len(loud), n, took, sum[0])
}

// An authenticated client that asks for large answers and never reads them
// cannot hold the upstream: one client holds at most half of the slots (4 of
// 8), its answers are cut at the scrape's deadline plus a grace, and a client
// from another address gets every scrape meanwhile.
func TestShareNonReadingClientCannotHoldTheUpstream(t *testing.T) {
	big := strings.Repeat("x", 30<<20)
	var mu sync.Mutex
	cur, peak := 0, 0
	p, _ := startWithUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("big") != "1" {
			io.WriteString(w, upBody)
			return
		}
		mu.Lock()
		cur++
		peak = max(peak, cur)
		mu.Unlock()
		defer func() { mu.Lock(); cur--; mu.Unlock() }()
		io.WriteString(w, big)
	}, proxyOptions{Args: []string{"--upstream.timeout=3s"}})
	good := p.client(goodSrc)
	if r := p.get(t, good, "/metrics"); r.Status != 200 {
		t.Fatalf("good client before the hog: %d", r.Status)
	}
	req := "GET /metrics?big=1 HTTP/1.1\r\nHost: x\r\nAuthorization: " + basic(p.User, p.Password) + "\r\n\r\n"
	var hog []net.Conn
	t.Cleanup(func() {
		for _, c := range hog {
			c.Close()
		}
	})
	for i := range 8 {
		c, err := p.dialTLS("127.0.0.1")
		if err != nil {
			t.Fatalf("hog connection %d: %v", i, err)
		}
		io.WriteString(c, req) // and never read
		hog = append(hog, c)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := peak
		mu.Unlock()
		if n >= 4 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.keepScraping(good, 200*time.Millisecond, 10, nil)().check(t, "good client while the hog does not read", 10)
	mu.Lock()
	defer mu.Unlock()
	if peak != 4 {
		t.Errorf("the non-reading client had %d upstream calls at once, want 4 (half of 8)", peak)
	}
}
