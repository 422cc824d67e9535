package e2e

// One door for the whole host: the runner and a real node_exporter (Debian's
// prometheus-node-exporter) behind one metrics-proxy, routes granted per
// identity, a bearer token from Prometheus's credentials_file, the landing
// page, /-/ready following the upstreams, and a broken routes file on
// reload keeping the last good routes.

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	oncallUser     = "oncall"
	oncallPassword = "pager duty is a state of mind"
)

// nodeExporter is a running prometheus-node-exporter on loopback.
type nodeExporter struct {
	*proc
	Addr string
}

// startNodeExporter starts Debian's node_exporter on addr with a few cheap
// collectors, and waits until it serves /metrics.
func startNodeExporter(t *testing.T, bin, addr string) *nodeExporter {
	t.Helper()
	n := &nodeExporter{Addr: addr, proc: startCmd(t, exec.Command(bin,
		"--web.listen-address="+addr, "--collector.disable-defaults",
		"--collector.loadavg", "--collector.meminfo", "--collector.cpu"))}
	eventually(t, "node_exporter serves /metrics on "+addr, func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return n
}

// stop ends node_exporter and waits until it is gone.
func (n *nodeExporter) stop(t *testing.T) {
	t.Helper()
	n.cmd.Process.Signal(syscall.SIGTERM)
	n.wait(20 * time.Second) // fails the test if it does not end
}

func lookNodeExporter(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus-node-exporter")
	if err != nil {
		t.Skip("prometheus-node-exporter is not in PATH (Debian: apt-get install prometheus-node-exporter; make test installs it as root): " + err.Error())
	}
	return bin
}

// newToken runs metrics-proxy hash-token --token-file and returns the token
// file and the sha256 line's value.
func newToken(t *testing.T, dir string) (file, sum string) {
	t.Helper()
	file = filepath.Join(dir, "node-scraper.token")
	// Not through run: the sum is random, so it has no golden message.
	var out bytes.Buffer
	code := execute(t, 20*time.Second, exec.Command(filepath.Join(binDir, "metrics-proxy"), "hash-token", "--token-file", file), "", &out, io.Discard)
	m := regexp.MustCompile(`^sha256: ([0-9a-f]{64})\n$`).FindStringSubmatch(out.String())
	if code != 0 || m == nil {
		t.Fatalf("hash-token: exit %d, standard output %q, want one sha256 line", code, out.String())
	}
	return file, m[1]
}

// hostRoutes is the routes file of the one-door tests: the runner, node and
// the runner's pprof for oncall, and the token node-scraper.
func hostRoutes(runnerAddr, nodeAddr, tokenSum string) string {
	return fmt.Sprintf(`routes:
  - name: runner
    path: /metrics
    upstream: http://%[1]s/metrics
  - name: node
    path: /node/metrics
    upstream: http://%[2]s/metrics
  - name: pprof
    path: /debug/pprof/
    upstream: http://%[1]s/debug/pprof/
    timeout: 60s
    allow:
      users: [oncall]
tokens:
  node-scraper: %[3]s
`, runnerAddr, nodeAddr, tokenSum)
}

// oneDoor is the runner and node_exporter behind one proxy.
type oneDoor struct {
	*proxy
	Node      *nodeExporter
	NodeBin   string
	Token     string
	TokenFile string
}

func startOneDoor(t *testing.T, args ...string) *oneDoor {
	t.Helper()
	bin := lookNodeExporter(t)
	_, runnerAddr := startRunner(t, "concurrent = 1\n", "--metrics-server", "127.0.0.1:0")
	node := startNodeExporter(t, bin, freeAddr(t))
	tokenFile, sum := newToken(t, t.TempDir())
	oncallHash := hashPassword(t, oncallPassword, 10)
	p := startProxy(t, proxyOptions{
		Web: func(k *pki) string {
			return tlsBlock(k) + usersBlock(defaultUser, defaultHash(t), oncallUser, oncallHash)
		},
		Routes: hostRoutes(runnerAddr, node.Addr, sum),
		Args:   args,
	})
	// selfMetrics reads /proxy/metrics as oncall, the one identity granted
	// every route and so, without admin:, the one that may read it.
	p.User, p.Password = oncallUser, oncallPassword
	return &oneDoor{proxy: p, Node: node, NodeBin: bin, Token: strings.TrimSpace(readFile(t, tokenFile)), TokenFile: tokenFile}
}

func bearer(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token}
}

