// Package proxy is the metrics-proxy HTTP handler: the only door from the
// network to the runner's unauthenticated metrics server.
//
// It sits after the door (package door: connection gate, TLS). Each request
// is judged cheapest first, and in an order that tells an unauthenticated
// client nothing about which paths exist (handler.go):
//
//  1. method: GET and HEAD only, else 405 with "Allow: GET, HEAD";
//  2. no body: a GET or HEAD that declares one (Content-Length or
//     Transfer-Encoding) is a smuggling shape, 400 and the connection closed;
//  3. request target: origin-form only ("/path"), else 400, so the proxy can
//     never be asked to fetch some other URL (absolute-form, authority-form);
//  4. path syntax on the raw target: any percent-encoding, backslash, control
//     byte, dot segment, ".." or empty segment is 400. This depends only on
//     the bytes sent, not on what exists, so it may precede authentication;
//  5. Host: when nothing authenticates requests (loopback only), a Host that
//     is not a loopback name is 421 (DNS rebinding from a local browser);
//  6. authentication by the Authorizer (its own 401/429 on refusal);
//  7. the web config's rate_limit, after authentication so anonymous
//     requests cannot spend it: 429;
//  8. the proxy's own pages, for any authenticated client: / (the routes
//     this identity may use), /-/healthy, /-/ready and /proxy/metrics;
//     with Options.HealthWithoutAuth, /-/healthy and /-/ready are answered
//     before step 6 instead, with nothing but their status;
//  9. the route: a path no route matches, and a route this identity may not
//     use, are the same 404, only now that the client is known, so an
//     anonymous client gets 401 for /metrics and /debug/pprof/ alike and an
//     authenticated one cannot tell a forbidden route from a missing one;
//  10. a slot of the route's upstream, shared fairly across client sources
//     and identities (fairqueue): a request that cannot get one before its
//     deadline is the proxy's own 503 with Retry-After (forward.go);
//  11. the reverse proxy to the route's upstream, with a freshly stated outbound
//     request carrying only allowlisted headers and no body; 1xx answers of
//     the upstream are never relayed, a response over the size limit fails
//     the scrape (limit.go).
//
// Every refusal is one of package refusal's kinds: its status, its
// status-text body and its outcome label. Each refusal and each
// authenticated request is also reported to the connection's
// admission.Conn, which closes connections that never authenticate.
package proxy

import (
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"github.com/alloyci/hardened-runner/access"
	"github.com/alloyci/hardened-runner/admission"
	"github.com/alloyci/hardened-runner/listener"
	"github.com/alloyci/hardened-runner/ratelog"
	"github.com/alloyci/hardened-runner/readiness"
	"github.com/alloyci/hardened-runner/refusal"
	"github.com/alloyci/hardened-runner/routes"
	"github.com/alloyci/hardened-runner/safepath"
)

// Defaults for Options fields left at their zero value.
const (
	// DefaultUpstream is the runner's default metrics server address, so the
	// two binaries work together on one host with no flags.
	DefaultUpstream = "http://127.0.0.1:9252"
	// DefaultTimeout bounds an upstream call when the scraper does not send a
	// shorter X-Prometheus-Scrape-Timeout-Seconds; it is Prometheus's default
	// scrape timeout.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxResponseBytes bounds an upstream body: far above any real
	// /metrics page, low enough that a runaway upstream cannot stream forever.
	DefaultMaxResponseBytes int64 = 64 << 20
	// DefaultUpstreamSlots matches the runner, which serves 8 requests at once
	// and answers 503 beyond.
	DefaultUpstreamSlots = 8
	// DefaultUpstreamQueue bounds the requests waiting for an upstream slot.
	DefaultUpstreamQueue = 64
)

// The proxy's own pages. No route may cover them (package routes refuses
// such a routes file).
const (
	selfMetricsPath = "/proxy/metrics"
	landingPath     = "/"
	healthyPath     = "/-/healthy"
	readyPath       = "/-/ready"
)

// Authorizer decides whether a request carries valid credentials.
type Authorizer interface {
	Authorize(r *http.Request) Decision
}

// Decision is an Authorizer's answer for one request.
type Decision interface {
	// Allowed reports whether the request may proceed.
	Allowed() bool
	// Outcome names the decision: ok, ok_cached, unauthorized, throttled or
	// busy. Refusals are counted under it (unknown values as unauthorized).
	Outcome() string
	// Identity is who an allowed request is (the zero Identity when nothing
	// authenticates); routes are granted to identities, and the upstream
	// queue is fair across them. The handler adds the client certificate's
	// SANs itself.
	Identity() access.Identity
	// WriteError writes the refusal (401 with a challenge, 429 with
	// Retry-After, a throttled one held back first); it is called only when
	// Allowed is false.
	WriteError(w http.ResponseWriter, r *http.Request)
}

