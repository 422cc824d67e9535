package e2e

import (
	"strings"
	"testing"
)

// The "done when": runner on loopback, metrics-proxy in front of it,
// an authenticated HTTPS scrape returns the runner's metrics.
func TestProxyScrapesRunnerThroughTLSAndAuth(t *testing.T) {
	s := startStack(t, stackOptions{})
	c := s.client()
	resp, body := s.get(t, c, "/metrics", s.User, s.Password)
	if resp.StatusCode != 200 || !strings.Contains(body, "ci_runner_version_info{") {
		t.Fatalf("status %d, body %.200q", resp.StatusCode, body)
	}
	resp, _ = s.get(t, c, "/metrics", "", "")
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Basic realm="metrics-proxy", charset="UTF-8"` {
		t.Fatalf("anonymous: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}
