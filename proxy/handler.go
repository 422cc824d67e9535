// Package proxy is the metrics-proxy HTTP handler: the only door from the
// network to the runner's unauthenticated metrics server.
//
// It sits after TLS. Each request is judged cheapest first, and in an order
// that tells an unauthenticated client nothing about which paths exist:
//
//  1. method: GET and HEAD only, else 405 with "Allow: GET, HEAD";
//  2. request target: origin-form only ("/path"), else 400, so the proxy can
//     never be asked to fetch some other URL (absolute-form, authority-form);
//  3. path syntax on the raw target: any percent-encoding, backslash, control
//     byte, dot segment, ".." or empty segment is 400. This depends only on
//     the bytes sent, not on what exists, so it may precede authentication;
//  4. authentication by the Authorizer (its own 401/429 on refusal);
//  5. /proxy/metrics: the proxy's own metrics, served locally;
//  6. the allowlist: a path not on it is 404, only now that the client is
//     known, so an anonymous client gets 401 for /metrics and /debug/pprof/
//     alike;
//  7. a slot of the upstream, shared fairly across client sources and users
//     (fairqueue): a request that cannot get one before its deadline is the
//     proxy's own 503 with Retry-After;
//  8. the reverse proxy to the upstream, with a freshly stated outbound
//     request carrying only allowlisted headers and no body; 1xx answers of
//     the upstream are never relayed.
//
// Each refusal and each authenticated request is also reported to the
// connection's admission.Conn, which closes connections that never
// authenticate.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/alloyci/hardened-runner/admission"
	"github.com/alloyci/hardened-runner/fairqueue"
	"github.com/alloyci/hardened-runner/listener"
	"github.com/alloyci/hardened-runner/ratelog"
	"github.com/alloyci/hardened-runner/source"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"
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
	// DefaultThrottleDelay is how long a throttled client waits for its 429.
	DefaultThrottleDelay = time.Second
	// DefaultUpstreamSlots matches the runner, which serves 8 requests at once
	// and answers 503 beyond.
	DefaultUpstreamSlots = 8
	// DefaultUpstreamQueue bounds the requests waiting for an upstream slot.
	DefaultUpstreamQueue = 64
)

// selfMetricsPath is where the proxy serves its own metrics. It is never
// forwarded, whatever the allowlist says.
const selfMetricsPath = "/proxy/metrics"

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
	// User names the authenticated user of an allowed request ("" for none,
	// as with client certificates); the upstream queue is fair across users.
	User() string
	// WriteError writes the refusal (401 with a challenge, 429 with
	// Retry-After); it is called only when Allowed is false.
	WriteError(w http.ResponseWriter)
}

// Options configure a Handler. The zero value of each field selects a safe
// default, except Authorizer: nil means every request that reaches the handler
// is already authenticated (by a verified client certificate at TLS).
type Options struct {
	// Upstream is the runner's metrics server: "http://host:port[/prefix]" or
	// "unix:/path/to.sock". Empty means DefaultUpstream.
	Upstream string
	// AllowedPaths are the paths forwarded upstream. Empty means exactly
	// ["/metrics"]. An entry ending in "/" (e.g. "/debug/pprof/") allows that
	// subtree; pprof is reachable only when listed here on purpose.
	AllowedPaths []string
	// Timeout bounds each upstream call, from dial to the last body byte.
	// Zero means DefaultTimeout.
	Timeout time.Duration
	// MaxResponseBytes bounds an upstream response body. Zero means
	// DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// UpstreamSlots bounds the upstream calls at once. Zero means
	// DefaultUpstreamSlots.
	UpstreamSlots int
	// UpstreamQueue bounds the requests waiting for a slot (one client
	// source and user may hold at most UpstreamSlots of them). Zero means
	// DefaultUpstreamQueue; negative means no waiting.
	UpstreamQueue int
	// ThrottleDelay holds back the 429 to a client in back-off (or until it
	// hangs up). A flood that ignores Retry-After then sends one request per
	// connection per delay instead of thousands a second, so answering it
	// costs little CPU and good scrapes are not slowed. Clients with a
	// known-good credential are never throttled, so never delayed. Zero means
	// DefaultThrottleDelay; negative answers at once.
	ThrottleDelay time.Duration
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
	allow    allowlist
	auth     Authorizer
	self     http.Handler // nil when Options.Gatherer is nil
	up       *upstream
	queue    *fairqueue.Queue
	rp       *httputil.ReverseProxy
	timeout  time.Duration
	maxBytes int64
	logger   log.Logger
	// failures receives upstream failures: rate limited, since clients
	// can cause them (a tiny scrape timeout, a busy upstream).
	failures log.Logger
	metrics  *metrics
	// throttleDelay and wait implement Options.ThrottleDelay; tests replace
	// wait to see the delay without spending it.
	throttleDelay time.Duration
	wait          func(ctx context.Context, d time.Duration)
	// delaying bounds the refusals held back at once: each holds a
	// goroutine, and HTTP/2 lets one connection open many streams. Past
	// the bound, throttled requests are answered at once (and closed).
	delaying chan struct{}
	limiter  func() *rate.Limiter
	// loopbackHostsOnly reports whether requests must name a loopback host
	// (when nothing authenticates them: DNS rebinding from a local browser).
	loopbackHostsOnly func() bool
}