// Options configure a Handler. The zero value of each field selects a safe
// default, except Authorizer: nil means every request that reaches the handler
// is already authenticated (by a verified client certificate at TLS).
type Options struct {
	// Routes returns the routes table in force (the routes file's); it is
	// asked on every request, so a reload applies at once. Nil means the
	// table routes.Default makes of Upstream and AllowedPaths.
	Routes func() *routes.Table
	// Upstream is the runner's metrics server: "http://host:port[/prefix]" or
	// "unix:/path/to.sock", used without Routes. Empty means DefaultUpstream.
	Upstream string
	// AllowedPaths are the paths forwarded to Upstream, without Routes.
	// Empty means exactly ["/metrics"]. An entry ending in "/" (e.g.
	// "/debug/pprof/") allows that subtree.
	AllowedPaths []string
	// Timeout bounds each upstream call, from dial to the last body byte,
	// for routes that set no timeout of their own. Zero means
	// DefaultTimeout.
	Timeout time.Duration
	// MaxResponseBytes bounds an upstream response body, for routes that
	// set no limit of their own. Zero means DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// HealthWithoutAuth answers /-/healthy and /-/ready without
	// authentication, for load balancers; they then say nothing but their
	// status.
	HealthWithoutAuth bool
	// Now is the clock of the readiness evidence; nil means time.Now.
	Now func() time.Time
	// UpstreamSlots bounds the calls at once to each upstream server. Zero
	// means DefaultUpstreamSlots.
	UpstreamSlots int
	// UpstreamQueue bounds the requests waiting for a slot (one client
	// source and user may hold at most UpstreamSlots of them). Zero means
	// DefaultUpstreamQueue; negative means no waiting.
	UpstreamQueue int
	// RateLimiter returns the web config's rate_limit bucket in force, or nil
	// for none; it is asked on every request, so a reload applies at once.
	// Like exporter-toolkit's it is shared by all clients, but it is applied
	// after authentication, so anonymous requests cannot use it up.
	RateLimiter func() *rate.Limiter
	// LoopbackHostsOnly, when it returns true, refuses (421) requests whose
	// Host is not localhost or a loopback literal. The proxy rewrites Host
	// for the upstream, so the runner's own Host guard cannot see the
	// client's; without authentication this check is what stops a web page
	// in a local browser (DNS rebinding). Nil means never.
	LoopbackHostsOnly func() bool
	// Authorizer checks credentials; nil allows every request.
	Authorizer Authorizer
	// ClientCertsIdentify, when it returns true, adds the SANs of the
	// connection's verified client certificate to the identity routes are
	// granted to. It must return true only when every connection must
	// present a certificate verified against the configured client CA
	// (RequireAndVerifyClientCert): under the weaker modes a certificate
	// "verified" against the system roots, or any given one, names nobody.
	// Nil means never.
	ClientCertsIdentify func() bool
	// Logger receives upstream failures (error, rate limited) and refusals
	// (debug). Nil discards.
	Logger log.Logger
	// Registerer receives the proxy's own metrics; nil leaves them
	// unregistered.
	Registerer prometheus.Registerer
	// Gatherer is served at /proxy/metrics (after authentication). Nil means
	// that path is not served (404 like any unknown path).
	Gatherer prometheus.Gatherer
}

// Handler is the metrics-proxy http.Handler. It is safe for concurrent use.
type Handler struct {
	router *router
	auth   Authorizer
	self   http.Handler // nil when Options.Gatherer is nil
	rp     *httputil.ReverseProxy
	ready  *readiness.Tracker
	// healthOpen answers /-/healthy and /-/ready before authentication.
	healthOpen bool
	// certsIdentify says whether verified client certificates name identities.
	certsIdentify func() bool
	logger        log.Logger
	// failures receives upstream failures: rate limited, since clients
	// can cause them (a tiny scrape timeout, a busy upstream).
	failures log.Logger
	metrics  *metrics
	limiter  func() *rate.Limiter
	// loopbackHostsOnly reports whether requests must name a loopback host
	// (when nothing authenticates them: DNS rebinding from a local browser).
	loopbackHostsOnly func() bool
}

