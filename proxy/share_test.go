package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"testing"
	"time"

	"github.com/alloyci/hardened-runner/fairqueue"
	"github.com/alloyci/hardened-runner/refusal"
)

// An upstream 5xx is relayed but counted upstream_5xx, never ok.
func TestUpstream5xxIsNotOK(t *testing.T) {
	f := newFixture(t, Options{}, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	if w := f.serve("GET", "/metrics", authorized()); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want the upstream's 503", w.Code)
	}
	if ok, bad := counterValue(t, f, outcomeOK), counterValue(t, f, outcomeUpstream5xx); ok != 0 || bad != 1 {
		t.Errorf("ok=%v upstream_5xx=%v, want 0 and 1", ok, bad)
	}
}

// A 103 Early Hints from the upstream, with a cookie and the upstream's
// address, never reaches the client; the final answer keeps the proxy's
// headers.
func TestAttackUpstream1xxIsNotRelayed(t *testing.T) {
	f := newFixture(t, Options{}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Set-Cookie", "session=upstream")
		w.Header().Set("Location", "http://127.0.0.1:9252/internal")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Set-Cookie")
		w.Header().Del("Location")
		io.WriteString(w, upstreamBody)
	})
	srv := f.front(t)
	var got1xx []int
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error { got1xx = append(got1xx, code); return nil },
	})
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/metrics", nil)
	req.Header = authorized()
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if len(got1xx) != 0 {
		t.Errorf("client got 1xx answers %v, want none", got1xx)
	}
	if resp.StatusCode != http.StatusOK || string(body) != upstreamBody {
		t.Errorf("final answer %d %q, want 200 with the page", resp.StatusCode, body)
	}
	if c, l := resp.Header.Get("Set-Cookie"), resp.Header.Get("Location"); c != "" || l != "" {
		t.Errorf("Set-Cookie %q, Location %q reached the client", c, l)
	}
	assertOwnHeaders(t, resp.Header)
}

// Headers the client names in Connection are hop-by-hop and stay at the
// proxy, allowlisted or not.
func TestConnectionNamedHeadersAreNotForwarded(t *testing.T) {
	f := newFixture(t, Options{}, nil)
	hdr := authorized()
	hdr.Set("Connection", "keep-alive, User-Agent")
	hdr.Set("User-Agent", "attacker-chosen")
	hdr.Set("Accept", "text/plain")
	if w := f.serve("GET", "/metrics", hdr); w.Code != http.StatusOK {
		t.Fatalf("status %d, want 200", w.Code)
	}
	got := f.up.only(t).Header
	if ua := got.Get("User-Agent"); ua != "" {
		t.Errorf("upstream got User-Agent %q, want none", ua)
	}
	if a := got.Get("Accept"); a != "text/plain" {
		t.Errorf("upstream got Accept %q, want text/plain", a)
	}
}

// With every upstream slot taken and no room to wait, the proxy answers 503
// itself, with Retry-After, counted upstream_busy; the upstream never sees
// more than its slots.
func TestAttackUpstreamSlotsAreShared(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	cur, peak := 0, 0
	f := newFixture(t, Options{UpstreamSlots: 2, UpstreamQueue: -1}, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		cur++
		peak = max(peak, cur)
		mu.Unlock()
		<-release
		mu.Lock()
		cur--
		mu.Unlock()
	})
	// Two clients (one key may hold at most half of the slots).
	var wg sync.WaitGroup
	for _, from := range []string{"192.0.2.1:1000", "192.0.2.2:1000"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := httptest.NewRequest("GET", "/metrics", nil)
			r.Header = authorized()
			r.RemoteAddr = from
			f.h.ServeHTTP(httptest.NewRecorder(), r)
		}()
	}
	// Both requests are at the upstream, not merely holding slots.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := cur
		mu.Unlock()
		if n == 2 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	w := f.serve("GET", "/metrics", authorized())
	close(release)
	wg.Wait()
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" || w.Body.String() != "Service Unavailable\n" {
		t.Errorf("third request: %d Retry-After=%q %q, want 503 Retry-After=1 \"Service Unavailable\"", w.Code, w.Header().Get("Retry-After"), w.Body.String())
	}
	if got := counterValue(t, f, refusal.UpstreamBusy.Outcome()); got != 1 {
		t.Errorf("upstream_busy = %v, want 1", got)
	}
	if peak != 2 {
		t.Errorf("upstream peak concurrency %d, want 2", peak)
	}
}

// A request that waits for a slot past its scrape timeout gets the proxy's
// 503 too.
func TestUpstreamWaitEndsWithTheScrapeTimeout(t *testing.T) {
	release := make(chan struct{})
	f := newFixture(t, Options{UpstreamSlots: 1}, func(w http.ResponseWriter, r *http.Request) { <-release })
	done := make(chan struct{})
	go func() { f.serve("GET", "/metrics", authorized()); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for f.h.router.sum((*fairqueue.Queue).InUse) < 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	hdr := authorized()
	hdr.Set("X-Prometheus-Scrape-Timeout-Seconds", "0.05")
	w := f.serve("GET", "/metrics", hdr)
	close(release)
	<-done
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" {
		t.Errorf("waiting request: %d Retry-After=%q, want 503 with Retry-After 1", w.Code, w.Header().Get("Retry-After"))
	}
}

// A client that goes away while the upstream works is counted
// client_canceled, not upstream_error.
func TestClientCancelIsItsOwnOutcome(t *testing.T) {
	started := make(chan struct{})
	f := newFixture(t, Options{}, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
	})
	srv := f.front(t)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/metrics", nil)
	req.Header = authorized()
	go func() { <-started; cancel() }()
	if _, err := srv.Client().Do(req); err == nil {
		t.Fatal("canceled request succeeded")
	}
	deadline := time.Now().Add(5 * time.Second)
	for counterValue(t, f, outcomeClientCanceled) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if c, e := counterValue(t, f, outcomeClientCanceled), counterValue(t, f, refusal.UpstreamError.Outcome()); c != 1 || e != 0 {
		t.Errorf("client_canceled=%v upstream_error=%v, want 1 and 0", c, e)
	}
}
