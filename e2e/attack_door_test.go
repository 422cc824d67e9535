package e2e

// Attacks on the door itself: how many connections a source may hold and
// open, how long a connection may stay without an authenticated request,
// what happens after a refusal, and room kept for clients that authenticated
// before. Helpers here are prefixed door (and share, in
// attack_upstream_share_test.go) so they cannot collide with the atk ones.
//
// None of these tests is parallel: their limits are small and exact, and
// they count connections from fixed loopback sources.

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The good client's source: attackers use 127.0.0.1 or 127.0.1.x.
const doorGoodSrc = "127.0.0.2"

// doorRejected, doorEvicted and doorOpen are the series the door exposes.
func doorRejected(reason string) string {
	return fmt.Sprintf(`metrics_proxy_connections_rejected_total{reason=%q}`, reason)
}

func doorEvicted(reason string) string {
	return fmt.Sprintf(`metrics_proxy_connections_evicted_total{reason=%q}`, reason)
}

const doorOpen = "metrics_proxy_connections_open"

var (
	doorRejectReasons = []string{"source_connections", "source_handshake_rate", "full"}
	doorEvictReasons  = []string{"no_authenticated_request", "after_refusal", "shed_for_known_client"}
)

// doorExpect checks every series of want in the exposition m.
func doorExpect(t *testing.T, m string, want map[string]float64) {
	t.Helper()
	for series, v := range want {
		if got := atkMetric(m, series); got != v {
			t.Errorf("%s = %v, want %v", series, got, v)
		}
	}
}

// doorCounts is want for every rejection and eviction reason: the given
// values, 0 for the others.
func doorCounts(given map[string]float64) map[string]float64 {
	want := map[string]float64{}
	for _, r := range doorRejectReasons {
		want[doorRejected(r)] = 0
	}
	for _, r := range doorEvictReasons {
		want[doorEvicted(r)] = 0
	}
	for k, v := range given {
		want[k] = v
	}
	return want
}

// doorWaitMetric reads the proxy's metrics through c until series has the
// value want (up to 10 s) and returns the last exposition read.
func (p *atkProxy) doorWaitMetric(t *testing.T, c *http.Client, series string, want float64) string {
	t.Helper()
	var m string
	for range 100 {
		m = p.atkSelfMetrics(t, c)
		if atkMetric(m, series) == want {
			return m
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("%s = %v after 10 s, want %v", series, atkMetric(m, series), want)
	return m
}

// doorFreshClient is an HTTP/1.1 client from src that opens a new
// connection for every request.
func (p *atkProxy) doorFreshClient(src string) *http.Client {
	c := p.atkClient(src)
	c.Transport.(*http.Transport).DisableKeepAlives = true
	return c
}

// doorScraper scrapes /metrics with the default credential through c every
// interval, n times or until stop is closed (nil: never). The returned
// function waits for the last scrape and gives one entry per scrape: "ok"
// or what went wrong.
func (p *atkProxy) doorScraper(c *http.Client, every time.Duration, n int, stop <-chan struct{}) func() []string {
	done := make(chan struct{})
	var out []string
	go func() {
		defer close(done)
		for range n {
			r, err := atkTry(c, "GET", p.URL+"/metrics", map[string]string{"Authorization": atkBasic(atkUser, atkPassword)})
			switch {
			case err != nil:
				out = append(out, err.Error())
			case r.Status != 200 || r.Body != "atk_up 1\n" || r.ReadErr != nil:
				out = append(out, fmt.Sprintf("%d %q %v", r.Status, r.Body, r.ReadErr))
			default:
				out = append(out, "ok")
			}
			select {
			case <-stop:
				return
			case <-time.After(every):
			}
		}
	}()
	return func() []string { <-done; return out }
}

// doorCheckScrapes fails unless there were at least min scrapes and every
// one was a 200 with the upstream's body.
func doorCheckScrapes(t *testing.T, what string, res []string, min int) {
	t.Helper()
	if len(res) < min {
		t.Errorf("%s: only %d scrapes, want at least %d", what, len(res), min)
	}
	for i, r := range res {
		if r != "ok" {
			t.Errorf("%s: scrape %d failed: %s", what, i, r)
		}
	}
}

// doorTLS opens an HTTP/1.1 TLS connection from src, returning the error of
// a failed dial or handshake.
func (p *atkProxy) doorTLS(src string) (*tls.Conn, error) {
	return tls.DialWithDialer(atkDialerFrom(src), "tcp", p.Addr, &tls.Config{RootCAs: p.PKI.Pool, NextProtos: []string{"http/1.1"}})
}

// doorH2 opens a TLS connection from src that negotiated h2.
func (p *atkProxy) doorH2(src string) (*tls.Conn, error) {
	c, err := tls.DialWithDialer(atkDialerFrom(src), "tcp", p.Addr, &tls.Config{RootCAs: p.PKI.Pool, NextProtos: []string{"h2"}})
	if err != nil {
		return nil, err
	}
	if proto := c.ConnectionState().NegotiatedProtocol; proto != "h2" {
		c.Close()
		return nil, fmt.Errorf("negotiated %q, want h2", proto)
	}
	return c, nil
}

// doorH2Start sends the client preface and a SETTINGS frame with settings,
// and returns a framer that decodes header blocks.
func doorH2Start(c net.Conn, settings ...http2.Setting) (*http2.Framer, error) {
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		return nil, err
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	return fr, fr.WriteSettings(settings...)
}

// doorH2Drain reads frames (never answering any) until the connection ends
// or limit passes. It returns the :status of every response header block,
// whether a GOAWAY came, and the error that ended the reading.
func doorH2Drain(c net.Conn, fr *http2.Framer, limit time.Duration) (statuses []string, goAway bool, err error) {
	c.SetReadDeadline(time.Now().Add(limit))
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return statuses, goAway, err
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			statuses = append(statuses, f.PseudoValue("status"))
		case *http2.GoAwayFrame:
			goAway = true
		}
	}
}

