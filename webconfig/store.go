package webconfig

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
)

// StoreOptions configures a Store. Every field is optional.
type StoreOptions struct {
	// RoutesFile is the routes file (--web.routes.file) loaded, checked and
	// reloaded with the web config; "" for none.
	RoutesFile string
	// Logger receives reload outcomes and config warnings; nil discards them.
	Logger log.Logger
	// Registerer, when set, gets the reload and certificate metrics.
	Registerer prometheus.Registerer
	// Now is the clock for certificate validity and reload timestamps;
	// nil means time.Now.
	Now func() time.Time
	// Prepare is called on each successful reload with the new Config just
	// before it becomes Current, so that what it sets (the verifier's users
	// and tokens) changes before the routes that grant to them; not for the
	// initial load. Calls are serialised with reloads: it must not call
	// Reload.
	Prepare func(*Config)
	// OnChange is called on each successful reload with the new Config,
	// once it is Current and before the reload is logged; not for the
	// initial load. Calls are serialised with reloads: it must
	// not call Reload.
	OnChange func(*Config)
	// Accept, when set, is an extra condition every Config must meet, the
	// initial one included, before it is served. metrics-proxy passes its
	// listen policy (a public address needs TLS and authentication) so that a
	// reload, or a truncated write that still parses, can never strip
	// authentication from a running public listener.
	Accept func(*Config) error
	// Debounce is how long Watch waits for a burst of file events to settle
	// before reloading (editors write in several steps); default 100ms.
	Debounce time.Duration
	// PollInterval is how often Watch compares the files' contents as a safety
	// net for changes fsnotify cannot see (network file systems, bind mounts,
	// watch limits); default 30s.
	PollInterval time.Duration
}

// Store holds the current Config and replaces it only with a valid one. Reads
// (Current, and every TLS handshake through ServerTLSConfig) are a single
// atomic load; reloads are serialised.
type Store struct {
	files Files
	path  string // names the files in messages
	opts  StoreOptions
	cur   atomic.Pointer[Config]

	// mu serialises reloads and guards the fields below it.
	mu sync.Mutex
	// attempted is what the last load attempt read, successful or not, so
	// that Watch reloads only when something actually changed and a broken
	// file is reported once, not on every poll.
	attemptedFiles []string
	attemptedSum   [sha256.Size]byte

	stats reloadStats
}

// reloadStats backs the metrics; atomics so that a scrape never waits for a
// reload that is reading files.
type reloadStats struct {
	successes           atomic.Uint64
	failures            atomic.Uint64
	lastOK              atomic.Bool
	lastSuccessUnixNano atomic.Int64
}

// NewStore loads the web config at path ("" for none, when
// opts.RoutesFile is set) and the routes file. An error means the file is refused
// and the caller should refuse to start: there is no last good config yet.
func NewStore(path string, opts StoreOptions) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = log.NewNopLogger()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Debounce <= 0 {
		opts.Debounce = 100 * time.Millisecond
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 30 * time.Second
	}
	files := Files{Web: path, Routes: opts.RoutesFile}
	s := &Store{files: files, path: files.String(), opts: opts}
	now := opts.Now()
	l := newFilesLoader(files, now, false)
	cfg := l.run()
	var err error
	if len(l.problems) > 0 {
		err = problemList(l.problems)
	}
	if err == nil && opts.Accept != nil {
		err = opts.Accept(cfg)
	}
	if err != nil {
		return nil, err
	}
	s.cur.Store(cfg)
	s.attemptedFiles, s.attemptedSum = cfg.Files, fingerprint(cfg.reads)
	s.stats.lastOK.Store(true)
	s.stats.lastSuccessUnixNano.Store(now.UnixNano())
	s.logWarnings(cfg)
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(&collector{s: s}); err != nil {
			return nil, fmt.Errorf("webconfig: registering metrics: %w", err)
		}
	}
	return s, nil
}

// Current returns the config in force. It never returns nil and never blocks.
func (s *Store) Current() *Config { return s.cur.Load() }

// Path names the files the store watches, for messages.
func (s *Store) Path() string { return s.path }

// Reload loads the file anew and, if it is valid, makes it current. If not,
// the error is logged and counted and the last good config keeps serving;
// the error is returned too, for a caller that reports it (such as a SIGHUP
// handler that also logs). Safe to call from any goroutine.
func (s *Store) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reloadLocked()
}

