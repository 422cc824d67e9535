package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/time/rate"

	"github.com/alloyci/hardened-runner/access"
	"github.com/alloyci/hardened-runner/auth"
	"github.com/alloyci/hardened-runner/door"
	"github.com/alloyci/hardened-runner/proxy"
	"github.com/alloyci/hardened-runner/routes"
	"github.com/alloyci/hardened-runner/sdnotify"
	"github.com/alloyci/hardened-runner/webconfig"
)

// serveConfig holds the serve flags.
type serveConfig struct {
	web               *web.FlagConfig
	limits            door.Limits
	upstream          string
	routesFile        string
	healthWithoutAuth bool
	maxResponseBytes  int64
	allowedPaths      []string
	upstreamSlots     int
	upstreamQueue     int
	bcryptWorkers     int
	throttleDelay     time.Duration
}

// serve wires the packages together: the door's listeners, the web config
// store (which asks the door rule at every reload), the verifier, the proxy
// handler and the door; SIGHUP reloads, SIGTERM and SIGINT stop. systemd
// hears of each (package sdnotify).
func serve(logger log.Logger, s serveConfig) int {
	fail := func(msg string, err error) int {
		level.Error(logger).Log("msg", msg, "err", err)
		return 1
	}
	level.Info(logger).Log("msg", "starting metrics-proxy", "version", version.Info(), "build_context", version.BuildContext())

	notifier := sdnotify.FromEnvironment(log.With(logger, "component", "sdnotify"))
	ls, err := door.Listen(door.ListenOptions{
		Addresses: *s.web.WebListenAddresses,
		Systemd:   *s.web.WebSystemdSocket,
		Logger:    logger,
	})
	if err != nil {
		return fail("cannot listen", err)
	}
	closeAll := func() {
		for _, l := range ls {
			l.Close()
		}
	}
	public := door.Public(ls)

	reg := newRegistry()
	verifier, err := auth.NewVerifier(auth.Options{
		Logger:        log.With(logger, "component", "auth"),
		Registerer:    reg,
		Workers:       s.bcryptWorkers,
		ThrottleDelay: throttleDelay(s.throttleDelay),
	})
	if err != nil {
		closeAll()
		return fail("cannot set up authentication", err)
	}

	if s.routesFile != "" && (s.upstream != proxy.DefaultUpstream || !isDefaultPaths(s.allowedPaths)) {
		closeAll()
		return fail("conflicting flags", errors.New("with --web.routes.file the routes name the upstreams and paths; remove --upstream.url and --web.allowed-path, or write them as a route"))
	}
	legacy, err := routes.Default(s.upstream, s.allowedPaths)
	if err != nil && s.routesFile == "" {
		closeAll()
		return fail("invalid proxy flags", err)
	}
	files := webconfig.Files{Web: *s.web.WebConfigFile, Routes: s.routesFile}
	store, current, err := openWebConfig(logger, reg, files, public, verifier)
	if err != nil {
		closeAll()
		return fail("refusing to start", err)
	}
	cfg := current()
	if !cfg.TLSEnabled() {
		level.Warn(logger).Log("msg", "serving plain HTTP on loopback only: fine for tests and demos, use TLS for anything else")
	}
	verifier.SetUsers(cfg.Users)
	verifier.SetTokens(tokens(cfg))
	if !cfg.Access().Authenticates() {
		level.Warn(logger).Log("msg", "no authentication configured: anyone who can reach the loopback listener reads the metrics")
	}

	h, err := proxy.New(proxy.Options{
		Routes: func() *routes.Table {
			if t := current().Routes; t != nil {
				return t
			}
			return legacy
		},
		HealthWithoutAuth: s.healthWithoutAuth,
		// Only certificates every connection must present, verified against
		// the configured client CA, name anyone.
		ClientCertsIdentify: func() bool { return current().Access().ClientCerts },
		Timeout:             s.limits.UpstreamTimeout,
		MaxResponseBytes:    s.maxResponseBytes,
		UpstreamSlots:       s.upstreamSlots,
		UpstreamQueue:       s.upstreamQueue,
		RateLimiter:         func() *rate.Limiter { return current().Limiter },
		LoopbackHostsOnly:   func() bool { return !current().Access().Authenticates() },
		Authorizer:          authorizer{verifier},
		Logger:              log.With(logger, "component", "proxy"),
		Registerer:          reg,
		Gatherer:            reg,
	})
	if err != nil {
		closeAll()
		return fail("invalid proxy flags", err)
	}
	defer h.CloseIdleConnections()

	limits := s.limits
	limits.RefusalHold = s.throttleDelay
	opts := door.Options{
		Listeners:  ls,
		Limits:     limits,
		Handler:    h,
		Config:     current,
		Logger:     logger,
		Registerer: reg,
		Stopping:   notifier.Stopping,
	}
	if store != nil {
		opts.TLS = store.ServerTLSConfig()
	}
	d, err := door.New(opts)
	if err != nil {
		return fail("refusing to start", err)
	}
	// Before the first "listening" line: SIGHUP's default action is to
	// terminate, and a reload may follow that line at once.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if store != nil {
		// Watches placed before the "listening" line, so no edit after it
		// waits for the slow poll.
		store.StartWatch(ctx)
	}
	for _, a := range d.Addrs() {
		level.Info(logger).Log("msg", "listening", "address", a.String(), "tls", cfg.TLSEnabled(),
			"auth", cfg.Access().Mode(), "routes", routesSource(s))
	}

	// Listening, the config loaded and watched: systemd may count the proxy
	// as started (the listeners queue connections until Serve accepts them).
	notifier.Ready()
	go keepConfigCurrent(ctx, hup, logger, store, notifier)

	err = d.Serve(ctx)
	stop()
	if err != nil {
		return fail("server failed", err)
	}
	level.Info(logger).Log("msg", "stopped")
	return 0
}

