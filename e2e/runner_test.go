package e2e

import (
	"context"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startRunner starts alloy-runner with a config and metrics address and
// returns it with the address its metrics server took.
func startRunner(t *testing.T, configBody string, args ...string) (*proc, string) {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "config.toml")
	writeFile(t, cfg, configBody)
	p := start(t, "alloy-runner", append([]string{"run", "--config", cfg}, args...)...)
	addr := p.waitLog(`msg="metrics server listening" addr=(?:tcp|unix):(\S+)`)
	return p, addr
}

// The runner's metrics server serves the documented families only (and
// promtool accepts them), pprof, and 421 to a foreign Host.
func TestRunnerServesDocumentedFamilies(t *testing.T) {
	_, addr := startRunner(t, "concurrent = 1\n", "--metrics-server", "127.0.0.1:0")
	body, mfs := scrape(t, http.DefaultClient, "http://"+addr+"/metrics", nil)
	for _, name := range []string{"ci_runner_builds", "ci_runner_version_info", "go_goroutines", "process_resident_memory_bytes"} {
		if mfs[name] == nil {
			t.Errorf("family %s missing", name)
		}
	}
	for name := range mfs {
		if !strings.HasPrefix(name, "ci_runner_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
			t.Errorf("undocumented family %s", name)
		}
	}
	if code, _ := httpGet(t, http.DefaultClient, "http://"+addr+"/debug/pprof/heap?debug=1", nil); code != 200 {
		t.Errorf("pprof heap: %d", code)
	}
	if code, _ := httpGet(t, http.DefaultClient, "http://"+addr+"/metrics", map[string]string{"Host": "attacker.example"}); code != http.StatusMisdirectedRequest {
		t.Errorf("foreign Host: %d, want 421", code)
	}
	if path, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(path, "check", "metrics")
		cmd.Stdin = strings.NewReader(body)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	}
}

// A metrics server address that is not loopback, from the flag or from
// config.toml, is refused before anything listens, naming loopback and
// metrics-proxy.
func TestRunnerRefusesNonLoopbackAtOnce(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.toml")
	writeFile(t, cfg, "concurrent = 1\n")
	for _, addr := range []string{":9252", "0.0.0.0:9252", "[::]:9252", "192.0.2.1:9252", "[2001:db8::1]:http"} {
		code, out := run(t, 10*time.Second, "alloy-runner", "run", "--config", cfg, "--metrics-server", addr)
		if code != 1 || !strings.Contains(out, "loopback") || !strings.Contains(out, "metrics-proxy") {
			t.Errorf("--metrics-server %s: exit %d, output:\n%s", addr, code, out)
		}
	}
	// The same refusal from config.toml.
	writeFile(t, cfg, "metrics_server = \"0.0.0.0:9252\"\n")
	if code, out := run(t, 10*time.Second, "alloy-runner", "run", "--config", cfg); code != 1 || !strings.Contains(out, "loopback") {
		t.Errorf("metrics_server in file: exit %d, output:\n%s", code, out)
	}
}

// A malformed or missing config file stops the runner at once, naming the
// file (and the line).
func TestRunnerConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	writeFile(t, bad, "concurrent = 1\n[[runners]\n")
	for _, tc := range []struct{ file, want string }{
		{bad, "config file " + bad + ":2:"},
		{filepath.Join(dir, "missing.toml"), "missing.toml does not exist"},
	} {
		code, out := run(t, 10*time.Second, "alloy-runner", "run", "--config", tc.file)
		if code != 1 || !strings.Contains(out, tc.want) {
			t.Errorf("--config %s: exit %d, output:\n%s", tc.file, code, out)
		}
	}
}

// --metrics-server wins over metrics_server in config.toml: only the flag's
// address is served.
func TestRunnerFlagWinsOverFile(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "m.sock")
	_, addr := startRunner(t, "metrics_server = \"unix:"+sock+"\"\n", "--metrics-server", "127.0.0.1:0")
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("listening on %s, want the flag's address", addr)
	}
	if _, err := net.Dial("unix", sock); err == nil {
		t.Fatal("the file's socket is served too")
	}
}

// An empty metrics_server turns the metrics server off, and the log says so.
func TestRunnerEmptyAddressDisables(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.toml")
	writeFile(t, cfg, "metrics_server = \"\"\n")
	p := start(t, "alloy-runner", "run", "--config", cfg)
	p.waitLog(`msg="metrics server disabled: metrics_server is empty"`)
}

// SIGHUP moves the metrics server to a new metrics_server (here a unix
// socket) and closes the old one; a non-loopback address or a malformed file
// on reload is refused and the server keeps serving.
func TestRunnerSIGHUPMovesServer(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	writeFile(t, cfg, "metrics_server = \"127.0.0.1:0\"\n")
	p := start(t, "alloy-runner", "run", "--config", cfg)
	first := p.waitLog(`msg="metrics server listening" addr=tcp:(\S+)`)

	sock := filepath.Join(dir, "metrics.sock")
	writeFile(t, cfg, "metrics_server = \"unix:"+sock+"\"\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(`msg="metrics server listening" addr=unix:(\S+)`)
	uc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	if code, _ := httpGet(t, uc, "http://localhost/metrics", nil); code != 200 {
		t.Fatalf("unix socket: %d", code)
	}
	if c, err := net.DialTimeout("tcp", first, time.Second); err == nil {
		c.Close()
		t.Fatalf("old address %s still open", first)
	}

	// A non-loopback address on reload is refused; the socket keeps serving.
	writeFile(t, cfg, "metrics_server = \"0.0.0.0:9252\"\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(`reload refused the new metrics_server.*loopback`)
	if code, _ := httpGet(t, uc, "http://localhost/metrics", nil); code != 200 {
		t.Fatalf("after refused reload: %d", code)
	}
	// A malformed file on reload is refused too.
	writeFile(t, cfg, "metrics_server = \n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(`msg="reload refused: keeping the running configuration".*config.toml:1`)
	if code, _ := httpGet(t, uc, "http://localhost/metrics", nil); code != 200 {
		t.Fatalf("after malformed reload: %d", code)
	}
}
