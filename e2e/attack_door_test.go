package e2e

// Attacks on the door itself: how many connections a source may hold and
// open, how long a connection may stay without an authenticated request,
// what happens after a refusal, and room kept for clients that authenticated
// before.
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
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

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
	doorEvictReasons  = []string{"no_authenticated_request", "after_refusal", "shed_for_known_client", "shed_for_new_client"}
)

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

// dialAll opens n connections at once with dial and sorts what came of
// them: the connections that got through the handshake (closed when the
// test ends, also when dial reports a later error), how many the proxy
// closed before the handshake could finish (EOF or reset, not our own
// timeout nor a TLS alert), and every other failure.
func dialAll(t *testing.T, n int, dial func() (*tls.Conn, error)) (held []*tls.Conn, refused int, other []string) {
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		startAll = make(chan struct{})
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-startAll
			c, err := dial()
			mu.Lock()
			defer mu.Unlock()
			if c != nil {
				held = append(held, c)
			}
			switch {
			case err == nil:
			case c == nil && closedByPeer(err):
				refused++
			default:
				other = append(other, fmt.Sprintf("connection %d: %v", i, err))
			}
		}()
	}
	close(startAll)
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	return held, refused, other
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

// stillOpen reports whether the peer has neither closed c nor sent
// application data on it within a short wait.
func stillOpen(c net.Conn) bool {
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
	p, _ := startWithUpstream(t, nil, proxyOptions{Args: []string{
		"--web.max-connections=64", fmt.Sprintf("--web.max-connections-per-source=%d", perSource),
		"--web.handshake-rate-per-source=1000", "--web.read-header-timeout=1m"}})
	meter := p.client(goodSrc) // one keep-alive connection, for the counters
	p.selfMetrics(t, meter)
	fresh := p.freshClient(goodSrc)
	if r := p.get(t, fresh, "/metrics"); r.Status != 200 {
		t.Fatalf("good client before the attack: %d", r.Status)
	}

	stop := make(chan struct{})
	scrapes := p.keepScraping(fresh, 100*time.Millisecond, 10, stop)
	held, refused, other := dialAll(t, attempts, func() (*tls.Conn, error) {
		c, err := p.dialTLS("127.0.0.1", "h2")
		if err != nil {
			return nil, err
		}
		// The preface and SETTINGS, then nothing.
		if _, err := h2Start(c); err != nil {
			return c, fmt.Errorf("preface: %w", err)
		}
		return c, nil
	})
	// Scrapes go on for a while with the 8 connections held.
	scrapes().check(t, "good client while one source holds its connections", 10)
	close(stop)

	for _, o := range other {
		t.Errorf("%s; want a handshake or a close before it", o)
	}
	if len(held) != perSource || refused != attempts-perSource {
		t.Errorf("%d handshakes completed, %d closed before the handshake; want %d and %d", len(held), refused, perSource, attempts-perSource)
	}
	// The 8 held, plus the meter's own connection.
	m := p.waitMetric(t, meter, doorOpen, perSource+1)
	expectMetrics(t, m, doorCounts(map[string]float64{doorRejected("source_connections"): attempts - perSource}))
}

