package proxy

import (
	"errors"
	"fmt"
	"strings"
)

// maxPathLen bounds the request path. The longest path the runner serves is a
// pprof profile name under /debug/pprof/; anything near this length is a probe.
const maxPathLen = 1024

// Reasons a request path is refused before authentication. They go to the debug
// log, never to the client, which only learns "bad request".
var (
	errPathNotOrigin  = errors.New("path does not start with /")
	errPathTooLong    = fmt.Errorf("path longer than %d bytes", maxPathLen)
	errPathEscaped    = errors.New("path contains percent-encoding")
	errPathChar       = errors.New("path contains a character outside the RFC 3986 path set")
	errPathDotDot     = errors.New(`path contains ".."`)
	errPathDotSegment = errors.New(`path contains a "." segment`)
	errPathEmptySeg   = errors.New("path contains an empty segment (//)")
)

// judgePath decides whether raw, the path of the request target exactly as the
// client sent it (before any decoding), is one the proxy may act on.
//
// It refuses rather than repairs: an accepted path is already in the one form
// every HTTP implementation reads the same way, so the allowlist check and the
// upstream can never disagree about which resource is meant. That is why any
// percent-encoding is refused (which covers %2f, %5c, %2e, %00 and double
// encodings such as %252e at once): no path the runner serves needs it, and
// decoding is where proxies and servers classically diverge.
//
// The rules, in order: starts with "/"; at most maxPathLen bytes; no "%"; only
// RFC 3986 pchar characters and "/" (no controls, NUL, space, backslash, "#",
// non-ASCII, and no ";" because some servers treat it as a path parameter);
// no ".." anywhere; no "." segment; no empty segment except a final one, so
// "/debug/pprof/" is accepted and "//debug/pprof/" is not.
func judgePath(raw string) error {
	if raw == "" || raw[0] != '/' {
		return errPathNotOrigin
	}
	if len(raw) > maxPathLen {
		return errPathTooLong
	}
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c == '%' {
			return errPathEscaped
		}
		if !isPathByte(c) {
			return errPathChar
		}
	}
	if strings.Contains(raw, "..") {
		return errPathDotDot
	}
	segs := strings.Split(raw[1:], "/")
	for i, s := range segs {
		switch {
		case s == ".":
			return errPathDotSegment
		case s == "" && i != len(segs)-1:
			return errPathEmptySeg
		}
	}
	return nil
}

// isPathByte reports whether c may appear literally in an accepted path: the
// RFC 3986 unreserved and sub-delim characters, ":", "@" and "/", minus ";".
func isPathByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', '~', // unreserved
		'!', '$', '&', '\'', '(', ')', '*', '+', ',', '=', // sub-delims without ';'
		':', '@', '/':
		return true
	}
	return false
}

// allowlist is the set of paths the operator lets through to the upstream.
// Matching is exact and case-sensitive on a path judgePath has accepted, so a
// prefix match cannot be escaped with dot segments or encodings.
type allowlist struct {
	exact    map[string]struct{}
	subtrees []string // entries ending in "/", each allowing itself and below
}

// newAllowlist validates entries. Each must itself be a path judgePath accepts,
// so an operator cannot list something no request could ever match. "/" is
// refused because it would forward everything, pprof included, and pprof must
// only be reachable when listed on purpose.
func newAllowlist(entries []string) (allowlist, error) {
	a := allowlist{exact: make(map[string]struct{}, len(entries))}
	for _, e := range entries {
		if err := judgePath(e); err != nil {
			return allowlist{}, fmt.Errorf("allowed path %q: %v; list clean absolute paths such as /metrics or /debug/pprof/", e, err)
		}
		if e == "/" {
			return allowlist{}, errors.New(`allowed path "/" would forward every path, pprof included; list the paths you need, such as /metrics`)
		}
		if strings.HasSuffix(e, "/") {
			a.subtrees = append(a.subtrees, e)
		} else {
			a.exact[e] = struct{}{}
		}
	}
	if a.allows(selfMetricsPath) {
		return allowlist{}, fmt.Errorf("allowed paths cover %s, where the proxy serves its own metrics; remove that entry", selfMetricsPath)
	}
	return a, nil
}

// allows reports whether p, a path judgePath accepted, may be forwarded.
func (a allowlist) allows(p string) bool {
	if _, ok := a.exact[p]; ok {
		return true
	}
	for _, s := range a.subtrees {
		if strings.HasPrefix(p, s) {
			return true
		}
	}
	return false
}
