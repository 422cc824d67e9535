package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"time"
)

// The static upstream serves one /metrics page captured from the real runner,
// byte for byte, with the runner's Content-Type and Vary headers, and the same
// page gzip-compressed once, in advance, to clients that accept gzip. Serving
// it costs next to nothing, so what the scrape-rate test measures in front of
// it is the proxy layer (TLS, authentication, relaying), not the runner's
// render and compression, which cost several times a proxy's work per scrape.

// droppedHeaders are not replayed: they describe one response on the wire,
// not the page.
var droppedHeaders = map[string]bool{
	"Date": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true,
	"Keep-Alive": true, "Content-Encoding": true,
}

// capturedPage is the runner's page as the static upstream serves it.
type capturedPage struct {
	path        string // body; path+".gz" and path+".headers" beside it
	size, gzLen int
	contentType string
}

// capturePage GETs the runner's /metrics once without Accept-Encoding (so the
// body is what the runner renders, uncompressed) and writes it to path, its
// gzip to path.gz and its headers, less droppedHeaders, to path.headers.
func capturePage(ctx context.Context, runnerURL, path string) (capturedPage, error) {
	cl := &http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: true}}
	defer cl.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, runnerURL+"/metrics", nil)
	if err != nil {
		return capturedPage{}, err
	}
	resp, err := cl.Do(req)
	if err != nil {
		return capturedPage{}, fmt.Errorf("capturing the runner's /metrics: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	switch {
	case err != nil:
		return capturedPage{}, fmt.Errorf("capturing the runner's /metrics: %w", err)
	case resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "" || !bytes.Contains(body, marker):
		return capturedPage{}, fmt.Errorf("capturing the runner's /metrics: status %d, Content-Encoding %q, %d bytes: not an uncompressed page",
			resp.StatusCode, resp.Header.Get("Content-Encoding"), len(body))
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(body); err != nil {
		return capturedPage{}, err
	}
	if err := zw.Close(); err != nil {
		return capturedPage{}, err
	}
	var hdr strings.Builder
	for k, vs := range resp.Header {
		if droppedHeaders[k] {
			continue
		}
		for _, v := range vs {
			fmt.Fprintf(&hdr, "%s: %s\n", k, v)
		}
	}
	for p, b := range map[string][]byte{path: body, path + ".gz": gz.Bytes(), path + ".headers": []byte(hdr.String())} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			return capturedPage{}, err
		}
	}
	return capturedPage{path: path, size: len(body), gzLen: gz.Len(), contentType: resp.Header.Get("Content-Type")}, nil
}

// serveStatic serves the page captured at path on listen (plain HTTP) until
// killed.
func serveStatic(listen, path string) int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "bench %s: %v\n", modeStaticUpstream, err)
		return 2
	}
	body, err := os.ReadFile(path)
	if err != nil {
		return fail(err)
	}
	gz, err := os.ReadFile(path + ".gz")
	if err != nil {
		return fail(err)
	}
	raw, err := os.ReadFile(path + ".headers")
	if err != nil {
		return fail(err)
	}
	hdr, err := textproto.NewReader(bufio.NewReader(io.MultiReader(bytes.NewReader(raw), strings.NewReader("\n")))).ReadMIMEHeader()
	if err != nil {
		return fail(fmt.Errorf("%s.headers: %w", path, err))
	}
	srv := &http.Server{
		Addr:              listen,
		Handler:           staticHandler(body, gz, http.Header(hdr)),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fail(err)
	}
	return 0
}

// staticHandler answers GET and HEAD /metrics with the page, gzip-compressed
// when the request accepts gzip. Like the runner's handler it writes the body
// without a Content-Length, so both are sent chunked.
func staticHandler(body, gz []byte, hdr http.Header) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		for k, vs := range hdr {
			h[k] = vs
		}
		b := body
		if acceptsGzip(r.Header) {
			h.Set("Content-Encoding", "gzip")
			b = gz
		}
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(b)
	})
}

// acceptsGzip reports whether Accept-Encoding lists gzip with a q-value above 0.
func acceptsGzip(h http.Header) bool {
	for _, v := range h.Values("Accept-Encoding") {
		for _, part := range strings.Split(v, ",") {
			coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
				continue
			}
			q := 1.0
			for _, p := range strings.Split(params, ";") {
				if k, val, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "q") {
					if f, err := strconv.ParseFloat(val, 64); err == nil {
						q = f
					}
				}
			}
			return q > 0
		}
	}
	return false
}