// maxDelayed bounds the throttled answers held back at once.
const maxDelayed = 256

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
	allow, err := newAllowlist(o.AllowedPaths)
	if err != nil {
		return nil, err
	}
	up, err := parseUpstream(o.Upstream, o.Timeout)
	if err != nil {
		return nil, err
	}
	queue := fairqueue.New(o.UpstreamSlots, o.UpstreamQueue, o.UpstreamSlots)
	m, err := newMetrics(o.Registerer, queue)
	if err != nil {
		return nil, err
	}
	h := &Handler{
		allow:    allow,
		auth:     o.Authorizer,
		up:       up,
		queue:    queue,
		timeout:  o.Timeout,
		maxBytes: o.MaxResponseBytes,
		logger:   o.Logger,
		failures: ratelog.New(o.Logger, "upstream failure"),
		metrics:  m,

		throttleDelay: o.ThrottleDelay,
		wait:          sleepCtx,
		delaying:      make(chan struct{}, maxDelayed),
		limiter:       o.RateLimiter,

		loopbackHostsOnly: o.LoopbackHostsOnly,
	}
	if h.throttleDelay == 0 {
		h.throttleDelay = DefaultThrottleDelay
	}
	if o.Gatherer != nil {
		h.self = promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{
			ErrorLog:      stdlog.New(log.NewStdlibAdapter(level.Error(o.Logger)), "", 0),
			ErrorHandling: promhttp.ContinueOnError,
		})
	}
	h.rp = &httputil.ReverseProxy{
		BufferPool:     &BufferPool{},
		Rewrite:        h.rewrite,
		Transport:      up.transport,
		ModifyResponse: h.modifyResponse,
		ErrorHandler:   h.upstreamFailed,
		ErrorLog:       stdlog.New(log.NewStdlibAdapter(level.Warn(h.failures)), "", 0),
	}
	return h, nil
}

// CloseIdleConnections closes the pooled connections to the upstream, for a
// clean shutdown.
func (h *Handler) CloseIdleConnections() { h.up.transport.CloseIdleConnections() }

