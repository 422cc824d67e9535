package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"golang.org/x/sys/unix"
)

// The attack scenarios' clients run in a process of their own (this program
// re-executed with -mode=attack -scenario=NAME), like the wrong-password
// flood's: their CPU is not counted as the proxy's or the bench's, and their
// goroutines do not share a scheduler with the good clients.
const modeAttack = "attack"

// attackCounts are what one attack process saw; it writes them as JSON.
type attackCounts struct {
	Conns      int            // connections the scenario keeps open (idle, zero-window) or uses
	Opened     int            // connections set up (TLS, and the HTTP/2 preface where the scenario sends one)
	Closed     int            // ... of those, closed by the proxy while the flood ran
	LifeP50    int64          // how long the closed ones had lived, ns: median
	LifeMax    int64          // ... longest
	MaxOpen    int            // most connections open at once
	OpenAtEnd  int            // open when the flood ended
	AllOpenAt  int64          // ns from the start until all Conns were open at once (-1: never)
	SetupErrs  map[string]int // failed connection set-ups by kind (refused, handshake timeout, not h2, ...)
	Handshakes int            // complete TLS handshakes (handshake-flood)
	Requests   int            // requests sent
	Status     map[string]int // answers by status code
	Errs       map[string]int // requests that got no answer, by kind
	LatP50     int64          // answer time of the requests, ns (auth-hog, wrong-password-h2)
	LatP99     int64
	LatMax     int64
	CPU        time.Duration // the process's CPU while it flooded
}

// attackParams are one attack process's flags.
type attackParams struct {
	scenario    string
	addr        string // 127.0.0.1:port of the proxy
	pool        *x509.CertPool
	conns       int
	sources     int // 0: 127.0.0.1; n: 127.0.1.1 ... 127.0.1.n, connection i from (i mod n)+1
	streams     int
	headerBytes int
	user, pass  string
	token       string // wrong-token-h2: the bearer token to send instead of user and pass
	gzip        bool
	start       time.Time
	dur         time.Duration
}

// runAttackProc is the attack process's main.
func runAttackProc(args []string) int {
	fs := flag.NewFlagSet("bench -mode="+modeAttack, flag.ContinueOnError)
	var p attackParams
	fs.StringVar(&p.scenario, "scenario", "", "one of "+strings.Join(attackNames, ", "))
	fs.StringVar(&p.addr, "addr", "", "127.0.0.1:port of the proxy")
	caFile := fs.String("ca", "", "CA certificate that signed the proxy's")
	fs.IntVar(&p.conns, "conns", 1, "connections (loops, for handshake-flood)")
	fs.IntVar(&p.sources, "sources", 0, "source addresses: 0 for 127.0.0.1, n for 127.0.1.1 to 127.0.1.n")
	fs.IntVar(&p.streams, "streams", 8, "requests in flight per connection")
	fs.IntVar(&p.headerBytes, "header-bytes", 7168, "extra header bytes per request (zero-window)")
	fs.StringVar(&p.user, "user", "", "basic-auth user (auth-hog, wrong-password-h2)")
	passFile := fs.String("password-file", "", "file holding the password to send (auth-hog: the right one; wrong-password-h2: a wrong one)")
	tokenFile := fs.String("token-file", "", "file holding the bearer token to send (wrong-token-h2: a wrong one)")
	fs.BoolVar(&p.gzip, "gzip", true, "ask for gzip (auth-hog)")
	startNs := fs.Int64("start", 0, "when to start, Unix nanoseconds")
	fs.DurationVar(&p.dur, "duration", 20*time.Second, "how long to flood")
	out := fs.String("out", "", "file for the results (JSON)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "bench %s: %v\n", modeAttack, err)
		return 1
	}
	host, _, err := net.SplitHostPort(p.addr)
	switch {
	case err != nil || !net.ParseIP(host).IsLoopback():
		return fail(fmt.Errorf("-addr %q must be a loopback host:port", p.addr))
	case p.conns < 1 || p.conns > 5000 || p.streams < 1 || p.streams > 100:
		return fail(errors.New("-conns must be 1 to 5000 and -streams 1 to 100"))
	case p.sources < 0 || p.sources > 254:
		return fail(errors.New("-sources must be 0 to 254"))
	case p.dur < time.Second || p.dur > 10*time.Minute:
		return fail(errors.New("-duration must be 1s to 10m"))
	case *out == "":
		return fail(errors.New("-out is required"))
	}
	p.start = time.Unix(0, *startNs)
	if d := time.Until(p.start); d < 0 || d > time.Minute {
		return fail(fmt.Errorf("-start is %s from now, not in the next minute", d))
	}
	time.AfterFunc(time.Until(p.start)+p.dur+2*time.Minute, func() { os.Exit(3) })
	if err := raiseNoFile(p.conns + 256); err != nil {
		return fail(err)
	}
	pem, err := os.ReadFile(*caFile)
	if err != nil {
		return fail(err)
	}
	p.pool = x509.NewCertPool()
	if !p.pool.AppendCertsFromPEM(pem) {
		return fail(fmt.Errorf("%s holds no PEM certificate", *caFile))
	}
	if *passFile != "" {
		b, err := os.ReadFile(*passFile)
		if err != nil {
			return fail(err)
		}
		p.pass = strings.TrimSpace(string(b))
	}
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fail(err)
		}
		p.token = strings.TrimSpace(string(b))
	}
	var run func(context.Context, attackParams) attackCounts
	switch p.scenario {
	case scIdleOne, scIdleMany:
		run = idleFlood
	case scZeroWindow:
		run = zeroWindowFlood
	case scHandshake:
		run = handshakeFlood
	case scAuthHog, scWrongH2, scWrongTok:
		run = requestFlood
	default:
		return fail(fmt.Errorf("-scenario %q: not one of %s", p.scenario, strings.Join(attackNames, ", ")))
	}
	time.Sleep(time.Until(p.start))
	cpu0 := selfCPU()
	ac := run(context.Background(), p)
	ac.CPU = selfCPU() - cpu0
	b, err := json.Marshal(ac)
	if err != nil {
		return fail(err)
	}
	if err := os.WriteFile(*out, b, 0o600); err != nil {
		return fail(err)
	}
	return 0
}

