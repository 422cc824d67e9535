package auth

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Verifier's own metrics. Their labels never carry user names or
// addresses: those are unbounded and attacker-chosen, and would turn a flood into a
// memory and cardinality problem for the proxy and for Prometheus.
type metrics struct {
	bcryptChecks prometheus.Counter
	attempts     *prometheus.CounterVec
	inBackoff    prometheus.GaugeFunc
	// byOutcome holds the attempts children, resolved once: the known-good fast
	// path should not pay for a label lookup.
	byOutcome map[string]prometheus.Counter
}

func newMetrics(inBackoff func() float64) *metrics {
	m := &metrics{
		bcryptChecks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "metrics_proxy_auth_bcrypt_checks_total",
			Help: "bcrypt checks run to verify basic-auth credentials, one per credential checked; each costs the work of one comparison at the highest configured cost (an unknown user is compared against a dummy hash, a cheaper hash is followed by dummy comparisons). Known-good and known-wrong credentials are answered from memory and not counted here.",
		}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "metrics_proxy_auth_attempts_total",
			Help: "Basic-auth and bearer-token verifications by outcome: ok_cached (known-good password, no bcrypt), ok (bcrypt accepted the password, or the bearer token matched a configured one), unauthorized (401: missing, malformed or wrong credentials), throttled (429: the client address is in failed-auth back-off, or past its rate of refusals without bcrypt), busy (429: all bcrypt workers were busy). Requests while neither users nor tokens are configured are not counted.",
		}, []string{"outcome"}),
		inBackoff: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "metrics_proxy_auth_clients_in_backoff",
			Help: fmt.Sprintf("Client addresses (IPv4 address or IPv6 /64) that have failed basic auth %d or more times since their last success and are therefore limited to one bcrypt-checked attempt per back-off window (1s doubling to %s); forgotten after %s without a checked attempt.", freeBurst, backoffCap, forgetAfter),
		}, inBackoff),
	}
	// Every outcome exists from the start, so that rate() and alerts work before
	// the first occurrence.
	m.byOutcome = make(map[string]prometheus.Counter)
	for _, o := range []string{OutcomeOKCached, OutcomeOK, OutcomeUnauthorized, OutcomeThrottled, OutcomeBusy} {
		m.byOutcome[o] = m.attempts.WithLabelValues(o)
	}
	return m
}

// attempt counts one verification with the given outcome.
func (m *metrics) attempt(outcome string) {
	m.byOutcome[outcome].Inc()
}

// register registers the metrics on reg, if reg is not nil.
func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m.bcryptChecks, m.attempts, m.inBackoff} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("registering the auth metrics: %w; give each Verifier its own registry, or wrap the Registerer with a distinguishing label", err)
		}
	}
	return nil
}
