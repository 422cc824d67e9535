package jobs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-kit/log/level"

	"github.com/alloyci/hardened-runner/coordinator"
	"github.com/alloyci/hardened-runner/shell"
)

// maxChunk bounds one trace chunk, so a burst of output goes in several
// requests of reasonable size.
const maxChunk = 1 << 20

// traceBuffer holds a job's whole (masked) trace, up to a limit, for the
// uploader to send from any offset again. It is safe for concurrent use.
type traceBuffer struct {
	mu    sync.Mutex
	buf   []byte
	limit int
	full  bool
}

func newTraceBuffer(limit int) *traceBuffer { return &traceBuffer{limit: limit} }

// Write keeps p, or as much as the limit allows followed by a note. It never
// fails: a job's output must not stop the job.
func (t *traceBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.full {
		return len(p), nil
	}
	if room := t.limit - len(t.buf); len(p) > room {
		t.buf = append(t.buf, p[:room]...)
		t.buf = fmt.Appendf(t.buf, "\nJob's log exceeded limit of %d bytes.\nJob execution will continue but no more output will be collected.\n", t.limit)
		t.full = true
		return len(p), nil
	}
	t.buf = append(t.buf, p...)
	return len(p), nil
}

// Len is the trace's length.
func (t *traceBuffer) Len() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return int64(len(t.buf))
}

// From copies the trace from off on, at most n bytes.
func (t *traceBuffer) From(off int64, n int) []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	if off >= int64(len(t.buf)) {
		return nil
	}
	end := min(int64(len(t.buf)), off+int64(n))
	return append([]byte(nil), t.buf[off:end]...)
}

// String is the whole trace.
func (t *traceBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// upload keeps the coordinator informed while the job runs: every trace
// interval a chunk of new output, or an empty chunk when there is none (the
// keep-alive; never a PUT running, which on AlloyCI resets the job's start
// time and answers no Job-Status). Every answer's Job-Status may say the job
// was canceled (anything but running), or a 403 that the token is gone: the
// job is stopped at once. It returns when stop is closed, after the call in
// flight: cutting a chunk off mid-request would leave the runner unsure of
// what the coordinator holds.
func (j *jobRun) upload(stop <-chan struct{}) {
	ctx := context.Background()
	t := time.NewTicker(j.l.traceInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		status, err := j.sendChunk(ctx, coordinator.RetryBriefly)
		switch {
		case errors.Is(err, coordinator.ErrForbidden):
			j.stopJob(errForbidden)
		case !coordinator.JobRunning(status):
			// Also on a 416, whose answer carries the status too.
			j.stopJob(errCanceled)
		case err != nil:
			// The next tick tries again; the final report does not give up.
			level.Debug(j.logger).Log("msg", "reporting a running job failed", "err", err)
		}
	}
}

func (j *jobRun) stopJob(cause error) {
	if j.stop != nil {
		j.stop(cause)
	}
}

// sendChunk sends the trace from j.sent on, one chunk, empty when there is
// no new output, and returns the Job-Status. j.sent is the runner's own
// count: a 202 adds the chunk's length and its Range is ignored (AlloyCI
// always answers "0-100"); only a 416, from a coordinator that checks
// ranges, moves it to where the coordinator stands, and the chunk is sent
// once more from there.
func (j *jobRun) sendChunk(ctx context.Context, retry coordinator.Retry) (string, error) {
	for attempt := 0; ; attempt++ {
		chunk := j.trace.From(j.sent, maxChunk)
		ans, err := j.l.client.PatchTrace(ctx, j.runner.URL, j.job.ID, j.job.Token, j.sent, chunk, retry)
		var re *coordinator.RangeError
		if errors.As(err, &re) {
			if re.Held < 0 || re.Held > j.trace.Len() || attempt > 0 {
				return re.Status, err
			}
			level.Debug(j.logger).Log("msg", "resending the trace from where the coordinator stands", "from", re.Held, "was", j.sent)
			j.sent = re.Held
			continue
		}
		if err != nil {
			return ans.Status, err
		}
		j.sent += int64(len(chunk))
		return ans.Status, nil
	}
}

// flush sends the rest of the trace in chunks, for whoever watches the live
// trace; the final PUT carries the whole trace anyway, so flush gives up on
// the first error.
func (j *jobRun) flush(ctx context.Context) {
	// Each round sends a chunk or moves j.sent back at most once; the bound
	// only stops a coordinator that keeps answering nonsense.
	for rounds := 0; rounds < 1000 && j.sent < j.trace.Len(); rounds++ {
		before := j.sent
		if _, err := j.sendChunk(ctx, coordinator.RetryBriefly); err != nil {
			level.Debug(j.logger).Log("msg", "the rest of the trace could not be sent in chunks; it goes with the final state", "err", err)
			return
		}
		if j.sent <= before {
			return
		}
	}
}

// validTrace is trace, already masked, as valid UTF-8: every run of invalid
// bytes becomes one U+FFFD, 3 bytes in the final PUT's JSON where the
// encoder writes 6 for each invalid byte. A replacement could complete a
// secret that contains U+FFFD ("a\xffb" becomes "a\ufffdb"), so such a
// trace is masked again.
func validTrace(trace string, secrets []string) string {
	if utf8.ValidString(trace) {
		return trace
	}
	out := strings.ToValidUTF8(trace, string(utf8.RuneError))
	for _, s := range secrets {
		if strings.ContainsRune(s, utf8.RuneError) {
			var b strings.Builder
			m := shell.NewMasker(&b, secrets)
			_, _ = m.Write([]byte(out))
			_ = m.Flush()
			return b.String()
		}
	}
	return out
}

// report sends the rest of the trace, then the final state with the whole
// (masked) trace, trying for as long as res says: AlloyCI keeps only the
// trace of the final PUT. Neither depends on the job's context: a result
// must get through even while the runner shuts down.
func (j *jobRun) report(res result) {
	if !res.report {
		level.Warn(j.logger).Log("msg", "job stopped; its result cannot be reported", "reason", res.message)
		return
	}
	ctx := context.Background()
	u := res.update
	j.flush(ctx)
	whole := validTrace(j.trace.String(), j.job.Secrets())
	u.Trace = &whole
	if _, err := j.l.client.UpdateJob(ctx, j.runner.URL, j.job.ID, j.job.Token, u, res.retry); err != nil {
		level.Error(j.logger).Log("msg", "the job's result could not be reported", "state", u.State, "err", err)
	}
}
