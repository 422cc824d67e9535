package auth

import (
	"context"
	"time"
)

// DefaultThrottleDelay is how long a throttled client waits for its 429
// when Options.ThrottleDelay is zero.
const DefaultThrottleDelay = time.Second

// maxHeld bounds the throttled answers held back at once: each holds a
// goroutine, and HTTP/2 lets one connection open several streams. Past the
// bound, throttled requests are answered at once (and their connections are
// closed, as after every refusal).
const maxHeld = 256

// holder holds throttled refusals back. A flood that ignores Retry-After
// then sends one request per connection per delay instead of thousands a
// second, so answering it costs little CPU and good scrapes are not slowed.
// Clients with a known-good credential are never throttled, so never
// delayed.
type holder struct {
	delay time.Duration // 0: answer at once
	slots chan struct{}
	// wait is sleepCtx; tests replace it to see the delay without spending it.
	wait func(ctx context.Context, d time.Duration)
}

func newHolder(delay time.Duration) *holder {
	switch {
	case delay == 0:
		delay = DefaultThrottleDelay
	case delay < 0:
		delay = 0
	}
	return &holder{delay: delay, slots: make(chan struct{}, maxHeld), wait: sleepCtx}
}

// hold waits the delay, or less if ctx ends first, unless maxHeld answers
// are already held.
func (h *holder) hold(ctx context.Context) {
	if h == nil || h.delay == 0 {
		return
	}
	select {
	case h.slots <- struct{}{}:
		h.wait(ctx, h.delay)
		<-h.slots
	default:
	}
}

// sleepCtx waits d, or less if ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
