// Package door is metrics-proxy's serving side, the one door from the
// network: the sockets it listens on (its own, or systemd's), the connection
// gate in front of them (package admission), the TLS hand-off, the
// http.Server with its limits named, and the one rule for a door reachable
// from the network, RequireSafeDoor.
//
// A connection goes, in order, through: the Gate (per-source slots and
// handshake rate, before any TLS byte), the TLS handshake in its own
// goroutine under --web.tls-handshake-timeout (NewTLS), then the HTTP
// server, whose handler is the proxy. The server reports each connection to
// the Gate (admission.ConnContext, admission.ConnState), which closes those
// that never authenticate.
package door

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/alloyci/hardened-runner/admission"
	"github.com/alloyci/hardened-runner/listener"
	"github.com/alloyci/hardened-runner/ratelog"
	"github.com/alloyci/hardened-runner/webconfig"
)

// Limits of the HTTP server that are not flags: each is a bound a client
// cannot exceed, named here rather than written as bare numbers.
const (
	// maxStreams bounds concurrent HTTP/2 streams per connection: each
	// request holds a goroutine (a throttled one for --web.throttle-delay),
	// and a scraper needs one.
	maxStreams = 8
	// readSlack is how much longer than the header timeout a whole request
	// may take to read; requests have no body.
	readSlack = 10 * time.Second
	// writeSlack is how much longer than the upstream timeout an answer may
	// take to write.
	writeSlack = 30 * time.Second
	// h2FrameSize, h2ConnWindow, h2StreamWindow and h2HeaderTable size
	// HTTP/2 for bodiless GETs: the smallest frames and receive windows the
	// protocol allows, so a connection cannot make the proxy hold more.
	h2FrameSize    = 16 << 10
	h2ConnWindow   = 64 << 10
	h2StreamWindow = 16 << 10
	h2HeaderTable  = 4 << 10
	// stopGrace is how long requests in flight may finish at shutdown.
	stopGrace = 10 * time.Second
	// fdHeadroom is the file descriptors the proxy needs beside client
	// connections: listeners, upstream connections, the config files.
	fdHeadroom = 64
)

// ListenOptions say where the door listens.
type ListenOptions struct {
	// Addresses are the --web.listen-address values.
	Addresses []string
	// Systemd is --web.systemd-socket: the sockets systemd passed are
	// required, and the addresses are not used.
	Systemd bool
	// Passed returns the sockets systemd passed to this process (LISTEN_FDS
	// for LISTEN_PID), nil for a file descriptor that is not a listening
	// stream socket, and removes the variables from the environment. Nil
	// means activation.Listeners.
	Passed func() ([]net.Listener, error)
	// Logger receives the line that says passed sockets are used without
	// --web.systemd-socket.
	Logger log.Logger
}

// Listen opens the listeners the exporter flags ask for: the sockets systemd
// passed, or one per --web.listen-address.
//
// Sockets systemd passed are used whenever there are any, with or without
// --web.systemd-socket: when metrics-proxy.socket is enabled, systemd holds
// the port and passes it to the service however the service was started,
// and binding the same port could only fail ("address already in use") while
// the socket accepts connections nobody serves. Without the flag that is
// logged, naming the addresses that are then not listened on. Either way
// the door rule applies to them as to any listener: the caller asks Public.
func Listen(o ListenOptions) ([]net.Listener, error) {
	if o.Passed == nil {
		o.Passed = activation.Listeners
	}
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	ls, err := o.Passed()
	if err != nil {
		closeAll(ls)
		return nil, fmt.Errorf("systemd socket activation: %w", err)
	}
	for i, l := range ls {
		if l == nil {
			closeAll(ls)
			return nil, fmt.Errorf("systemd passed file descriptor %d, which is not a listening stream socket: use ListenStream= in metrics-proxy.socket", 3+i)
		}
	}
	if len(ls) > 0 {
		if !o.Systemd {
			addrs := make([]string, len(ls))
			for i, l := range ls {
				addrs[i] = l.Addr().String()
			}
			level.Warn(o.Logger).Log("msg", "systemd passed listening sockets (metrics-proxy.socket is enabled): serving on them, not on --web.listen-address; "+
				"install the drop-in socket-activation.conf (--web.systemd-socket) to say so, or disable metrics-proxy.socket to listen on --web.listen-address",
				"sockets", strings.Join(addrs, ","), "not_listening_on", strings.Join(o.Addresses, ","))
		}
		return ls, nil
	}
	if o.Systemd {
		return nil, errors.New("--web.systemd-socket was given but systemd passed no sockets: start the unit through metrics-proxy.socket")
	}
	if len(o.Addresses) == 0 {
		return nil, errors.New("no --web.listen-address given")
	}
	for _, addr := range o.Addresses {
		if strings.HasPrefix(addr, "vsock://") {
			closeAll(ls)
			return nil, fmt.Errorf("--web.listen-address %s: vsock listeners are not supported by metrics-proxy; use host:port", addr)
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			closeAll(ls)
			return nil, fmt.Errorf("listen on %s: %w", addr, err)
		}
		ls = append(ls, l)
	}
	return ls, nil
}