// New validates o and returns the handler. Errors say which option is wrong
// and how to fix it.
func New(o Options) (*Handler, error) {
	if o.Upstream == "" {
		o.Upstream = DefaultUpstream
	}
	if len(o.AllowedPaths) == 0 {
		o.AllowedPaths = []string{"/metrics"}
	}
	switch {
	case o.Timeout < 0:
		return nil, fmt.Errorf("upstream timeout %s is negative; use a positive duration such as 10s", o.Timeout)
	case o.Timeout == 0:
		o.Timeout = DefaultTimeout
	}
	switch {
	case o.MaxResponseBytes < 0:
		return nil, fmt.Errorf("maximum response size %d is negative; use a positive number of bytes", o.MaxResponseBytes)
	case o.MaxResponseBytes == 0:
		o.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	if o.UpstreamSlots < 0 {
		return nil, fmt.Errorf("upstream slots %d is negative; use a positive number such as %d", o.UpstreamSlots, DefaultUpstreamSlots)
	}
	if o.UpstreamSlots == 0 {
		o.UpstreamSlots = DefaultUpstreamSlots
	}
	switch {
	case o.UpstreamQueue == 0:
		o.UpstreamQueue = DefaultUpstreamQueue
	case o.UpstreamQueue < 0:
		o.UpstreamQueue = 0
	}
	if o.Routes == nil {
		t, err := routes.Default(o.Upstream, o.AllowedPaths)
		if err != nil {
			return nil, err
		}
		o.Routes = func() *routes.Table { return t }
	}
	h := &Handler{
		auth:       o.Authorizer,
		ready:      readiness.New(readiness.Options{Now: o.Now}),
		healthOpen: o.HealthWithoutAuth,

		certsIdentify: o.ClientCertsIdentify,
		logger:        o.Logger,
		failures:      ratelog.New(o.Logger, "upstream failure"),

		limiter: o.RateLimiter,

		loopbackHostsOnly: o.LoopbackHostsOnly,
	}
	h.router = &router{
		tables:   o.Routes,
		timeout:  o.Timeout,
		maxBytes: o.MaxResponseBytes,
		slots:    o.UpstreamSlots,
		queue:    o.UpstreamQueue,
		pools:    map[string]*pool{},
	}
	m, err := newMetrics(o.Registerer, h.router)
	if err != nil {
		return nil, err
	}
	h.metrics = m
	h.router.onChange = h.routesChanged
	h.router.current() // the series of every route exist from the start
	if o.Gatherer != nil {
		h.self = promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{
			ErrorLog:      stdlog.New(log.NewStdlibAdapter(level.Error(o.Logger)), "", 0),
			ErrorHandling: promhttp.ContinueOnError,
		})
	}
	h.rp = &httputil.ReverseProxy{
		BufferPool:     &BufferPool{},
		Rewrite:        h.rewrite,
		Transport:      routeTransport{},
		ModifyResponse: h.modifyResponse,
		ErrorHandler:   h.upstreamFailed,
		ErrorLog:       stdlog.New(log.NewStdlibAdapter(level.Warn(h.failures)), "", 0),
	}
	return h, nil
}

// routesChanged follows a new routes table: per-route series for its
// routes (and none left for removed ones), readiness evidence for its
// upstream servers only.
func (h *Handler) routesChanged(c *routing) {
	names := make([]string, 0, len(c.table.Routes))
	keys := make([]string, 0, len(c.table.Routes))
	for i := range c.table.Routes {
		r := &c.table.Routes[i]
		names = append(names, r.Name)
		keys = append(keys, c.served[r].pool.key)
	}
	h.metrics.routes(names)
	h.ready.Forget(keys)
}

// CloseIdleConnections closes the pooled connections to the upstream, for a
// clean shutdown.
func (h *Handler) CloseIdleConnections() {
	h.router.each(func(p *pool) { p.transport.CloseIdleConnections() })
}

