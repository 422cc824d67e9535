package door

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/alloyci/hardened-runner/internal/logtest"
	"github.com/alloyci/hardened-runner/webconfig"
)

// passed stands for activation.Listeners: the sockets systemd passed.
func passed(ls ...net.Listener) func() ([]net.Listener, error) {
	return func() ([]net.Listener, error) { return ls, nil }
}

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// metrics-proxy.socket enabled without the drop-in: systemd passes the port
// it holds, and the unit still says --web.listen-address for that same port.
// The proxy serves on the passed socket and binds nothing (here the address
// is taken, so a bind would fail), and says so.
func TestListenUsesPassedSocketsWithoutTheFlag(t *testing.T) {
	held := listenLoopback(t)
	inherited := listenLoopback(t)
	var logs logtest.Buffer
	ls, err := Listen(ListenOptions{
		Addresses: []string{held.Addr().String()},
		Passed:    passed(inherited),
		Logger:    log.NewLogfmtLogger(&logs),
	})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	if len(ls) != 1 || ls[0] != inherited {
		t.Fatalf("listeners %v, want only the passed one", ls)
	}
	want := `level=warn msg="systemd passed listening sockets (metrics-proxy.socket is enabled): serving on them, not on --web.listen-address; ` +
		`install the drop-in socket-activation.conf (--web.systemd-socket) to say so, or disable metrics-proxy.socket to listen on --web.listen-address" ` +
		`sockets=` + inherited.Addr().String() + ` not_listening_on=` + held.Addr().String() + "\n"
	if got := logs.String(); got != want {
		t.Fatalf("log:\n%s\nwant:\n%s", got, want)
	}
}

// With --web.systemd-socket the passed sockets are what was asked for:
// nothing to say.
func TestListenSystemdFlag(t *testing.T) {
	inherited := listenLoopback(t)
	var logs logtest.Buffer
	ls, err := Listen(ListenOptions{Addresses: []string{":9253"}, Systemd: true, Passed: passed(inherited), Logger: log.NewLogfmtLogger(&logs)})
	if err != nil || len(ls) != 1 || ls[0] != inherited {
		t.Fatalf("Listen = %v, %v", ls, err)
	}
	if logs.String() != "" {
		t.Fatalf("logged:\n%s", logs.String())
	}
	_, err = Listen(ListenOptions{Systemd: true, Passed: passed()})
	if err == nil || err.Error() != "--web.systemd-socket was given but systemd passed no sockets: start the unit through metrics-proxy.socket" {
		t.Fatalf("no sockets passed: %v", err)
	}
}

// Without passed sockets, the addresses are listened on.
func TestListenAddresses(t *testing.T) {
	ls, err := Listen(ListenOptions{Addresses: []string{"127.0.0.1:0", "127.0.0.1:0"}, Passed: passed()})
	if err != nil || len(ls) != 2 {
		t.Fatalf("Listen = %v, %v", ls, err)
	}
	closeAll(ls)
	if _, err := Listen(ListenOptions{Passed: passed()}); err == nil || err.Error() != "no --web.listen-address given" {
		t.Fatalf("no addresses: %v", err)
	}
	held := listenLoopback(t)
	_, err = Listen(ListenOptions{Addresses: []string{"127.0.0.1:0", held.Addr().String()}, Passed: passed()})
	if err == nil || !strings.HasPrefix(err.Error(), "listen on "+held.Addr().String()+": ") {
		t.Fatalf("taken address: %v", err)
	}
}

// A passed file descriptor that is not a listening stream socket (a
// ListenDatagram=, say) is refused, with or without the flag, and the other
// passed sockets are closed.
func TestListenRefusesWhatIsNotAListener(t *testing.T) {
	for _, flag := range []bool{false, true} {
		good, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		_, err = Listen(ListenOptions{Systemd: flag, Addresses: []string{"127.0.0.1:0"}, Passed: passed(good, nil)})
		want := "systemd passed file descriptor 4, which is not a listening stream socket: use ListenStream= in metrics-proxy.socket"
		if err == nil || err.Error() != want {
			t.Fatalf("systemd=%v: %v, want %q", flag, err, want)
		}
		if _, aerr := good.Accept(); !errors.Is(aerr, net.ErrClosed) {
			t.Fatalf("systemd=%v: the good passed socket was left open (%v)", flag, aerr)
		}
	}
}

// A passed socket bound to every interface is a public door: the door rule
// refuses it without TLS and authentication, as any listener.
func TestPassedPublicSocketNeedsTLS(t *testing.T) {
	l, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ls, err := Listen(ListenOptions{Addresses: []string{"127.0.0.1:9253"}, Passed: passed(l)})
	if err != nil {
		t.Fatal(err)
	}
	public := Public(ls)
	if len(public) != 1 || public[0] != l.Addr().String() {
		t.Fatalf("Public = %v, want [%s]", public, l.Addr())
	}
	err = RequireSafeDoor(public, nil)
	if err == nil || !strings.Contains(err.Error(), "listening on "+l.Addr().String()+", which is reachable from the network, needs TLS and authentication, but no --web.config.file was given") {
		t.Fatalf("door rule: %v", err)
	}
}

// Serve calls Stopping once, when it begins to shut down, and requests are
// served until then.
func TestServeTellsItIsStopping(t *testing.T) {
	l := listenLoopback(t)
	stopped := make(chan struct{}, 2)
	none := &webconfig.Config{Web: &web.Config{}}
	d, err := New(Options{
		Listeners: []net.Listener{l},
		Limits: Limits{ReadHeaderTimeout: 5 * time.Second, HandshakeTimeout: 5 * time.Second, IdleTimeout: time.Minute,
			UpstreamTimeout: 5 * time.Second, MaxHeaderBytes: 8192, MaxConnections: 16, MaxConnectionsPerSource: 16, HandshakeRatePerSource: 100},
		Handler:  http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		Config:   func() *webconfig.Config { return none },
		Stopping: func() { stopped <- struct{}{} },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	resp, err := http.Get("http://" + l.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if len(stopped) != 0 {
		t.Fatal("Stopping called while serving")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if len(stopped) != 1 {
		t.Fatalf("Stopping called %d times, want 1", len(stopped))
	}
}