// doorRefusedAtAccept reports whether a dial's error means the proxy closed
// the connection before the TLS handshake could finish (EOF or reset, not
// our own timeout nor a TLS alert).
func doorRefusedAtAccept(err error) bool {
	return err != nil && atkClosedByPeer(err)
}

// doorStillOpen reports whether the peer has neither closed c nor sent
// application data on it within a short wait.
func doorStillOpen(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	n, err := c.Read(make([]byte, 1))
	var ne net.Error
	return n == 0 && errors.As(err, &ne) && ne.Timeout()
}

// One source may hold at most --web.max-connections-per-source connections:
// of 100 idle HTTP/2 connections from 127.0.0.1, exactly 8 get through the
// TLS handshake and the other 92 are closed before it and counted as
// source_connections, while a client from another address scrapes on a new
// connection each time and gets every scrape.
func TestDoorIdleHTTP2OneSource(t *testing.T) {
	const perSource, attempts = 8, 100
	up := atkStartUpstream(t, nil)
	p := atkStartProxy(t, atkProxyOptions{Upstream: up.URL, Args: []string{
		"--web.max-connections=64", fmt.Sprintf("--web.max-connections-per-source=%d", perSource),
		"--web.handshake-rate-per-source=1000", "--web.read-header-timeout=1m"}})
	meter := p.atkClient(doorGoodSrc) // one keep-alive connection, for the counters
	p.atkSelfMetrics(t, meter)
	fresh := p.doorFreshClient(doorGoodSrc)
	if r := p.atkAuthGet(t, fresh, "/metrics"); r.Status != 200 {
		t.Fatalf("good client before the attack: %d", r.Status)
	}

	stop := make(chan struct{})
	scrapes := p.doorScraper(fresh, 100*time.Millisecond, 10, stop)
	var (
		mu       sync.Mutex
		held     []net.Conn
		other    []string
		refused  atomic.Int32
		wg       sync.WaitGroup
		startAll = make(chan struct{})
	)
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	for i := range attempts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-startAll
			c, err := p.doorH2("127.0.0.1")
			if err != nil {
				if doorRefusedAtAccept(err) {
					refused.Add(1)
				} else {
					mu.Lock()
					other = append(other, fmt.Sprintf("connection %d: %v", i, err))
					mu.Unlock()
				}
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
			// The preface and SETTINGS, then nothing.
			if _, err := doorH2Start(c); err != nil {
				mu.Lock()
				other = append(other, fmt.Sprintf("connection %d: preface: %v", i, err))
				mu.Unlock()
			}
		}()
	}
	close(startAll)
	wg.Wait()
	// Scrapes go on for a while with the 8 connections held.
	doorCheckScrapes(t, "good client while one source holds its connections", scrapes(), 10)
	close(stop)

	for _, o := range other {
		t.Errorf("%s; want a handshake or a close before it", o)
	}
	if len(held) != perSource || refused.Load() != attempts-perSource {
		t.Errorf("%d handshakes completed, %d closed before the handshake; want %d and %d", len(held), refused.Load(), perSource, attempts-perSource)
	}
	// The 8 held, plus the meter's own connection.
	m := p.doorWaitMetric(t, meter, doorOpen, perSource+1)
	doorExpect(t, m, doorCounts(map[string]float64{doorRejected("source_connections"): attempts - perSource}))
}

