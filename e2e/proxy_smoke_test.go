package e2e

import (
	"strings"
	"testing"
)

// The "done when": runner on loopback, metrics-proxy in front of it,
// an authenticated HTTPS scrape returns the runner's metrics.
func TestProxyScrapesRunnerThroughTLSAndAuth(t *testing.T) {
	s := startStack(t, proxyOptions{})
	c := s.client("")
	if r := s.get(t, c, "/metrics"); r.Status != 200 || !strings.Contains(r.Body, "ci_runner_version_info{") {
		t.Fatalf("status %d, body %.200q", r.Status, r.Body)
	}
	if r := s.getAs(t, c, "/metrics", "", ""); r.Status != 401 || r.Header.Get("WWW-Authenticate") != challenge {
		t.Fatalf("anonymous: %d %q", r.Status, r.Header.Get("WWW-Authenticate"))
	}
}
