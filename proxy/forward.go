package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-kit/log/level"

	"github.com/alloyci/hardened-runner/refusal"
	"github.com/alloyci/hardened-runner/source"
)

// exchange is the per-request state shared between forward and the
// ReverseProxy hooks, which see the request only through its context.
// All of them run on the handler's goroutine, so it needs no lock.
type exchange struct {
	route   *served
	path    string // the upstream path the route maps the request to
	outcome string
	aborted bool  // the body failed after the headers were sent
	failure error // why the upstream could not be asked, for readiness
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

// writeGrace is how long past the request's deadline its answer may take to
// write, so that the proxy's own 504 still reaches a client that reads.
const writeGrace = 2 * time.Second

// forward relays the request along route s under a deadline and records
// the outcome and duration, overall and by route.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, s *served, p, who string) {
	timeout, shortened := upstreamTimeout(r.Header, s.timeout)
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	name := s.route.Name

	release, err := s.pool.queue.Acquire(ctx, source.Of(r.RemoteAddr).String()+"\x00"+who)
	if err != nil {
		if r.Context().Err() != nil {
			h.metrics.countRoute(name, outcomeClientCanceled)
			return
		}
		// The proxy's own answer, not the upstream's: the upstream was never
		// asked, so its capacity is spent only on requests it can serve.
		w.Header().Set("Retry-After", "1")
		h.metrics.countRoute(name, refusal.UpstreamBusy.Outcome())
		refusal.Write(w, refusal.UpstreamBusy)
		return
	}
	defer release()
	// The slot is held until the answer is written: a client that does not
	// read it must not keep the slot much past the scrape's deadline (the
	// server's WriteTimeout alone is the upstream timeout plus 30 s). The
	// grace lets a 504 for that deadline still be written.
	if dl, ok := ctx.Deadline(); ok {
		_ = http.NewResponseController(w).SetWriteDeadline(dl.Add(writeGrace))
	}

	ex := &exchange{route: s, path: s.route.OutboundPath(p), outcome: outcomeOK}
	ctx = context.WithValue(ctx, exchangeKey{}, ex)

	start := time.Now()
	// Deferred so it also runs when the copy aborts with a panic.
	defer func() {
		h.metrics.observe(name, time.Since(start))
		if r.Context().Err() != nil && ex.outcome != refusal.ResponseTooLarge.Outcome() {
			// The client reset the stream or hung up: not the upstream's fault.
			ex.outcome = outcomeClientCanceled
		}
		h.metrics.countRoute(name, ex.outcome)
		h.recordReadiness(s, ex.outcome, ex.failure, shortened)
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

// upstreamTimeout is the route's timeout, or the scraper's own timeout when
// it is shorter (then shortened is true): answering after Prometheus gave up
// is wasted work upstream. A value that is not a positive finite number is
// ignored.
func upstreamTimeout(hdr http.Header, route time.Duration) (d time.Duration, shortened bool) {
	v, err := strconv.ParseFloat(hdr.Get("X-Prometheus-Scrape-Timeout-Seconds"), 64)
	if err != nil || !(v > 0) || v >= route.Seconds() {
		return route, false
	}
	return time.Duration(v * float64(time.Second)), true
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
	pr.Out.URL.Scheme, pr.Out.URL.Host = ex.route.base.Scheme, ex.route.base.Host
	pr.Out.Host = ex.route.route.Upstream.Host
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
	ex := exchangeFrom(resp.Request.Context())
	if resp.ContentLength > ex.route.maxBytes {
		return errResponseTooLarge
	}
	if resp.StatusCode >= 500 {
		// Relayed, since the scraper should see the runner's answer, but not
		// counted ok: a busy or broken runner must show in the proxy's metrics.
		ex.outcome = outcomeUpstream5xx
	}
	resp.Header = relayHeaders(resp.Header)
	resp.Trailer = nil
	ctx := resp.Request.Context()
	resp.Body = &limitedBody{rc: resp.Body, resp: resp, remaining: ex.route.maxBytes, ctx: ctx, ex: ex}
	return nil
}

// upstreamFailed is the ReverseProxy ErrorHandler: the upstream could not be
// asked or its response was refused before anything was written. The client
// gets a fixed body with no address or error text; the log gets the details.
func (h *Handler) upstreamFailed(w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	k := refusal.UpstreamError
	switch {
	case errors.Is(err, errResponseTooLarge):
		k = refusal.ResponseTooLarge
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) || isTimeout(err):
		k = refusal.UpstreamTimeout
	}
	outcome := k.Outcome()
	if errors.Is(ctx.Err(), context.Canceled) {
		// The client went away; not the upstream's fault, not worth an error.
		outcome = outcomeClientCanceled
		level.Debug(h.logger).Log("msg", "client canceled while waiting for upstream", "err", err)
	} else {
		level.Error(h.failures).Log("msg", "upstream request failed", "outcome", outcome, "err", err)
	}
	if ex := exchangeFrom(ctx); ex != nil {
		ex.outcome = outcome
		ex.failure = err
	}
	refusal.Write(w, k)
}

// routeTransport sends each outbound request through the transport of its
// route's upstream, which the exchange in its context names.
type routeTransport struct{}

func (routeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return exchangeFrom(req.Context()).route.pool.transport.RoundTrip(req)
}

// isTimeout reports whether err is a network timeout, such as the transport's
// ResponseHeaderTimeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

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