// ServeHTTP judges the request in the order described in the package comment
// and either answers it itself or forwards it upstream.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Set first so every answer carries them, including the Authorizer's.
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	var id access.Identity

	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		h.refuse(w, r, refusal.MethodNotAllowed, "method not GET or HEAD")
		return
	}
	// A GET or HEAD has no body. One that declares one (Content-Length, or
	// Transfer-Encoding, which net/http lets win over Content-Length) is a
	// request-smuggling shape: refuse it and close the connection (RFC 9112
	// section 6.1), so bytes hidden after its body are never read as a
	// request.
	if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		h.refuse(w, r, refusal.BadRequest, "GET or HEAD with a body")
		return
	}
	p, ok := originPath(r)
	if !ok {
		h.refuse(w, r, refusal.BadRequest, "request target not in origin-form")
		return
	}
	if err := safepath.Judge(p); err != nil {
		h.refuse(w, r, refusal.BadRequest, err.Error())
		return
	}
	if h.loopbackHostsOnly != nil && h.loopbackHostsOnly() && !loopbackHost(r.Host) {
		h.refuse(w, r, refusal.Misdirected, "Host is not a loopback name and nothing authenticates the request")
		return
	}
	if h.healthOpen && (p == healthyPath || p == readyPath) {
		// For load balancers: no credentials, so nothing but the status,
		// and the connection is not kept for a client never authenticated.
		closeAfter(w)
		h.health(w, r, p, nil)
		return
	}
	if h.auth != nil {
		d := h.auth.Authorize(r)
		if d == nil {
			// Fail closed on a broken Authorizer rather than panic per request.
			level.Error(h.logger).Log("msg", "authorizer returned no decision; refusing")
			h.refuse(w, r, refusal.Unauthorized, "no decision")
			return
		}
		if !d.Allowed() {
			h.metrics.count(denialOutcome(d.Outcome()))
			admission.FromContext(r.Context()).Refused()
			closeAfter(w)
			d.WriteError(w, r)
			return
		}
		id = d.Identity()
	}
	if h.certsIdentify != nil && h.certsIdentify() {
		id = id.WithPeer(r.TLS)
	}
	admission.FromContext(r.Context()).Authenticated()
	// rate_limit is applied to authenticated requests only: before
	// authentication, anonymous traffic could spend the shared bucket and
	// lock out a scraper with the right password (the back-off already
	// bounds what anonymous clients cost).
	if h.limiter != nil {
		if l := h.limiter(); l != nil && !l.Allow() {
			w.Header().Set("Retry-After", "1")
			h.refuse(w, r, refusal.RateLimited, "rate_limit exceeded")
			return
		}
	}
	rt := h.router.current()
	switch {
	case p == selfMetricsPath && h.self != nil:
		if !rt.table.IsAdmin(id) {
			// The proxy's metrics name every route and count the refused
			// ones: for those who may know every route only.
			h.refuse(w, r, refusal.ForbiddenRoute, "the proxy's own metrics are for admin: only")
			return
		}
		h.metrics.count(outcomeOK)
		h.self.ServeHTTP(w, r)
		return
	case p == landingPath:
		h.metrics.count(outcomeOK)
		h.landing(w, r, rt, id)
		return
	case p == healthyPath || p == readyPath:
		h.metrics.count(outcomeOK)
		h.health(w, r, p, &id)
		return
	}
	route, ok := rt.table.Match(p)
	if !ok {
		h.refuse(w, r, refusal.ForbiddenPath, "no route for the path")
		return
	}
	if !route.Allow.Permits(id) {
		h.metrics.routeRequests.WithLabelValues(route.Name, refusal.ForbiddenRoute.Outcome()).Inc()
		h.refuse(w, r, refusal.ForbiddenRoute, "route not granted to this identity")
		return
	}
	h.forward(w, r, rt.served[route], p, id.Name())
}

// originPath returns the path of the request target as the client sent it,
// and false unless the target is origin-form. The raw target is used, not
// r.URL.Path, because decoding is exactly what an attacker plays with.
func originPath(r *http.Request) (string, bool) {
	if r.URL == nil || r.URL.IsAbs() || r.URL.Host != "" || r.URL.Opaque != "" {
		return "", false
	}
	target := r.RequestURI
	if target == "" {
		// Called outside an http.Server (RequestURI is set by the server).
		target = r.URL.RequestURI()
	}
	if !strings.HasPrefix(target, "/") {
		return "", false
	}
	p, _, _ := strings.Cut(target, "?")
	return p, true
}

// refuse answers a request the proxy will not serve, counts it, and logs the
// reason at debug level. The client gets a fixed body and never the reason;
// reasons are fixed strings, so nothing the client sent is echoed anywhere.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, k refusal.Kind, reason string) {
	h.metrics.count(k.Outcome())
	level.Debug(h.logger).Log("msg", "request refused", "status", k.Status(), "reason", reason)
	admission.FromContext(r.Context()).Refused()
	closeAfter(w)
	refusal.Write(w, k)
}

// closeAfter ends the connection after a refusal. Scrapers send credentials
// and a valid request every time, so only clients the proxy refuses lose
// their connection; without this, one refused request per idle timeout would
// let an anonymous client hold a connection slot forever.
func closeAfter(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
}

// loopbackHost reports whether a Host header names localhost or a loopback
// literal, with or without a port.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	return listener.IsLoopbackHost(host)
}
