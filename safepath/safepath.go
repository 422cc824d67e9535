// Package safepath is the one rule for which request paths metrics-proxy acts
// on. The proxy handler judges every request target with it before
// authentication, and the routes file validation judges every route and
// upstream path with it, so no route can name a path no request could match.
package safepath

import (
	"errors"
	"fmt"
	"strings"
)

// maxPathLen bounds the request path. The longest path the runner serves is a
// pprof profile name under /debug/pprof/; anything near this length is a probe.
const maxPathLen = 1024

// Reasons a path is refused. The handler sends them to the debug log, never
// to the client, which only learns "bad request". None of them quotes the
// path, so they are safe to show wherever the path came from.
var (
	errPathNotOrigin  = errors.New("path does not start with /")
	errPathTooLong    = fmt.Errorf("path longer than %d bytes", maxPathLen)
	errPathEscaped    = errors.New("path contains percent-encoding")
	errPathChar       = errors.New("path contains a character outside the RFC 3986 path set")
	errPathDotDot     = errors.New(`path contains ".."`)
	errPathDotSegment = errors.New(`path contains a "." segment`)
	errPathEmptySeg   = errors.New("path contains an empty segment (//)")
)

// Judge decides whether raw, the path of the request target exactly as the
// client sent it (before any decoding), is one the proxy may act on.
//
// It refuses rather than repairs: an accepted path is already in the one form
// every HTTP implementation reads the same way, so the route match and the
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
func Judge(raw string) error {
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
