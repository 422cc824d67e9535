package e2e

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// startUnderAttack starts a proxy with deadlines of 1 s for the TLS
// handshake and the request header in front of a fake upstream serving h
// (nil: upBody), and a good client that authenticates before the attack and
// then scrapes on its keep-alive connection every interval (at most 120
// times) until the returned function is called; that function returns what
// the scrapes saw.
func startUnderAttack(t *testing.T, every time.Duration, h http.HandlerFunc) (*proxy, *upstream, *http.Client, func() scrapes) {
	t.Helper()
	up := startUpstream(t, h)
	p := startProxy(t, proxyOptions{Upstream: up.URL, Args: []string{
		"--web.read-header-timeout=1s", "--web.tls-handshake-timeout=1s", "--web.idle-timeout=30s", "--upstream.timeout=5s",
	}})
	good := p.client("")
	if r := p.get(t, good, "/metrics"); r.Status != 200 {
		t.Fatalf("first scrape: %d", r.Status)
	}
	stop := make(chan struct{})
	scraping := p.keepScraping(good, every, 120, stop)
	return p, up, good, func() scrapes { close(stop); return scraping() }
}

// checkAfterAttack fails unless the good client made at least minScrapes
// scrapes during the attack and every one succeeded,
// metrics_proxy_tls_handshake_errors_total (read on the
// good client's connection, within 10 s: the server may count a hung-up
// handshake after the client has gone) is from least to most, and a new
// client still gets in (TLS, authentication, scrape).
func checkAfterAttack(t *testing.T, p *proxy, good *http.Client, res scrapes, minScrapes int, least, most float64) {
	t.Helper()
	res.check(t, "good client during the attack", minScrapes)
	const series = "metrics_proxy_tls_handshake_errors_total"
	got := metric(p.selfMetrics(t, good), series)
	for i := 0; got < least && i < 100; i++ {
		time.Sleep(100 * time.Millisecond)
		got = metric(p.selfMetrics(t, good), series)
	}
	if got < least || got > most {
		t.Errorf("%s = %v, want from %v to %v", series, got, least, most)
	}
	if r := p.get(t, p.client("127.0.4.1"), "/metrics"); r.Status != 200 || r.Body != upBody {
		t.Errorf("fresh client after the attack: %d %q", r.Status, r.Body)
	}
}

// checkClosedSilently fails unless the server closed every connection
// without writing a byte.
func checkClosedSilently(t *testing.T, what string, errs []error) {
	t.Helper()
	for i, err := range errs {
		if !closedByPeer(err) {
			t.Errorf("%s %d: %v; want closed by the server with no answer", what, i, err)
		}
	}
}

// Slowloris: 200 clients that complete TLS and then trickle a request header
// one byte every 100 ms are each closed by the server after
// --web.read-header-timeout without an answer, while a client that
// authenticated before scrapes twice a second and gets every scrape; a new
// client gets in afterwards. (A completed handshake may be counted as
// failed: on two busy cores the server can reach the client's Finished
// after its own 1 s deadline.)
//
// Not parallel, nor are the other floods here: on two cores, other tests'
// load would stretch the 1 s handshake deadline for the legitimate
// handshakes too.
func TestAttackConnectionsSlowloris(t *testing.T) {
	const trickles = 200
	p, _, good, scraping := startUnderAttack(t, 500*time.Millisecond, nil)
	errs := make([]error, trickles)
	var wg sync.WaitGroup
	dialSlots := make(chan struct{}, 16) // trickling clients handshake a few at a time
	for i := range trickles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dialSlots <- struct{}{}
			c, err := p.dialTLS("")
			<-dialSlots
			if err != nil {
				errs[i] = fmt.Errorf("handshake: %w", err)
				return
			}
			defer c.Close()
			done := make(chan struct{})
			go func() {
				if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
					return
				}
				for range 100 { // one byte every 100 ms, at most 10 s
					select {
					case <-done:
						return
					case <-time.After(100 * time.Millisecond):
					}
					if _, err := c.Write([]byte("a")); err != nil {
						return
					}
				}
			}()
			errs[i] = closedSilently(c, 20*time.Second)
			close(done)
		}()
	}
	wg.Wait()
	res := scraping()
	checkClosedSilently(t, "trickling connection", errs)
	checkAfterAttack(t, p, good, res, 2, 0, trickles)
}

