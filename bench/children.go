package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/prometheus/exporter-toolkit/web"

	"github.com/alloyci/hardened-runner/proxy"
)

// The baselines run as separate processes, so that their memory and CPU are
// their own: the bench re-executes itself with -mode=<one of these>.
const (
	modePlainProxy     = "plain-proxy"     // B: TLS reverse proxy, no authentication
	modeToolkitProxy   = "toolkit-proxy"   // C: exporter-toolkit web.ListenAndServe around the same proxy
	modeStaticUpstream = "static-upstream" // the upstream that serves a captured runner page (static.go)
)

// isChild reports whether args (without the program name) ask for a
// baseline proxy rather than the bench.
func isChild(args []string) bool {
	return len(args) > 0 && strings.HasPrefix(args[0], "-mode=")
}

// runChild serves one baseline proxy, or the static upstream, until killed
// (or -max-lifetime, so a child left behind by a crashed bench does not run
// forever).
func runChild(args []string) int {
	switch args[0] {
	case "-mode=" + modeFlood:
		return runFloodProc(args[1:])
	case "-mode=" + modeAttack:
		return runAttackProc(args[1:])
	}
	fs := flag.NewFlagSet("bench -mode", flag.ContinueOnError)
	mode := fs.String("mode", "", modePlainProxy+", "+modeToolkitProxy+" or "+modeStaticUpstream)
	listen := fs.String("listen", "", "127.0.0.1:port to listen on")
	upstream := fs.String("upstream", "", "http://127.0.0.1:port of the upstream (the proxies)")
	certFile := fs.String("cert", "", "server certificate ("+modePlainProxy+")")
	keyFile := fs.String("key", "", "server key ("+modePlainProxy+")")
	webConfig := fs.String("web.config", "", "exporter-toolkit web config ("+modeToolkitProxy+")")
	page := fs.String("page", "", "captured page: FILE (body), FILE.gz and FILE.headers ("+modeStaticUpstream+")")
	lifetime := fs.Duration("max-lifetime", 30*time.Minute, "exit after this long")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil || !net.ParseIP(host).IsLoopback() {
		fmt.Fprintf(os.Stderr, "bench %s: -listen %q must be a loopback host:port\n", *mode, *listen)
		return 2
	}
	time.AfterFunc(*lifetime, func() {
		fmt.Fprintf(os.Stderr, "bench %s: -max-lifetime %s reached, exiting\n", *mode, *lifetime)
		os.Exit(3)
	})
	if *mode == modeStaticUpstream {
		return serveStatic(*listen, *page)
	}
	rp, err := newReverseProxy(*upstream)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench %s: %v\n", *mode, err)
		return 2
	}
	// Both baselines get the same server settings; only the wrapping differs.
	srv := &http.Server{
		Addr:              *listen,
		Handler:           rp,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0), // TLS handshake noise from readiness probes
	}
	switch *mode {
	case modePlainProxy:
		err = srv.ListenAndServeTLS(*certFile, *keyFile)
	case modeToolkitProxy:
		logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
		systemd := false
		err = web.ListenAndServe(srv, &web.FlagConfig{
			WebListenAddresses: &[]string{*listen},
			WebSystemdSocket:   &systemd,
			WebConfigFile:      webConfig,
		}, logger)
	default:
		fmt.Fprintf(os.Stderr, "bench: unknown -mode %q\n", *mode)
		return 2
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(os.Stderr, "bench %s: %v\n", *mode, err)
		return 1
	}
	return 0
}

// newReverseProxy is the reverse proxy both baselines serve: the upstream's
// URL and Host, Authorization not forwarded, metrics-proxy's buffer pool, and
// an upstream connection pool as large as metrics-proxy's (the default of 2 idle connections per host
// would make the baselines reconnect under 8 concurrent clients).
func newReverseProxy(upstream string) (*httputil.ReverseProxy, error) {
	u, err := url.Parse(upstream)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("-upstream %q must be http://host:port", upstream)
	}
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &httputil.ReverseProxy{
		// The same buffer pool as metrics-proxy, so the comparison is of
		// authentication and guards, not of buffer reuse.
		BufferPool: &proxy.BufferPool{},
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Header.Del("Authorization")
		},
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           d.DialContext,
			MaxIdleConns:          16,
			MaxIdleConnsPerHost:   16,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: 10 * time.Second,
			DisableCompression:    true,
		},
		ErrorLog: log.New(os.Stderr, "reverse proxy: ", log.LstdFlags),
	}, nil
}
