package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/time/rate"

	"github.com/alloyci/hardened-runner/admission"
	"github.com/alloyci/hardened-runner/auth"
	"github.com/alloyci/hardened-runner/listener"
	"github.com/alloyci/hardened-runner/proxy"
	"github.com/alloyci/hardened-runner/webconfig"
)

// maxStreams bounds concurrent HTTP/2 streams per connection.
const maxStreams = 8

// serveConfig holds the serve flags.
type serveConfig struct {
	web               *web.FlagConfig
	upstream          string
	upstreamTimeout   time.Duration
	maxResponseBytes  int64
	allowedPaths      []string
	readHeaderTimeout time.Duration
	handshakeTimeout  time.Duration
	idleTimeout       time.Duration
	maxHeaderBytes    int
	maxConnections    int
	maxPerSource      int
	handshakeRate     float64
	upstreamSlots     int
	upstreamQueue     int
	bcryptWorkers     int
	throttleDelay     time.Duration
}

func serve(logger log.Logger, s serveConfig) int {
	fail := func(msg string, err error) int {
		level.Error(logger).Log("msg", msg, "err", err)
		return 1
	}
	level.Info(logger).Log("msg", "starting metrics-proxy", "version", version.Info(), "build_context", version.BuildContext())

	ls, err := listen(s.web)
	if err != nil {
		return fail("cannot listen", err)
	}
	closeAll := func() {
		for _, l := range ls {
			l.Close()
		}
	}
	var public []string
	for _, l := range ls {
		if !isLoopback(l.Addr()) {
			public = append(public, l.Addr().String())
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		versioncollector.NewCollector("metrics_proxy"),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	handshakeErrors := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "metrics_proxy_tls_handshake_errors_total",
		Help: "TLS handshakes that failed or timed out.",
	})
	reg.MustRegister(handshakeErrors)

	verifier, err := auth.NewVerifier(auth.Options{
		Logger:     log.With(logger, "component", "auth"),
		Registerer: reg,
		Workers:    s.bcryptWorkers,
	})
	if err != nil {
		closeAll()
		return fail("cannot set up authentication", err)
	}

	cfgFile := *s.web.WebConfigFile
	var store *webconfig.Store
	var current func() *webconfig.Config
	if cfgFile == "" {
		if len(public) > 0 {
			closeAll()
			return fail("refusing to start", publicDoorError(public, "no --web.config.file was given"))
		}
		none := &webconfig.Config{Web: &web.Config{}}
		current = func() *webconfig.Config { return none }
	} else {
		store, err = webconfig.NewStore(cfgFile, webconfig.StoreOptions{
			Logger:     log.With(logger, "component", "web-config"),
			Registerer: reg,
			Accept:     publicDoorPolicy(public, cfgFile),
			OnChange:   func(c *webconfig.Config) { verifier.SetUsers(c.Users) },
		})
		if err != nil {
			closeAll()
			return fail("refusing to start", err)
		}
		current = store.Current
	}
	if !current().TLSEnabled() {
		level.Warn(logger).Log("msg", "serving plain HTTP on loopback only: fine for tests and demos, use TLS for anything else")
	}
	verifier.SetUsers(current().Users)
	if !current().HasUsers() && !current().VerifiesClientCerts() {
		level.Warn(logger).Log("msg", "no authentication configured: anyone who can reach the loopback listener reads the metrics")
	}

	gate, err := admission.New(admission.Options{
		MaxConns:            s.maxConnections,
		MaxPerSource:        s.maxPerSource,
		HandshakeRate:       s.handshakeRate,
		FirstRequestTimeout: s.readHeaderTimeout,
		Logger:              log.With(logger, "component", "admission"),
		Registerer:          reg,
	})
	if err != nil {
		closeAll()
		return fail("invalid connection limits", err)
	}

	h, err := proxy.New(proxy.Options{
		Upstream:         s.upstream,
		AllowedPaths:     s.allowedPaths,
		Timeout:          s.upstreamTimeout,
		MaxResponseBytes: s.maxResponseBytes,
		UpstreamSlots:    s.upstreamSlots,
		UpstreamQueue:    s.upstreamQueue,
		ThrottleDelay:    throttleDelay(s.throttleDelay),
		RateLimiter:      func() *rate.Limiter { return current().Limiter },
		LoopbackHostsOnly: func() bool {
			c := current()
			return !c.HasUsers() && !c.VerifiesClientCerts()
		},
		Authorizer: authorizer{verifier},
		Logger:     log.With(logger, "component", "proxy"),
		Registerer: reg,
		Gatherer:   reg,
	})
	if err != nil {
		closeAll()
		return fail("invalid proxy flags", err)
	}

	srv := &http.Server{
		Handler:                      withConfiguredHeaders(h, current),
		ReadHeaderTimeout:            s.readHeaderTimeout,
		ReadTimeout:                  s.readHeaderTimeout + 10*time.Second,
		WriteTimeout:                 s.upstreamTimeout + 30*time.Second,
		IdleTimeout:                  s.idleTimeout,
		MaxHeaderBytes:               s.maxHeaderBytes,
		DisableGeneralOptionsHandler: true, // OPTIONS * must get the proxy's 405, not net/http's 200
		ConnContext:                  admission.ConnContext,
		ConnState:                    admission.ConnState,
		ErrorLog:                     stdlog.New(log.NewStdlibAdapter(level.Debug(log.With(logger, "component", "http"))), "", 0),
	}
	// Few streams per HTTP/2 connection: each request holds a goroutine (a
	// throttled one for --web.throttle-delay), and a scraper needs one.
	// Requests have no body, so the smallest receive windows and frames
	// serve them, and bound what each connection can make the proxy hold.
	srv.HTTP2 = &http.HTTP2Config{
		MaxConcurrentStreams:          maxStreams,
		MaxReadFrameSize:              16 << 10,
		MaxReceiveBufferPerConnection: 64 << 10,
		MaxReceiveBufferPerStream:     16 << 10,
		MaxDecoderHeaderTableSize:     4 << 10,
		MaxEncoderHeaderTableSize:     4 << 10,
		WriteByteTimeout:              s.readHeaderTimeout,
	}
	if !current().Web.HTTPConfig.HTTP2 || !current().TLSEnabled() {
		srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, len(ls))
	for _, l := range ls {
		l = gate.Listen(l)
		if current().TLSEnabled() {
			l = listener.NewTLS(l, listener.TLSOptions{
				Config:           store.ServerTLSConfig(),
				HandshakeTimeout: s.handshakeTimeout,
				OnHandshakeError: func(remote net.Addr, err error) {
					handshakeErrors.Inc()
					level.Debug(logger).Log("msg", "TLS handshake failed", "client", remote, "err", err)
				},
			})
		}
		level.Info(logger).Log("msg", "listening", "address", l.Addr().String(), "tls", current().TLSEnabled(),
			"auth", authMode(current()), "upstream", s.upstream)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serving on %s: %w", l.Addr(), err)
			}
		}()
	}
	if store != nil {
		go func() {
			if err := store.Watch(ctx); err != nil && ctx.Err() == nil {
				level.Warn(logger).Log("msg", "not watching the web config for changes; reload with SIGHUP", "err", err)
			}
		}()
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	code := 0
loop:
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				if store == nil {
					level.Info(logger).Log("msg", "SIGHUP: no --web.config.file to reload")
				} else if err := store.Reload(); err == nil {
					level.Info(logger).Log("msg", "SIGHUP: web config reloaded")
				}
				continue
			}
			level.Info(logger).Log("msg", "stopping", "signal", sig)
			break loop
		case err := <-errc:
			level.Error(logger).Log("msg", "server failed", "err", err)
			code = 1
			break loop
		}
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	h.CloseIdleConnections()
	wg.Wait()
	return code
}