// TCP connections that never start TLS are each closed by the server after
// --web.tls-handshake-timeout without an answer, and counted exactly once
// as a failed handshake: 200 of them while a client that authenticated
// before scrapes twice a second, which gets every scrape; a new client gets
// in afterwards.
func TestAttackConnectionsHandshakeTimeoutCounted(t *testing.T) {
	const silent = 200
	p, _, good, scraping := startUnderAttack(t, 500*time.Millisecond, nil)
	errs := p.silentConns(silent, 20*time.Second)()
	res := scraping()
	checkClosedSilently(t, "silent connection", errs)
	checkAfterAttack(t, p, good, res, 2, silent, silent)
}

// closeAfterWrite closes the connection right after the first write: a
// TLS client on it sends its ClientHello and hangs up.
type closeAfterWrite struct{ net.Conn }

func (c closeAfterWrite) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.Conn.Close()
	return n, err
}

// A handshake flood, 50 connections at a time: 100 clients complete the
// handshake and hang up without a request, 100 send their ClientHello and
// hang up. Every handshake of the first kind completes and every one of the
// second is counted as failed, while a client that authenticated before
// scrapes every 20 ms (the flood lasts a fraction of a second, so one
// scrape may be all that overlaps it) and gets every scrape; a new client
// gets in afterwards. (A completed handshake may be counted as failed too, see
// TestAttackConnectionsSlowloris.)
func TestAttackConnectionsHandshakeFlood(t *testing.T) {
	const completes, aborted = 100, 100
	p, _, good, scraping := startUnderAttack(t, 20*time.Millisecond, nil)
	tlsCfg := &tls.Config{RootCAs: p.PKI.Pool, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}}
	var completed, hungUp atomic.Int32
	var wg sync.WaitGroup
	floodSlots := make(chan struct{}, 50)
	for i := range completes + aborted {
		wg.Add(1)
		go func() {
			defer wg.Done()
			floodSlots <- struct{}{}
			defer func() { <-floodSlots }()
			raw, err := dialerFrom("").Dial("tcp", p.Addr)
			if err != nil {
				return
			}
			defer raw.Close()
			if i < completes {
				// A whole handshake, then hang up without a request.
				c := tls.Client(raw, tlsCfg)
				if c.Handshake() == nil {
					completed.Add(1)
				}
				c.Close()
				return
			}
			// The ClientHello only, then hang up.
			if tls.Client(closeAfterWrite{raw}, tlsCfg).Handshake() != nil {
				hungUp.Add(1)
			}
		}()
	}
	wg.Wait()
	res := scraping()
	if completed.Load() != completes || hungUp.Load() != aborted {
		t.Errorf("flood: %d full handshakes, %d hung up; want %d and %d", completed.Load(), hungUp.Load(), completes, aborted)
	}
	checkAfterAttack(t, p, good, res, 1, aborted, aborted+completes)
}

// A client that asks for a 48 MiB body and never reads it is not buffered
// for: the proxy reads from the upstream only as fast as the client takes
// (its VmRSS stays under 40 MiB), while a client that authenticated before
// scrapes twice a second and gets every scrape; a new client gets in
// afterwards.
func TestAttackConnectionsStalledReader(t *testing.T) {
	block := []byte(strings.Repeat("atk_big 1\n", 6554))
	p, up, good, scraping := startUnderAttack(t, 500*time.Millisecond, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		if r.URL.Query().Get("big") == "" {
			io.WriteString(w, upBody)
			return
		}
		for range 48 * 16 { // 48 MiB, under the default 64 MiB limit
			if _, err := w.Write(block); err != nil {
				return
			}
		}
	})
	// Closed at the end of the test (before the proxy stops), not by the
	// proxy here.
	stalled := p.mustTLS(t, "")
	t.Cleanup(func() { stalled.Close() })
	fmt.Fprintf(stalled, "GET /metrics?big=1 HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n", basic(defaultUser, defaultPassword))
	eventually(t, "the stalled request reached the upstream", func() bool { return slices.Contains(up.URIs(), "/metrics?big=1") })
	time.Sleep(time.Second) // time for a proxy that buffers to fill up
	if rss := rssKiB(t, p.cmd.Process.Pid); rss > 40<<10 {
		t.Errorf("proxy VmRSS %d KiB with a 48 MiB response stalled, want under 40 MiB", rss)
	}
	checkAfterAttack(t, p, good, scraping(), 2, 0, 1)
}

