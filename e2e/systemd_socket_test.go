package e2e

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// socketActivated is metrics-proxy --web.systemd-socket with args, handed
// the listener l as systemd hands it: fd 3, LISTEN_FDS=1 and LISTEN_PID its
// own pid (sh's $$ is the pid metrics-proxy keeps after exec). Close the
// returned file once the command started.
func socketActivated(t *testing.T, l net.Listener, args ...string) (*exec.Cmd, *os.File) {
	t.Helper()
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	cmd := exec.Command("sh", append([]string{"-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"`,
		filepath.Join(binDir, "metrics-proxy"), "--web.systemd-socket"}, args...)...)
	cmd.ExtraFiles = []*os.File{f}
	return cmd, f
}

// --web.systemd-socket: the proxy serves on the socket systemd hands it, as
// metrics-proxy.socket does, and names it in its log.
func TestProxySystemdSocketActivation(t *testing.T) {
	s := startStack(t, proxyOptions{}) // for its runner, PKI and web config
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	cmd, f := socketActivated(t, l, "--web.config.file", s.WebConfig, "--upstream.url", s.RunnerURL)
	p := &proxy{proc: startCmd(t, cmd), PKI: s.PKI, Addr: addr, URL: "https://" + addr, User: s.User, Password: s.Password}
	f.Close()

	c := p.client("")
	var code int
	for range 100 {
		if r, err := try(c, "GET", p.URL+"/metrics", authHeader(p.User, p.Password)); err == nil {
			code = r.Status
			if code == 200 && strings.Contains(r.Body, "ci_runner_version_info{") {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code != 200 {
		t.Fatalf("scrape through the systemd socket: %d; log:\n%s", code, p.Logs())
	}
	if !strings.Contains(p.Logs(), `msg=listening address=`+addr) {
		t.Fatalf("log does not name the inherited socket:\n%s", p.Logs())
	}
}

// A socket systemd binds to every interface is a public door like any other:
// without TLS the proxy refuses to serve on it. (Nothing is sent to it.)
func TestProxySystemdSocketPublicDoorRule(t *testing.T) {
	web := filepath.Join(t.TempDir(), "web.yml")
	writeFile(t, web, usersBlock(defaultUser, defaultHash(t)))
	l, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	cmd, f := socketActivated(t, l, "--web.config.file", web)
	defer f.Close()
	code, out := runCmd(t, 15*time.Second, cmd)
	if code != 1 {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
	wantProblems(t, "serve", out, problem{"tls_server_config", "which is reachable from the network, needs TLS and authentication"})
}