// Each identity reaches exactly what the routes grant it; a forbidden route
// is the same 404 as a path no route serves, counted by route.
func TestRoutesPerIdentity(t *testing.T) {
	t.Parallel()
	d := startOneDoor(t)
	c := d.client("127.0.0.2")

	if r := d.getAs(t, c, "/metrics", defaultUser, defaultPassword); r.Status != 200 || !strings.Contains(r.Body, "ci_runner_version_info") {
		t.Fatalf("prometheus /metrics: %d %.200q", r.Status, r.Body)
	}
	if r := d.getAs(t, c, "/node/metrics", defaultUser, defaultPassword); r.Status != 200 || !strings.Contains(r.Body, "node_load1 ") {
		t.Fatalf("prometheus /node/metrics: %d %.200q", r.Status, r.Body)
	}
	if r := do(t, c, "GET", d.URL+"/node/metrics", bearer(d.Token)); r.Status != 200 || !strings.Contains(r.Body, "node_load1 ") {
		t.Fatalf("token /node/metrics: %d %.200q", r.Status, r.Body)
	}
	unknown := d.getAs(t, c, "/no/such/route", defaultUser, defaultPassword)
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap"} {
		r := d.getAs(t, c, path, defaultUser, defaultPassword)
		if r.Status != 404 || r.Body != "Not Found\n" {
			t.Errorf("prometheus %s: %d %q, want 404 Not Found", path, r.Status, r.Body)
		}
		r.Header.Del("Date")
		unknown.Header.Del("Date")
		if headerString(r.Header) != headerString(unknown.Header) {
			t.Errorf("prometheus %s answered unlike an unknown path:\n%s\nvs\n%s", path, headerString(r.Header), headerString(unknown.Header))
		}
	}
	if r := do(t, c, "GET", d.URL+"/debug/pprof/heap", bearer(d.Token)); r.Status != 404 {
		t.Errorf("token /debug/pprof/heap: %d, want 404", r.Status)
	}
	heap := d.getAs(t, c, "/debug/pprof/heap", oncallUser, oncallPassword)
	if heap.Status != 200 || !strings.HasPrefix(heap.Body, "\x1f\x8b") {
		t.Fatalf("oncall /debug/pprof/heap: %d, body starts %q; want 200 and a gzipped profile", heap.Status, heap.Body[:min(len(heap.Body), 8)])
	}

	expectMetrics(t, d.selfMetrics(t, c), map[string]float64{
		`metrics_proxy_route_requests_total{outcome="forbidden_route",route="pprof"}`: 3,
		`metrics_proxy_route_requests_total{outcome="ok",route="pprof"}`:              1,
		`metrics_proxy_route_requests_total{outcome="ok",route="node"}`:               2,
		`metrics_proxy_route_requests_total{outcome="ok",route="runner"}`:             1,
		`metrics_proxy_route_requests_total{outcome="forbidden_route",route="node"}`:  0,
		`metrics_proxy_requests_total{outcome="forbidden_path"}`:                      1,
		`metrics_proxy_requests_total{outcome="forbidden_route"}`:                     3,
		`metrics_proxy_route_upstream_request_duration_seconds_count{route="pprof"}`:  1,
	})
}