// More silent connections than --web.max-connections: they come from the
// address of a client that authenticated, so the excess is admitted by
// shedding the oldest unauthenticated connections (admission), and each is
// closed without an answer; the client already connected keeps scraping,
// and a new client gets in once the silent ones are gone. Not parallel.
func TestAttackConnectionsLimitHeld(t *testing.T) {
	const limit, silent = 20, 30
	p, _ := startWithUpstream(t, nil, proxyOptions{Args: []string{
		fmt.Sprintf("--web.max-connections=%d", limit), "--web.tls-handshake-timeout=1s"}})
	good := p.client("")
	if r := p.get(t, good, "/metrics"); r.Status != 200 {
		t.Fatalf("first scrape: %d", r.Status)
	}
	wait := p.silentConns(silent, 30*time.Second)
	p.keepScraping(good, 500*time.Millisecond, 4, nil)().check(t, "good client while the slots are taken", 4)
	checkClosedSilently(t, "silent connection", wait())
	fresh := p.client("127.0.12.1")
	if r := p.get(t, fresh, "/metrics"); r.Status != 200 {
		t.Errorf("new client after the silent ones: %d", r.Status)
	}
	if got := metric(p.selfMetrics(t, good), "metrics_proxy_tls_handshake_errors_total"); got != silent {
		t.Errorf("metrics_proxy_tls_handshake_errors_total = %v, want %d", got, silent)
	}
}

// Anonymous clients must not be able to hold the connection slots: here all
// --web.max-connections slots are taken by keep-alive connections that each
// made one request without credentials (401) and then stay idle, which costs
// an attacker one request per --web.idle-timeout (2 minutes by default) per
// slot. A new client with the right password must still get in. Not
// parallel.
func TestAttackConnectionsAnonymousCannotHoldSlots(t *testing.T) {
	const limit = 8
	p, _ := startWithUpstream(t, nil, proxyOptions{Args: []string{
		fmt.Sprintf("--web.max-connections=%d", limit), "--web.read-header-timeout=1s", "--web.tls-handshake-timeout=1s"}})
	for i := range limit {
		c := p.mustTLS(t, fmt.Sprintf("127.0.13.%d", i+1))
		t.Cleanup(func() { c.Close() })
		io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 401 {
			t.Fatalf("anonymous connection %d: %v %v", i, resp, err)
		}
		resp.Body.Close()
	}
	c := p.client("127.0.13.100")
	c.Timeout = 8 * time.Second
	r, err := try(c, "GET", p.URL+"/metrics", authHeader(defaultUser, defaultPassword))
	if err != nil || r.Status != 200 {
		t.Errorf("new client while %d anonymous keep-alive connections idle: %d %v", limit, r.Status, err)
	}
}

// silentConns opens n TCP connections to p that never send a byte and
// waits, each up to limit, for the server to close them. The returned
// function waits for all of them and gives each one's outcome: nil or a
// closed-by-peer error is what the tests want; reading anything is not.
func (p *proxy) silentConns(n int, limit time.Duration) func() []error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", p.Addr)
			if err != nil {
				errs[i] = err
				return
			}
			defer c.Close()
			errs[i] = closedSilently(c, limit)
		}()
	}
	return func() []error { wg.Wait(); return errs }
}

// closedSilently waits, up to limit, for the server to close c, and returns
// the error that ended the wait, or one saying what the server wrote.
func closedSilently(c net.Conn, limit time.Duration) error {
	got, err := waitClosed(c, limit)
	if got != "" {
		return fmt.Errorf("read %q before %v", got, err)
	}
	return err
}
