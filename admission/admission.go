// Package admission decides which TCP connections metrics-proxy takes, and
// for how long it keeps the ones that never prove who they are. It sits
// directly on the listening socket, before any TLS work, so that turning a
// connection away costs an accept and a close.
//
// Connection slots are the door's scarcest resource: a slot held by a silent
// client is one a scraper cannot use. The rules, each against an attack that
// filled the table in a real test:
//
//   - Per source (an IPv4 address, an IPv6 /64; a /48 may hold four times as
//     many): at most MaxPerSource connections open at once and HandshakeRate
//     new ones a second, so one address never holds more than its share of
//     the table nor makes the proxy do more than its share of handshakes.
//   - A connection must carry a request that passed authentication within
//     FirstRequestTimeout of the end of its handshake, whatever its protocol:
//     net/http applies ReadHeaderTimeout to HTTP/1 only, and an HTTP/2
//     connection that sent its preface and nothing else was otherwise held for
//     the whole idle timeout.
//   - A connection that never authenticated and has been refused is closed
//     RefusalGrace after its refusal, whether or not it took the answer: a
//     client that advertises a zero HTTP/2 window, or does not read, cannot
//     keep its 401 pending in memory.
//   - Known clients keep their way in. A source whose request passed
//     authentication within KnownFor is known. The last Reserve slots are
//     theirs alone, and when the table is full a known source's new
//     connection takes the slot of the oldest connection that never
//     authenticated. A flood from however many addresses cannot lock out a
//     Prometheus that scraped before it began.
//   - New clients get in too. When the part of the table open to unknown
//     sources is full, a connection from a source that holds none takes
//     the slot of the oldest connection that never authenticated from the
//     source holding the most, rather than being refused. A flood from many
//     addresses that holds the table with idle connections thus cannot keep
//     out a client it has not seen, unless it holds only one connection per
//     address (hundreds of addresses, or IPv6 /48s, of which each may hold
//     only its share); and its reconnections, from addresses that still
//     hold connections, never churn the table.
//
// The HTTP layer tells a connection what happened to it through the context
// of its requests: see ConnContext, FromContext, Conn.Authenticated and
// Conn.Refused.
package admission

import (
	"container/list"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/alloyci/hardened-runner/ratelog"
	"github.com/alloyci/hardened-runner/source"
)

// Defaults for Options fields left at zero.
const (
	// DefaultMaxConns is the whole table (--web.max-connections).
	DefaultMaxConns = 1024
	// DefaultMaxPerSource lets one Prometheus (or a few behind one NAT
	// address) open far more connections than scraping needs, while 16
	// sources are needed to fill the table.
	DefaultMaxPerSource = 64
	// DefaultHandshakeRate is new connections a second per source, with a
	// burst of twice as many: a restarting Prometheus opens a handful.
	DefaultHandshakeRate = 10
	// DefaultFirstRequestTimeout matches --web.read-header-timeout's default.
	DefaultFirstRequestTimeout = 10 * time.Second
	// DefaultRefusalGrace is long enough for any client that reads to take a
	// short refusal, short enough that held refusals cost little.
	DefaultRefusalGrace = 2 * time.Second
	// DefaultKnownFor keeps a source known across scrape intervals far longer
	// than any Prometheus uses, and across a Prometheus restart.
	DefaultKnownFor = time.Hour
)

// Table sizes: bounded so that a flood from many addresses cannot grow them.
const (
	// siteFactor is how many sources' worth of connections and handshakes an
	// IPv6 /48 may have.
	siteFactor = 4
	// maxTracked bounds the per-source handshake buckets; an evicted bucket
	// comes back full, so an attacker with more sources than this gains one
	// burst per source, which per-source limits cannot stop anyway.
	maxTracked = 16384
	// maxKnown bounds the known sources, far more than there are scrapers.
	maxKnown = 4096
)

