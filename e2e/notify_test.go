package e2e

// The units are Type=notify: both binaries tell systemd READY=1 once they
// listen with their config loaded, RELOADING=1 (with MONOTONIC_USEC=) and
// READY=1 around a SIGHUP reload, and STOPPING=1 at shutdown (package
// sdnotify). These tests play systemd's notification socket and check the
// exact datagrams, in order. That READY=1 comes only once the port serves is
// checked by connecting the moment it arrives, never by waiting.
//
// They also start metrics-proxy the way an enabled metrics-proxy.socket does
// without its drop-in: a listening socket passed as fd 3 (LISTEN_FDS=1,
// LISTEN_PID the proxy's pid) while the flags still name --web.listen-address.

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeNotify is systemd's notification socket, as $NOTIFY_SOCKET names it
// to a Type=notify service.
type fakeNotify struct {
	t    *testing.T
	conn *net.UnixConn
	Path string
}

func newFakeNotify(t *testing.T) *fakeNotify {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &fakeNotify{t: t, conn: c, Path: path}
}

// env is cmd's environment with $NOTIFY_SOCKET naming n.
func (n *fakeNotify) env() []string {
	return append(os.Environ(), "NOTIFY_SOCKET="+n.Path)
}

// next is the next datagram p sent. The deadline only keeps a broken binary
// from hanging the test; p's exit ends the wait at once.
func (n *fakeNotify) next(p *proc) string {
	n.t.Helper()
	type got struct {
		s   string
		err error
	}
	ch := make(chan got, 1)
	go func() {
		buf := make([]byte, 4096)
		if err := n.conn.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
			ch <- got{err: err}
			return
		}
		k, err := n.conn.Read(buf)
		ch <- got{string(buf[:k]), err}
	}()
	select {
	case g := <-ch:
		if g.err != nil {
			n.t.Fatalf("no datagram on the notification socket: %v; log:\n%s", g.err, p.Logs())
		}
		return g.s
	case <-p.done:
		// It may have sent something before exiting.
		select {
		case g := <-ch:
			if g.err == nil {
				return g.s
			}
		case <-time.After(time.Second):
		}
		n.t.Fatalf("%s exited (%v) without the datagram; log:\n%s", filepath.Base(p.cmd.Path), p.err, p.Logs())
	}
	return ""
}

// expect reads the next datagram and fails unless it is want.
func (n *fakeNotify) expect(p *proc, want string) {
	n.t.Helper()
	if got := n.next(p); got != want {
		n.t.Fatalf("datagram %q, want %q; log:\n%s", got, want, p.Logs())
	}
}

// expectReloading reads a RELOADING=1 datagram and checks that its
// MONOTONIC_USEC= lies between CLOCK_MONOTONIC before the signal and now.
func (n *fakeNotify) expectReloading(p *proc, before time.Duration) {
	n.t.Helper()
	got := n.next(p)
	after := monotonic(n.t)
	m := regexp.MustCompile(`\ARELOADING=1\nMONOTONIC_USEC=([0-9]+)\z`).FindStringSubmatch(got)
	if m == nil {
		n.t.Fatalf("datagram %q, want RELOADING=1\\nMONOTONIC_USEC=<µs>; log:\n%s", got, p.Logs())
	}
	usec, _ := strconv.ParseInt(m[1], 10, 64)
	if usec < before.Microseconds() || usec > after.Microseconds() {
		n.t.Fatalf("MONOTONIC_USEC=%d is not CLOCK_MONOTONIC at the reload (between %d and %d)", usec, before.Microseconds(), after.Microseconds())
	}
}

// none fails if any datagram is waiting (checked without waiting: call it
// once the process has exited).
func (n *fakeNotify) none() {
	n.t.Helper()
	rc, err := n.conn.SyscallConn()
	if err != nil {
		n.t.Fatal(err)
	}
	buf := make([]byte, 4096)
	var k int
	var rerr error
	if err := rc.Read(func(fd uintptr) bool {
		k, _, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
		return true
	}); err != nil {
		n.t.Fatal(err)
	}
	if rerr == nil {
		n.t.Fatalf("unexpected datagram %q", buf[:k])
	}
	if !errors.Is(rerr, unix.EAGAIN) {
		n.t.Fatalf("reading the notification socket: %v", rerr)
	}
}

func monotonic(t *testing.T) time.Duration {
	t.Helper()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ts.Nano())
}