// An HTTP/2 connection that carries no authenticated request within
// --web.read-header-timeout after its handshake is closed by the proxy and
// counted as no_authenticated_request; one that made an authenticated
// request is left open and still serves requests after that time.
func TestDoorIdleHTTP2Evicted(t *testing.T) {
	up := atkStartUpstream(t, nil)
	p := atkStartProxy(t, atkProxyOptions{Upstream: up.URL, Args: []string{"--web.read-header-timeout=1s"}})

	// The authenticated connection: one HTTP/2 client connection, never
	// replaced.
	cc, err := p.atkH2Client("127.0.0.1").Transport.(*http.Transport).NewClientConn(context.Background(), "https", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	get := func(what, path string) atkResult {
		t.Helper()
		req, _ := http.NewRequest("GET", p.URL+path, nil)
		req.SetBasicAuth(atkUser, atkPassword)
		resp, err := cc.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s on the authenticated HTTP/2 connection: %v", what, err)
		}
		defer resp.Body.Close()
		b, rerr := io.ReadAll(resp.Body)
		return atkResult{Status: resp.StatusCode, Body: string(b), ReadErr: rerr}
	}
	if r := get("first request", "/metrics"); r.Status != 200 || r.Body != "atk_up 1\n" {
		t.Fatalf("first request: %d %q", r.Status, r.Body)
	}

	// The idle one: the preface and SETTINGS, then nothing.
	idle, err := p.doorH2("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	fr, err := doorH2Start(idle)
	if err != nil {
		t.Fatal(err)
	}
	statuses, goAway, err := doorH2Drain(idle, fr, 15*time.Second)
	if !atkClosedByPeer(err) {
		t.Errorf("idle HTTP/2 connection: reading ended with %v (GOAWAY %v); want closed by the proxy", err, goAway)
	}
	if len(statuses) != 0 {
		t.Errorf("idle HTTP/2 connection got responses %v", statuses)
	}

	// Well past the timeout for the authenticated connection too.
	time.Sleep(1500 * time.Millisecond)
	if r := get("request after the timeout", "/metrics"); r.Status != 200 || r.Body != "atk_up 1\n" {
		t.Errorf("request after the timeout: %d %q", r.Status, r.Body)
	}
	if err := cc.Err(); err != nil {
		t.Errorf("authenticated HTTP/2 connection: %v, want open", err)
	}
	r := get("metrics", "/proxy/metrics")
	if r.Status != 200 {
		t.Fatalf("/proxy/metrics: %d", r.Status)
	}
	doorExpect(t, r.Body, doorCounts(map[string]float64{doorEvicted("no_authenticated_request"): 1}))
}

// --web.handshake-rate-per-source bounds new connections per second from one
// source, with a burst of twice the rate: of 40 connections opened at once
// from 127.0.0.1 at rate 5, the burst of 10 (plus whatever the bucket
// refills while they arrive, at most 5 here) get through and the rest are
// closed before the handshake and counted as source_handshake_rate; the
// client view and the counter agree exactly. A client from another address
// scrapes all along, and the source gets in again once it slows down.
func TestDoorHandshakeRate(t *testing.T) {
	const attempts, burst = 40, 10
	up := atkStartUpstream(t, nil)
	p := atkStartProxy(t, atkProxyOptions{Upstream: up.URL, Args: []string{"--web.handshake-rate-per-source=5"}})
	meter := p.atkClient(doorGoodSrc)
	p.atkSelfMetrics(t, meter)
	fresh := p.doorFreshClient(doorGoodSrc)
	// 1 (meter) + 6 new connections from the good source: within its burst.
	scrapes := p.doorScraper(fresh, 100*time.Millisecond, 6, nil)

	var (
		mu       sync.Mutex
		held     []net.Conn
		other    []string
		refused  atomic.Int32
		wg       sync.WaitGroup
		startAll = make(chan struct{})
	)
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	for i := range attempts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-startAll
			c, err := p.doorTLS("127.0.0.1")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				held = append(held, c)
			case doorRefusedAtAccept(err):
				refused.Add(1)
			default:
				other = append(other, fmt.Sprintf("connection %d: %v", i, err))
			}
		}()
	}
	close(startAll)
	wg.Wait()
	doorCheckScrapes(t, "good client during the handshake flood", scrapes(), 6)

	for _, o := range other {
		t.Errorf("%s; want a handshake or a close before it", o)
	}
	m := p.atkSelfMetrics(t, meter)
	rejected := atkMetric(m, doorRejected("source_handshake_rate"))
	t.Logf("%d handshakes, %d closed before; rejected{source_handshake_rate} = %v", len(held), refused.Load(), rejected)
	if rejected < attempts-burst-5 || rejected > attempts-burst {
		t.Errorf("rejected{source_handshake_rate} = %v, want %d to %d", rejected, attempts-burst-5, attempts-burst)
	}
	if float64(refused.Load()) != rejected || len(held)+int(refused.Load()) != attempts {
		t.Errorf("%d handshakes and %d closed before one, counter %v: want the closed ones to be exactly the counted ones, of %d",
			len(held), refused.Load(), rejected, attempts)
	}
	doorExpect(t, m, doorCounts(map[string]float64{doorRejected("source_handshake_rate"): rejected}))

	// The bucket refills: the source gets in again.
	for i := 0; ; i++ {
		c, err := p.doorTLS("127.0.0.1")
		if err == nil {
			c.Close()
			break
		}
		if i == 20 {
			t.Errorf("127.0.0.1 still refused 5 s after its flood: %v", err)
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Room is kept for clients that authenticated before: at max-connections 16
// (reserve 2), anonymous idle connections from ten addresses fill the table
// up to 14 and every further one, and a new unknown client, is closed before
// the handshake and counted as full; the known client still gets every
// scrape on new connections, and once 16 are open it gets in by shedding the
// oldest connection that never authenticated, counted as
// shed_for_known_client; the other anonymous connections stay open.
func TestDoorKnownClientGetsIn(t *testing.T) {
	const maxConns, reserve = 16, 2
	up := atkStartUpstream(t, nil)
	p := atkStartProxy(t, atkProxyOptions{Upstream: up.URL, Args: []string{
		fmt.Sprintf("--web.max-connections=%d", maxConns), "--web.max-connections-per-source=4",
		"--web.handshake-rate-per-source=1000", "--web.read-header-timeout=1m"}})

	// The known client authenticates on a keep-alive connection it keeps
	// (and reads the counters on): 1 open.
	k1 := p.atkClient(doorGoodSrc)
	if r := p.atkAuthGet(t, k1, "/metrics"); r.Status != 200 {
		t.Fatalf("known client's first scrape: %d", r.Status)
	}
	p.doorWaitMetric(t, k1, doorOpen, 1)

	// Anonymous idle connections, 4 from each of 127.0.1.1..10, one at a
	// time: admitted while fewer than max-connections minus the reserve are open.
	var anon []net.Conn
	t.Cleanup(func() {
		for _, c := range anon {
			c.Close()
		}
	})
	refused := 0
	for s := 1; s <= 10; s++ {
		for i := range 4 {
			c, err := p.doorTLS(fmt.Sprintf("127.0.1.%d", s))
			switch {
			case err == nil:
				anon = append(anon, c)
			case doorRefusedAtAccept(err):
				refused++
			default:
				t.Errorf("anonymous connection %d from 127.0.1.%d: %v", i, s, err)
			}
		}
	}
	admitted := maxConns - reserve - 1
	if len(anon) != admitted || refused != 40-admitted {
		t.Fatalf("%d anonymous connections admitted, %d closed before the handshake; want %d and %d", len(anon), refused, admitted, 40-admitted)
	}
	m := p.doorWaitMetric(t, k1, doorOpen, maxConns-reserve)
	doorExpect(t, m, doorCounts(map[string]float64{doorRejected("full"): float64(40 - admitted)}))

	// A new, unknown client is refused too.
	if c, err := p.doorTLS("127.0.0.3"); !doorRefusedAtAccept(err) {
		if c != nil {
			c.Close()
		}
		t.Errorf("unknown client at %d open: %v, want closed before the handshake", maxConns-reserve, err)
	}
	// The known client scrapes on new connections (15 open at most).
	doorCheckScrapes(t, "known client at 14 open", p.doorScraper(p.doorFreshClient(doorGoodSrc), 100*time.Millisecond, 5, nil)(), 5)
	m = p.doorWaitMetric(t, k1, doorOpen, maxConns-reserve)
	doorExpect(t, m, doorCounts(map[string]float64{doorRejected("full"): float64(40 - admitted + 1)}))

	// Two more keep-alive connections of the known client: 16 open, and
	// nothing shed to get there.
	for i, want := range []float64{maxConns - 1, maxConns} {
		k := p.atkClient(doorGoodSrc)
		if r := p.atkAuthGet(t, k, "/metrics"); r.Status != 200 {
			t.Fatalf("known client's keep-alive connection %d: %d", i+2, r.Status)
		}
		m = p.doorWaitMetric(t, k1, doorOpen, want)
	}
	doorExpect(t, m, doorCounts(map[string]float64{doorRejected("full"): float64(40 - admitted + 1)}))

	// At 16, a new connection of the known client sheds the oldest
	// anonymous one.
	if r := p.atkAuthGet(t, p.doorFreshClient(doorGoodSrc), "/metrics"); r.Status != 200 || r.Body != "atk_up 1\n" {
		t.Errorf("known client at %d open: %d %q", maxConns, r.Status, r.Body)
	}
	if got, err := atkWaitClosed(anon[0], 10*time.Second); got != "" || !atkClosedByPeer(err) {
		t.Errorf("oldest anonymous connection: read %q, ended by %v; want closed by the proxy", got, err)
	}
	for i, c := range anon[1:] {
		if !doorStillOpen(c) {
			t.Errorf("anonymous connection %d was closed too; only the oldest should be", i+1)
		}
	}
	// Unknown clients are still refused, not given the freed slot.
	if c, err := p.doorTLS("127.0.0.3"); !doorRefusedAtAccept(err) {
		if c != nil {
			c.Close()
		}
		t.Errorf("unknown client after the shed: %v, want closed before the handshake", err)
	}
	m = p.atkSelfMetrics(t, k1)
	doorExpect(t, m, doorCounts(map[string]float64{
		doorRejected("full"):                 float64(40 - admitted + 2),
		doorEvicted("shed_for_known_client"): 1,
	}))
}

// doorH2Request is the HPACK block of a GET /metrics without credentials,
// padded with about 7 KiB of headers (under --web.max-header-bytes).
func doorH2Request(enc *hpack.Encoder, buf *bytes.Buffer, authority string) []byte {
	buf.Reset()
	for _, f := range []hpack.HeaderField{
		{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "https"},
		{Name: ":authority", Value: authority}, {Name: ":path", Value: "/metrics"},
	} {
		enc.WriteField(f)
	}
	for i := range 7 {
		enc.WriteField(hpack.HeaderField{Name: fmt.Sprintf("x-pad-%d", i), Value: strings.Repeat("p", 1000)})
	}
	return buf.Bytes()
}

// A client that opens a zero flow-control window cannot take the body of its
// 401, which would pin the handler (and its buffers) for as long as the
// connection lives. After a refusal the proxy closes the connection itself
// within 2 s: 32 HTTP/2 connections, each with 8 unauthenticated requests
// and SETTINGS_INITIAL_WINDOW_SIZE 0, are all closed by the proxy and
// counted as after_refusal; the proxy stays small and a client from another
// address gets every scrape meanwhile.
func TestDoorZeroWindow(t *testing.T) {
	const conns, streams = 32, 8
	up := atkStartUpstream(t, nil)
	p := atkStartProxy(t, atkProxyOptions{Upstream: up.URL, Args: []string{
		"--web.handshake-rate-per-source=1000", "--web.read-header-timeout=1m"}})
	good := p.atkClient(doorGoodSrc)
	if r := p.atkAuthGet(t, good, "/metrics"); r.Status != 200 {
		t.Fatalf("good client before the attack: %d", r.Status)
	}
	stop := make(chan struct{})
	scrapes := p.doorScraper(good, 200*time.Millisecond, 100, stop)
	var peak atomic.Int64
	rssDone := make(chan struct{})
	go func() {
		defer close(rssDone)
		for {
			peak.Store(max(peak.Load(), atkRSSKiB(t, p.cmd.Process.Pid)))
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()

	type outcome struct {
		statuses []string
		goAway   bool
		err      error
	}
	results := make([]outcome, conns)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := p.doorH2("127.0.0.1")
			if err != nil {
				results[i].err = fmt.Errorf("dial: %w", err)
				return
			}
			defer c.Close()
			fr, err := doorH2Start(c, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
			if err != nil {
				results[i].err = fmt.Errorf("preface: %w", err)
				return
			}
			var buf bytes.Buffer
			enc := hpack.NewEncoder(&buf)
			for s := range streams {
				block := doorH2Request(enc, &buf, p.Addr)
				if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*s + 1), BlockFragment: block, EndStream: true, EndHeaders: true}); err != nil {
					results[i].err = fmt.Errorf("HEADERS %d: %w", s, err)
					return
				}
			}
			// Read frames, never granting window: no DATA can come.
			st, ga, err := doorH2Drain(c, fr, 15*time.Second)
			results[i] = outcome{st, ga, err}
		}()
	}
	wg.Wait()
	close(stop)
	<-rssDone
	doorCheckScrapes(t, "good client during the zero-window attack", scrapes(), 2)

	for i, r := range results {
		if !atkClosedByPeer(r.err) {
			t.Errorf("zero-window connection %d: ended with %v (GOAWAY %v, statuses %v); want closed by the proxy", i, r.err, r.goAway, r.statuses)
		}
		for _, s := range r.statuses {
			if s != "401" && s != "429" {
				t.Errorf("zero-window connection %d: status %s, want only refusals (401, or 429 once the source is throttled)", i, s)
				break
			}
		}
	}
	m := p.atkSelfMetrics(t, good)
	doorExpect(t, m, doorCounts(map[string]float64{doorEvicted("after_refusal"): conns}))
	if pk := peak.Load(); pk > 96<<10 {
		t.Errorf("proxy RSS peaked at %d KiB during the zero-window attack, want under 96 MiB", pk)
	}
	t.Logf("proxy peak RSS %d KiB", peak.Load())
}
