package auth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// A flood that ignores Retry-After is slowed to one request per connection
// per ThrottleDelay: only throttled answers are held back, never busy or 401.
// (Moved from package proxy with the semaphore.)
func TestThrottledAnswersAreHeldBack(t *testing.T) {
	for _, tc := range []struct {
		outcome string
		delay   time.Duration
		want    time.Duration
	}{
		{OutcomeThrottled, 0, DefaultThrottleDelay},
		{OutcomeThrottled, 3 * time.Second, 3 * time.Second},
		{OutcomeThrottled, -1, 0},
		{OutcomeBusy, 0, 0},
		{OutcomeUnauthorized, 0, 0},
	} {
		h := newHolder(tc.delay)
		var waited time.Duration
		h.wait = func(_ context.Context, d time.Duration) { waited += d }
		res := Result{outcome: tc.outcome, retryAfter: 1, hold: h}
		rec := httptest.NewRecorder()
		res.WriteError(rec, httptest.NewRequest("GET", "/metrics", nil))
		if waited != tc.want {
			t.Errorf("%s with ThrottleDelay %v: held back %v, want %v", tc.outcome, tc.delay, waited, tc.want)
		}
		if tc.outcome != OutcomeUnauthorized && (rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "1") {
			t.Errorf("%s: %d Retry-After %q, want 429 with 1", tc.outcome, rec.Code, rec.Header().Get("Retry-After"))
		}
	}
}

// Held-back 429s are bounded: each holds a goroutine, and HTTP/2 lets one
// connection open many streams; past the bound they are answered at once.
func TestHeldBackRefusalsAreBounded(t *testing.T) {
	h := newHolder(0)
	waits := 0
	h.wait = func(context.Context, time.Duration) { waits++ }
	for range cap(h.slots) {
		h.slots <- struct{}{}
	}
	res := Result{outcome: OutcomeThrottled, retryAfter: 1, hold: h}
	rec := httptest.NewRecorder()
	res.WriteError(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusTooManyRequests || waits != 0 {
		t.Fatalf("with every delay slot taken: %d, held back %d times; want 429 at once", rec.Code, waits)
	}
	<-h.slots
	res.WriteError(httptest.NewRecorder(), httptest.NewRequest("GET", "/metrics", nil))
	if waits != 1 || len(h.slots) != cap(h.slots)-1 {
		t.Fatalf("held back %d times, %d slots taken; want 1 and the slot given back", waits, len(h.slots))
	}
}

// A client that hangs up ends its wait.
func TestHoldEndsWithTheClient(t *testing.T) {
	h := newHolder(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan struct{})
	go func() { h.hold(ctx); close(done) }()
	<-done
	if len(h.slots) != 0 {
		t.Fatalf("%d slots taken after the wait, want 0", len(h.slots))
	}
}