// Rejection and eviction reasons: the only values of the reason labels.
const (
	// ReasonSourceConnections: the source already holds MaxPerSource
	// connections (or its /48 holds its share).
	ReasonSourceConnections = "source_connections"
	// ReasonSourceHandshakeRate: the source opens connections faster than
	// HandshakeRate.
	ReasonSourceHandshakeRate = "source_handshake_rate"
	// ReasonFull: the table (for unknown sources: all but Reserve) is full
	// and no connection may be shed for this source.
	ReasonFull = "full"

	// ReasonNoAuthenticatedRequest: no request passed authentication within
	// FirstRequestTimeout.
	ReasonNoAuthenticatedRequest = "no_authenticated_request"
	// ReasonAfterRefusal: still open RefusalGrace after a refusal.
	ReasonAfterRefusal = "after_refusal"
	// ReasonShedForKnownClient: closed to give its slot to a known source.
	ReasonShedForKnownClient = "shed_for_known_client"
	// ReasonShedForNewClient: closed, as the oldest connection that never
	// authenticated of the source holding the most, to give its slot to a
	// source that held none.
	ReasonShedForNewClient = "shed_for_new_client"
)

// Options configure a Gate. Zero values select the defaults above.
type Options struct {
	// MaxConns bounds the connections open at once, across every listener
	// of the Gate, handshakes included.
	MaxConns int
	// MaxPerSource bounds one source's open connections.
	MaxPerSource int
	// HandshakeRate bounds one source's new connections a second (burst:
	// twice as many, at least one).
	HandshakeRate float64
	// Reserve is the slots only known sources may take. Zero means
	// MaxConns/8 (at least 1); it is capped at MaxConns-1 so unknown
	// sources can still connect.
	Reserve int
	// FirstRequestTimeout bounds the time from the start of HTTP serving
	// (after the TLS handshake) until a request passes authentication.
	FirstRequestTimeout time.Duration
	// RefusalGrace is how long a connection that never authenticated stays
	// open after a refusal.
	RefusalGrace time.Duration
	// KnownFor is how long a source stays known after its last
	// authenticated request.
	KnownFor time.Duration
	// Logger receives rejections and sheds at warn, rate limited, and
	// evictions at debug (not rate limited, like every debug line: debug is
	// off by default).
	Logger log.Logger
	// Registerer receives the metrics_proxy_connections_* metrics; nil
	// leaves them unregistered.
	Registerer prometheus.Registerer
	// Now is the clock for handshake buckets and known sources.
	Now func() time.Time
}

// Gate is one connection table shared by the listeners it wraps. It is safe
// for concurrent use.
type Gate struct {
	o       Options
	logger  log.Logger
	metrics *metrics

	mu      sync.Mutex
	open    int
	perSrc  map[netip.Prefix]int
	perSite map[netip.Prefix]int
	anon    *list.List // *Conn that never authenticated, oldest first
	buckets *lru.Cache[netip.Prefix, *rate.Limiter]
	// knownBuckets are the handshake buckets of known sources.
	knownBuckets *lru.Cache[netip.Prefix, *rate.Limiter]
	known        *lru.Cache[netip.Prefix, time.Time]
	reserved     int
}

// New returns a Gate. It fails only on a negative limit or if the metrics
// cannot be registered.
func New(o Options) (*Gate, error) {
	if o.MaxConns < 0 || o.MaxPerSource < 0 || o.HandshakeRate < 0 || o.Reserve < 0 {
		return nil, errors.New("connection limits must not be negative; use 0 for the default")
	}
	if o.MaxConns == 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.MaxPerSource == 0 {
		o.MaxPerSource = DefaultMaxPerSource
	}
	if o.HandshakeRate == 0 {
		o.HandshakeRate = DefaultHandshakeRate
	}
	if o.Reserve == 0 {
		o.Reserve = max(1, o.MaxConns/8)
	}
	o.Reserve = min(o.Reserve, o.MaxConns-1)
	if o.FirstRequestTimeout <= 0 {
		o.FirstRequestTimeout = DefaultFirstRequestTimeout
	}
	if o.RefusalGrace <= 0 {
		o.RefusalGrace = DefaultRefusalGrace
	}
	if o.KnownFor <= 0 {
		o.KnownFor = DefaultKnownFor
	}
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	g := &Gate{
		o:        o,
		logger:   ratelog.New(o.Logger, "connection admission"),
		perSrc:   make(map[netip.Prefix]int),
		perSite:  make(map[netip.Prefix]int),
		anon:     list.New(),
		reserved: o.Reserve,
	}
	var err error
	if g.buckets, err = lru.New[netip.Prefix, *rate.Limiter](maxTracked); err != nil {
		return nil, err
	}
	if g.knownBuckets, err = lru.New[netip.Prefix, *rate.Limiter](maxKnown); err != nil {
		return nil, err
	}
	if g.known, err = lru.New[netip.Prefix, time.Time](maxKnown); err != nil {
		return nil, err
	}
	if g.metrics, err = newMetrics(o.Registerer, g.openConns); err != nil {
		return nil, err
	}
	return g, nil
}

