package routes

import (
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/alloyci/hardened-runner/listener"
	"github.com/alloyci/hardened-runner/safepath"
)

// unixHost is the Host header sent to a unix-socket upstream: a socket has no
// host of its own, and the runner's metrics server answers only loopback
// names (its DNS rebinding defence).
const unixHost = "localhost"

// upstreamForm is what to write instead, the end of most upstream messages.
const upstreamForm = "write http://127.0.0.1:PORT/path, http://[::1]:PORT/path, http://localhost:PORT/path or unix:/path/to.sock[:/path]"

// parseUpstream validates raw: http://HOST:PORT[/path] with HOST loopback, or
// unix:/socket[:/path]. Path is "" when raw names none. On refusal it
// returns the reason, phrased to follow "upstream ", which never quotes raw
// beyond its parsed, harmless parts: raw may hold a pasted credential.
func parseUpstream(raw string) (Upstream, string) {
	if raw == "" {
		return Upstream{}, "is missing; " + upstreamForm
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] < 0x20 || raw[i] == 0x7f {
			return Upstream{}, "contains a control character; " + upstreamForm
		}
	}
	if rest, ok := strings.CutPrefix(raw, "unix:"); ok {
		return parseUnix(raw, rest)
	}
	if !strings.Contains(raw, "://") {
		// The common slip: a bare host:port, as the runner's own flag takes.
		return Upstream{}, "has no scheme; " + upstreamForm
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the input; say only what to do.
		authority, _, _ := strings.Cut(raw[strings.Index(raw, "://")+3:], "/")
		if strings.Count(authority, ":") > 1 && !strings.Contains(authority, "[") {
			return Upstream{}, "has an IPv6 host without brackets; write it as http://[::1]:PORT/path"
		}
		if strings.Contains(raw, "@") {
			return Upstream{}, `is not a valid URL and contains "@" (not shown: it may hold credentials); the exporters behind the proxy take no credentials, so remove them; ` + upstreamForm
		}
		return Upstream{}, "is not a valid URL (not shown); " + upstreamForm
	}
	if u.User != nil {
		shown := *u
		shown.User = nil
		shown.RawQuery, shown.ForceQuery, shown.Fragment, shown.RawFragment = "", false, "", ""
		s := strings.Replace(shown.String(), "://", "://(credentials not shown)@", 1)
		return Upstream{}, strconv.Quote(redact(s)) + " contains credentials; remove them: the exporters behind the proxy take none, and the proxy never sends any"
	}
	switch {
	case u.Scheme == "https":
		return Upstream{}, "uses https; the exporters behind the proxy speak plain http on loopback, so write http:// (or use a unix: socket)"
	case u.Scheme != "http":
		return Upstream{}, "has a scheme other than http; " + upstreamForm
	case u.Opaque != "" || u.Host == "":
		return Upstream{}, "has no host; " + upstreamForm
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#"):
		return Upstream{}, "has a query or fragment (not shown); remove it: the client's query string is forwarded as is"
	}
	host, port := u.Hostname(), u.Port()
	if strings.Contains(host, ":") && !strings.HasPrefix(u.Host, "[") {
		return Upstream{}, "has an IPv6 host without brackets; write it as http://[::1]:PORT/path"
	}
	if strings.Contains(host, "%") {
		return Upstream{}, "has an IPv6 zone; loopback needs none, write http://[::1]:PORT/path"
	}
	if !listener.IsLoopbackHost(host) {
		return Upstream{}, "host " + strconv.Quote(redact(host)) + " is not on this host; upstreams must be loopback (localhost, 127.0.0.1, [::1]) or a unix socket: the exporters there have no authentication, and the proxy must be the only door to them"
	}
	n, err := strconv.Atoi(port)
	if port == "" || err != nil || n < 1 || n > 65535 {
		return Upstream{}, "needs a port from 1 to 65535 after the host, e.g. http://127.0.0.1:9252/metrics"
	}
	host = strings.ToLower(host)
	if ip, err := netip.ParseAddr(host); err == nil {
		host = ip.Unmap().String()
	}
	// Host is sent as written; the address dialled is never a name:
	// "localhost" (and "localhost.", which listener.IsLoopbackHost also
	// accepts) is 127.0.0.1, so no resolver, /etc/hosts edit or DNS answer
	// can ever decide where a scrape goes, and localhost and 127.0.0.1
	// share one pool.
	hostHeader := joinHostPort(host, n)
	dial := host
	if strings.TrimSuffix(host, ".") == "localhost" {
		dial = "127.0.0.1"
		hostHeader = joinHostPort("localhost", n)
	}
	addr := joinHostPort(dial, n)
	p := u.EscapedPath()
	if p != "" {
		if err := safepath.Judge(p); err != nil {
			return Upstream{}, "path is not clean: " + err.Error() + "; write a clean absolute path such as /metrics"
		}
	}
	return Upstream{Raw: raw, Network: "tcp", Address: addr, Host: hostHeader, Path: p}, ""
}

// parseUnix validates "unix:" + rest: an absolute socket path, optionally
// followed by ":/upstream/path" as nginx writes it.
func parseUnix(raw, rest string) (Upstream, string) {
	sock, p, hasPath := strings.Cut(rest, ":")
	if !strings.HasPrefix(sock, "/") {
		return Upstream{}, "needs an absolute socket path: write unix:/path/to.sock, or unix:/path/to.sock:/path for an upstream path"
	}
	if path.Clean(sock) != sock || sock == "/" {
		return Upstream{}, "socket path is not clean; write it without //, . or .. segments and without a trailing /, e.g. unix:/run/alloy-runner/metrics.sock"
	}
	if hasPath {
		if !strings.HasPrefix(p, "/") {
			return Upstream{}, `has something other than ":/path" after the socket path; write unix:/path/to.sock:/metrics, or leave the upstream path out`
		}
		if err := safepath.Judge(p); err != nil {
			return Upstream{}, "path is not clean: " + err.Error() + "; write a clean absolute path such as /metrics"
		}
	}
	return Upstream{Raw: raw, Network: "unix", Address: sock, Host: unixHost, Path: p}, ""
}

func joinHostPort(host string, port int) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + strconv.Itoa(port)
	}
	return host + ":" + strconv.Itoa(port)
}