// ServeHTTP judges the request in the order described in the package comment
// and either answers it itself or forwards it upstream.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Set first so every answer carries them, including the Authorizer's.
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	var user string

	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		h.refuse(w, r, http.StatusMethodNotAllowed, outcomeMethodNotAllowed, "method not allowed", "method not GET or HEAD")
		return
	}
	// A GET or HEAD has no body. One that declares one (Content-Length, or
	// Transfer-Encoding, which net/http lets win over Content-Length) is a
	// request-smuggling shape: refuse it and close the connection (RFC 9112
	// section 6.1), so bytes hidden after its body are never read as a
	// request.
	if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		h.refuse(w, r, http.StatusBadRequest, outcomeBadRequest, "bad request", "GET or HEAD with a body")
		return
	}
	p, ok := originPath(r)
	if !ok {
		h.refuse(w, r, http.StatusBadRequest, outcomeBadRequest, "bad request", "request target not in origin-form")
		return
	}
	if err := judgePath(p); err != nil {
		h.refuse(w, r, http.StatusBadRequest, outcomeBadRequest, "bad request", err.Error())
		return
	}
	if h.loopbackHostsOnly != nil && h.loopbackHostsOnly() && !loopbackHost(r.Host) {
		h.refuse(w, r, http.StatusMisdirectedRequest, outcomeBadRequest, "misdirected request", "Host is not a loopback name and nothing authenticates the request")
		return
	}
	if h.auth != nil {
		d := h.auth.Authorize(r)
		if d == nil {
			// Fail closed on a broken Authorizer rather than panic per request.
			level.Error(h.logger).Log("msg", "authorizer returned no decision; refusing")
			h.refuse(w, r, http.StatusUnauthorized, outcomeUnauthorized, "unauthorized", "no decision")
			return
		}
		if !d.Allowed() {
			outcome := denialOutcome(d.Outcome())
			h.metrics.count(outcome)
			if outcome == outcomeThrottled && h.throttleDelay > 0 {
				select {
				case h.delaying <- struct{}{}:
					h.wait(r.Context(), h.throttleDelay)
					<-h.delaying
				default:
				}
			}
			admission.FromContext(r.Context()).Refused()
			closeAfter(w)
			d.WriteError(w)
			return
		}
		user = d.User()
	}
	admission.FromContext(r.Context()).Authenticated()
	// rate_limit is applied to authenticated requests only: before
	// authentication, anonymous traffic could spend the shared bucket and
	// lock out a scraper with the right password (the back-off already
	// bounds what anonymous clients cost).
	if h.limiter != nil {
		if l := h.limiter(); l != nil && !l.Allow() {
			w.Header().Set("Retry-After", "1")
			h.refuse(w, r, http.StatusTooManyRequests, outcomeRateLimited, "too many requests", "rate_limit exceeded")
			return
		}
	}
	if p == selfMetricsPath && h.self != nil {
		h.metrics.count(outcomeOK)
		h.self.ServeHTTP(w, r)
		return
	}
	if !h.allow.allows(p) {
		h.refuse(w, r, http.StatusNotFound, outcomeForbiddenPath, "not found", "path not on the allowlist")
		return
	}
	h.forward(w, r, p, user)
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
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, code int, outcome, body, reason string) {
	h.metrics.count(outcome)
	level.Debug(h.logger).Log("msg", "request refused", "status", code, "reason", reason)
	admission.FromContext(r.Context()).Refused()
	closeAfter(w)
	writeText(w, code, body)
}

// closeAfter ends the connection after a refusal. Scrapers send credentials
// and a valid request every time, so only clients the proxy refuses lose
// their connection; without this, one refused request per idle timeout would
// let an anonymous client hold a connection slot forever.
func closeAfter(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
}

// writeText writes a short fixed plain-text answer.
func writeText(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	io.WriteString(w, body+"\n")
}

// exchange is the per-request state shared between forward and the
// ReverseProxy hooks, which see the request only through its context.
// All of them run on the handler's goroutine, so it needs no lock.
type exchange struct {
	path    string // judged, allowlisted path
	outcome string
	aborted bool // the body failed after the headers were sent
}

// bodyFailed records that the response body could not be relayed in full.
// The first failure decides the outcome.
func (e *exchange) bodyFailed(outcome string) {
	if !e.aborted {
		e.outcome = outcome
		e.aborted = true
	}
}

// exchangeKey is the context key for the request's *exchange.
type exchangeKey struct{}

// exchangeFrom returns the request's exchange, or nil outside forward.
func exchangeFrom(ctx context.Context) *exchange {
	ex, _ := ctx.Value(exchangeKey{}).(*exchange)
	return ex
}