// Listen wraps l: Accept returns only the connections the Gate admits, and
// closes the others at once.
func (g *Gate) Listen(l net.Listener) net.Listener { return &gatedListener{Listener: l, gate: g} }

type gatedListener struct {
	net.Listener
	gate *Gate
}

// Accept returns the next admitted connection. Rejected ones are closed
// here, before any byte is read, and never returned.
func (l *gatedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if ac := l.gate.admit(c); ac != nil {
			return ac, nil
		}
	}
}

// admit decides on a new connection: a *Conn, or nil after closing it.
func (g *Gate) admit(c net.Conn) *Conn {
	src := source.OfAddr(c.RemoteAddr())
	site, hasSite := source.Site(src)
	now := g.o.Now()

	g.mu.Lock()
	reason, shed := "", ""
	var victim *Conn
	known := src.IsValid() && g.knownLocked(src, now)
	switch {
	case src.IsValid() && g.perSrc[src] >= g.o.MaxPerSource,
		hasSite && g.perSite[site] >= siteFactor*g.o.MaxPerSource:
		// A known client behind the same address or /48 as a flood takes
		// the slot of the oldest connection there that never
		// authenticated: a neighbour cannot lock it out.
		if known {
			shed, victim = ReasonShedForKnownClient, g.shedLocked(g.oldestAnonLocked(func(c *Conn) bool {
				return c.src == src || (hasSite && c.hasSite && c.site == site)
			}))
		}
		if victim == nil {
			reason = ReasonSourceConnections
		}
	case src.IsValid() && !g.allowHandshakeLocked(src, site, hasSite, known, now):
		reason = ReasonSourceHandshakeRate
	case g.open >= g.o.MaxConns-g.reserved:
		if known && g.open < g.o.MaxConns {
			break // the reserve
		}
		switch {
		case known:
			shed, victim = ReasonShedForKnownClient, g.shedLocked(g.anon.Front())
		case src.IsValid() && g.perSrc[src] == 0:
			shed, victim = ReasonShedForNewClient, g.shedLocked(g.heaviestAnonLocked(now))
		}
		if victim == nil {
			reason = ReasonFull
		}
	}
	if reason != "" {
		g.mu.Unlock()
		g.metrics.rejected.WithLabelValues(reason).Inc()
		level.Warn(g.logger).Log("msg", "connection rejected", "reason", reason, "client", c.RemoteAddr())
		if tc, ok := c.(*net.TCPConn); ok {
			// A reset, not an orderly close: the kernel keeps no state for a
			// connection a flood opened, and the client learns at once.
			_ = tc.SetLinger(0)
		}
		c.Close()
		return nil
	}
	ac := &Conn{Conn: c, gate: g, src: src, site: site, hasSite: hasSite}
	g.open++
	if src.IsValid() {
		g.perSrc[src]++
	}
	if hasSite {
		g.perSite[site]++
	}
	ac.elem = g.anon.PushBack(ac)
	g.mu.Unlock()

	if victim != nil {
		g.metrics.evicted.WithLabelValues(shed).Inc()
		level.Warn(g.logger).Log("msg", "connection shed", "reason", shed, "client", victim.RemoteAddr())
		victim.Close()
	}
	return ac
}

// allowHandshakeLocked takes a token from the source's bucket (and its
// site's), creating them full on first sight.
// A known source has a bucket of its own and no site bucket, so a flood
// from elsewhere in its /48 cannot empty them and lock it out.
func (g *Gate) allowHandshakeLocked(src, site netip.Prefix, hasSite, known bool, now time.Time) bool {
	if known {
		return g.bucket(g.knownBuckets, src, 1).AllowN(now, 1)
	}
	if !g.bucket(g.buckets, src, 1).AllowN(now, 1) {
		return false
	}
	return !hasSite || g.bucket(g.buckets, site, siteFactor).AllowN(now, 1)
}