// listen opens the listeners the exporter flags ask for: systemd's sockets, or
// one per --web.listen-address.
func listen(f *web.FlagConfig) ([]net.Listener, error) {
	if f.WebSystemdSocket != nil && *f.WebSystemdSocket {
		ls, err := activation.Listeners()
		if err != nil {
			return nil, fmt.Errorf("systemd socket activation: %w", err)
		}
		if len(ls) == 0 {
			return nil, errors.New("--web.systemd-socket was given but systemd passed no sockets: start the unit through metrics-proxy.socket")
		}
		return ls, nil
	}
	if len(*f.WebListenAddresses) == 0 {
		return nil, errors.New("no --web.listen-address given")
	}
	var ls []net.Listener
	for _, addr := range *f.WebListenAddresses {
		if strings.HasPrefix(addr, "vsock://") {
			return nil, fmt.Errorf("--web.listen-address %s: vsock listeners are not supported by metrics-proxy; use host:port", addr)
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			return nil, fmt.Errorf("listen on %s: %w", addr, err)
		}
		ls = append(ls, l)
	}
	return ls, nil
}

// isLoopback reports whether a listener can be reached only from this host.
func isLoopback(a net.Addr) bool {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	}
	return false
}

// publicDoorPolicy refuses a web config that would leave a public listener
// without TLS or without authentication, at start and at every reload, so a
// bad edit can never strip protection from a running door.
func publicDoorPolicy(public []string, file string) func(*webconfig.Config) error {
	return func(c *webconfig.Config) error {
		if len(public) == 0 {
			return nil
		}
		var missing []string
		if !c.TLSEnabled() {
			missing = append(missing, "TLS (tls_server_config with cert_file and key_file)")
		}
		if !c.HasUsers() && !c.VerifiesClientCerts() {
			missing = append(missing, "authentication (basic_auth_users, or client_auth_type: RequireAndVerifyClientCert with client_ca_file)")
		}
		if len(missing) == 0 {
			return nil
		}
		return publicDoorError(public, file+" has no "+strings.Join(missing, " and no "))
	}
}

func publicDoorError(public []string, why string) error {
	return fmt.Errorf("listening on %s, which is reachable from the network, needs TLS and authentication, but %s; "+
		"add them to the web config (see web-config.yml.example), or listen on loopback only (--web.listen-address=127.0.0.1:9253)",
		strings.Join(public, ", "), why)
}

// authMode names how clients authenticate, for the start-up log line.
func authMode(c *webconfig.Config) string {
	switch {
	case c.HasUsers() && c.VerifiesClientCerts():
		return "basic+client-cert"
	case c.HasUsers():
		return "basic"
	case c.VerifiesClientCerts():
		return "client-cert"
	}
	return "none"
}

// authorizer adapts auth.Verifier to the proxy's Authorizer interface.
type authorizer struct{ v *auth.Verifier }

func (a authorizer) Authorize(r *http.Request) proxy.Decision { return a.v.Authorize(r) }

// withConfiguredHeaders adds http_server_config.headers of the current config
// to every response.
func withConfiguredHeaders(next http.Handler, current func() *webconfig.Config) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range current().Web.HTTPConfig.Header {
			w.Header().Set(k, v)
		}
		next.ServeHTTP(w, r)
	})
}

// throttleDelay maps the flag to proxy.Options, where zero means the default.
func throttleDelay(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