// sendSignal sends sig to p.
func sendSignal(t *testing.T, p *proc, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// scrapeOnce is one authenticated GET of /metrics through p, which must
// answer 200 with the runner's families at once: no retries.
func scrapeOnce(t *testing.T, p *proxy) {
	t.Helper()
	r, err := try(p.client(""), "GET", p.URL+"/metrics", authHeader(p.User, p.Password))
	if err != nil {
		t.Fatalf("GET %s/metrics: %v; log:\n%s", p.URL, err, p.Logs())
	}
	if r.Status != 200 || !strings.Contains(r.Body, "ci_runner_version_info{") {
		t.Fatalf("GET %s/metrics: %d\n%s", p.URL, r.Status, r.Body)
	}
}

// TestNotifyProxy: READY=1 once the proxy serves (a scrape sent the moment
// it arrives succeeds), RELOADING=1 and READY=1 around each SIGHUP, whether
// the new config is taken or refused, STOPPING=1 at SIGTERM, and nothing
// else.
func TestNotifyProxy(t *testing.T) {
	_, runnerAddr := startRunner(t, "concurrent = 1\n", "--metrics-server", "127.0.0.1:0")
	k := newPKI(t)
	web := filepath.Join(k.Dir, "web.yml")
	writeFile(t, web, tlsBlock(k)+usersBlock(defaultUser, defaultHash(t)))
	sd := newFakeNotify(t)
	addr := freeAddr(t)
	cmd := exec.Command(filepath.Join(binDir, "metrics-proxy"), "--web.listen-address", addr,
		"--web.config.file", web, "--upstream.url", "http://"+runnerAddr)
	cmd.Env = sd.env()
	p := &proxy{proc: startCmd(t, cmd), PKI: k, Addr: addr, URL: "https://" + addr, WebConfig: web, User: defaultUser, Password: defaultPassword}

	sd.expect(p.proc, "READY=1")
	scrapeOnce(t, p)

	before := monotonic(t)
	sendSignal(t, p.proc, syscall.SIGHUP)
	sd.expectReloading(p.proc, before)
	sd.expect(p.proc, "READY=1")
	p.waitLog(`msg="SIGHUP: web config reloaded"`)

	// A broken config is refused, and the reload still ends with READY=1:
	// the last good config serves.
	writeFile(t, web, "tls_server_config: [\n")
	before = monotonic(t)
	sendSignal(t, p.proc, syscall.SIGHUP)
	sd.expectReloading(p.proc, before)
	sd.expect(p.proc, "READY=1")
	scrapeOnce(t, p)

	sendSignal(t, p.proc, syscall.SIGTERM)
	sd.expect(p.proc, "STOPPING=1")
	if code := p.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM; log:\n%s", code, p.Logs())
	}
	sd.none()
}

// TestNotifyRunner: READY=1 once the metrics server serves on its unix
// socket, whose final path the "listening" line names; RELOADING=1 and
// READY=1 around a SIGHUP that moves the server to TCP, which serves when
// READY=1 arrives; STOPPING=1 at SIGQUIT, and nothing else.
func TestNotifyRunner(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "metrics.sock")
	cfg := filepath.Join(dir, "config.toml")
	writeFile(t, cfg, "concurrent = 1\nmetrics_server = \"unix:"+sock+"\"\n")
	sd := newFakeNotify(t)
	cmd := exec.Command(filepath.Join(binDir, "alloy-runner"), "run", "--config", cfg)
	cmd.Env = sd.env()
	p := startCmd(t, cmd)

	sd.expect(p, "READY=1")
	unixClient := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	if code, body := httpGet(t, unixClient, "http://localhost/metrics", nil); code != 200 || !strings.Contains(body, "ci_runner_version_info{") {
		t.Fatalf("metrics on %s at READY=1: %d\n%s", sock, code, body)
	}
	if got := p.waitLog(`msg="metrics server listening" addr=(\S+)`); got != "unix:"+sock {
		t.Fatalf("the listening line names %s, want unix:%s (the final path, not the temporary one)", got, sock)
	}

	addr := freeAddr(t)
	writeFile(t, cfg, "concurrent = 1\nmetrics_server = \""+addr+"\"\n")
	before := monotonic(t)
	sendSignal(t, p, syscall.SIGHUP)
	sd.expectReloading(p, before)
	sd.expect(p, "READY=1")
	if code, _ := httpGet(t, http.DefaultClient, "http://"+addr+"/metrics", nil); code != 200 {
		t.Fatalf("metrics on %s at the READY=1 after the reload: %d; log:\n%s", addr, code, p.Logs())
	}

	sendSignal(t, p, syscall.SIGQUIT)
	sd.expect(p, "STOPPING=1")
	if code := p.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGQUIT; log:\n%s", code, p.Logs())
	}
	sd.none()
}

