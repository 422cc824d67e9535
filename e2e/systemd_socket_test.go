package e2e

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// --web.systemd-socket: the proxy serves on the socket systemd hands it (fd 3,
// LISTEN_FDS=1, LISTEN_PID its own pid), as metrics-proxy.socket does, and
// applies the same public-door rule to it.
func TestProxySystemdSocketActivation(t *testing.T) {
	s := startStack(t, stackOptions{}) // for its runner, PKI and web config
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	addr := l.Addr().String()

	// sh's $$ is the pid metrics-proxy keeps after exec, as systemd sets it.
	cmd := exec.Command("sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"`,
		filepath.Join(binDir, "metrics-proxy"), "--web.systemd-socket", "--web.config.file", s.WebConfig,
		"--upstream.url", s.RunnerURL)
	cmd.ExtraFiles = []*os.File{f}
	out := &proc{t: t, cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = lockedWriter{out}, lockedWriter{out}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	defer func() { cmd.Process.Kill(); cmd.Wait() }()

	s.ProxyURL = "https://" + addr
	c := s.client()
	var code int
	for range 100 {
		req, _ := http.NewRequest("GET", s.ProxyURL+"/metrics", nil)
		req.SetBasicAuth(s.User, s.Password)
		if resp, err := c.Do(req); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			code = resp.StatusCode
			if code == 200 && strings.Contains(string(b), "ci_runner_version_info{") {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code != 200 {
		t.Fatalf("scrape through the systemd socket: %d; log:\n%s", code, out.Logs())
	}
	if !strings.Contains(out.Logs(), `msg=listening address=`+addr) {
		t.Fatalf("log does not name the inherited socket:\n%s", out.Logs())
	}
}

// A socket systemd binds to every interface is a public door like any other:
// without TLS the proxy refuses to serve on it. (Nothing is sent to it.)
func TestProxySystemdSocketPublicDoorRule(t *testing.T) {
	dir := t.TempDir()
	web := filepath.Join(dir, "web.yml")
	writeFile(t, web, "basic_auth_users:\n  prometheus: '"+hashPassword(t, "pw-for-this-test", 10)+"'\n")
	l, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	f, _ := l.(*net.TCPListener).File()
	l.Close()
	cmd := exec.Command("sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"`,
		filepath.Join(binDir, "metrics-proxy"), "--web.systemd-socket", "--web.config.file", web)
	cmd.ExtraFiles = []*os.File{f}
	out, _ := cmd.CombinedOutput()
	f.Close()
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "which is reachable from the network, needs TLS and authentication") {
		t.Fatalf("exit %d, output:\n%s", cmd.ProcessState.ExitCode(), out)
	}
}
