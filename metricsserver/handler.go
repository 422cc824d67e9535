// Package metricsserver is the runner's embedded HTTP server for /metrics and
// /debug/pprof/. It has no authentication, as the runner's documentation says,
// so it listens on loopback or a unix socket only, answers only requests
// addressed to a loopback name (against DNS rebinding from a local browser),
// and bounds what a local caller can make it do.
package metricsserver

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"

	"github.com/alloyci/hardened-runner/listener"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultMaxProfileSeconds caps pprof's ?seconds= so a local caller cannot pin
// the runner in a profile or trace for minutes. It is also pprof's own default
// for /debug/pprof/profile.
const DefaultMaxProfileSeconds = 30

// NewHandler returns the server's handler: the Host guard, then the method
// guard, then /metrics from g and the pprof endpoints on a mux of its own
// (never http.DefaultServeMux). configuredHost is the host of the configured
// address, also accepted in Host headers.
func NewHandler(g prometheus.Gatherer, configuredHost string, maxProfileSeconds int) http.Handler {
	if maxProfileSeconds <= 0 {
		maxProfileSeconds = DefaultMaxProfileSeconds
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{
		EnableOpenMetrics:   true,
		MaxRequestsInFlight: 8,
	}))
	pp := http.NewServeMux()
	pp.HandleFunc("/debug/pprof/", pprof.Index) // also serves the named profiles: heap, goroutine, allocs, ...
	pp.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	pp.HandleFunc("/debug/pprof/profile", pprof.Profile)
	pp.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	pp.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/debug/pprof/", capSeconds(pp, maxProfileSeconds))
	return guard(mux, strings.ToLower(configuredHost))
}

// guard refuses requests not addressed to this host's loopback, then methods
// other than GET and HEAD. A page a local browser loads from attacker.example
// may resolve that name to 127.0.0.1 (DNS rebinding), but its requests still
// say Host: attacker.example, so they never reach the metrics or pprof.
func guard(next http.Handler, configuredHost string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowedHost(r.Host, configuredHost) {
			plain(w, http.StatusMisdirectedRequest,
				"misdirected request: this server answers only requests for localhost or a loopback address")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			plain(w, http.StatusMethodNotAllowed, "method not allowed: use GET or HEAD")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// allowedHost reports whether a Host header names this host's loopback:
// localhost, a loopback literal, or the configured host, with or without a port.
func allowedHost(hostport, configuredHost string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.ToLower(host)
	if host == "" {
		return false
	}
	return listener.IsLoopbackHost(host) || (configuredHost != "" && host == configuredHost)
}

// capSeconds refuses a pprof ?seconds= that is not a whole number from 1 to max.
// Every value of the parameter is checked, not just the first that pprof reads.
func capSeconds(next http.Handler, max int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, v := range r.URL.Query()["seconds"] {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > max {
				plain(w, http.StatusBadRequest, fmt.Sprintf("seconds must be a whole number from 1 to %d", max))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func plain(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}