// An HTTP/2 connection that carries no authenticated request within
// --web.read-header-timeout after its handshake is closed by the proxy and
// counted as no_authenticated_request; one that made an authenticated
// request is left open and still serves requests after that time.
func TestDoorIdleHTTP2Evicted(t *testing.T) {
	p, _ := startWithUpstream(t, nil, proxyOptions{Args: []string{"--web.read-header-timeout=1s"}})

	// The authenticated connection: one HTTP/2 client connection, never
	// replaced.
	cc, err := p.h2Client("127.0.0.1").Transport.(*http.Transport).NewClientConn(context.Background(), "https", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	get := func(what, path string) result {
		t.Helper()
		req, _ := http.NewRequest("GET", p.URL+path, nil)
		req.SetBasicAuth(defaultUser, defaultPassword)
		resp, err := cc.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s on the authenticated HTTP/2 connection: %v", what, err)
		}
		defer resp.Body.Close()
		b, rerr := io.ReadAll(resp.Body)
		return result{Status: resp.StatusCode, Body: string(b), ReadErr: rerr}
	}
	if r := get("first request", "/metrics"); r.Status != 200 || r.Body != upBody {
		t.Fatalf("first request: %d %q", r.Status, r.Body)
	}

	// The idle one: the preface and SETTINGS, then nothing.
	idle, err := p.dialTLS("127.0.0.1", "h2")
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	fr, err := h2Start(idle)
	if err != nil {
		t.Fatal(err)
	}
	statuses, goAway, err := doorH2Drain(idle, fr, 15*time.Second)
	if !closedByPeer(err) {
		t.Errorf("idle HTTP/2 connection: reading ended with %v (GOAWAY %v); want closed by the proxy", err, goAway)
	}
	if len(statuses) != 0 {
		t.Errorf("idle HTTP/2 connection got responses %v", statuses)
	}

	// Well past the timeout for the authenticated connection too.
	time.Sleep(1500 * time.Millisecond)
	if r := get("request after the timeout", "/metrics"); r.Status != 200 || r.Body != upBody {
		t.Errorf("request after the timeout: %d %q", r.Status, r.Body)
	}
	if err := cc.Err(); err != nil {
		t.Errorf("authenticated HTTP/2 connection: %v, want open", err)
	}
	r := get("metrics", "/proxy/metrics")
	if r.Status != 200 {
		t.Fatalf("/proxy/metrics: %d", r.Status)
	}
	expectMetrics(t, r.Body, doorCounts(map[string]float64{doorEvicted("no_authenticated_request"): 1}))
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
	p, _ := startWithUpstream(t, nil, proxyOptions{Args: []string{"--web.handshake-rate-per-source=5"}})
	meter := p.client(goodSrc)
	p.selfMetrics(t, meter)
	fresh := p.freshClient(goodSrc)
	// 1 (meter) + 6 new connections from the good source: within its burst.
	scrapes := p.keepScraping(fresh, 100*time.Millisecond, 6, nil)

	held, refused, other := dialAll(t, attempts, func() (*tls.Conn, error) { return p.dialTLS("127.0.0.1") })
	scrapes().check(t, "good client during the handshake flood", 6)

	for _, o := range other {
		t.Errorf("%s; want a handshake or a close before it", o)
	}
	m := p.selfMetrics(t, meter)
	rejected := metric(m, doorRejected("source_handshake_rate"))
	t.Logf("%d handshakes, %d closed before; rejected{source_handshake_rate} = %v", len(held), refused, rejected)
	if rejected < attempts-burst-5 || rejected > attempts-burst {
		t.Errorf("rejected{source_handshake_rate} = %v, want %d to %d", rejected, attempts-burst-5, attempts-burst)
	}
	if float64(refused) != rejected || len(held)+int(refused) != attempts {
		t.Errorf("%d handshakes and %d closed before one, counter %v: want the closed ones to be exactly the counted ones, of %d",
			len(held), refused, rejected, attempts)
	}
	expectMetrics(t, m, doorCounts(map[string]float64{doorRejected("source_handshake_rate"): rejected}))

	// The bucket refills: the source gets in again.
	for i := 0; ; i++ {
		c, err := p.dialTLS("127.0.0.1")
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

// No flood of idle connections from several addresses locks anyone out: at
// max-connections 16 (reserve 2), anonymous connections fill the 14
// unreserved slots and further ones from those addresses are refused as
// full, but a client from an address that holds none takes the oldest slot
// of the address holding the most (shed_for_new_client) and scrapes; the
// known client gets every scrape on new connections, has the reserve to
// itself, and once all 16 are open gets in by shedding the oldest anonymous
// connection (shed_for_known_client). Only the connections named are closed.
func TestDoorKnownClientGetsIn(t *testing.T) {
	const maxConns, reserve = 16, 2
	p, _ := startWithUpstream(t, nil, proxyOptions{Args: []string{
		// 5 per source: the known client needs 5 at once at the end.
		fmt.Sprintf("--web.max-connections=%d", maxConns), "--web.max-connections-per-source=5",
		"--web.handshake-rate-per-source=1000", "--web.read-header-timeout=1m"}})

	// The known client authenticates on a keep-alive connection it keeps
	// (and reads the counters on): 1 open.
	k1 := p.client(goodSrc)
	if r := p.get(t, k1, "/metrics"); r.Status != 200 {
		t.Fatalf("known client's first scrape: %d", r.Status)
	}
	p.waitMetric(t, k1, doorOpen, 1)

	// Five anonymous idle connections from each of 127.0.1.1..3, one at a
	// time: 13 fill the unreserved slots, the last two from 127.0.1.3 are
	// closed before the handshake (their address already holds some).
	var anon []net.Conn
	t.Cleanup(func() {
		for _, c := range anon {
			c.Close()
		}
	})
	refused := 0
	for s := 1; s <= 3; s++ {
		for i := range 5 {
			c, err := p.dialTLS(fmt.Sprintf("127.0.1.%d", s))
			switch {
			case err == nil:
				anon = append(anon, c)
			case closedByPeer(err):
				refused++
			default:
				t.Fatalf("anonymous connection %d from 127.0.1.%d: %v", i, s, err)
			}
		}
	}
	if len(anon) != maxConns-reserve-1 || refused != 2 {
		t.Fatalf("%d anonymous connections admitted, %d closed before the handshake; want %d and 2", len(anon), refused, maxConns-reserve-1)
	}
	m := p.waitMetric(t, k1, doorOpen, maxConns-reserve)
	expectMetrics(t, m, doorCounts(map[string]float64{doorRejected("full"): 2}))

	// A never-seen client gets in: its first connection takes the oldest
	// slot of 127.0.1.1 (5 held, the most), and it scrapes.
	p.keepScraping(p.freshClient("127.0.0.3"), 100*time.Millisecond, 3, nil)().check(t, "new client in a full table", 3)
	if got, err := waitClosed(anon[0], 10*time.Second); got != "" || !closedByPeer(err) {
		t.Errorf("oldest anonymous connection of the heaviest address: read %q, ended by %v; want closed by the proxy", got, err)
	}
	// The known client scrapes on new connections meanwhile.
	p.keepScraping(p.freshClient(goodSrc), 100*time.Millisecond, 3, nil)().check(t, "known client in a full table", 3)
	m = p.waitMetric(t, k1, doorOpen, maxConns-reserve-1)
	expectMetrics(t, m, doorCounts(map[string]float64{doorRejected("full"): 2, doorEvicted("shed_for_new_client"): 1}))

	// Three more keep-alive connections of the known client: 16 open, the
	// reserve its own, nothing shed to get there.
	for i, want := range []float64{maxConns - 2, maxConns - 1, maxConns} {
		k := p.client(goodSrc)
		if r := p.get(t, k, "/metrics"); r.Status != 200 {
			t.Fatalf("known client's keep-alive connection %d: %d", i+2, r.Status)
		}
		m = p.waitMetric(t, k1, doorOpen, want)
	}
	expectMetrics(t, m, doorCounts(map[string]float64{doorRejected("full"): 2, doorEvicted("shed_for_new_client"): 1}))

	// At 16, a new connection of the known client sheds the oldest
	// anonymous one, and only that one.
	if r := p.get(t, p.freshClient(goodSrc), "/metrics"); r.Status != 200 || r.Body != upBody {
		t.Errorf("known client at %d open: %d %q", maxConns, r.Status, r.Body)
	}
	if got, err := waitClosed(anon[1], 10*time.Second); got != "" || !closedByPeer(err) {
		t.Errorf("oldest anonymous connection: read %q, ended by %v; want closed by the proxy", got, err)
	}
	for i, c := range anon[2:] {
		if !stillOpen(c) {
			t.Errorf("anonymous connection %d was closed too; only the oldest should be", 2+i)
		}
	}
	m = p.selfMetrics(t, k1)
	expectMetrics(t, m, doorCounts(map[string]float64{
		doorRejected("full"):                 2,
		doorEvicted("shed_for_new_client"):   1,
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
	p, _ := startWithUpstream(t, nil, proxyOptions{Args: []string{
		"--web.handshake-rate-per-source=1000", "--web.read-header-timeout=1m"}})
	good := p.client(goodSrc)
	if r := p.get(t, good, "/metrics"); r.Status != 200 {
		t.Fatalf("good client before the attack: %d", r.Status)
	}
	stop := make(chan struct{})
	scrapes := p.keepScraping(good, 200*time.Millisecond, 100, stop)
	peak := p.watchRSS(t, 100*time.Millisecond)

	type connEnd struct {
		statuses []string
		goAway   bool
		err      error
	}
	results := make([]connEnd, conns)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := p.dialTLS("127.0.0.1", "h2")
			if err != nil {
				results[i].err = fmt.Errorf("dial: %w", err)
				return
			}
			defer c.Close()
			fr, err := h2Start(c, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
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
			results[i] = connEnd{st, ga, err}
		}()
	}
	wg.Wait()
	close(stop)
	peakKiB := peak()
	scrapes().check(t, "good client during the zero-window attack", 2)

	for i, r := range results {
		if !closedByPeer(r.err) {
			t.Errorf("zero-window connection %d: ended with %v (GOAWAY %v, statuses %v); want closed by the proxy", i, r.err, r.goAway, r.statuses)
		}
		for _, s := range r.statuses {
			if s != "401" && s != "429" {
				t.Errorf("zero-window connection %d: status %s, want only refusals (401, or 429 once the source is throttled)", i, s)
				break
			}
		}
	}
	m := p.selfMetrics(t, good)
	expectMetrics(t, m, doorCounts(map[string]float64{doorEvicted("after_refusal"): conns}))
	if peakKiB > 96<<10 {
		t.Errorf("proxy RSS peaked at %d KiB during the zero-window attack, want under 96 MiB", peakKiB)
	}
	t.Logf("proxy peak RSS %d KiB", peakKiB)
}
