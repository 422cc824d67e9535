package runnermetrics_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alloyci/hardened-runner/builds"
	"github.com/alloyci/hardened-runner/metricsserver"
	"github.com/alloyci/hardened-runner/runnermetrics"
)

// prometheusAccept is what a Prometheus 3 scrape asks for.
const prometheusAccept = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6," +
	"application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4," +
	"text/plain;version=0.0.4;q=0.3,*/*;q=0.2"

// BenchmarkRender100Builds renders the runner's /metrics page, with 100 builds
// running spread evenly across the four stages, through the metrics server's
// own handler (Host guard included), and reports the p50 and p99 of a single
// render in milliseconds (DESIGN target: p99 under 5 ms). "text" is a plain
// GET; "prometheus-gzip" sends what Prometheus sends (OpenMetrics preferred,
// gzip), so it includes the compression. Run with a fixed count, e.g.
// -benchtime 2000x, so the percentiles rest on enough renders.
func BenchmarkRender100Builds(b *testing.B) {
	tracker := builds.NewTracker()
	stages := builds.Stages()
	for i := range 100 {
		tracker.Start().SetStage(stages[i%len(stages)])
	}
	h := metricsserver.NewHandler(runnermetrics.NewRegistry(tracker, nil), "127.0.0.1", 0)

	for _, bc := range []struct {
		name string
		hdr  http.Header
		want string // in the body, unless gzipped
	}{
		{name: "text", want: `ci_runner_builds{stage="build_script",state="running"} 25`},
		{name: "prometheus-gzip", hdr: http.Header{"Accept": {prometheusAccept}, "Accept-Encoding": {"gzip"}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			render := func() *httptest.ResponseRecorder {
				req := httptest.NewRequest(http.MethodGet, "http://localhost/metrics", nil)
				for k, v := range bc.hdr {
					req.Header[k] = v
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				return rec
			}
			rec := render()
			if rec.Code != http.StatusOK {
				b.Fatalf("GET /metrics: status %d: %s", rec.Code, rec.Body)
			}
			if bc.want != "" && !strings.Contains(rec.Body.String(), bc.want) {
				b.Fatalf("GET /metrics: no %q in:\n%s", bc.want, rec.Body)
			}
			if bc.hdr.Get("Accept-Encoding") == "gzip" && rec.Header().Get("Content-Encoding") != "gzip" {
				b.Fatalf("GET /metrics with Accept-Encoding: gzip: Content-Encoding %q", rec.Header().Get("Content-Encoding"))
			}

			var took []time.Duration
			b.ReportAllocs()
			for b.Loop() {
				start := time.Now()
				rec := render()
				took = append(took, time.Since(start))
				if rec.Code != http.StatusOK {
					b.Fatalf("GET /metrics: status %d", rec.Code)
				}
			}
			slices.Sort(took)
			at := func(p float64) float64 {
				i := min(len(took)-1, max(0, int(float64(len(took))*p+0.999999)-1))
				return float64(took[i]) / float64(time.Millisecond)
			}
			b.ReportMetric(at(0.50), "p50-ms")
			b.ReportMetric(at(0.99), "p99-ms")
			b.ReportMetric(at(1), "max-ms")
		})
	}
}
