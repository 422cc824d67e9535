package proxy

import (
	"errors"
	"github.com/alloyci/hardened-runner/refusal"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

func TestDeclaredOversizedBodyIs502(t *testing.T) {
	f := newFixture(t, Options{MaxResponseBytes: 1024}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1025")
		io.WriteString(w, strings.Repeat("x", 1025))
	})
	srv := f.front(t)
	resp, body := rawRequest(t, srv.Listener.Addr().String(), "GET /metrics HTTP/1.1\r\nHost: x\r\n"+basicAuthLine()+"\r\n")
	if resp.StatusCode != http.StatusBadGateway || body != "Bad Gateway\n" {
		t.Fatalf("status %d body %q, want 502 %q", resp.StatusCode, body, "Bad Gateway\n")
	}
	assertOwnHeaders(t, resp.Header)
}

func TestBodyAtTheLimitPasses(t *testing.T) {
	for _, declare := range []bool{true, false} {
		f := newFixture(t, Options{MaxResponseBytes: 1024}, func(w http.ResponseWriter, r *http.Request) {
			if declare {
				w.Header().Set("Content-Length", "1024")
			}
			io.WriteString(w, strings.Repeat("x", 1000))
			w.(http.Flusher).Flush()
			io.WriteString(w, strings.Repeat("x", 24))
		})
		resp := authorizedGet(t, f.front(t), "/metrics")
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || len(body) != 1024 {
			t.Errorf("Content-Length declared %v: status %d, %d bytes, err %v; want 200, 1024 bytes, no error", declare, resp.StatusCode, len(body), err)
		}
	}
}

// An upstream streaming past the limit without Content-Length: the headers
// (200) are already out, so the scrape must break, not end short and clean.
func TestStreamedOversizedBodyBreaksTheResponse(t *testing.T) {
	const limit = 1500
	f := newFixture(t, Options{MaxResponseBytes: limit}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		for range 4 {
			io.WriteString(w, strings.Repeat("x", 1024))
			w.(http.Flusher).Flush()
		}
	})
	resp := authorizedGet(t, f.front(t), "/metrics")
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("reading the body: err %v after %d bytes, want unexpected EOF (a failed scrape)", err, len(body))
	}
	if len(body) > limit {
		t.Errorf("client received %d bytes, more than the %d limit", len(body), limit)
	}
	if resp.Header.Get("Content-Length") != "" {
		t.Errorf("Content-Length %q on a streamed response", resp.Header.Get("Content-Length"))
	}
	assertCount(t, f, refusal.ResponseTooLarge.Outcome(), 1)
	assertCount(t, f, outcomeOK, 0)
}

// Outside an http.Server, ReverseProxy only logs a copy error; the handler
// still aborts so no caller can mistake a partial body for a success.
func TestStreamedOversizedBodyAbortsWithoutServer(t *testing.T) {
	f := newFixture(t, Options{MaxResponseBytes: 100}, func(w http.ResponseWriter, r *http.Request) {
		w.(http.Flusher).Flush()
		io.WriteString(w, strings.Repeat("x", 101))
	})
	defer func() {
		if v := recover(); v != http.ErrAbortHandler {
			t.Fatalf("recovered %v, want http.ErrAbortHandler", v)
		}
		assertCount(t, f, refusal.ResponseTooLarge.Outcome(), 1)
	}()
	f.serve("GET", "/metrics", authorized())
	t.Fatal("handler returned normally after an oversized body")
}

func TestLimitedBodyNeverPassesMoreThanTheLimit(t *testing.T) {
	for _, size := range []int{0, 1, 9, 10, 11, 100} {
		ex := &exchange{outcome: outcomeOK}
		resp := &http.Response{}
		lb := &limitedBody{rc: io.NopCloser(strings.NewReader(strings.Repeat("x", size))), resp: resp, remaining: 10, ctx: t.Context(), ex: ex}
		got, err := io.ReadAll(lb)
		if size <= 10 {
			if err != nil || len(got) != size || ex.aborted {
				t.Errorf("size %d: read %d, err %v, aborted %v; want all of it", size, len(got), err, ex.aborted)
			}
			continue
		}
		if !errors.Is(err, errResponseTooLarge) || len(got) != 10 || ex.outcome != refusal.ResponseTooLarge.Outcome() || !ex.aborted {
			t.Errorf("size %d: read %d, err %v, outcome %s; want 10 bytes then errResponseTooLarge", size, len(got), err, ex.outcome)
		}
		if n, err := lb.Read(make([]byte, 8)); n != 0 || !errors.Is(err, errResponseTooLarge) {
			t.Errorf("size %d: read after the limit gave %d, %v", size, n, err)
		}
	}
}

func assertCount(t *testing.T, f *fixture, outcome string, want float64) {
	t.Helper()
	if got := counterValue(t, f, outcome); got != want {
		t.Errorf("metrics_proxy_requests_total{outcome=%q} = %s, want %s", outcome, strconv.FormatFloat(got, 'g', -1, 64), strconv.FormatFloat(want, 'g', -1, 64))
	}
}
