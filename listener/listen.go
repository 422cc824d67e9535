package listener

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// SocketMode is the permission of a unix socket the metrics server listens on:
// its owner and group may connect (metrics-proxy runs in that group), nobody else.
const SocketMode fs.FileMode = 0o660

// Listen opens listeners for s after RequireLoopback accepted it: one per IP
// literal the address stands for ("localhost" may give both 127.0.0.1 and ::1),
// never on a name, or one unix socket. If any of them fails, none stays open.
func Listen(ctx context.Context, s string, r Resolver) ([]net.Listener, error) {
	a, aps, err := RequireLoopback(ctx, s, r)
	if err != nil {
		return nil, err
	}
	if a.Unix != "" {
		l, err := listenUnix(a.Unix)
		if err != nil {
			return nil, err
		}
		return []net.Listener{l}, nil
	}
	var lc net.ListenConfig
	ls := make([]net.Listener, 0, len(aps))
	for _, ap := range aps {
		network := "tcp4"
		if ap.Addr().Is6() {
			network = "tcp6"
		}
		l, err := lc.Listen(ctx, network, ap.String())
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			return nil, fmt.Errorf("listen on %s (from %s): %w", ap, s, err)
		}
		ls = append(ls, l)
	}
	return ls, nil
}

// listenUnix listens on path with SocketMode. The socket is created under a
// temporary name, given its mode, and only then renamed into place, so there is
// no moment when the path accepts connections with the default permissions.
func listenUnix(path string) (net.Listener, error) {
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-"+strconv.Itoa(os.Getpid()))
	_ = os.Remove(tmp)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on unix socket %s: %w", path, err)
	}
	l.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, SocketMode); err != nil {
		l.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("set mode %o on unix socket %s: %w", SocketMode, path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		l.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("move unix socket into place at %s: %w", path, err)
	}
	return &unixListener{UnixListener: l, path: path}, nil
}

// removeStaleSocket removes a socket file left behind by a process that is gone,
// and refuses when a live process still serves on it or the path is not a socket.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("unix socket %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("unix socket %s: the path exists and is not a socket; remove it or choose another path", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("unix socket %s: another process is serving on it; stop it or choose another path", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("unix socket %s: cannot tell whether it is still in use: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale unix socket %s: %w", path, err)
	}
	return nil
}

// unixListener is a unix socket listener known by its final path: its Addr
// names that path, not the temporary name it was created under, and it
// removes the socket file there when closed.
type unixListener struct {
	*net.UnixListener
	path string
}

// Addr is the socket's final path, where clients connect.
func (l *unixListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	if rerr := os.Remove(l.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
		err = rerr
	}
	return err
}