// passSocket is metrics-proxy with args, handed the listener l as systemd
// hands a socket unit's: fd 3, LISTEN_FDS=1 and LISTEN_PID its own pid
// (sh's $$ is the pid metrics-proxy keeps after exec), without
// --web.systemd-socket. l is closed here; the proxy holds the only copy once
// the returned file is closed after the start.
func passSocket(t *testing.T, l net.Listener, args ...string) (*exec.Cmd, *os.File) {
	t.Helper()
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	cmd := exec.Command("sh", append([]string{"-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"`,
		filepath.Join(binDir, "metrics-proxy")}, args...)...)
	cmd.ExtraFiles = []*os.File{f}
	return cmd, f
}

// metrics-proxy.socket enabled without its drop-in: systemd holds the port
// and passes it, while the unit still says --web.listen-address for the same
// port. The proxy serves on the passed socket (binding that address again
// would fail: "address already in use"), says so, and is ready only then.
func TestProxySystemdSocketWithoutFlag(t *testing.T) {
	_, runnerAddr := startRunner(t, "concurrent = 1\n", "--metrics-server", "127.0.0.1:0")
	k := newPKI(t)
	web := filepath.Join(k.Dir, "web.yml")
	writeFile(t, web, tlsBlock(k)+usersBlock(defaultUser, defaultHash(t)))
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	sd := newFakeNotify(t)
	cmd, f := passSocket(t, l, "--web.listen-address", addr, "--web.config.file", web, "--upstream.url", "http://"+runnerAddr)
	cmd.Env = sd.env()
	p := &proxy{proc: startCmd(t, cmd), PKI: k, Addr: addr, URL: "https://" + addr, WebConfig: web, User: defaultUser, Password: defaultPassword}
	f.Close()

	sd.expect(p.proc, "READY=1")
	scrapeOnce(t, p)
	p.waitLog(`msg=listening address=` + regexp.QuoteMeta(addr) + ` `)
	line := p.waitLog(`(?m)^(level=warn .*msg="systemd passed listening sockets.*)$`)
	for _, want := range []string{
		`msg="systemd passed listening sockets (metrics-proxy.socket is enabled): serving on them, not on --web.listen-address; install the drop-in socket-activation.conf (--web.systemd-socket) to say so, or disable metrics-proxy.socket to listen on --web.listen-address"`,
		` sockets=` + addr + ` `,
		` not_listening_on=` + addr,
	} {
		if !strings.Contains(line, want) {
			t.Errorf("warning %q lacks %q", line, want)
		}
	}
	if strings.Contains(p.Logs(), "address already in use") {
		t.Errorf("the proxy tried to bind the passed port:\n%s", p.Logs())
	}
}

// A passed socket bound to every interface is a public door, flag or not:
// without TLS the proxy refuses to start with the door rule's message, and
// never tells systemd it is ready.
func TestProxySystemdSocketWithoutFlagPublicDoorRule(t *testing.T) {
	web := filepath.Join(t.TempDir(), "web.yml")
	writeFile(t, web, usersBlock(defaultUser, defaultHash(t)))
	l, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	public := l.Addr().String()
	sd := newFakeNotify(t)
	cmd, f := passSocket(t, l, "--web.listen-address", freeAddr(t), "--web.config.file", web)
	defer f.Close()
	cmd.Env = sd.env()
	var out bytes.Buffer
	code := execute(t, 15*time.Second, cmd, "", &out, &out)
	if code != 1 {
		t.Fatalf("exit %d, output:\n%s", code, out.String())
	}
	wantProblems(t, "serve", out.String(), problem{"tls_server_config", "listening on " + public + ", which is reachable from the network, needs TLS and authentication"})
	if !strings.Contains(out.String(), `msg="systemd passed listening sockets`) {
		t.Errorf("no line saying the passed socket is used:\n%s", out.String())
	}
	sd.none()
}
