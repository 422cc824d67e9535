package webconfig

import (
	"github.com/prometheus/client_golang/prometheus"
)

// collector exports the Store's reload state under the names Prometheus uses
// for its own config reloads, so the same alerts carry over. It reads atomics
// and the current snapshot only, so a scrape never waits for a reload.
type collector struct {
	s *Store
}

var (
	lastReloadSuccessfulDesc = prometheus.NewDesc(
		"metrics_proxy_config_last_reload_successful",
		"Whether the last web config reload attempt was successful (1) or the last good config is still being served (0).",
		nil, nil)
	lastReloadSuccessTimestampDesc = prometheus.NewDesc(
		"metrics_proxy_config_last_reload_success_timestamp_seconds",
		"Timestamp of the last successful web config load, the initial one included.",
		nil, nil)
	reloadsTotalDesc = prometheus.NewDesc(
		"metrics_proxy_config_reloads_total",
		"Web config reload attempts since start, by result; the initial load is not counted.",
		[]string{"result"}, nil)
	certNotAfterDesc = prometheus.NewDesc(
		"metrics_proxy_tls_certificate_not_after_seconds",
		"Expiry (NotAfter) of the TLS certificate being served, as a Unix timestamp. Absent when TLS is off.",
		nil, nil)
)

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- lastReloadSuccessfulDesc
	ch <- lastReloadSuccessTimestampDesc
	ch <- reloadsTotalDesc
	ch <- certNotAfterDesc
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := &c.s.stats
	ok := 0.0
	if st.lastOK.Load() {
		ok = 1
	}
	ch <- prometheus.MustNewConstMetric(lastReloadSuccessfulDesc, prometheus.GaugeValue, ok)
	ch <- prometheus.MustNewConstMetric(lastReloadSuccessTimestampDesc, prometheus.GaugeValue,
		float64(st.lastSuccessUnixNano.Load())/1e9)
	ch <- prometheus.MustNewConstMetric(reloadsTotalDesc, prometheus.CounterValue, float64(st.successes.Load()), "success")
	ch <- prometheus.MustNewConstMetric(reloadsTotalDesc, prometheus.CounterValue, float64(st.failures.Load()), "failure")
	if cfg := c.s.Current(); cfg.TLSEnabled() {
		ch <- prometheus.MustNewConstMetric(certNotAfterDesc, prometheus.GaugeValue, float64(cfg.NotAfter.Unix()))
	}
}
