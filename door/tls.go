package door

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"
)

// TLSOptions configure NewTLS.
type TLSOptions struct {
	// Config is the server TLS configuration (typically one whose
	// GetConfigForClient returns the current one after a reload).
	Config *tls.Config
	// HandshakeTimeout bounds each handshake: a client that opens a connection
	// and never finishes the handshake holds it no longer.
	HandshakeTimeout time.Duration
	// OnHandshakeError, when set, is told of every failed handshake (for a
	// counter, or a rate-limited log line).
	OnHandshakeError func(remote net.Addr, err error)
	// OnAcceptError, when set, is told of every failed accept that the
	// loop survives (out of file descriptors), before it backs off.
	OnAcceptError func(err error)
}

// NewTLS wraps l so that Accept returns only connections whose TLS handshake
// has completed, each handshake running in its own goroutine under its own
// deadline. A slow or silent client therefore never delays the others, and the
// HTTP server gets a *tls.Conn ready to use (ALPN negotiated). Bound the number
// of connections (handshakes included) by wrapping l with a limit first.
func NewTLS(l net.Listener, o TLSOptions) net.Listener {
	ctx, cancel := context.WithCancel(context.Background())
	tl := &tlsListener{Listener: l, opts: o, conns: make(chan net.Conn), ctx: ctx, cancel: cancel}
	go tl.acceptLoop()
	return tl
}

type tlsListener struct {
	net.Listener
	opts   TLSOptions
	conns  chan net.Conn
	ctx    context.Context
	cancel context.CancelFunc

	once sync.Once
	mu   sync.Mutex
	err  error // the error that ended acceptLoop
}

func (l *tlsListener) acceptLoop() {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) && l.ctx.Err() == nil {
				// Out of file descriptors (EMFILE is no timeout) and the
				// like: back off and go on, as net/http does, rather than
				// end the door for good.
				if l.opts.OnAcceptError != nil {
					l.opts.OnAcceptError(err)
				}
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			l.mu.Lock()
			l.err = err
			l.mu.Unlock()
			l.cancel()
			return
		}
		delay = 0
		go l.handshake(c)
	}
}

func (l *tlsListener) handshake(c net.Conn) {
	tc := tls.Server(c, l.opts.Config)
	// The time limit is a deadline on the connection rather than a context:
	// crypto/tls closes the connection itself when a context ends, so the
	// client could see the close before the failure is reported; with a
	// deadline the failure is reported first, then the connection closed.
	// The listener's context only abandons handshakes when it is closed.
	if l.opts.HandshakeTimeout > 0 {
		c.SetDeadline(time.Now().Add(l.opts.HandshakeTimeout))
	}
	if err := tc.HandshakeContext(l.ctx); err != nil {
		if l.opts.OnHandshakeError != nil && l.ctx.Err() == nil {
			l.opts.OnHandshakeError(c.RemoteAddr(), err)
		}
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	select {
	case l.conns <- tc:
	case <-l.ctx.Done():
		tc.Close()
	}
}

// Accept returns the next connection whose handshake succeeded.
func (l *tlsListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.ctx.Done():
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.err != nil {
			return nil, l.err
		}
		return nil, net.ErrClosed
	}
}

// Close stops accepting; handshakes in progress are abandoned.
func (l *tlsListener) Close() error {
	var err error
	l.once.Do(func() {
		l.cancel()
		err = l.Listener.Close()
	})
	return err
}
