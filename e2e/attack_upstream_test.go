package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// check5xx asserts a fixed 5xx answer that tells nothing about the inside.
func check5xx(t *testing.T, what string, r result, status int, body, upstreamAddr string) {
	t.Helper()
	if r.Status != status || r.Body != body {
		t.Errorf("%s: %d %q, want %d %q", what, r.Status, r.Body, status, body)
	}
	checkNoLeak(t, what, r.Body, upstreamAddr)
	for k, vs := range r.Header {
		for _, v := range vs {
			checkNoLeak(t, what+" header "+k, v, upstreamAddr)
		}
	}
}

// leakWords are what a 5xx body must never contain besides the upstream's
// address: Go error text that would tell an attacker about the inside.
var leakWords = []string{"127.0.0.1", "localhost", "dial", "refused", "EOF", "timeout", "tcp", "http://", "unix"}

// checkNoLeak fails when body holds an internal address, the upstream's
// port or Go error text.
func checkNoLeak(t *testing.T, what, body, upstreamAddr string) {
	t.Helper()
	words := append([]string(nil), leakWords...)
	if _, port, err := net.SplitHostPort(upstreamAddr); err == nil {
		words = append(words, port)
	}
	for _, w := range words {
		if strings.Contains(body, w) {
			t.Errorf("%s: body %q contains %q", what, body, w)
		}
	}
}

// The upstream refuses connections: 502 with a fixed body; the reason is in
// the log only.
func TestAttackUpstreamRefused(t *testing.T) {
	t.Parallel()
	closed := freeAddr(t)
	p := startProxy(t, proxyOptions{Upstream: "http://" + closed})
	c := p.client("")
	check5xx(t, "connection refused", p.get(t, c, "/metrics"), 502, "Bad Gateway\n", closed)
	p.waitLog(`level=error .*msg="upstream request failed" outcome=upstream_error err=.*connection refused`)
	if m := p.selfMetrics(t, c); metric(m, outcome("upstream_error")) != 1 {
		t.Errorf("upstream_error = %v, want 1", metric(m, outcome("upstream_error")))
	}
}

