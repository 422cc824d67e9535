package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// unixHost is the Host header sent to a unix-socket upstream. The runner's
// metrics server rejects Host values that are not loopback names (DNS
// rebinding defence), and a socket has no host of its own.
const unixHost = "localhost"

// upstream is where allowed requests go: a base URL for the outbound request
// and the transport that reaches it.
type upstream struct {
	url       *url.URL // scheme http, host, optional path prefix; never a query
	host      string   // Host header for the outbound request
	transport *http.Transport
}

// parseUpstream validates raw ("http://host:port[/prefix]" or "unix:/path")
// and builds the transport for it. Errors name the mistake and the fix; they
// show the URL with any password redacted.
func parseUpstream(raw string, timeout time.Duration) (*upstream, error) {
	if raw == "" {
		return nil, errors.New("upstream is empty; set it to the runner's metrics server, e.g. http://127.0.0.1:9252 or unix:/run/alloy-runner/metrics.sock")
	}
	if sock, ok := strings.CutPrefix(raw, "unix:"); ok {
		if !filepath.IsAbs(sock) || strings.HasPrefix(sock, "//") {
			return nil, fmt.Errorf("upstream %q: a unix socket must be given as unix:/absolute/path", raw)
		}
		sock = filepath.Clean(sock)
		d := &net.Dialer{Timeout: timeout}
		t := newTransport(timeout, func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", sock)
		})
		return &upstream{url: &url.URL{Scheme: "http", Host: unixHost}, host: unixHost, transport: t}, nil
	}

	if !strings.Contains(raw, "://") && !strings.Contains(raw, "@") {
		// The common slip: a bare host:port, as the runner's own flag takes.
		return nil, fmt.Errorf("upstream %q has no scheme; write it as http://%s or unix:/path", raw, raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the input, which may carry a password; say only what to do.
		return nil, errors.New("upstream is not a valid URL; use http://host:port[/prefix] or unix:/path")
	}
	shown := u.Redacted()
	switch {
	case u.Scheme == "https":
		return nil, fmt.Errorf("upstream %q: https is not supported; the runner's metrics server speaks plain http on loopback, use http://127.0.0.1:9252 or a unix: socket", shown)
	case u.Scheme != "http":
		return nil, fmt.Errorf("upstream %q: scheme must be http (or use unix:/path for a socket)", shown)
	case u.Opaque != "" || u.Host == "":
		return nil, fmt.Errorf("upstream %q: missing host; use http://host:port, e.g. http://127.0.0.1:9252", shown)
	case u.User != nil:
		return nil, fmt.Errorf("upstream %q: credentials in the upstream URL are not supported (they would never be sent); remove them", shown)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, fmt.Errorf("upstream %q: remove the query or fragment; the client's query string is forwarded as is", shown)
	}
	if u.Port() == "" && strings.HasSuffix(u.Host, ":") {
		return nil, fmt.Errorf("upstream %q: empty port; use http://host:port", shown)
	}
	if p := u.EscapedPath(); p != "" && p != "/" {
		if err := judgePath(p); err != nil {
			return nil, fmt.Errorf("upstream %q: path prefix %v; use a clean prefix such as /runner", shown, err)
		}
	}
	base := &url.URL{Scheme: "http", Host: u.Host, Path: strings.TrimSuffix(u.Path, "/")}
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	return &upstream{url: base, host: u.Host, transport: newTransport(timeout, d.DialContext)}, nil
}

// newTransport returns the transport to the upstream. Proxy is nil on purpose:
// HTTP_PROXY in the environment must never divert loopback metrics (with the
// client's scrape) to another host. Compression is left to the two ends so the
// body, Content-Encoding and Content-Length pass through as the upstream sent
// them and the size limit applies to the bytes on the wire.
func newTransport(timeout time.Duration, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Transport {
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            dial,
		MaxIdleConns:           16,
		MaxIdleConnsPerHost:    16,
		IdleConnTimeout:        90 * time.Second,
		ResponseHeaderTimeout:  timeout,
		MaxResponseHeaderBytes: 64 << 10,
		DisableCompression:     true,
		ForceAttemptHTTP2:      false,
	}
}