// raiseNoFile makes sure this process may hold at least n descriptors,
// raising the soft RLIMIT_NOFILE up to the hard limit (Go raises it at start
// on Linux; this checks, and says so if the hard limit is too low).
func raiseNoFile(n int) error {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return err
	}
	if rl.Cur >= uint64(n) {
		return nil
	}
	rl.Cur = min(rl.Max, max(rl.Cur, uint64(n)))
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("raising RLIMIT_NOFILE to %d: %w", rl.Cur, err)
	}
	if rl.Cur < uint64(n) {
		return fmt.Errorf("RLIMIT_NOFILE's hard limit is %d, this scenario needs about %d descriptors: raise it (ulimit -Hn)", rl.Max, n)
	}
	return nil
}

// sourceIP is connection i's source address.
func sourceIP(i, sources int) net.IP {
	if sources == 0 {
		return net.IPv4(127, 0, 0, 1)
	}
	return net.IPv4(127, 0, 1, byte(1+i%sources))
}

// connTally counts the connections an attack keeps open and their fates.
type connTally struct {
	want       int
	start, end time.Time // the flood's
	open       atomic.Int64
	mu         sync.Mutex
	opened     int
	maxOpen    int
	allOpenAt  time.Duration
	lives      []time.Duration
	setupErrs  counts
}

func newConnTally(p attackParams, want int) *connTally {
	return &connTally{want: want, start: p.start, end: p.start.Add(p.dur), allOpenAt: -1, setupErrs: counts{}}
}

func (t *connTally) up() {
	n := int(t.open.Add(1))
	t.mu.Lock()
	defer t.mu.Unlock()
	t.opened++
	t.maxOpen = max(t.maxOpen, n)
	if n >= t.want && t.allOpenAt < 0 {
		t.allOpenAt = time.Since(t.start)
	}
}

