package metricsserver

import (
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/alloyci/hardened-runner/listener"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
)

// Limits a local client cannot exceed. WriteTimeout stays above the pprof
// seconds cap: pprof refuses profiles that would outlast it.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 16 << 10
	writeSlack        = 30 * time.Second
	stopGrace         = 3 * time.Second
)

// Options configure a Server.
type Options struct {
	// Logger receives the server's log lines.
	Logger log.Logger
	// Gatherer is what /metrics serves.
	Gatherer prometheus.Gatherer
	// Resolver resolves host names in addresses; nil means net.DefaultResolver.
	Resolver listener.Resolver
	// MaxProfileSeconds caps pprof's ?seconds=; 0 means DefaultMaxProfileSeconds.
	MaxProfileSeconds int
}

// Server serves the metrics and pprof endpoints on one address at a time, and
// can move to another without a moment where a bad address is accepted.
type Server struct {
	opts Options

	mu   sync.Mutex
	addr string
	live *instance
}

// instance is the server on one address.
type instance struct {
	srv   *http.Server
	ls    []net.Listener
	done  chan struct{}
	addrs []net.Addr
}

// New returns a stopped server.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.MaxProfileSeconds <= 0 {
		o.MaxProfileSeconds = DefaultMaxProfileSeconds
	}
	return &Server{opts: o}
}

// Addrs returns the addresses the server listens on now (none when disabled).
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live == nil {
		return nil
	}
	return s.live.addrs
}

// Serve starts the server on addr, or moves it there when it already runs
// elsewhere. An empty addr disables the server. A refused or failing address
// leaves the server as it was (still serving on the old address) and returns
// the reason.
func (s *Server) Serve(ctx context.Context, addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live != nil && addr == s.addr {
		return nil
	}
	if addr == "" {
		s.stopLocked(ctx)
		s.addr = ""
		level.Info(s.opts.Logger).Log("msg", "metrics server disabled: metrics_server is empty")
		return nil
	}
	ls, err := listener.Listen(ctx, addr, s.opts.Resolver)
	if err != nil && errors.Is(err, syscall.EADDRINUSE) && s.live != nil {
		// The new address overlaps the old one (127.0.0.1:9252 to
		// localhost:9252): free it, and take the old one back on failure.
		old := s.addr
		s.stopLocked(ctx)
		ls, err = listener.Listen(ctx, addr, s.opts.Resolver)
		if err != nil {
			if rls, rerr := listener.Listen(ctx, old, s.opts.Resolver); rerr == nil {
				s.startLocked(old, rls)
			} else {
				level.Error(s.opts.Logger).Log("msg", "metrics server could not return to its old address", "addr", old, "err", rerr)
			}
			return err
		}
	}
	if err != nil {
		return err
	}
	s.stopLocked(ctx)
	s.startLocked(addr, ls)
	return nil
}

func (s *Server) startLocked(addr string, ls []net.Listener) {
	a, _ := listener.Parse(addr, listener.DefaultPort)
	inst := &instance{
		srv: &http.Server{
			Handler:           NewHandler(s.opts.Gatherer, a.Host, s.opts.MaxProfileSeconds),
			ReadHeaderTimeout: readHeaderTimeout,
			ReadTimeout:       readTimeout,
			WriteTimeout:      time.Duration(s.opts.MaxProfileSeconds)*time.Second + writeSlack,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
			ErrorLog:          stdlog.New(log.NewStdlibAdapter(level.Warn(s.opts.Logger)), "", 0),
		},
		ls:   ls,
		done: make(chan struct{}),
	}
	var wg sync.WaitGroup
	for _, l := range ls {
		inst.addrs = append(inst.addrs, l.Addr())
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := inst.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				level.Error(s.opts.Logger).Log("msg", "metrics server stopped", "addr", l.Addr(), "err", err)
			}
		}()
		level.Info(s.opts.Logger).Log("msg", "metrics server listening", "addr", fmt.Sprintf("%s:%s", l.Addr().Network(), l.Addr()))
	}
	go func() { wg.Wait(); close(inst.done) }()
	s.addr, s.live = addr, inst
}

func (s *Server) stopLocked(ctx context.Context) {
	if s.live == nil {
		return
	}
	// A local client holding a request (a 30 s profile, a slow reader) must
	// not stall a move or a stop for long: past a few seconds it is cut off.
	ctx, cancel := context.WithTimeout(ctx, stopGrace)
	defer cancel()
	if err := s.live.srv.Shutdown(ctx); err != nil {
		s.live.srv.Close()
	}
	<-s.live.done
	s.live = nil
}

// Shutdown stops the server, letting requests in flight finish until ctx ends.
func (s *Server) Shutdown(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked(ctx)
}