func (s *Store) reloadLocked() error {
	now := s.opts.Now()
	l := newFilesLoader(s.files, now, false)
	cfg := l.run()
	s.attemptedFiles = make([]string, len(l.reads))
	for i, r := range l.reads {
		s.attemptedFiles[i] = r.path
	}
	s.attemptedSum = fingerprint(l.reads)

	var err error
	if len(l.problems) > 0 {
		err = problemList(l.problems)
	} else if err = s.compatible(cfg); err == nil && s.opts.Accept != nil {
		err = s.opts.Accept(cfg)
	}
	if err != nil {
		s.stats.failures.Add(1)
		s.stats.lastOK.Store(false)
		level.Error(s.opts.Logger).Log("msg", "Web config reload failed; still serving the last good config", "file", s.path, "err", err)
		return err
	}
	// Prepare before the swap: the verifier has the new users and tokens
	// before the new routes grant anything to them, so a removed
	// credential stops working no later than its grants change.
	if s.opts.Prepare != nil {
		s.opts.Prepare(cfg)
	}
	s.cur.Store(cfg)
	s.stats.successes.Add(1)
	s.stats.lastOK.Store(true)
	s.stats.lastSuccessUnixNano.Store(now.UnixNano())
	// OnChange before the log line: by the time the reload is reported,
	// whoever depends on it has it.
	if s.opts.OnChange != nil {
		s.opts.OnChange(cfg)
	}
	level.Info(s.opts.Logger).Log("msg", "Web config reloaded", "file", s.path, "tls", cfg.TLSEnabled(), "users", len(cfg.Web.Users), "routes", routeCount(cfg))
	s.logWarnings(cfg)
	return nil
}

// compatible refuses changes that a running listener cannot take: whether it
// speaks TLS, and whether it offers HTTP/2, are fixed when it starts.
// Applying half of such a change would leave the listener serving something
// else than the file says.
func (s *Store) compatible(next *Config) error {
	cur := s.Current()
	if cur.TLSEnabled() != next.TLSEnabled() {
		if next.TLSEnabled() {
			return errors.New(s.path + ": turning TLS on needs a restart of metrics-proxy; the listener was started without TLS")
		}
		return errors.New(s.path + ": turning TLS off needs a restart of metrics-proxy; the listener was started with TLS")
	}
	// Losing an authentication factor is what a half-written file that
	// still parses looks like; even on loopback (open to every local user
	// and CI job) it must be a deliberate restart, never a reload.
	if gone := cur.Access().Removed(next.Access()); len(gone) > 0 {
		return fmt.Errorf("%s: removing %s needs a restart of metrics-proxy; the running config requires %s", s.path, gone[0].Setting, gone[0].Requires)
	}
	if err := s.narrowingOnly(cur, next); err != nil {
		return err
	}
	if cur.TLSEnabled() && cur.Web.HTTPConfig.HTTP2 != next.Web.HTTPConfig.HTTP2 {
		return errors.New(s.path + ": changing http_server_config.http2 needs a restart of metrics-proxy")
	}
	return nil
}

// narrowingOnly refuses a routes reload that opens to everyone what named
// who may use it: a route that had allow: and has none, or admin: removed.
// A write cut off before a route's allow: (or before admin:, at the end)
// still parses and looks exactly like that, so opening up takes a restart,
// as removing an authentication factor does. Narrowing, renaming and
// adding routes reload as usual.
func (s *Store) narrowingOnly(cur, next *Config) error {
	if cur.Routes == nil || next.Routes == nil {
		return nil
	}
	named := map[string]bool{}
	for _, r := range cur.Routes.Routes {
		if !r.Allow.Everyone {
			named[r.Name] = true
		}
	}
	for _, r := range next.Routes.Routes {
		if r.Allow.Everyone && named[r.Name] {
			return fmt.Errorf("%s: route %s lost its allow:, which would open it to every authenticated client; a half-written file looks the same, so opening a route needs a restart of metrics-proxy (or write allow: with the identities instead)", s.files.Routes, r.Name)
		}
	}
	if cur.Routes.Admin != nil && next.Routes.Admin == nil {
		return fmt.Errorf("%s: admin: was removed, which would let every identity granted all routes read the proxy's own metrics; a half-written file looks the same, so that needs a restart of metrics-proxy", s.files.Routes)
	}
	return nil
}

// routeCount is the number of routes the routes file serves, 0 without one.
func routeCount(cfg *Config) int {
	if cfg.Routes == nil {
		return 0
	}
	return len(cfg.Routes.Routes)
}

func (s *Store) logWarnings(cfg *Config) {
	for _, w := range cfg.Warnings {
		level.Warn(s.opts.Logger).Log("msg", "Web config weakness", "warning", w)
	}
}