// down records a connection's end; byProxy: it ended before the flood did.
func (t *connTally) down(life time.Duration, byProxy bool) {
	t.open.Add(-1)
	if !byProxy {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lives = append(t.lives, life)
}

// setupErr counts a failed set-up, unless the flood's end caused it (a dial
// under the flood's deadline can fail just before the context says so).
func (t *connTally) setupErr(err error) {
	if !time.Now().Before(t.end) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.setupErrs[setupErrKind(err)]++
}

func (t *connTally) fill(ac *attackCounts) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ac.Conns, ac.Opened, ac.MaxOpen, ac.OpenAtEnd = t.want, t.opened, t.maxOpen, int(t.open.Load())
	ac.AllOpenAt = int64(t.allOpenAt)
	ac.SetupErrs = t.setupErrs
	ac.Closed = len(t.lives)
	l := latencies(t.lives)
	ac.LifeP50, ac.LifeMax = int64(l.pct(.5)), int64(l.pct(1))
}

// retryDelay spaces a connection's attempts after failures: 10 ms doubling to
// 1 s while set-ups fail or connections live less than a second, so that a
// proxy that refuses or closes at once does not turn the flood into a
// handshake flood.
type retryDelay struct{ d time.Duration }

func (r *retryDelay) wait(ctx context.Context, failed bool) {
	if !failed {
		r.d = 0
		return
	}
	r.d = min(max(2*r.d, 10*time.Millisecond), time.Second)
	sleepCtx(ctx, r.d)
}

// dialTLS opens a TCP connection from src to addr and completes a full TLS
// handshake (no session resumption) offering protos; with wantH2 the server
// must choose h2. It returns the TLS connection and the TCP one beneath it.
func dialTLS(ctx context.Context, p attackParams, src net.IP, protos []string, wantH2 bool) (*tls.Conn, *net.TCPConn, error) {
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: src}}
	c, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, nil, err
	}
	host, _, _ := net.SplitHostPort(p.addr)
	tc := tls.Client(c, &tls.Config{RootCAs: p.pool, ServerName: host, NextProtos: protos, MinVersion: tls.VersionTLS12})
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		c.Close()
		if hctx.Err() != nil && ctx.Err() == nil {
			return nil, nil, fmt.Errorf("handshake timeout: %w", err)
		}
		return nil, nil, fmt.Errorf("handshake: %w", err)
	}
	if wantH2 && tc.ConnectionState().NegotiatedProtocol != http2.NextProtoTLS {
		tc.Close()
		return nil, nil, errNotH2
	}
	return tc, c.(*net.TCPConn), nil
}

var errNotH2 = errors.New("server did not negotiate h2")

// setupErrKind shortens a connection set-up error to a countable kind.
func setupErrKind(err error) string {
	s := err.Error()
	switch {
	case errors.Is(err, errNotH2):
		return "not h2"
	case strings.HasPrefix(s, "handshake timeout"):
		return "handshake timeout"
	case strings.HasPrefix(s, "handshake") && strings.Contains(s, "i/o timeout"):
		return "handshake: i/o timeout"
	case strings.Contains(s, "i/o timeout"):
		return "connect timeout"
	case strings.Contains(s, "cannot assign requested address"):
		return "no free source port"
	}
	k := errKind(err)
	if strings.HasPrefix(s, "handshake") && !strings.HasPrefix(k, "handshake") {
		k = "handshake: " + k
	}
	return k
}

// h2Start writes the client preface and one SETTINGS frame.
func h2Start(fr *http2.Framer, w io.Writer, settings ...http2.Setting) error {
	if _, err := io.WriteString(w, http2.ClientPreface); err != nil {
		return err
	}
	return fr.WriteSettings(settings...)
}

// holdConns runs p.conns connection loops: each sets up a connection with
// setup, counts it open until hold returns, and reopens it while the flood
// runs. hold must return when ctx ends.
func holdConns(ctx context.Context, p attackParams, t *connTally,
	setup func(ctx context.Context, i int) (*tls.Conn, *net.TCPConn, error),
	hold func(ctx context.Context, tc *tls.Conn, raw *net.TCPConn)) {
	var wg sync.WaitGroup
	for i := range p.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var rd retryDelay
			for ctx.Err() == nil {
				tc, raw, err := setup(ctx, i)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					t.setupErr(err)
					rd.wait(ctx, true)
					continue
				}
				t0 := time.Now()
				t.up()
				stop := context.AfterFunc(ctx, func() { raw.Close() })
				hold(ctx, tc, raw)
				stop()
				raw.Close()
				life := time.Since(t0)
				byProxy := ctx.Err() == nil
				t.down(life, byProxy)
				if byProxy {
					rd.wait(ctx, life < time.Second)
				}
			}
		}()
	}
	wg.Wait()
}

