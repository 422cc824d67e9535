package proxy

import (
	"fmt"

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
		refusal.MethodNotAllowed.Outcome(), refusal.BadRequest.Outcome(), refusal.ForbiddenPath.Outcome(),
		refusal.UpstreamError.Outcome(), refusal.UpstreamTimeout.Outcome(), refusal.ResponseTooLarge.Outcome(),
		refusal.RateLimited.Outcome(), refusal.UpstreamBusy.Outcome(), outcomeUpstream5xx, outcomeClientCanceled,
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
}

// newMetrics creates the instruments and registers them on reg when it is not
// nil. A registration failure (say, two proxies on one registry) is returned
// rather than panicking, so the caller can report it.
func newMetrics(reg prometheus.Registerer, queue *fairqueue.Queue) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "metrics_proxy_requests_total",
			Help: "Requests handled by the metrics proxy, by outcome: ok, unauthorized, throttled, busy, method_not_allowed, bad_request, forbidden_path (not on the allowlist), upstream_error, upstream_timeout, response_too_large, rate_limited (the web config's rate_limit), upstream_busy (no upstream slot before the deadline: the proxy's own 503), upstream_5xx (relayed, the upstream failed), client_canceled (the client went away first).",
		}, []string{"outcome"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "metrics_proxy_upstream_request_duration_seconds",
			Help: "Time from sending a request upstream to the end of relaying its response (or its failure), in seconds.",
			// Scrapes: a few ms for a small /metrics up to the 10s default timeout.
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}),
	}
	for _, o := range allOutcomes() {
		m.requests.WithLabelValues(o)
	}
	inFlight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "metrics_proxy_upstream_requests_in_flight",
		Help: "Upstream calls holding one of --upstream.max-concurrent slots.",
	}, func() float64 { return float64(queue.InUse()) })
	waiting := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "metrics_proxy_upstream_requests_waiting",
		Help: "Requests waiting for an upstream slot (at most --upstream.max-queue).",
	}, func() float64 { return float64(queue.Waiting()) })
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.duration, inFlight, waiting} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("registering the proxy's metrics: %w; give each proxy its own registry", err)
			}
		}
	}
	return m, nil
}

// count adds one request with the given outcome.
func (m *metrics) count(outcome string) {
	m.requests.WithLabelValues(outcome).Inc()
}