func (g *Gate) bucket(table *lru.Cache[netip.Prefix, *rate.Limiter], p netip.Prefix, factor float64) *rate.Limiter {
	b, ok := table.Get(p)
	if !ok {
		r := g.o.HandshakeRate * factor
		b = rate.NewLimiter(rate.Limit(r), max(1, int(2*r)))
		table.Add(p, b)
	}
	return b
}

// oldestAnonLocked returns the oldest connection that never authenticated
// and matches, or nil.
func (g *Gate) oldestAnonLocked(match func(*Conn) bool) *list.Element {
	for e := g.anon.Front(); e != nil; e = e.Next() {
		if match(e.Value.(*Conn)) {
			return e
		}
	}
	return nil
}

func (g *Gate) knownLocked(src netip.Prefix, now time.Time) bool {
	at, ok := g.known.Get(src)
	return ok && now.Sub(at) < g.o.KnownFor
}

// shedLocked takes the oldest connection that never authenticated out of the
// table, for the caller to close once the lock is released; nil if there is
// none.
func (g *Gate) shedLocked(e *list.Element) *Conn {
	if e == nil {
		return nil
	}
	victim := e.Value.(*Conn)
	g.releaseLocked(victim)
	return victim
}

// heaviestAnonLocked returns the oldest connection that never authenticated
// of the source holding the most connections, if it holds at least two;
// nil otherwise. A new client takes that slot: the sources crowding the
// table pay for it, and a flood's own reconnections (from sources that
// still hold connections) never churn the table, nor can one-connection
// newcomers push each other out.
func (g *Gate) heaviestAnonLocked(now time.Time) *list.Element {
	// Counted over connections that never authenticated, and never from a
	// known source: a Prometheus with several connections open is not a
	// crowd, and its new connection, still unauthenticated, is not prey.
	counts := make(map[netip.Prefix]int)
	var heaviest netip.Prefix
	most := 1
	for e := g.anon.Front(); e != nil; e = e.Next() {
		c := e.Value.(*Conn)
		if !c.src.IsValid() {
			continue
		}
		counts[c.src]++
		if n := counts[c.src]; n > most && !g.knownLocked(c.src, now) {
			heaviest, most = c.src, n
		}
	}
	if most < 2 {
		return nil
	}
	return g.oldestAnonLocked(func(c *Conn) bool { return c.src == heaviest })
}

// releaseLocked frees c's slot, once.
func (g *Gate) releaseLocked(c *Conn) {
	if c.released {
		return
	}
	c.released = true
	g.open--
	if c.src.IsValid() {
		if g.perSrc[c.src]--; g.perSrc[c.src] <= 0 {
			delete(g.perSrc, c.src)
		}
	}
	if c.hasSite {
		if g.perSite[c.site]--; g.perSite[c.site] <= 0 {
			delete(g.perSite, c.site)
		}
	}
	if c.elem != nil {
		g.anon.Remove(c.elem)
		c.elem = nil
	}
}

func (g *Gate) openConns() float64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return float64(g.open)
}

// Conn is an admitted connection. Its Close frees its slot.
type Conn struct {
	net.Conn
	gate          *Gate
	src, site     netip.Prefix
	hasSite       bool
	closeOnce     sync.Once
	closeErr      error
	elem          *list.Element // in gate.anon until authenticated; guarded by gate.mu
	released      bool          // guarded by gate.mu
	authenticated bool          // guarded by gate.mu
	timer         *time.Timer   // the pending forced close; guarded by gate.mu
}

// Close frees the connection's slot and closes it.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.gate.mu.Lock()
		c.gate.releaseLocked(c)
		if c.timer != nil {
			c.timer.Stop()
		}
		c.gate.mu.Unlock()
		c.closeErr = c.Conn.Close()
	})
	return c.closeErr
}

// Serving starts the first-request deadline; call it when the HTTP server
// takes the connection (http.StateNew), after any TLS handshake.
func (c *Conn) Serving() {
	if c == nil {
		return
	}
	c.gate.mu.Lock()
	defer c.gate.mu.Unlock()
	if !c.authenticated && !c.released && c.timer == nil {
		c.timer = time.AfterFunc(c.gate.o.FirstRequestTimeout, func() { c.evict(ReasonNoAuthenticatedRequest) })
	}
}