// The landing page lists exactly what each identity may use, and nothing
// to anonymous clients.
func TestRoutesLandingPage(t *testing.T) {
	t.Parallel()
	d := startOneDoor(t)
	c := d.client("127.0.0.2")
	// /proxy/metrics only for oncall, the one granted every route.
	own := "/-/healthy\thealth\n/-/ready\treadiness of every route's upstream\n"
	self := "/proxy/metrics\tthe proxy's own metrics\n"
	metricsRoutes := "/metrics\troute runner\n/node/metrics\troute node\n"
	for _, tc := range []struct {
		who  string
		hdr  map[string]string
		want string
	}{
		{"prometheus", authHeader(defaultUser, defaultPassword), metricsRoutes + own},
		{"oncall", authHeader(oncallUser, oncallPassword), metricsRoutes + "/debug/pprof/\troute pprof\n" + self + own},
		{"token", bearer(d.Token), metricsRoutes + own},
	} {
		r := do(t, c, "GET", d.URL+"/", tc.hdr)
		if r.Status != 200 || r.Body != tc.want || r.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Errorf("%s GET /: %d %q\n%q\nwant 200 text/plain\n%q", tc.who, r.Status, r.Header.Get("Content-Type"), r.Body, tc.want)
		}
		tc.hdr["Accept"] = "text/html,application/xhtml+xml"
		html := do(t, c, "GET", d.URL+"/", tc.hdr)
		if got, want := strings.Contains(html.Body, `<a href="/debug/pprof/">`), tc.who == "oncall"; got != want || !strings.Contains(html.Body, `<a href="/node/metrics">`) {
			t.Errorf("%s HTML landing page lists pprof: %v, want %v; node: %v\n%s", tc.who, got, want, strings.Contains(html.Body, "/node/metrics"), html.Body)
		}
	}
	if r := do(t, c, "GET", d.URL+"/", nil); r.Status != 401 || r.Body != "Unauthorized\n" {
		t.Errorf("anonymous GET /: %d %q, want 401", r.Status, r.Body)
	}
}

// /-/ready follows node_exporter down and back; it needs authentication
// by default.
func TestRoutesReadyFollowsUpstreams(t *testing.T) {
	t.Parallel()
	d := startOneDoor(t)
	c := d.client("127.0.0.2")
	ready := func() result { return d.getAs(t, c, "/-/ready", defaultUser, defaultPassword) }
	if r := ready(); r.Status != 200 || r.Body != "metrics-proxy is ready.\n" {
		t.Fatalf("/-/ready: %d %q", r.Status, r.Body)
	}
	if r := d.getAs(t, c, "/-/healthy", defaultUser, defaultPassword); r.Status != 200 || r.Body != "metrics-proxy is healthy.\n" {
		t.Fatalf("/-/healthy: %d %q", r.Status, r.Body)
	}
	for _, path := range []string{"/-/ready", "/-/healthy"} {
		if r := do(t, c, "GET", d.URL+path, nil); r.Status != 401 {
			t.Errorf("anonymous %s: %d, want 401", path, r.Status)
		}
	}

	d.Node.stop(t)
	var last result
	eventually(t, "/-/ready answers 503 once node_exporter is stopped", func() bool {
		last = ready()
		return last.Status == 503
	})
	if want := "metrics-proxy is not ready:\nroute node: connection refused (is it running?)\n"; last.Body != want {
		t.Errorf("/-/ready body %q, want %q", last.Body, want)
	}
	d.Node = startNodeExporter(t, d.NodeBin, d.Node.Addr)
	eventually(t, "/-/ready answers 200 once node_exporter is back", func() bool { return ready().Status == 200 })
}

// --web.health-without-auth serves the two endpoints to anyone, with
// nothing but the status.
func TestRoutesHealthWithoutAuth(t *testing.T) {
	t.Parallel()
	d := startOneDoor(t, "--web.health-without-auth")
	c := d.client("127.0.0.2")
	for path, want := range map[string]string{"/-/healthy": "OK\n", "/-/ready": "OK\n"} {
		r := do(t, c, "GET", d.URL+path, nil)
		if r.Status != 200 || r.Body != want {
			t.Errorf("anonymous %s: %d %q, want 200 %q", path, r.Status, r.Body, want)
		}
	}
	d.Node.stop(t)
	eventually(t, "anonymous /-/ready answers 503", func() bool {
		r := do(t, c, "GET", d.URL+"/-/ready", nil)
		return r.Status == 503 && r.Body == "Service Unavailable\n"
	})
	// The rest still needs credentials.
	if r := do(t, c, "GET", d.URL+"/metrics", nil); r.Status != 401 {
		t.Errorf("anonymous /metrics: %d, want 401", r.Status)
	}
}

