package listener

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestListenLoopbackTCP(t *testing.T) {
	ls, err := Listen(context.Background(), "127.0.0.1:0", hosts)
	if err != nil {
		t.Fatal(err)
	}
	defer ls[0].Close()
	if len(ls) != 1 || !strings.HasPrefix(ls[0].Addr().String(), "127.0.0.1:") {
		t.Fatalf("listeners = %v", ls)
	}
}

func TestListenRefusesBeforeOpeningAnything(t *testing.T) {
	for _, addr := range []string{":0", "0.0.0.0:0", "[::]:0", "192.0.2.1:0"} {
		ls, err := Listen(context.Background(), addr, hosts)
		if err == nil || !strings.Contains(err.Error(), "loopback") || ls != nil {
			t.Errorf("Listen(%q) = %v, %v; want a loopback refusal", addr, ls, err)
		}
	}
}

func TestListenUnixSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metrics.sock")
	ls, err := Listen(context.Background(), "unix:"+path, hosts)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != SocketMode {
		t.Fatalf("socket mode = %o, want %o", fi.Mode().Perm(), SocketMode)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary socket left behind: %v", entries)
	}
	// The listener is known by its final path, not the temporary name it
	// was created under: that is what the "listening" line names.
	if a := ls[0].Addr(); a.Network() != "unix" || a.String() != path {
		t.Fatalf("Addr() = %s:%s, want unix:%s", a.Network(), a, path)
	}

	// A second server on the same live socket is refused.
	if _, err := Listen(context.Background(), "unix:"+path, hosts); err == nil ||
		!strings.Contains(err.Error(), "another process is serving on it") {
		t.Fatalf("second listen: %v", err)
	}
	ls[0].Close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("socket file not removed on close: %v", err)
	}
}

func TestListenUnixReplacesStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metrics.sock")
	// A socket file whose server is gone, as after a crash.
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("stale socket missing: %v", err)
	}
	ls, err := Listen(context.Background(), "unix:"+path, hosts)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	ls[0].Close()
}

func TestListenUnixRefusesToReplaceAFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Listen(context.Background(), "unix:"+path, hosts)
	if err == nil || !strings.Contains(err.Error(), "the path exists and is not a socket") {
		t.Fatalf("got %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "keep me" {
		t.Fatalf("file was touched: %q", b)
	}
}
