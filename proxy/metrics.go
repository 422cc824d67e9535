package proxy

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/alloyci/hardened-runner/fairqueue"
	"github.com/alloyci/hardened-runner/refusal"
)

// Outcomes of a request, the only values of the outcome label. A fixed set, so
// nothing a client sends (user names, addresses, paths) can become a label or
// grow the series count. Refusals are counted under their kind's label
// (package refusal); these are the outcomes of requests that reached the
// upstream.
const (
	outcomeOK             = "ok"
	outcomeUpstream5xx    = "upstream_5xx"
	outcomeClientCanceled = "client_canceled"
)

// allOutcomes lists every outcome so each series exists at 0 from the start:
// a rate() or an alert on e.g. upstream_timeout works before the first one.
func allOutcomes() []string {
	return []string{
		outcomeOK, refusal.Unauthorized.Outcome(), refusal.Throttled.Outcome(), refusal.Busy.Outcome(),
		refusal.MethodNotAllowed.Outcome(), refusal.BadRequest.Outcome(), refusal.ForbiddenPath.Outcome(), refusal.ForbiddenRoute.Outcome(),
		refusal.UpstreamError.Outcome(), refusal.UpstreamTimeout.Outcome(), refusal.ResponseTooLarge.Outcome(),
		refusal.RateLimited.Outcome(), refusal.UpstreamBusy.Outcome(), outcomeUpstream5xx, outcomeClientCanceled,
	}
}

// routeOutcomes are the outcomes counted by route: those of a request that
// matched one.
func routeOutcomes() []string {
	return []string{
		outcomeOK, refusal.ForbiddenRoute.Outcome(), refusal.UpstreamBusy.Outcome(), refusal.UpstreamError.Outcome(),
		refusal.UpstreamTimeout.Outcome(), refusal.ResponseTooLarge.Outcome(), outcomeUpstream5xx, outcomeClientCanceled,
	}
}

// denialOutcome maps an Authorizer's outcome for a refused request onto the
// label set. Anything unexpected counts as unauthorized rather than becoming a
// new label value.
func denialOutcome(s string) string {
	switch s {
	case refusal.Throttled.Outcome(), refusal.Busy.Outcome():
		return s
	default:
		return refusal.Unauthorized.Outcome()
	}
}

// metrics are the proxy's own instruments, served at /proxy/metrics.
type metrics struct {
	requests *prometheus.CounterVec
	duration prometheus.Histogram
	// By route: the label is the route's name from the routes file, never
	// anything the client sent.
	routeRequests *prometheus.CounterVec
	routeDuration *prometheus.HistogramVec

	mu    sync.Mutex // guards named
	named []string   // the routes whose series exist
}

// newMetrics creates the instruments and registers them on reg when it is not
// nil. A registration failure (say, two proxies on one registry) is returned
// rather than panicking, so the caller can report it.
func newMetrics(reg prometheus.Registerer, rt *router) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "metrics_proxy_requests_total",
			Help: "Requests handled by the metrics proxy, by outcome: ok, unauthorized, throttled, busy, method_not_allowed, bad_request, forbidden_path (no route for the path), forbidden_route (a route this identity may not use; answered like forbidden_path), upstream_error, upstream_timeout, response_too_large, rate_limited (the web config's rate_limit), upstream_busy (no upstream slot before the deadline: the proxy's own 503), upstream_5xx (relayed, the upstream failed), client_canceled (the client went away first).",
		}, []string{"outcome"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "metrics_proxy_upstream_request_duration_seconds",
			Help: "Time from sending a request upstream to the end of relaying its response (or its failure), in seconds.",
			// Scrapes: a few ms for a small /metrics up to the 10s default timeout.
			Buckets: upstreamBuckets(),
		}),
		routeRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "metrics_proxy_route_requests_total",
			Help: "Authenticated requests for a route, by route (its name in the routes file) and outcome: ok, forbidden_route, upstream_busy, upstream_error, upstream_timeout, response_too_large, upstream_5xx, client_canceled.",
		}, []string{"route", "outcome"}),
		routeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "metrics_proxy_route_upstream_request_duration_seconds",
			Help:    "Time from sending a request along a route to the end of relaying its response (or its failure), in seconds, by route.",
			Buckets: upstreamBuckets(),
		}, []string{"route"}),
	}
	for _, o := range allOutcomes() {
		m.requests.WithLabelValues(o)
	}
	inFlight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "metrics_proxy_upstream_requests_in_flight",
		Help: "Upstream calls holding a slot (each upstream server has --upstream.max-concurrent).",
	}, func() float64 { return float64(rt.sum((*fairqueue.Queue).InUse)) })
	waiting := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "metrics_proxy_upstream_requests_waiting",
		Help: "Requests waiting for an upstream slot (at most --upstream.max-queue).",
	}, func() float64 { return float64(rt.sum((*fairqueue.Queue).Waiting)) })
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.duration, m.routeRequests, m.routeDuration, inFlight, waiting} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("registering the proxy's metrics: %w; give each proxy its own registry", err)
			}
		}
	}
	return m, nil
}

// upstreamBuckets span scrapes: a few ms for a small /metrics up to the 10s
// default timeout, and a 30 s CPU profile.
func upstreamBuckets() []float64 {
	return []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
}

// count adds one request with the given outcome.
func (m *metrics) count(outcome string) {
	m.requests.WithLabelValues(outcome).Inc()
}

// countRoute adds one request along route with the given outcome, to both
// the overall and the per-route counters.
func (m *metrics) countRoute(route, outcome string) {
	m.requests.WithLabelValues(outcome).Inc()
	m.routeRequests.WithLabelValues(route, outcome).Inc()
}

// observe records one upstream call's duration, overall and by route.
func (m *metrics) observe(route string, d time.Duration) {
	m.duration.Observe(d.Seconds())
	m.routeDuration.WithLabelValues(route).Observe(d.Seconds())
}

// routes makes the series of the routes in force exist at 0 (an alert on a
// route's failures works before the first one) and deletes those of routes
// a reload removed, so they stop being exported.
func (m *metrics) routes(names []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	keep := make(map[string]bool, len(names))
	for _, n := range names {
		keep[n] = true
		for _, o := range routeOutcomes() {
			m.routeRequests.WithLabelValues(n, o)
		}
		m.routeDuration.WithLabelValues(n)
	}
	for _, n := range m.named {
		if !keep[n] {
			m.routeRequests.DeletePartialMatch(prometheus.Labels{"route": n})
			m.routeDuration.DeleteLabelValues(n)
		}
	}
	m.named = append(m.named[:0], names...)
}
