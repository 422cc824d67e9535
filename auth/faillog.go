package auth

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"golang.org/x/time/rate"
)

// Failed-auth log limits: a sustained rate of one line a second with bursts of ten,
// and while lines are being dropped one summary line every summaryInterval. An
// attack therefore writes at most about 1.1 lines a second, however fast it is.
const (
	logRate         = rate.Limit(1)
	logBurst        = 10
	summaryInterval = 10 * time.Second
	maxLoggedUser   = 64
)

// failureLog writes rate-limited warnings about failed attempts.
type failureLog struct {
	logger log.Logger

	mu          sync.Mutex
	limiter     *rate.Limiter
	periodStart time.Time // when the first line of the current drop period was dropped
	// suppressed counts lines dropped since the last summary. It is written only
	// with mu held, but atomic so that flush can skip the lock when it is zero.
	suppressed atomic.Uint64
}

func newFailureLog(logger log.Logger) *failureLog {
	return &failureLog{logger: logger, limiter: rate.NewLimiter(logRate, logBurst)}
}

// failed logs one failed attempt, or counts it as suppressed. The password, the
// token and the hashes are never passed here; the user name is escaped and
// capped because it is attacker-controlled text. A bearer attempt (kind
// kindBearer) has no user name and is logged as credential="bearer token".
func (l *failureLog) failed(now time.Time, remoteAddr, kind, userName, outcome, reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.summarizeLocked(now)
	if !l.limiter.AllowN(now, 1) {
		if l.suppressed.Add(1) == 1 {
			l.periodStart = now
		}
		return
	}
	who, name := "user", logSafeUser(userName)
	if kind == kindBearer {
		who, name = "credential", kindBearer
	}
	_ = level.Warn(l.logger).Log(
		"msg", "authentication failed",
		"outcome", outcome,
		"reason", reason,
		"client", remoteAddr,
		who, name,
	)
}

// flush writes the summary line if one is due. Authorize calls it on every request
// (one atomic load when nothing was dropped), so the count of dropped lines is
// reported soon after a flood ends too, not only at the next failure.
func (l *failureLog) flush(now time.Time) {
	if l.suppressed.Load() == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.summarizeLocked(now)
}

// summarizeLocked writes "suppressed N failed-auth log lines" once the current drop
// period is summaryInterval old. Call with l.mu held.
func (l *failureLog) summarizeLocked(now time.Time) {
	n := l.suppressed.Load()
	if n == 0 || now.Sub(l.periodStart) < summaryInterval {
		return
	}
	l.suppressed.Store(0)
	_ = level.Warn(l.logger).Log(
		"msg", fmt.Sprintf("suppressed %d failed-auth log lines", n),
		"suppressed", n,
		"since", l.periodStart.UTC().Format(time.RFC3339),
	)
}

// logSafeUser makes an attacker-chosen user name safe to log: at most
// maxLoggedUser bytes, then escaped to printable ASCII (quotes, control characters,
// invalid UTF-8 and non-ASCII become Go escapes), so a name cannot forge log lines
// or fields in any log format, and with "..." appended when it was cut.
func logSafeUser(name string) string {
	cut := len(name) > maxLoggedUser
	if cut {
		name = name[:maxLoggedUser]
	}
	q := strconv.QuoteToASCII(name)
	q = q[1 : len(q)-1] // drop the quotes QuoteToASCII adds; the log format quotes as needed
	if cut {
		q += "..."
	}
	return q
}
