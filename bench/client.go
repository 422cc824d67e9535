package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sort"
	"strings"
	"time"
)

// marker must appear in every good /metrics body.
var marker = []byte("ci_runner_version_info")

// newClient returns a client with exactly one keep-alive HTTPS connection,
// HTTP/1.1 (as Prometheus scrapes by default), trusting the bench CA. With
// gzip it asks for gzip and decompresses, as Prometheus does. Its connections
// come from the kernel's choice of source address (127.0.0.1 to 127.0.0.1).
func newClient(pool *x509.CertPool, gzip bool) *http.Client {
	return newClientFrom(pool, gzip, nil)
}

// newClientFrom is newClient with its connections bound to the source address
// from (nil: the kernel's choice), so that a proxy sees it as another client
// address, as it would a second Prometheus.
func newClientFrom(pool *x509.CertPool, gzip bool, from net.IP) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if from != nil {
		d.LocalAddr = &net.TCPAddr{IP: from}
	}
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         d.DialContext,
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 10 * time.Second,
		MaxConnsPerHost:     1,
		MaxIdleConnsPerHost: 1,
		MaxIdleConns:        1,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  !gzip,
	}}
}

func closeIdle(c *http.Client) { c.Transport.(*http.Transport).CloseIdleConnections() }

// answer is one request's outcome.
type answer struct {
	status  int    // 0 if no response
	err     error  // transport error
	body    []byte // up to maxBody
	newConn bool   // the request opened a new connection
	tls     *tls.ConnectionState
	proto   string
}

const maxBody = 8 << 20

// get sends GET url with basic auth (if user is not empty) and reads the body
// (up to maxBody; keepBody false discards it).
func get(ctx context.Context, c *http.Client, url, user, pass string, keepBody bool, hdr http.Header) answer {
	var a answer
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { a.newConn = !i.Reused },
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		a.err = err
		return a
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := c.Do(req)
	if err != nil {
		a.err = err
		return a
	}
	defer resp.Body.Close()
	a.status, a.tls, a.proto = resp.StatusCode, resp.TLS, resp.Proto
	if keepBody {
		a.body, a.err = io.ReadAll(io.LimitReader(resp.Body, maxBody))
	} else {
		_, a.err = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	}
	return a
}

// goodScrape reports whether a is a complete /metrics page, and if not, why.
func goodScrape(a answer) (bool, string) {
	switch {
	case a.err != nil && a.status == 0:
		return false, errKind(a.err)
	case a.err != nil:
		return false, fmt.Sprintf("status %d, body failed: %s", a.status, errKind(a.err))
	case a.status != http.StatusOK:
		return false, fmt.Sprintf("status %d", a.status)
	case !bytes.Contains(a.body, marker):
		return false, "200 without ci_runner_version_info"
	}
	return true, ""
}

// errKind shortens a transport error to a countable kind.
func errKind(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	s := err.Error()
	for _, k := range []string{"connection refused", "connection reset", "EOF", "broken pipe", "handshake"} {
		if strings.Contains(s, k) {
			return k
		}
	}
	if len(s) > 60 {
		s = s[:60] + "..."
	}
	return s
}

// tlsSummary names the negotiated protocol, TLS version, cipher and key exchange.
func tlsSummary(a answer) string {
	if a.tls == nil {
		return a.proto
	}
	return fmt.Sprintf("%s, %s %s %s", a.proto, tls.VersionName(a.tls.Version),
		tls.CipherSuiteName(a.tls.CipherSuite), a.tls.CurveID)
}

// latencies summarises durations.
type latencies []time.Duration

// pct returns the nearest-rank percentile p (0 < p <= 1); 0 if empty.
func (l latencies) pct(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := append(latencies(nil), l...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s))*p+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// counts is a tally of kinds (status codes, error kinds).
type counts map[string]int

func (c counts) String() string {
	if len(c) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, c[k]))
	}
	return strings.Join(parts, ", ")
}

func (c counts) total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// sleepCtx sleeps for d or until ctx is done, and reports whether it slept fully.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
