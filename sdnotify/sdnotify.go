// Package sdnotify tells systemd what a Type=notify service is doing
// (sd_notify(3)): ready, reloading, stopping.
//
// Both units are Type=notify with NotifyAccess=main. systemd counts a
// service as started only when it sends READY=1, which both binaries send
// once their listeners are open and their config is loaded, so `systemctl
// start` (and `enable --now`) returns only when the port answers and units
// ordered after it start only then. Around a reload (SIGHUP, from
// ExecReload=) they send RELOADING=1 with MONOTONIC_USEC=, the time of
// CLOCK_MONOTONIC that systemd 253 and later want with it (systemd 252
// ignores the field), then READY=1 once the new config is in force or was
// refused. At shutdown they send STOPPING=1.
//
// The datagrams are exactly "READY=1", "RELOADING=1\nMONOTONIC_USEC=<µs>"
// and "STOPPING=1", each on its own. Outside systemd (no $NOTIFY_SOCKET)
// every notification is dropped. A notification that cannot be sent is
// logged and changes nothing else: the service keeps serving.
//
// On systemd 252, `systemctl reload` waits for the READY=1 that ends a
// reload only when RELOADING=1 arrived before `kill -HUP` exited, which is
// usual but not certain; Type=notify-reload (systemd 253) closes that race,
// and 252 does not know it.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"golang.org/x/sys/unix"
)

// EnvSocket is the variable in which systemd names the notification socket.
const EnvSocket = "NOTIFY_SOCKET"

// writeTimeout bounds sending one datagram: systemd reads its socket at once,
// and a notification must never hold up serving or stopping.
const writeTimeout = 5 * time.Second

// Notifier sends the service's state to the service manager. A nil Notifier,
// or one without a socket, sends nothing.
type Notifier struct {
	socket    string
	monotonic func() time.Duration
	logger    log.Logger
}

// Options configure a Notifier.
type Options struct {
	// Socket is the notification socket, as $NOTIFY_SOCKET names it: a path,
	// or "@name" for the abstract namespace. Empty: not run by systemd
	// (or not as Type=notify), and nothing is sent.
	Socket string
	// Monotonic returns CLOCK_MONOTONIC, the clock of MONOTONIC_USEC=; nil
	// means the system's.
	Monotonic func() time.Duration
	// Logger receives a line for each notification that could not be sent.
	Logger log.Logger
}

// New returns a Notifier for o.Socket.
func New(o Options) *Notifier {
	if o.Monotonic == nil {
		o.Monotonic = Monotonic
	}
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	return &Notifier{socket: o.Socket, monotonic: o.Monotonic, logger: o.Logger}
}

// FromEnvironment returns the Notifier for the socket systemd named in
// $NOTIFY_SOCKET, one that sends nothing when it is unset. The variable stays
// set; the runner's jobs do not inherit it (package jobs passes on only the
// variables it lists), and NotifyAccess=main makes systemd ignore any other
// process that writes to the socket.
func FromEnvironment(logger log.Logger) *Notifier {
	return New(Options{Socket: os.Getenv(EnvSocket), Logger: logger})
}

// Enabled reports whether notifications go anywhere.
func (n *Notifier) Enabled() bool { return n != nil && n.socket != "" }

// Ready tells systemd the service is up (its listeners open, its config
// loaded), or that a reload ended.
func (n *Notifier) Ready() { n.notify(daemon.SdNotifyReady) }

// Reloading tells systemd a reload began; Ready must follow when it ends,
// whether the new config was taken or refused.
func (n *Notifier) Reloading() {
	if !n.Enabled() {
		return
	}
	n.notify(ReloadingState(n.monotonic()))
}

// Stopping tells systemd the service is shutting down.
func (n *Notifier) Stopping() { n.notify(daemon.SdNotifyStopping) }

// ReloadingState is the datagram that starts a reload begun at now
// (CLOCK_MONOTONIC): "RELOADING=1\nMONOTONIC_USEC=<µs>".
func ReloadingState(now time.Duration) string {
	return daemon.SdNotifyReloading + "\nMONOTONIC_USEC=" + strconv.FormatInt(now.Microseconds(), 10)
}

func (n *Notifier) notify(state string) {
	if err := n.Send(state); err != nil {
		level.Warn(n.logger).Log("msg", "cannot send the service's state to systemd, which may time out waiting for it: the unit must allow AF_UNIX sockets (RestrictAddressFamilies=), and $NOTIFY_SOCKET must name systemd's socket",
			"state", state, "err", err)
	}
}

// Send sends one datagram holding state to the socket; without a socket it
// does nothing.
func (n *Notifier) Send(state string) error {
	if !n.Enabled() {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify socket %s: %w", n.socket, err)
	}
	defer c.Close()
	if err := c.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return fmt.Errorf("sd_notify socket %s: %w", n.socket, err)
	}
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify socket %s: %w", n.socket, err)
	}
	return nil
}

// Monotonic reads CLOCK_MONOTONIC, the clock systemd compares MONOTONIC_USEC=
// with.
func Monotonic() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
