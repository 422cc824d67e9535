package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"golang.org/x/sys/unix"

	"github.com/alloyci/hardened-runner/internal/logtest"
)

// fakeSystemd is a notification socket as systemd holds it: a unixgram
// socket whose datagrams the test reads one by one.
type fakeSystemd struct {
	t    *testing.T
	conn *net.UnixConn
	addr string
}

func listenNotify(t *testing.T, addr string) *fakeSystemd {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &fakeSystemd{t: t, conn: c, addr: addr}
}

func newFakeSystemd(t *testing.T) *fakeSystemd {
	return listenNotify(t, filepath.Join(t.TempDir(), "notify"))
}

// next is the next datagram; the deadline only keeps a broken test from
// hanging.
func (f *fakeSystemd) next() string {
	f.t.Helper()
	buf := make([]byte, 4096)
	if err := f.conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		f.t.Fatal(err)
	}
	n, err := f.conn.Read(buf)
	if err != nil {
		f.t.Fatalf("no datagram: %v", err)
	}
	return string(buf[:n])
}

// pending is the number of datagrams waiting, read without waiting.
func (f *fakeSystemd) pending() int {
	f.t.Helper()
	rc, err := f.conn.SyscallConn()
	if err != nil {
		f.t.Fatal(err)
	}
	n := 0
	buf := make([]byte, 4096)
	for {
		got := false
		if err := rc.Read(func(fd uintptr) bool {
			_, _, rerr := unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
			got = rerr == nil
			return true
		}); err != nil {
			f.t.Fatal(err)
		}
		if !got {
			return n
		}
		n++
	}
}

// The life of a service: ready, a reload, stopping; each its own datagram,
// exactly as sd_notify(3) spells it.
func TestNotifierSendsEachStateAsOneDatagram(t *testing.T) {
	sd := newFakeSystemd(t)
	now := 1234567890 * time.Microsecond
	n := New(Options{Socket: sd.addr, Monotonic: func() time.Duration { return now }})
	if !n.Enabled() {
		t.Fatal("a notifier with a socket is not enabled")
	}
	n.Ready()
	n.Reloading()
	now += 5 * time.Second
	n.Ready()
	n.Reloading()
	n.Ready()
	n.Stopping()
	for i, want := range []string{
		"READY=1",
		"RELOADING=1\nMONOTONIC_USEC=1234567890",
		"READY=1",
		"RELOADING=1\nMONOTONIC_USEC=1239567890",
		"READY=1",
		"STOPPING=1",
	} {
		if got := sd.next(); got != want {
			t.Fatalf("datagram %d = %q, want %q", i+1, got, want)
		}
	}
	if p := sd.pending(); p != 0 {
		t.Fatalf("%d more datagrams, want none", p)
	}
}

// $NOTIFY_SOCKET may name a socket in the abstract namespace ("@...").
func TestNotifierAbstractSocket(t *testing.T) {
	sd := listenNotify(t, fmt.Sprintf("@alloy-sdnotify-test-%d-%d", os.Getpid(), time.Now().UnixNano()))
	New(Options{Socket: sd.addr}).Ready()
	if got := sd.next(); got != "READY=1" {
		t.Fatalf("got %q", got)
	}
}

// FromEnvironment takes the socket from $NOTIFY_SOCKET and leaves it set.
func TestFromEnvironment(t *testing.T) {
	sd := newFakeSystemd(t)
	t.Setenv(EnvSocket, sd.addr)
	n := FromEnvironment(log.NewNopLogger())
	n.Stopping()
	if got := sd.next(); got != "STOPPING=1" {
		t.Fatalf("got %q", got)
	}
	if os.Getenv(EnvSocket) != sd.addr {
		t.Fatalf("%s changed to %q", EnvSocket, os.Getenv(EnvSocket))
	}
}

// Outside systemd nothing is sent and nothing fails; a nil Notifier is the
// same.
func TestNotifierWithoutSocket(t *testing.T) {
	t.Setenv(EnvSocket, "")
	var logs logtest.Buffer
	for _, n := range []*Notifier{New(Options{Logger: log.NewLogfmtLogger(&logs)}), FromEnvironment(log.NewLogfmtLogger(&logs)), nil} {
		if n.Enabled() {
			t.Fatal("enabled without a socket")
		}
		n.Ready()
		n.Reloading()
		n.Stopping()
		if err := n.Send("READY=1"); err != nil {
			t.Fatalf("Send without a socket: %v", err)
		}
	}
	if logs.String() != "" {
		t.Fatalf("logged without a socket:\n%s", logs.String())
	}
}

// A socket that is gone (or that the sandbox forbids) is logged, naming the
// state and what to check, and the service goes on.
func TestNotifierLogsWhatItCannotSend(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "gone")
	if err := New(Options{Socket: missing}).Send("READY=1"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Send to a missing socket: %v", err)
	}
	var logs logtest.Buffer
	n := New(Options{Socket: missing, Logger: log.NewLogfmtLogger(&logs)})
	n.Ready()
	line := logs.String()
	for _, want := range []string{
		`level=warn`,
		`msg="cannot send the service's state to systemd, which may time out waiting for it: the unit must allow AF_UNIX sockets (RestrictAddressFamilies=), and $NOTIFY_SOCKET must name systemd's socket"`,
		`state="READY=1"`,
		`err="sd_notify socket ` + missing + `: dial unixgram ` + missing + `: connect: no such file or directory"`,
	} {
		if !strings.Contains(line, want) {
			t.Errorf("log %q lacks %q", line, want)
		}
	}
}

// The default clock is CLOCK_MONOTONIC: never zero on a running system, and
// never going back.
func TestMonotonic(t *testing.T) {
	a := Monotonic()
	b := Monotonic()
	if a <= 0 || b < a {
		t.Fatalf("Monotonic() = %v then %v", a, b)
	}
	if got := ReloadingState(1500 * time.Microsecond); got != "RELOADING=1\nMONOTONIC_USEC=1500" {
		t.Fatalf("ReloadingState = %q", got)
	}
	if !regexp.MustCompile(`^RELOADING=1\nMONOTONIC_USEC=[1-9][0-9]*$`).MatchString(ReloadingState(Monotonic())) {
		t.Fatalf("ReloadingState(Monotonic()) = %q", ReloadingState(Monotonic()))
	}
}
