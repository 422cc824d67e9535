package ratelog

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Split(strings.TrimSpace(s.b.String()), "\n")
}

// A flood of 50 lines writes the burst, then one summary counting the rest.
func TestFloodWritesBurstThenSummary(t *testing.T) {
	var buf syncBuf
	l := New(log.NewLogfmtLogger(&buf), "upstream failure")
	l.interval = 20 * time.Millisecond
	for i := 0; i < 50; i++ {
		level.Error(l).Log("msg", "upstream request failed", "n", i)
	}
	if got := len(buf.lines()); got != Burst {
		t.Fatalf("%d lines right after the flood, want the burst of %d", got, Burst)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(buf.lines()) == Burst && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	lines := buf.lines()
	if len(lines) != Burst+1 {
		t.Fatalf("%d lines, want %d then one summary:\n%s", len(lines), Burst, strings.Join(lines, "\n"))
	}
	want := `level=warn msg="suppressed 40 upstream failure log lines" suppressed=40`
	if !strings.HasPrefix(lines[Burst], want) {
		t.Errorf("summary = %q, want prefix %q", lines[Burst], want)
	}
}

// Lines under the rate pass untouched and no summary is written.
func TestQuietLinesPass(t *testing.T) {
	var buf syncBuf
	l := New(log.NewLogfmtLogger(&buf), "x")
	l.interval = time.Millisecond
	level.Warn(l).Log("msg", "one")
	level.Warn(l).Log("msg", "two")
	time.Sleep(10 * time.Millisecond)
	if got := buf.lines(); len(got) != 2 || got[0] != "level=warn msg=one" || got[1] != "level=warn msg=two" {
		t.Errorf("lines = %q, want the two lines unchanged", got)
	}
}