// An upstream slower than --upstream.timeout, or than the scraper's own
// X-Prometheus-Scrape-Timeout-Seconds, gets 504 before headers and a failed
// body after them; the upstream's request is canceled.
func TestAttackUpstreamSlow(t *testing.T) {
	t.Parallel()
	var canceled atomic.Int32
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		// However the handler ends, it counts the proxy canceling it.
		defer func() {
			select {
			case <-r.Context().Done():
				canceled.Add(1)
			case <-time.After(15 * time.Second):
			}
		}()
		if r.URL.Query().Get("trickle") == "" {
			return // never answers; waits for the cancellation above
		}
		w.Header().Set("Content-Type", "text/plain")
		for i := range 100 {
			if _, err := fmt.Fprintf(w, "atk_line %d\n", i); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	p := startProxy(t, proxyOptions{Upstream: up.URL, Args: []string{"--upstream.timeout=1s"}})
	c := p.client("")
	good := basic(defaultUser, defaultPassword)
	check5xx(t, "slower than --upstream.timeout", p.get(t, c, "/metrics"), 504, "Gateway Timeout\n", up.Addr)
	check5xx(t, "slower than the scrape timeout",
		do(t, c, "GET", p.URL+"/metrics", map[string]string{"Authorization": good, "X-Prometheus-Scrape-Timeout-Seconds": "0.2"}),
		504, "Gateway Timeout\n", up.Addr)
	// Headers in time, body too slow: the client sees a failed body, never
	// a clean short 200.
	r, err := try(c, "GET", p.URL+"/metrics?trickle=1", authHeader(defaultUser, defaultPassword))
	if err != nil {
		t.Fatalf("body slower than the timeout: %v", err)
	}
	if r.Status != 200 || r.ReadErr == nil || !errors.Is(r.ReadErr, io.ErrUnexpectedEOF) {
		t.Errorf("body slower than the timeout: %d, read error %v after %d bytes", r.Status, r.ReadErr, len(r.Body))
	}
	if !strings.HasPrefix(r.Body, "atk_line 0\n") || strings.Contains(r.Body, "atk_line 99\n") {
		t.Errorf("trickled body %q", r.Body)
	}
	p.waitLog(`msg="upstream request failed" outcome=upstream_timeout`)
	m := p.selfMetrics(t, c)
	if got := metric(m, outcome("upstream_timeout")); got != 3 {
		t.Errorf("upstream_timeout = %v, want 3", got)
	}
	eventually(t, "upstream requests canceled", func() bool { return canceled.Load() == 3 })
}

// An upstream that dies in the middle of its body: the client's read fails
// (unexpected EOF), whatever the framing; never a clean short 200.
func TestAttackUpstreamClosedMidBody(t *testing.T) {
	t.Parallel()
	half := strings.Repeat("atk_half 1\n", 5000)
	addr := startRawUpstream(t, func(c net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		if req.URL.Query().Get("chunked") != "" {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", len(half), half)
			return
		}
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", 2*len(half), half)
	})
	p := startProxy(t, proxyOptions{Upstream: "http://" + addr})
	for _, h2 := range []bool{false, true} {
		c := p.client("")
		if h2 {
			c = p.h2Client("")
		}
		for _, path := range []string{"/metrics", "/metrics?chunked=1"} {
			r, err := try(c, "GET", p.URL+path, authHeader(defaultUser, defaultPassword))
			if err != nil {
				t.Fatalf("h2=%v %s: %v", h2, path, err)
			}
			if r.Status != 200 || r.ReadErr == nil || len(r.Body) > len(half) {
				t.Errorf("h2=%v %s: %d, %d bytes, read error %v", h2, path, r.Status, len(r.Body), r.ReadErr)
			}
			if !h2 && !errors.Is(r.ReadErr, io.ErrUnexpectedEOF) {
				t.Errorf("%s: read error %v, want unexpected EOF", path, r.ReadErr)
			}
		}
	}
	if m := p.selfMetrics(t, p.client("")); metric(m, outcome("upstream_error")) != 4 {
		t.Errorf("upstream_error = %v, want 4", metric(m, outcome("upstream_error")))
	}
}

// Answers that are not HTTP, or broken HTTP, are 502 with the fixed body; no
// upstream response header but the allowlisted ones reaches the client.
func TestAttackUpstreamGarbage(t *testing.T) {
	t.Parallel()
	binary := bytes.Repeat([]byte{0x16, 0x03, 0x01, 0x00, 0xff, 0x00, 0x80, 0xfe}, 512)
	addr := startRawUpstream(t, func(c net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		switch req.URL.Query().Get("g") {
		case "ssh":
			io.WriteString(c, "SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n")
		case "binary":
			c.Write(binary)
		case "nothing":
		case "badlength":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\natk_up 1\n")
		case "twolengths":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nContent-Length: 90\r\n\r\natk_up 1\n")
		case "hugeheader":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Huge: "+strings.Repeat("h", 100<<10)+"\r\nContent-Length: 9\r\n\r\natk_up 1\n")
		case "leaky":
			io.WriteString(c, "HTTP/1.1 302 Found\r\nLocation: http://"+c.LocalAddr().String()+"/debug/pprof/\r\n"+
				"Set-Cookie: runner=secret\r\nServer: alloy-runner/internal\r\nX-Internal-Addr: "+c.LocalAddr().String()+"\r\n"+
				"Content-Type: text/plain\r\n"+rawBody)
		}
	})
	p := startProxy(t, proxyOptions{Upstream: "http://" + addr})
	c := p.client("")
	for _, g := range []string{"ssh", "binary", "nothing", "badlength", "twolengths", "hugeheader"} {
		check5xx(t, g, p.get(t, c, "/metrics?g="+g), 502, "Bad Gateway\n", addr)
	}
	// A redirect to the inside, cookies and server details are not relayed.
	r := p.get(t, c, "/metrics?g=leaky")
	if r.Status != 302 || r.Body != upBody {
		t.Errorf("leaky: %d %q", r.Status, r.Body)
	}
	for _, h := range []string{"Location", "Set-Cookie", "Server", "X-Internal-Addr"} {
		if v := r.Header.Get(h); v != "" {
			t.Errorf("upstream header %s: %q relayed", h, v)
		}
	}
	if m := p.selfMetrics(t, c); metric(m, outcome("upstream_error")) != 6 {
		t.Errorf("upstream_error = %v, want 6", metric(m, outcome("upstream_error")))
	}
}

// Huge and endless upstream bodies: a declared size over
// --upstream.max-response-bytes is 502, a streamed one is cut with a failed
// read and never a byte over the limit, an endless one is cut and its
// upstream connection closed. After a few hundred MB the proxy's resident
// memory is still small.
func TestAttackUpstreamHugeAndEndlessBodies(t *testing.T) {
	t.Parallel()
	const limit = 32 << 20
	block := bytes.Repeat([]byte("atk_big_series{a=\"b\"} 1\n"), 64<<10/25)
	var endlessStopped atomic.Int32
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		size, _ := strconv.Atoi(q.Get("size"))
		if q.Get("cl") != "" {
			w.Header().Set("Content-Length", strconv.Itoa(size))
		}
		w.Header().Set("Content-Type", "text/plain")
		if q.Get("endless") != "" {
			size = 1 << 30 // bounded all the same
		}
		for written := 0; written < size; {
			n, err := w.Write(block[:min(len(block), size-written)])
			written += n
			if err != nil {
				if q.Get("endless") != "" {
					endlessStopped.Add(1)
				}
				return
			}
		}
	})
	p := startProxy(t, proxyOptions{Upstream: up.URL, Args: []string{"--upstream.max-response-bytes=" + strconv.Itoa(limit), "--upstream.timeout=30s"}})

	// read fetches path and discards the body, counting it.
	read := func(c *http.Client, path string) (int, int64, error) {
		req, _ := http.NewRequest("GET", p.URL+path, nil)
		req.SetBasicAuth(defaultUser, defaultPassword)
		resp, err := c.Do(req)
		if err != nil {
			t.Errorf("GET %s: %v", path, err)
			return 0, 0, err
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, n, err
	}
	c := p.client("")
	r := p.get(t, c, fmt.Sprintf("/metrics?size=%d&cl=1", limit+1))
	check5xx(t, "declared body over the limit", r, 502, "Bad Gateway\n", up.Addr)

	var wg sync.WaitGroup
	var pushed atomic.Int64
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := p.client("")
			// Within the limit, exactly at it, declared or streamed: whole.
			for i, size := range []int{30 << 20, limit} {
				path := fmt.Sprintf("/metrics?size=%d", size)
				if (w+i)%2 == 0 {
					path += "&cl=1"
				}
				st, n, err := read(c, path)
				pushed.Add(n)
				if st != 200 || n != int64(size) || err != nil {
					t.Errorf("%s: %d, %d bytes, %v", path, st, n, err)
				}
			}
			// Streamed past the limit, and endless: cut at the limit.
			for _, path := range []string{fmt.Sprintf("/metrics?size=%d", limit+(1<<20)), "/metrics?endless=1"} {
				st, n, err := read(c, path)
				pushed.Add(n)
				if st != 200 || err == nil || n > limit {
					t.Errorf("%s: %d, %d bytes, read error %v", path, st, n, err)
				}
			}
		}()
	}
	wg.Wait()
	if pushed.Load() < 300<<20 {
		t.Fatalf("only %d bytes went through", pushed.Load())
	}
	eventually(t, "endless upstream responses cut off", func() bool { return endlessStopped.Load() == 3 })
	m := p.selfMetrics(t, c)
	expectMetrics(t, m, map[string]float64{
		outcome("response_too_large"): 7,
		outcome("ok"):                 7, // six bodies and this request
	})
	rss := rssKiB(t, p.cmd.Process.Pid)
	t.Logf("proxy VmRSS %d KiB after %d MiB went through", rss, pushed.Load()>>20)
	if rss > 100<<10 {
		t.Errorf("proxy VmRSS %d KiB after %d MiB went through, want under 100 MiB", rss, pushed.Load()>>20)
	}
}