// forward relays the request upstream under a deadline and records the
// outcome and duration.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, p, user string) {
	ctx, cancel := context.WithTimeout(r.Context(), h.upstreamTimeout(r.Header))
	defer cancel()

	release, err := h.queue.Acquire(ctx, source.Of(r.RemoteAddr).String()+"\x00"+user)
	if err != nil {
		if r.Context().Err() != nil {
			h.metrics.count(outcomeClientCanceled)
			return
		}
		// The proxy's own answer, not the upstream's: the runner was never
		// asked, so its capacity is spent only on requests it can serve.
		w.Header().Set("Retry-After", "1")
		h.metrics.count(outcomeUpstreamBusy)
		writeText(w, http.StatusServiceUnavailable, "upstream busy")
		return
	}
	defer release()

	ex := &exchange{path: p, outcome: outcomeOK}
	ctx = context.WithValue(ctx, exchangeKey{}, ex)

	start := time.Now()
	// Deferred so it also runs when the copy aborts with a panic.
	defer func() {
		h.metrics.duration.Observe(time.Since(start).Seconds())
		if r.Context().Err() != nil && ex.outcome != outcomeResponseTooLarge {
			// The client reset the stream or hung up: not the upstream's fault.
			ex.outcome = outcomeClientCanceled
		}
		h.metrics.count(ex.outcome)
	}()

	// Hand ReverseProxy a request that already holds only the forwardable
	// headers and no body: it inspects Connection, Upgrade and Te before
	// Rewrite runs, and nothing the client sent beyond the allowlist should
	// influence the outbound request.
	in := r.WithContext(ctx)
	in.Header = forwardHeaders(r.Header)
	in.Body = http.NoBody
	in.ContentLength = 0
	in.TransferEncoding = nil
	in.Trailer = nil

	h.rp.ServeHTTP(no1xx{ResponseWriter: w, own: w.Header().Clone()}, in)

	if ex.aborted {
		// ReverseProxy panics itself under an http.Server; outside one it
		// only logs. Either way a partial body must look failed.
		panic(http.ErrAbortHandler)
	}
}

// upstreamTimeout is Options.Timeout, or the scraper's own timeout when it is
// shorter: answering after Prometheus gave up is wasted work upstream. A
// value that is not a positive finite number is ignored.
func (h *Handler) upstreamTimeout(hdr http.Header) time.Duration {
	v, err := strconv.ParseFloat(hdr.Get("X-Prometheus-Scrape-Timeout-Seconds"), 64)
	if err != nil || !(v > 0) || v >= h.timeout.Seconds() {
		return h.timeout
	}
	return time.Duration(v * float64(time.Second))
}

// forwardHeaders returns the only inbound headers sent upstream. Everything
// else, Authorization, Cookie, Proxy-Authorization, X-Forwarded-*, hop-by-hop
// headers, stays at the proxy.
func forwardHeaders(src http.Header) http.Header {
	dst := copyHeaders(src, "Accept", "Accept-Encoding", "User-Agent", "X-Prometheus-Scrape-Timeout-Seconds")
	// Headers the client names in Connection are hop-by-hop (RFC 9110
	// section 7.6.1), even allowlisted ones: they were meant for the proxy.
	for _, v := range src["Connection"] {
		for _, name := range strings.Split(v, ",") {
			dst.Del(strings.TrimSpace(name))
		}
	}
	return dst
}

// relayHeaders returns the only upstream response headers relayed. An
// allowlist rather than stripping Set-Cookie and hop-by-hop headers, so a
// Location or anything else naming the upstream cannot reach the client.
func relayHeaders(src http.Header) http.Header {
	return copyHeaders(src, "Content-Type", "Content-Encoding", "Content-Length", "Content-Disposition", "Vary")
}

// copyHeaders returns a fresh header with the named (canonical) entries of src.
func copyHeaders(src http.Header, names ...string) http.Header {
	dst := make(http.Header, len(names))
	for _, k := range names {
		if v, ok := src[k]; ok {
			dst[k] = append([]string(nil), v...)
		}
	}
	return dst
}