// floodCtx is the flood's context: from p.start for p.dur.
func floodCtx(ctx context.Context, p attackParams) (context.Context, context.CancelFunc) {
	return context.WithDeadline(ctx, p.start.Add(p.dur))
}

// idleFlood (idle-h2-one, idle-h2-many): p.conns TLS connections that
// negotiate h2, send the client preface and an empty SETTINGS frame, then
// send nothing more (what the proxy sends is read and dropped, so that its
// close is seen); each is reopened when the proxy closes it.
func idleFlood(ctx context.Context, p attackParams) attackCounts {
	fctx, cancel := floodCtx(ctx, p)
	defer cancel()
	t := newConnTally(p, p.conns)
	holdConns(fctx, p, t, func(ctx context.Context, i int) (*tls.Conn, *net.TCPConn, error) {
		tc, raw, err := dialTLS(ctx, p, sourceIP(i, p.sources), []string{http2.NextProtoTLS}, true)
		if err != nil {
			return nil, nil, err
		}
		tc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := h2Start(http2.NewFramer(tc, nil), tc); err != nil {
			raw.Close()
			return nil, nil, fmt.Errorf("writing the preface: %w", err)
		}
		return tc, raw, nil
	}, func(ctx context.Context, tc *tls.Conn, raw *net.TCPConn) {
		_, _ = io.Copy(io.Discard, tc)
	})
	var ac attackCounts
	t.fill(&ac)
	return ac
}

// zeroWindowFlood (zero-window): p.conns TLS h2 connections that advertise
// SETTINGS_INITIAL_WINDOW_SIZE=0 and never send WINDOW_UPDATE, each sending
// p.streams GET /metrics requests without credentials and with about
// p.headerBytes of extra headers, then reading nothing. Whether the proxy
// closed a connection is seen from the socket's TCP state (TCP_INFO), which
// reads nothing; a closed one is reopened.
func zeroWindowFlood(ctx context.Context, p attackParams) attackCounts {
	fctx, cancel := floodCtx(ctx, p)
	defer cancel()
	t := newConnTally(p, p.conns)
	var sent atomic.Int64
	var mu sync.Mutex
	errs := counts{}
	holdConns(fctx, p, t, func(ctx context.Context, i int) (*tls.Conn, *net.TCPConn, error) {
		tc, raw, err := dialTLS(ctx, p, sourceIP(i, p.sources), []string{http2.NextProtoTLS}, true)
		if err != nil {
			return nil, nil, err
		}
		tc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		fr := http2.NewFramer(tc, nil)
		if err := h2Start(fr, tc, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0}); err != nil {
			raw.Close()
			return nil, nil, fmt.Errorf("writing the preface: %w", err)
		}
		var block bytes.Buffer
		enc := hpack.NewEncoder(&block)
		for s := range p.streams {
			block.Reset()
			for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", p.addr}, {":path", "/metrics"}, {"user-agent", "bench-zero-window"}} {
				_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
			}
			for j := 0; j*1024 < p.headerBytes; j++ {
				v := randomPassword(min(1024, p.headerBytes-j*1024) / 2)
				_ = enc.WriteField(hpack.HeaderField{Name: fmt.Sprintf("x-pad-%02d", j), Value: v, Sensitive: true})
			}
			err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*s + 1), BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true})
			if err != nil {
				mu.Lock()
				errs["write: "+errKind(err)]++
				mu.Unlock()
				break
			}
			sent.Add(1)
		}
		return tc, raw, nil
	}, func(ctx context.Context, tc *tls.Conn, raw *net.TCPConn) {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for !tcpClosed(raw) {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	ac := attackCounts{Requests: int(sent.Load()), Errs: errs}
	t.fill(&ac)
	return ac
}

// tcpClosed reports whether the connection is no longer ESTABLISHED (the
// proxy sent FIN or RST), without reading from it.
func tcpClosed(c *net.TCPConn) bool {
	sc, err := c.SyscallConn()
	if err != nil {
		return true
	}
	closed := true
	_ = sc.Control(func(fd uintptr) {
		info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		closed = err != nil || info.State != unix.BPF_TCP_ESTABLISHED
	})
	return closed
}

// handshakeFlood (handshake-flood): p.conns loops from 127.0.0.1, each
// completing full TLS handshakes (no session resumption) and closing, back to
// back; a refused or failed one is retried at once, as an attacker would.
func handshakeFlood(ctx context.Context, p attackParams) attackCounts {
	fctx, cancel := floodCtx(ctx, p)
	defer cancel()
	t := newConnTally(p, p.conns)
	var done atomic.Int64
	var wg sync.WaitGroup
	for range p.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for fctx.Err() == nil {
				tc, _, err := dialTLS(fctx, p, sourceIP(0, 0), []string{http2.NextProtoTLS, "http/1.1"}, false)
				if err != nil {
					if fctx.Err() == nil {
						t.setupErr(err)
					}
					continue
				}
				done.Add(1)
				tc.Close()
			}
		}()
	}
	wg.Wait()
	ac := attackCounts{Handshakes: int(done.Load())}
	t.fill(&ac)
	ac.Opened = ac.Handshakes
	return ac
}