// A broken routes file on reload (watched change or SIGHUP) keeps the last
// good routes; a good one applies at once.
func TestRoutesBrokenReloadKeepsLastGood(t *testing.T) {
	t.Parallel()
	d := startOneDoor(t)
	c := d.client("127.0.0.2")
	good := readFile(t, d.RoutesFile)

	replaceAtomically(t, d.RoutesFile, "routes:\n  - name: node\n    path: [unclosed\n")
	d.waitCount(reloadFailed, 1)
	d.cmd.Process.Signal(syscall.SIGHUP)
	d.waitCount(reloadFailed, 2)
	if r := d.getAs(t, c, "/node/metrics", defaultUser, defaultPassword); r.Status != 200 {
		t.Fatalf("/node/metrics after a broken routes file: %d", r.Status)
	}
	expectMetrics(t, d.selfMetrics(t, c), map[string]float64{"metrics_proxy_config_last_reload_successful": 0})

	// A good edit applies at once: the route's series follow its new name.
	replaceAtomically(t, d.RoutesFile, strings.Replace(good, "  - name: node\n", "  - name: node-renamed\n", 1))
	eventually(t, "the renamed route serves", func() bool {
		m := d.selfMetrics(t, c)
		return strings.Contains(m, `route="node-renamed"`) && !strings.Contains(m, `route="node"`)
	})
	if r := d.getAs(t, c, "/node/metrics", defaultUser, defaultPassword); r.Status != 200 {
		t.Fatalf("/node/metrics after a good reload: %d", r.Status)
	}
}

func headerString(h http.Header) string {
	var b strings.Builder
	h.Write(&b)
	return b.String()
}

// The real Prometheus scrapes the runner and node_exporter through the one
// port: metrics_path per job, one job with basic_auth, the other with a
// bearer token from credentials_file.
func TestRoutesPrometheusScrapesBothJobs(t *testing.T) {
	t.Parallel()
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("the prometheus binary is not in PATH (Debian: apt-get install prometheus; make test installs it as root): " + err.Error())
	}
	d := startOneDoor(t)
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "prometheus.pw")
	writeFile(t, pwFile, defaultPassword)
	promCfg := filepath.Join(dir, "prometheus.yml")
	writeFile(t, promCfg, promTwoJobs(d.Addr, d.PKI.CAFile, pwFile, d.TokenFile))
	if promtool, err := exec.LookPath("promtool"); err == nil {
		if out, err := exec.Command(promtool, "check", "config", promCfg).CombinedOutput(); err != nil {
			t.Fatalf("promtool check config: %v\n%s", err, out)
		}
	}
	p := startPrometheus(t, promBin, promCfg)
	var got map[string]string
	deadline := time.Now().Add(60 * time.Second)
	for {
		got = map[string]string{}
		for job, q := range map[string]string{
			"runner": `ci_runner_version_info{job="alloy-runner"}`,
			"node":   `node_load1{job="node"}`,
			"up":     `sum(up{job=~"alloy-runner|node"})`,
		} {
			if v, err := p.query(q); err == nil && len(v.Result) == 1 {
				got[job], _ = v.Result[0].Value[1].(string)
			}
		}
		if got["runner"] == "1" && got["node"] != "" && got["up"] == "2" {
			break
		}
		if time.Now().After(deadline) {
			var tg promTargets
			_ = p.api("/api/v1/targets?state=active", &tg)
			t.Fatalf("after 60 s: %v (want runner 1, a node_load1 value, up 2); targets: %+v", got, tg.ActiveTargets)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Both went through the proxy, by their routes.
	m := d.selfMetrics(t, d.client("127.0.0.2"))
	for _, route := range []string{"runner", "node"} {
		if v := metric(m, fmt.Sprintf(`metrics_proxy_route_requests_total{outcome="ok",route=%q}`, route)); v < 1 {
			t.Errorf("route %s served %v scrapes, want at least 1", route, v)
		}
	}
}

// promTwoJobs is the Prometheus config the README shows: two jobs on the
// proxy's one port.
func promTwoJobs(proxyAddr, caFile, passwordFile, tokenFile string) string {
	return fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: alloy-runner
    scheme: https
    metrics_path: /metrics
    tls_config:
      ca_file: %[2]s
    basic_auth:
      username: prometheus
      password_file: %[3]s
    static_configs:
      - targets: ['%[1]s']
  - job_name: node
    scheme: https
    metrics_path: /node/metrics
    tls_config:
      ca_file: %[2]s
    authorization:
      credentials_file: %[4]s
    static_configs:
      - targets: ['%[1]s']
`, proxyAddr, caFile, passwordFile, tokenFile)
}