// rewrite states the outbound request from scratch: the upstream's URL and
// Host, the judged path, the client's query, the allowlisted headers, no body.
// It deliberately does not call SetXForwarded: the runner has no use for the
// client's address and it is not the runner's business.
func (h *Handler) rewrite(pr *httputil.ProxyRequest) {
	ex := exchangeFrom(pr.In.Context())
	// RawQuery comes from ReverseProxy, which already dropped unparsable
	// parameters; a valid query passes unchanged.
	pr.Out.URL = &url.URL{Path: ex.path, RawQuery: pr.Out.URL.RawQuery}
	pr.SetURL(h.up.url)
	pr.Out.Host = h.up.host
	pr.Out.Header = forwardHeaders(pr.In.Header)
	pr.Out.Body = nil
	pr.Out.GetBody = nil
	pr.Out.ContentLength = 0
	pr.Out.TransferEncoding = nil
	pr.Out.Trailer = nil
}

// modifyResponse refuses a declared oversized body before anything is
// written (the ErrorHandler answers 502), keeps only the allowlisted
// response headers, and bounds the body.
func (h *Handler) modifyResponse(resp *http.Response) error {
	if resp.ContentLength > h.maxBytes {
		return errResponseTooLarge
	}
	ex := exchangeFrom(resp.Request.Context())
	if resp.StatusCode >= 500 && ex != nil {
		// Relayed, since the scraper should see the runner's answer, but not
		// counted ok: a busy or broken runner must show in the proxy's metrics.
		ex.outcome = outcomeUpstream5xx
	}
	resp.Header = relayHeaders(resp.Header)
	resp.Trailer = nil
	ctx := resp.Request.Context()
	resp.Body = &limitedBody{rc: resp.Body, resp: resp, remaining: h.maxBytes, ctx: ctx, ex: ex}
	return nil
}

// upstreamFailed is the ReverseProxy ErrorHandler: the upstream could not be
// asked or its response was refused before anything was written. The client
// gets a fixed body with no address or error text; the log gets the details.
func (h *Handler) upstreamFailed(w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	code, outcome, body := http.StatusBadGateway, outcomeUpstreamError, "upstream unavailable"
	switch {
	case errors.Is(err, errResponseTooLarge):
		outcome, body = outcomeResponseTooLarge, "upstream response too large"
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) || isTimeout(err):
		code, outcome, body = http.StatusGatewayTimeout, outcomeUpstreamTimeout, "upstream timed out"
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		// The client went away; not the upstream's fault, not worth an error.
		outcome = outcomeClientCanceled
		level.Debug(h.logger).Log("msg", "client canceled while waiting for upstream", "err", err)
	} else {
		level.Error(h.failures).Log("msg", "upstream request failed", "outcome", outcome, "err", err)
	}
	if ex := exchangeFrom(ctx); ex != nil {
		ex.outcome = outcome
	}
	writeText(w, code, body)
}

// isTimeout reports whether err is a network timeout, such as the transport's
// ResponseHeaderTimeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// sleepCtx waits d, or less if ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
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

// BufferPool is an httputil.BufferPool of ReverseProxy's 32 KiB copy
// buffers: without one, every scrape allocates and clears a fresh buffer, a
// measurable share of a proxy's CPU at scrape rates (10-15% here). The zero
// value is ready to use.
type BufferPool struct{ p sync.Pool }

// Get returns a buffer from the pool, or a new one.
func (b *BufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

// Put returns buf to the pool.
func (b *BufferPool) Put(buf []byte) { b.p.Put(&buf) }

// no1xx keeps 1xx answers of the upstream from reaching the client.
// ReverseProxy relays each one (103 Early Hints, say) with all of its
// headers, past the response-header allowlist, and then clears the header
// map, which would also drop the proxy's own headers (and the web config's)
// from the final answer. So a 1xx is dropped here, and every final answer
// gets own, the headers set before forwarding, again.
type no1xx struct {
	http.ResponseWriter
	own http.Header
}

// WriteHeader drops 1xx answers and restores the proxy's headers before a
// final one.
func (w no1xx) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		return
	}
	h := w.Header()
	for k, v := range w.own {
		h[k] = v
	}
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection's writer (for
// ReverseProxy's flushes).
func (w no1xx) Unwrap() http.ResponseWriter { return w.ResponseWriter }
