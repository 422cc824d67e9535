// Package ratelog bounds the log lines that clients can cause. Every
// per-request line metrics-proxy writes at warn or error (an upstream failure,
// a refused connection) goes through a Logger from here, so a flood writes at
// most a burst and then about one line a second, however fast it is, and a
// summary says how many lines were dropped.
package ratelog

import (
	"fmt"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"golang.org/x/time/rate"
)

// Defaults: a burst of Burst lines, then Rate lines a second; while lines are
// dropped, one summary line every SummaryInterval.
const (
	Burst           = 10
	Rate            = rate.Limit(1)
	SummaryInterval = 10 * time.Second
)

// Logger is a go-kit log.Logger that passes on at most Burst lines at once
// and Rate lines a second, and reports what it dropped. It is safe for
// concurrent use.
type Logger struct {
	next log.Logger
	what string // names the dropped lines in the summary

	mu         sync.Mutex
	limiter    *rate.Limiter
	suppressed uint64
	since      time.Time   // when the first line of the current drop period was dropped
	timer      *time.Timer // writes the summary; nil while nothing is dropped
	interval   time.Duration
}

// New returns a Logger writing to next. what names the lines in the summary
// ("upstream failure"), which reads "suppressed 12 upstream failure log lines".
func New(next log.Logger, what string) *Logger {
	return &Logger{next: next, what: what, limiter: rate.NewLimiter(Rate, Burst), interval: SummaryInterval}
}

// Log passes keyvals on, or drops them and schedules a summary.
func (l *Logger) Log(keyvals ...any) error {
	l.mu.Lock()
	if l.limiter.Allow() {
		l.mu.Unlock()
		return l.next.Log(keyvals...)
	}
	l.suppressed++
	if l.timer == nil {
		l.since = time.Now()
		l.timer = time.AfterFunc(l.interval, l.summarize)
	}
	l.mu.Unlock()
	return nil
}

// summarize writes the count of lines dropped since the period began. A
// flood that goes on gets one summary per interval; one that stopped gets
// its last summary one interval after its first dropped line.
func (l *Logger) summarize() {
	l.mu.Lock()
	n, since := l.suppressed, l.since
	l.suppressed, l.timer = 0, nil
	l.mu.Unlock()
	if n == 0 {
		return
	}
	_ = level.Warn(l.next).Log(
		"msg", fmt.Sprintf("suppressed %d %s log lines", n, l.what),
		"suppressed", n,
		"since", since.UTC().Format(time.RFC3339),
	)
}