// newRegistry is the proxy's own registry, served at /proxy/metrics.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		versioncollector.NewCollector("metrics_proxy"),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// openWebConfig loads --web.config.file and --web.routes.file into a Store
// whose every reload must pass the door rule for the public listeners and
// hands its users and tokens to the verifier; without either file, the door
// rule alone decides, and the config in force is an empty one (plain HTTP,
// no authentication).
func openWebConfig(logger log.Logger, reg prometheus.Registerer, files webconfig.Files, public []string, v *auth.Verifier) (*webconfig.Store, func() *webconfig.Config, error) {
	if files.Web == "" && files.Routes == "" {
		if err := door.RequireSafeDoor(public, nil); err != nil {
			return nil, nil, err
		}
		none := &webconfig.Config{Web: &web.Config{}}
		return nil, func() *webconfig.Config { return none }, nil
	}
	store, err := webconfig.NewStore(files.Web, webconfig.StoreOptions{
		RoutesFile: files.Routes,
		Logger:     log.With(logger, "component", "web-config"),
		Registerer: reg,
		Accept:     func(c *webconfig.Config) error { return door.RequireSafeDoor(public, c) },
		Prepare: func(c *webconfig.Config) {
			v.SetUsers(c.Users)
			v.SetTokens(tokens(c))
		},
	})
	if err != nil {
		return nil, nil, err
	}
	return store, store.Current, nil
}

// keepConfigCurrent reloads the config at each SIGHUP, until ctx ends (the
// store's watch reloads on changes). A failed reload is logged by the store,
// which keeps the last good config. systemd hears RELOADING=1 before and
// READY=1 after, either way.
func keepConfigCurrent(ctx context.Context, hup <-chan os.Signal, logger log.Logger, store *webconfig.Store, n *sdnotify.Notifier) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			n.Reloading()
			if store == nil {
				level.Info(logger).Log("msg", "SIGHUP: no --web.config.file or --web.routes.file to reload")
			} else if err := store.Reload(); err == nil {
				level.Info(logger).Log("msg", "SIGHUP: web config reloaded")
			}
			n.Ready()
		}
	}
}

// authorizer adapts auth.Verifier to the proxy's Authorizer interface.
type authorizer struct{ v *auth.Verifier }

func (a authorizer) Authorize(r *http.Request) proxy.Decision { return decision{a.v.Authorize(r)} }

// decision adds the identity the proxy grants routes to.
type decision struct{ auth.Result }

func (d decision) Identity() access.Identity {
	return access.Identity{User: d.User(), Token: d.Token()}
}

// tokens are the routes file's bearer tokens, none without one.
func tokens(c *webconfig.Config) map[string][sha256.Size]byte {
	if c.Routes == nil {
		return nil
	}
	return c.Routes.Tokens
}

// isDefaultPaths reports whether --web.allowed-path was left at its default.
func isDefaultPaths(p []string) bool { return len(p) == 1 && p[0] == "/metrics" }

// routesSource names where the routes come from, for the listening line.
func routesSource(s serveConfig) string {
	if s.routesFile != "" {
		return s.routesFile
	}
	return s.upstream
}

// throttleDelay maps the flag (0: answer at once) to auth.Options, where
// zero means the default.
func throttleDelay(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