// requestFlood (auth-hog, wrong-password-h2, wrong-token-h2): p.conns
// HTTP/2 connections from 127.0.0.1, each with p.streams requests in flight
// back to back: GET /metrics with p.user and p.pass (the right password for
// auth-hog, the same wrong one for wrong-password-h2), or with p.token as a
// bearer token (the same wrong one for wrong-token-h2), answers read to the
// end. A closed connection is reopened by its transport.
func requestFlood(ctx context.Context, p attackParams) attackCounts {
	fctx, cancel := floodCtx(ctx, p)
	defer cancel()
	url := "https://" + p.addr + "/metrics"
	var hdr http.Header
	if p.token != "" {
		hdr = http.Header{"Authorization": {"Bearer " + p.token}}
	}
	var mu sync.Mutex
	ac := attackCounts{Conns: p.conns, Status: map[string]int{}, Errs: map[string]int{}}
	var lat latencies
	var opened atomic.Int64
	var wg sync.WaitGroup
	for range p.conns {
		c := newClientProto(p.pool, p.gzip, nil, true)
		defer closeIdle(c)
		for range p.streams {
			wg.Add(1)
			go func() {
				defer wg.Done()
				status, errs := counts{}, counts{}
				var l latencies
				sent := 0
				for fctx.Err() == nil {
					t0 := time.Now()
					a := get(fctx, c, url, p.user, p.pass, false, hdr)
					d := time.Since(t0)
					if a.newConn {
						opened.Add(1)
					}
					if a.status == 0 && fctx.Err() != nil {
						break
					}
					sent++
					if a.status == 0 {
						errs[errKind(a.err)]++
						sleepCtx(fctx, 5*time.Millisecond)
						continue
					}
					status[strconv.Itoa(a.status)]++
					l = append(l, d)
				}
				mu.Lock()
				defer mu.Unlock()
				ac.Requests += sent
				for k, v := range status {
					ac.Status[k] += v
				}
				for k, v := range errs {
					ac.Errs[k] += v
				}
				lat = append(lat, l...)
			}()
		}
	}
	wg.Wait()
	ac.Opened = int(opened.Load())
	ac.LatP50, ac.LatP99, ac.LatMax = int64(lat.pct(.5)), int64(lat.pct(.99)), int64(lat.pct(1))
	return ac
}

// newClientProto is newClientFrom speaking only HTTP/2 (h2) or only HTTP/1.1.
func newClientProto(pool *x509.CertPool, gzip bool, from net.IP, h2 bool) *http.Client {
	c := newClientFrom(pool, gzip, from)
	var pr http.Protocols
	if h2 {
		pr.SetHTTP2(true)
	} else {
		pr.SetHTTP1(true)
	}
	c.Transport.(*http.Transport).Protocols = &pr
	return c
}

// basicAuth is the Authorization header value for user and pass.
func basicAuth(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