func closeAll(ls []net.Listener) {
	for _, l := range ls {
		if l != nil {
			l.Close()
		}
	}
}

// Public returns the addresses of the listeners reachable from the network,
// for RequireSafeDoor.
func Public(ls []net.Listener) []string {
	var public []string
	for _, l := range ls {
		if !listener.IsLoopbackAddr(l.Addr()) {
			public = append(public, l.Addr().String())
		}
	}
	return public
}

// PublicAddresses returns the --web.listen-address values that would be
// reachable from the network, before anything listens (for check-config): a
// name counts as public unless everything it resolves to is loopback, and
// an address that does not resolve counts as public.
func PublicAddresses(ctx context.Context, addresses []string, r listener.Resolver) []string {
	var public []string
	for _, a := range addresses {
		if ok, err := listener.IsLoopback(ctx, a, "9253", r); err != nil || !ok {
			public = append(public, a)
		}
	}
	return public
}

// Limits are the server's flags.
type Limits struct {
	// ReadHeaderTimeout bounds reading request headers, and also the time a
	// new connection may go without a request that passes authentication.
	ReadHeaderTimeout time.Duration
	// HandshakeTimeout bounds each TLS handshake.
	HandshakeTimeout time.Duration
	// IdleTimeout closes idle keep-alive connections.
	IdleTimeout time.Duration
	// UpstreamTimeout is the proxy's upstream timeout; writing an answer may
	// take that long and some.
	UpstreamTimeout time.Duration
	// MaxHeaderBytes bounds a request's header block (431 beyond).
	MaxHeaderBytes int
	// MaxConnections, MaxConnectionsPerSource and HandshakeRatePerSource
	// configure the Gate (package admission).
	MaxConnections          int
	MaxConnectionsPerSource int
	HandshakeRatePerSource  float64
	// RefusalHold is how long a refusal may be held back before it is
	// written (--web.throttle-delay): an unauthenticated connection is
	// closed that long plus admission.DefaultRefusalGrace after a refusal.
	RefusalHold time.Duration
}

// Options configure a Door.
type Options struct {
	// Listeners are the sockets to serve, from Listen. The Door owns them.
	Listeners []net.Listener
	// Limits bound what clients may hold.
	Limits Limits
	// Handler answers requests (the proxy).
	Handler http.Handler
	// Config returns the web config in force, asked per request for its
	// headers; TLS and http2 are fixed at New.
	Config func() *webconfig.Config
	// TLS is the config that wraps the listeners (webconfig's dispatching
	// one, so a reload applies to the next handshake), or nil for plain
	// HTTP.
	TLS *tls.Config
	// Logger receives the door's lines; Registerer its metrics.
	Logger     log.Logger
	Registerer prometheus.Registerer
	// Stopping, if set, is called once when Serve begins to shut down,
	// before the requests in flight are let finish (the proxy tells systemd
	// STOPPING=1 there).
	Stopping func()
}

// Door serves the proxy on its listeners.
type Door struct {
	srv       *http.Server
	listeners []net.Listener
	logger    log.Logger
	stopping  func()
}

