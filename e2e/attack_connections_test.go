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

// atkCloseAfterWrite closes the connection right after the first write: a
// TLS client on it sends its ClientHello and hangs up.
type atkCloseAfterWrite struct{ net.Conn }

func (c atkCloseAfterWrite) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.Conn.Close()
	return n, err
}

// atkOutcome is how one attacking connection ended.
type atkOutcome struct {
	what string
	got  string
	err  error
}

// Slowloris (header bytes trickled after TLS, and TCP connections that never
// start TLS), a handshake flood and a client that stops reading a large
// response, all at once, while a client that authenticated before scrapes
// twice a second on its keep-alive connection: every scrape succeeds, and
// the server closes every silent connection itself without answering it.
//
// Not parallel: on two cores, other tests' load would stretch the 1 s
// handshake deadline for the legitimate handshakes too.
func TestAttackConnectionsFloodsDuringScrapes(t *testing.T) {
	const (
		trickles  = 200
		silent    = 200
		completes = 100
		aborted   = 100
	)
	block := []byte(strings.Repeat("atk_big 1\n", 6554))
	up := atkStartUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		if r.URL.Query().Get("big") == "" {
			io.WriteString(w, "atk_up 1\n")
			return
		}
		for range 48 * 16 { // 48 MiB, under the default 64 MiB limit
			if _, err := w.Write(block); err != nil {
				return
			}
		}
	})
	p := atkStartProxy(t, atkProxyOptions{Upstream: up.URL, Args: []string{
		"--web.read-header-timeout=1s", "--web.tls-handshake-timeout=1s", "--web.idle-timeout=30s", "--upstream.timeout=5s",
	}})
	tlsCfg := &tls.Config{RootCAs: p.PKI.Pool, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}}

	// The good client authenticates once before the attack.
	good := p.atkClient("")
	if r := p.atkAuthGet(t, good, "/metrics"); r.Status != 200 {
		t.Fatalf("first scrape: %d", r.Status)
	}
	stop := make(chan struct{})
	var scrapes []string // one entry per scrape: "ok" or what went wrong
	scraperDone := make(chan struct{})
	go func() {
		defer close(scraperDone)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for range 120 { // at most a minute
			r, err := atkTry(good, "GET", p.URL+"/metrics", map[string]string{"Authorization": atkBasic(atkUser, atkPassword)})
			switch {
			case err != nil:
				scrapes = append(scrapes, err.Error())
			case r.Status != 200 || r.Body != "atk_up 1\n" || r.ReadErr != nil:
				scrapes = append(scrapes, fmt.Sprintf("%d %q %v", r.Status, r.Body, r.ReadErr))
			default:
				scrapes = append(scrapes, "ok")
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()

	// A client that asks for a 48 MiB body and never reads it. Closed at
	// the end of the test (before the proxy stops), not by the proxy here.
	stalled := p.atkTLSDial(t, "")
	t.Cleanup(func() { stalled.Close() })
	fmt.Fprintf(stalled, "GET /metrics?big=1 HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n", atkBasic(atkUser, atkPassword))

	var mu sync.Mutex
	var outcomes []atkOutcome
	record := func(o atkOutcome) { mu.Lock(); outcomes = append(outcomes, o); mu.Unlock() }
	var wg sync.WaitGroup
	dialSlots := make(chan struct{}, 16) // trickling clients handshake a few at a time

	for i := range trickles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dialSlots <- struct{}{}
			c, err := tls.DialWithDialer(atkDialerFrom(""), "tcp", p.Addr, tlsCfg)
			<-dialSlots
			if err != nil {
				record(atkOutcome{what: fmt.Sprintf("trickle %d: handshake", i), err: err})
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
			got, err := atkWaitClosed(c, 20*time.Second)
			close(done)
			record(atkOutcome{what: fmt.Sprintf("trickle %d", i), got: got, err: err})
		}()
	}
	for i := range silent {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := atkDialerFrom("").Dial("tcp", p.Addr)
			if err != nil {
				record(atkOutcome{what: fmt.Sprintf("silent %d: dial", i), err: err})
				return
			}
			defer c.Close()
			got, err := atkWaitClosed(c, 20*time.Second)
			record(atkOutcome{what: fmt.Sprintf("silent %d", i), got: got, err: err})
		}()
	}
	var completed, hungUp atomic.Int32
	floodSlots := make(chan struct{}, 50)
	for i := range completes + aborted {
		wg.Add(1)
		go func() {
			defer wg.Done()
			floodSlots <- struct{}{}
			defer func() { <-floodSlots }()
			raw, err := atkDialerFrom("").Dial("tcp", p.Addr)
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
			if tls.Client(atkCloseAfterWrite{raw}, tlsCfg).Handshake() != nil {
				hungUp.Add(1)
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-scraperDone

	// Every scrape during the attack succeeded.
	if len(scrapes) < 2 {
		t.Errorf("only %d scrapes ran during the attack", len(scrapes))
	}
	for i, s := range scrapes {
		if s != "ok" {
			t.Errorf("scrape %d during the attack failed: %s", i, s)
		}
	}
	// Every silent connection was closed by the server, without an answer.
	if len(outcomes) != trickles+silent {
		t.Errorf("%d outcomes, want %d", len(outcomes), trickles+silent)
	}
	for _, o := range outcomes {
		if o.got != "" || !atkClosedByPeer(o.err) {
			t.Errorf("%s: read %q, ended by %v; want closed by the server with no answer", o.what, o.got, o.err)
		}
	}
	if completed.Load() != completes || hungUp.Load() != aborted {
		t.Errorf("flood: %d full handshakes, %d hung up; want %d and %d", completed.Load(), hungUp.Load(), completes, aborted)
	}
	// The stalled client's 48 MiB are not buffered by the proxy: it reads
	// from the upstream only as fast as the client takes.
	atkEventually(t, "the stalled request reached the upstream", func() bool { return slices.Contains(up.URIs(), "/metrics?big=1") })
	if rss := atkRSSKiB(t, p.cmd.Process.Pid); rss > 40<<10 {
		t.Errorf("proxy VmRSS %d KiB with a 48 MiB response stalled, want under 40 MiB", rss)
	}
	// A new client still gets in: TLS, authentication, scrape.
	fresh := p.atkClient("127.0.4.1")
	if r := p.atkAuthGet(t, fresh, "/metrics"); r.Status != 200 || r.Body != "atk_up 1\n" {
		t.Errorf("fresh client after the attack: %d %q", r.Status, r.Body)
	}
	// Every silent TCP connection and hung-up handshake is counted as a
	// failed handshake. (A handshake the client completed may be counted
	// too: on two busy cores the server can reach the client's Finished
	// after its own 1 s deadline; the exact count is asserted in
	// TestAttackConnectionsHandshakeTimeoutCounted.)
	m := p.atkSelfMetrics(t, fresh)
	if got := atkMetric(m, "metrics_proxy_tls_handshake_errors_total"); got < silent+aborted || got > silent+aborted+completes+trickles {
		t.Errorf("metrics_proxy_tls_handshake_errors_total = %v, want from %d to %d", got, silent+aborted, silent+aborted+completes+trickles)
	}
}

// A handful of TCP connections that never start TLS are each closed by the
// server after --web.tls-handshake-timeout and counted once.
//
// Not parallel, like the flood test.
func TestAttackConnectionsHandshakeTimeoutCounted(t *testing.T) {
	p := atkStartProxy(t, atkProxyOptions{Args: []string{"--web.tls-handshake-timeout=1s"}})
	// Connected and authenticated before, so reading the counter later needs
	// no handshake of its own.
	c := p.atkClient("")
	p.atkSelfMetrics(t, c)
	wait := p.atkSilentConns(20, 20*time.Second)
	for i, err := range wait() {
		if !atkClosedByPeer(err) {
			t.Errorf("connection %d: %v", i, err)
		}
	}
	m := p.atkSelfMetrics(t, c)
	if got := atkMetric(m, "metrics_proxy_tls_handshake_errors_total"); got != 20 {
		t.Errorf("metrics_proxy_tls_handshake_errors_total = %v, want 20", got)
	}
}

// More silent connections than --web.max-connections: they come from the
// address of a client that authenticated, so the excess is admitted by
// shedding the oldest unauthenticated connections (admission), and each is
// closed without an answer; the client already connected keeps scraping,
// and a new client gets in once the silent ones are gone. Not parallel.
func TestAttackConnectionsLimitHeld(t *testing.T) {
	const limit, silent = 20, 30
	up := atkStartUpstream(t, nil)
	p := atkStartProxy(t, atkProxyOptions{Upstream: up.URL, Args: []string{
		fmt.Sprintf("--web.max-connections=%d", limit), "--web.tls-handshake-timeout=1s"}})
	good := p.atkClient("")
	if r := p.atkAuthGet(t, good, "/metrics"); r.Status != 200 {
		t.Fatalf("first scrape: %d", r.Status)
	}
	wait := p.atkSilentConns(silent, 30*time.Second)
	for i := range 4 {
		if r := p.atkAuthGet(t, good, "/metrics"); r.Status != 200 || r.Body != "atk_up 1\n" {
			t.Errorf("scrape %d while the slots are taken: %d %q", i, r.Status, r.Body)
		}
		time.Sleep(500 * time.Millisecond)
	}
	for i, err := range wait() {
		if !atkClosedByPeer(err) {
			t.Errorf("silent connection %d: %v", i, err)
		}
	}
	fresh := p.atkClient("127.0.12.1")
	if r := p.atkAuthGet(t, fresh, "/metrics"); r.Status != 200 {
		t.Errorf("new client after the silent ones: %d", r.Status)
	}
	if got := atkMetric(p.atkSelfMetrics(t, good), "metrics_proxy_tls_handshake_errors_total"); got != silent {
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
	up := atkStartUpstream(t, nil)
	p := atkStartProxy(t, atkProxyOptions{Upstream: up.URL, Args: []string{
		fmt.Sprintf("--web.max-connections=%d", limit), "--web.read-header-timeout=1s", "--web.tls-handshake-timeout=1s"}})
	for i := range limit {
		c := p.atkTLSDial(t, fmt.Sprintf("127.0.13.%d", i+1))
		t.Cleanup(func() { c.Close() })
		io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 401 {
			t.Fatalf("anonymous connection %d: %v %v", i, resp, err)
		}
		resp.Body.Close()
	}
	c := p.atkClient("127.0.13.100")
	c.Timeout = 8 * time.Second
	r, err := atkTry(c, "GET", p.URL+"/metrics", map[string]string{"Authorization": atkBasic(atkUser, atkPassword)})
	if err != nil || r.Status != 200 {
		t.Errorf("new client while %d anonymous keep-alive connections idle: %d %v", limit, r.Status, err)
	}
}

// atkSilentConns opens n TCP connections to p that never send a byte and
// waits, each up to limit, for the server to close them. The returned
// function waits for all of them and gives each one's outcome: nil or a
// closed-by-peer error is what the tests want; reading anything is not.
func (p *atkProxy) atkSilentConns(n int, limit time.Duration) func() []error {
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
			got, err := atkWaitClosed(c, limit)
			if got != "" {
				err = fmt.Errorf("read %q before %v", got, err)
			}
			errs[i] = err
		}()
	}
	return func() []error { wg.Wait(); return errs }
}
