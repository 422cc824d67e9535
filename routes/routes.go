// Package routes is metrics-proxy's routes file (--web.routes.file): which
// request paths go to which local exporter, and who may use each. Parse
// validates the file's bytes (the caller reads the file) into an immutable
// Table; Default makes the Table of the legacy flags --upstream.url and
// --web.allowed-path.
//
// Every upstream is on this host (loopback or a unix socket): the exporters
// there have no authentication, and the proxy is the only door to them.
// Every path passes safepath.Judge, the rule the handler applies to requests,
// so no route names a path no request could match. Messages never quote a
// token hash or a value that failed to parse, so a secret pasted into the
// wrong line never reaches a log.
package routes

import (
	"crypto/sha256"
	"slices"
	"strings"
	"time"

	"github.com/alloyci/hardened-runner/access"
)

// Table is one validated routes file. Immutable.
type Table struct {
	Routes []Route // file order
	// Admin, from admin:, names who may read the proxy's own metrics and
	// the readiness of every route. Nil (no admin:) means the identities
	// granted every route: the proxy's metrics name every route and count
	// the refused ones, so whoever reads them must be allowed to know them
	// all.
	Admin  *Allow
	Tokens map[string][sha256.Size]byte // token name -> SHA-256 of the token
}

// Route sends the request paths it matches to one upstream, for the
// identities its Allow permits.
type Route struct {
	// Name is unique in the table and labels the route's metrics.
	Name string
	// Path is the request path as written: matched exactly, or, when it ends
	// in "/" (Prefix), as itself and everything below it.
	Path string
	// Upstream is where matched requests go.
	Upstream Upstream
	// Timeout bounds an upstream call; 0 means the caller's default.
	Timeout time.Duration
	// MaxResponseBytes bounds an upstream body; 0 means the caller's default.
	MaxResponseBytes int64
	// Allow is who may use the route.
	Allow Allow
}

// Prefix reports whether the route matches its path and everything below it,
// which it does when the path ends in "/".
func (r *Route) Prefix() bool { return strings.HasSuffix(r.Path, "/") }

// OutboundPath maps a request path this route matched to the upstream path:
// for an exact route Upstream.Path; for a prefix route Upstream.Path + the
// rest after r.Path.
func (r *Route) OutboundPath(p string) string {
	if !r.Prefix() {
		return r.Upstream.Path
	}
	rest, ok := strings.CutPrefix(p, r.Path)
	if !ok {
		// Not a path this route matched: never invent one from it.
		return r.Upstream.Path
	}
	return r.Upstream.Path + rest
}

// Upstream is one route's destination: a plain-HTTP server on this host.
type Upstream struct {
	Raw     string // as written (never contains credentials: those are refused)
	Network string // "tcp" or "unix"
	Address string // "ip:port" for tcp (localhost is 127.0.0.1), socket path for unix
	Host    string // Host header to send: host:port, or "localhost" for unix
	Path    string // upstream path
}

// Key identifies the upstream server (network + address), so routes to one
// server can share a connection pool and a concurrency limit.
func (u Upstream) Key() string { return u.Network + ":" + u.Address }

// Allow is who may use a route, among the identities the door authenticated.
type Allow struct {
	// Everyone is true for a route without allow: any identity the door
	// authenticated may use it.
	Everyone bool
	// Users are basic-auth user names.
	Users []string
	// ClientSANs are subject alternative names of verified client
	// certificates, compared as exact strings.
	ClientSANs []string
	// Tokens are names under the file's tokens:.
	Tokens []string
}

// Permits reports whether id may use the route: always with Everyone,
// otherwise when its user, its token or one of its certificate's SANs is
// listed.
func (a Allow) Permits(id access.Identity) bool {
	if a.Everyone {
		return true
	}
	if id.User != "" && slices.Contains(a.Users, id.User) {
		return true
	}
	if id.Token != "" && slices.Contains(a.Tokens, id.Token) {
		return true
	}
	for _, san := range id.SANs {
		if san != "" && slices.Contains(a.ClientSANs, san) {
			return true
		}
	}
	return false
}

// Match returns the route for request path p (already accepted by
// safepath.Judge): an exact route equal to p, else the longest prefix route
// p starts with. A scan is enough for the at most 64 routes, and keeps
// Table a plain value with no index to fall out of step.
func (t *Table) Match(p string) (*Route, bool) {
	var best *Route
	for i := range t.Routes {
		r := &t.Routes[i]
		if !r.Prefix() {
			if r.Path == p {
				return r, true
			}
			continue
		}
		if strings.HasPrefix(p, r.Path) && (best == nil || len(r.Path) > len(best.Path)) {
			best = r
		}
	}
	return best, best != nil
}

// Permitted lists the routes id may use, in file order (for the landing page).
func (t *Table) Permitted(id access.Identity) []*Route {
	var out []*Route
	for i := range t.Routes {
		if t.Routes[i].Allow.Permits(id) {
			out = append(out, &t.Routes[i])
		}
	}
	return out
}

// IsAdmin reports whether id may read the proxy's own metrics and the
// readiness of every route (see Table.Admin).
func (t *Table) IsAdmin(id access.Identity) bool {
	if t.Admin != nil {
		return t.Admin.Permits(id)
	}
	for i := range t.Routes {
		if !t.Routes[i].Allow.Permits(id) {
			return false
		}
	}
	return true
}

// Probed reports whether /-/ready asks this route's upstream. A route into
// /debug/ is not probed: a probe of /debug/pprof/profile would take a 30 s
// CPU profile each time, and such routes go to a server (the runner) whose
// metrics route already says whether it answers.
func (r *Route) Probed() bool { return !strings.HasPrefix(r.Upstream.Path, profilingPrefix) }