// New builds the Door: the Gate in front of each listener, then TLS when
// configured, then the HTTP server. On error it closes the listeners.
func New(o Options) (*Door, error) {
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	gate, err := admission.New(admission.Options{
		MaxConns:            o.Limits.MaxConnections,
		MaxPerSource:        o.Limits.MaxConnectionsPerSource,
		HandshakeRate:       o.Limits.HandshakeRatePerSource,
		FirstRequestTimeout: o.Limits.ReadHeaderTimeout,
		RefusalGrace:        admission.DefaultRefusalGrace + max(0, o.Limits.RefusalHold),
		Logger:              log.With(o.Logger, "component", "admission"),
		Registerer:          o.Registerer,
	})
	if err != nil {
		closeAll(o.Listeners)
		return nil, fmt.Errorf("invalid connection limits: %w", err)
	}
	handshakeErrors := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "metrics_proxy_tls_handshake_errors_total",
		Help: "TLS handshakes that failed or timed out.",
	})
	if o.Registerer != nil {
		if err := o.Registerer.Register(handshakeErrors); err != nil {
			closeAll(o.Listeners)
			return nil, fmt.Errorf("registering the door's metrics: %w", err)
		}
	}
	srv := &http.Server{
		Handler:                      withConfiguredHeaders(o.Handler, o.Config),
		ReadHeaderTimeout:            o.Limits.ReadHeaderTimeout,
		ReadTimeout:                  o.Limits.ReadHeaderTimeout + readSlack,
		WriteTimeout:                 o.Limits.UpstreamTimeout + writeSlack,
		IdleTimeout:                  o.Limits.IdleTimeout,
		MaxHeaderBytes:               o.Limits.MaxHeaderBytes,
		DisableGeneralOptionsHandler: true, // OPTIONS * must get the proxy's 405, not net/http's 200
		ConnContext:                  admission.ConnContext,
		ConnState:                    admission.ConnState,
		ErrorLog:                     stdlog.New(log.NewStdlibAdapter(level.Debug(log.With(o.Logger, "component", "http"))), "", 0),
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams:          maxStreams,
			MaxReadFrameSize:              h2FrameSize,
			MaxReceiveBufferPerConnection: h2ConnWindow,
			MaxReceiveBufferPerStream:     h2StreamWindow,
			MaxDecoderHeaderTableSize:     h2HeaderTable,
			MaxEncoderHeaderTableSize:     h2HeaderTable,
			WriteByteTimeout:              o.Limits.ReadHeaderTimeout,
		},
	}
	if o.TLS == nil || !o.Config().Web.HTTPConfig.HTTP2 {
		srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	}
	d := &Door{srv: srv, logger: o.Logger, stopping: o.Stopping}
	acceptLog := ratelog.New(o.Logger, "accept failure")
	var nofile syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile); err == nil && nofile.Cur < uint64(o.Limits.MaxConnections)+fdHeadroom {
		level.Warn(o.Logger).Log("msg", "the open-file limit is below --web.max-connections plus the proxy's own files: connections will fail before the table is full; raise LimitNOFILE or lower --web.max-connections",
			"nofile", nofile.Cur, "max_connections", o.Limits.MaxConnections)
	}
	for _, l := range o.Listeners {
		l = gate.Listen(l)
		if o.TLS != nil {
			l = NewTLS(l, TLSOptions{
				Config:           o.TLS,
				HandshakeTimeout: o.Limits.HandshakeTimeout,
				OnHandshakeError: func(remote net.Addr, err error) {
					handshakeErrors.Inc()
					level.Debug(o.Logger).Log("msg", "TLS handshake failed", "client", remote, "err", err)
				},
				OnAcceptError: func(err error) {
					level.Warn(acceptLog).Log("msg", "accepting a connection failed; backing off", "err", err)
				},
			})
		}
		d.listeners = append(d.listeners, l)
	}
	return d, nil
}

// Addrs returns the addresses the Door serves on.
func (d *Door) Addrs() []net.Addr {
	addrs := make([]net.Addr, len(d.listeners))
	for i, l := range d.listeners {
		addrs[i] = l.Addr()
	}
	return addrs
}

// Serve serves until ctx ends (then it shuts down, letting requests in
// flight finish for a few seconds) or a listener fails (then it returns
// that error).
func (d *Door) Serve(ctx context.Context) error {
	var wg sync.WaitGroup
	errc := make(chan error, len(d.listeners))
	for _, l := range d.listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serving on %s: %w", l.Addr(), err)
			}
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	if d.stopping != nil {
		d.stopping()
	}
	sctx, cancel := context.WithTimeout(context.Background(), stopGrace)
	defer cancel()
	if d.srv.Shutdown(sctx) != nil {
		d.srv.Close()
	}
	wg.Wait()
	return err
}

// withConfiguredHeaders adds http_server_config.headers of the config in
// force to every response.
func withConfiguredHeaders(next http.Handler, current func() *webconfig.Config) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range current().Web.HTTPConfig.Header {
			w.Header().Set(k, v)
		}
		next.ServeHTTP(w, r)
	})
}