// Authenticated records that a request on c passed authentication: c is no
// longer subject to the first-request deadline nor sheddable, and its source
// is known from now on.
func (c *Conn) Authenticated() {
	if c == nil {
		return
	}
	g := c.gate
	now := g.o.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if c.src.IsValid() {
		g.known.Add(c.src, now)
	}
	if c.authenticated {
		return
	}
	c.authenticated = true
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	if c.elem != nil {
		g.anon.Remove(c.elem)
		c.elem = nil
	}
}

// Refused records that a request on c was refused. A connection that never
// authenticated is closed RefusalGrace from now, whether or not its client
// reads the answer; an authenticated one is left to the HTTP server (the
// refusal asks it to close the connection once the answer is written).
func (c *Conn) Refused() {
	if c == nil {
		return
	}
	c.gate.mu.Lock()
	defer c.gate.mu.Unlock()
	if c.authenticated || c.released {
		return
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	c.timer = time.AfterFunc(c.gate.o.RefusalGrace, func() { c.evict(ReasonAfterRefusal) })
}

// evict closes c, counting why, unless it is already closed or has since
// authenticated.
func (c *Conn) evict(reason string) {
	c.gate.mu.Lock()
	skip := c.released || c.authenticated
	c.gate.mu.Unlock()
	if skip {
		return
	}
	c.gate.metrics.evicted.WithLabelValues(reason).Inc()
	level.Debug(c.gate.o.Logger).Log("msg", "connection closed", "reason", reason, "client", c.RemoteAddr())
	c.Close()
}

// connKey is the context key of a request's *Conn.
type connKey struct{}

// ConnContext is an http.Server ConnContext hook: it makes the admitted
// connection under c (a *Conn, or a *tls.Conn over one) available to
// FromContext in the connection's requests.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if ac := Of(c); ac != nil {
		return context.WithValue(ctx, connKey{}, ac)
	}
	return ctx
}

// ConnState is an http.Server ConnState hook that starts each connection's
// first-request deadline when the server takes it.
func ConnState(c net.Conn, s http.ConnState) {
	if s == http.StateNew {
		Of(c).Serving()
	}
}

// Of returns the admitted connection under c, or nil.
func Of(c net.Conn) *Conn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	ac, _ := c.(*Conn)
	return ac
}

// FromContext returns the admitted connection a request arrived on, or nil
// (whose methods do nothing) outside a gated server.
func FromContext(ctx context.Context) *Conn {
	c, _ := ctx.Value(connKey{}).(*Conn)
	return c
}

// metrics are the Gate's instruments.
type metrics struct {
	rejected *prometheus.CounterVec
	evicted  *prometheus.CounterVec
	open     prometheus.GaugeFunc
}

func newMetrics(reg prometheus.Registerer, open func() float64) (*metrics, error) {
	m := &metrics{
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "metrics_proxy_connections_rejected_total",
			Help: "Connections closed at accept, before any TLS work, by reason: source_connections (the source holds its share of connections), source_handshake_rate (it opens them too fast), full (no slot free for the source, and none it may take).",
		}, []string{"reason"}),
		evicted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "metrics_proxy_connections_evicted_total",
			Help: "Admitted connections the proxy closed, by reason: no_authenticated_request (none passed authentication within --web.read-header-timeout), after_refusal (still open after a refusal), shed_for_known_client and shed_for_new_client (the oldest connection that never authenticated, to admit a known or a new client into a full table).",
		}, []string{"reason"}),
		open: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "metrics_proxy_connections_open",
			Help: "Connections holding a slot of --web.max-connections, handshakes included.",
		}, open),
	}
	for _, r := range []string{ReasonSourceConnections, ReasonSourceHandshakeRate, ReasonFull} {
		m.rejected.WithLabelValues(r)
	}
	for _, r := range []string{ReasonNoAuthenticatedRequest, ReasonAfterRefusal, ReasonShedForKnownClient, ReasonShedForNewClient} {
		m.evicted.WithLabelValues(r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.rejected, m.evicted, m.open} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("registering the connection metrics: %w", err)
			}
		}
	}
	return m, nil
}
