package proxy

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alloyci/hardened-runner/fairqueue"
	"github.com/alloyci/hardened-runner/routes"
)

// pool is one upstream server's connections and its share of the upstream
// capacity: routes to the same server (the runner's /metrics and its pprof)
// share both, so a reload that adds a route never multiplies what the
// server is asked to carry.
type pool struct {
	key       string
	transport *http.Transport
	queue     *fairqueue.Queue
}

// served is a route ready to serve: its upstream's pool, and its timeout
// and size limit with the handler's defaults applied.
type served struct {
	route    *routes.Route
	pool     *pool
	base     *url.URL // scheme and host of the outbound request
	timeout  time.Duration
	maxBytes int64
}

// routing is a routes.Table compiled for serving. It is immutable once
// built; a new table builds a new routing.
type routing struct {
	table  *routes.Table
	served map[*routes.Route]*served
	byName map[string]*served
}

// router keeps the routing of the table in force, rebuilding it when the
// table changes (a reload), and the pools across rebuilds.
type router struct {
	tables   func() *routes.Table
	timeout  time.Duration
	maxBytes int64
	slots    int
	queue    int
	onChange func(*routing) // per-route metric series, readiness

	cur atomic.Pointer[routing]

	mu    sync.Mutex // serialises rebuilds; guards pools
	pools map[string]*pool
}

// current returns the routing of the table in force.
func (r *router) current() *routing {
	if c := r.cur.Load(); c != nil && c.table == r.tables() {
		return c
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// The table is asked again under the lock: the one read before it may
	// be older than the one another request has built meanwhile, and
	// building it would take the routing back to before a reload.
	t := r.tables()
	if c := r.cur.Load(); c != nil && c.table == t {
		return c
	}
	c := &routing{table: t, served: make(map[*routes.Route]*served, len(t.Routes)), byName: make(map[string]*served, len(t.Routes))}
	used := map[string]bool{}
	for i := range t.Routes {
		rt := &t.Routes[i]
		key := rt.Upstream.Key()
		used[key] = true
		p := r.pools[key]
		if p == nil {
			p = &pool{
				key:       key,
				transport: newTransport(dialer(rt.Upstream)),
				queue:     fairqueue.New(r.slots, r.queue, r.slots),
			}
			r.pools[key] = p
		}
		s := &served{
			route:    rt,
			pool:     p,
			base:     &url.URL{Scheme: "http", Host: rt.Upstream.Host},
			timeout:  rt.Timeout,
			maxBytes: rt.MaxResponseBytes,
		}
		if s.timeout == 0 {
			s.timeout = r.timeout
		}
		if s.maxBytes == 0 {
			s.maxBytes = r.maxBytes
		}
		c.served[rt] = s
		c.byName[rt.Name] = s
	}
	for key, p := range r.pools {
		if !used[key] {
			p.transport.CloseIdleConnections()
			delete(r.pools, key)
		}
	}
	r.cur.Store(c)
	if r.onChange != nil {
		r.onChange(c)
	}
	return c
}

// each calls f for every pool, for the gauges and a clean shutdown.
func (r *router) each(f func(*pool)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.pools {
		f(p)
	}
}

// sum adds f over the pools' queues, for the gauges.
func (r *router) sum(f func(*fairqueue.Queue) int) int {
	n := 0
	r.each(func(p *pool) { n += f(p.queue) })
	return n
}

// dialer reaches u: its unix socket, or its loopback host and port. The
// address comes from the routes file, never from the request.
func dialer(u routes.Upstream) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{KeepAlive: 30 * time.Second}
	return func(ctx context.Context, _, _ string) (net.Conn, error) {
		return d.DialContext(ctx, u.Network, u.Address)
	}
}

// newTransport returns the transport to one upstream. Proxy is nil on
// purpose: HTTP_PROXY in the environment must never divert loopback metrics
// (with the client's scrape) to another host. Compression is left to the two
// ends so the body, Content-Encoding and Content-Length pass through as the
// upstream sent them and the size limit applies to the bytes on the wire.
// Each request's own deadline (the route's timeout, or the scrape's) bounds
// dialing and waiting for headers.
func newTransport(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Transport {
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            dial,
		MaxIdleConns:           16,
		MaxIdleConnsPerHost:    16,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		DisableCompression:     true,
		ForceAttemptHTTP2:      false,
	}
}
