package readiness

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alloyci/hardened-runner/internal/clocktest"
)

var errRefused = errors.New("connection refused")

// probes counts probe calls per name and answers from down.
type probes struct {
	calls map[string]*atomic.Int32
	down  map[string]bool
}

func newProbes(names ...string) *probes {
	p := &probes{calls: map[string]*atomic.Int32{}, down: map[string]bool{}}
	for _, n := range names {
		p.calls[n] = new(atomic.Int32)
	}
	return p
}

func (p *probes) probe(_ context.Context, name string) error {
	p.calls[name].Add(1)
	if p.down[name] {
		return errRefused
	}
	return nil
}

func TestRealTrafficSparesTheProbe(t *testing.T) {
	clock := clocktest.New(time.Unix(1e9, 0))
	tr := New(Options{Now: clock.Now})
	p := newProbes("runner", "node")
	tr.Record("runner", nil)
	if f := tr.Check(context.Background(), []string{"runner", "node"}, p.probe); f != nil {
		t.Fatalf("failures = %v, want none", f)
	}
	if got := p.calls["runner"].Load(); got != 0 {
		t.Errorf("runner probed %d times right after a scrape, want 0", got)
	}
	if got := p.calls["node"].Load(); got != 1 {
		t.Errorf("node probed %d times without evidence, want 1", got)
	}
	// Within DefaultFresh, no probe again.
	clock.Advance(DefaultFresh - time.Millisecond)
	tr.Check(context.Background(), []string{"runner", "node"}, p.probe)
	if r, n := p.calls["runner"].Load(), p.calls["node"].Load(); r != 0 || n != 1 {
		t.Errorf("probes within the fresh window: runner %d node %d, want 0 and 1", r, n)
	}
	clock.Advance(time.Millisecond)
	tr.Check(context.Background(), []string{"runner", "node"}, p.probe)
	if r, n := p.calls["runner"].Load(), p.calls["node"].Load(); r != 1 || n != 2 {
		t.Errorf("probes after the fresh window: runner %d node %d, want 1 and 2", r, n)
	}
}

func TestDownThenBack(t *testing.T) {
	clock := clocktest.New(time.Unix(1e9, 0))
	tr := New(Options{Now: clock.Now})
	p := newProbes("runner", "node")
	p.down["node"] = true
	f := tr.Check(context.Background(), []string{"runner", "node"}, p.probe)
	if len(f) != 1 || f[0].Name != "node" || !errors.Is(f[0].Err, errRefused) {
		t.Fatalf("failures = %v, want node: connection refused", f)
	}
	// A failure stands for DefaultRetry: a flood of checks costs no probe.
	for range 100 {
		tr.Check(context.Background(), []string{"node"}, p.probe)
	}
	if got := p.calls["node"].Load(); got != 1 {
		t.Errorf("node probed %d times within the retry window, want 1", got)
	}
	p.down["node"] = false
	clock.Advance(DefaultRetry)
	if f := tr.Check(context.Background(), []string{"runner", "node"}, p.probe); f != nil {
		t.Errorf("failures after node came back = %v, want none", f)
	}
}

func TestRecordedFailureCountsUntilRetry(t *testing.T) {
	clock := clocktest.New(time.Unix(1e9, 0))
	tr := New(Options{Now: clock.Now})
	p := newProbes("node")
	tr.Record("node", errRefused)
	if f := tr.Check(context.Background(), []string{"node"}, p.probe); len(f) != 1 || p.calls["node"].Load() != 0 {
		t.Fatalf("failures %v with %d probes, want the recorded failure and no probe", f, p.calls["node"].Load())
	}
	clock.Advance(DefaultRetry)
	if f := tr.Check(context.Background(), []string{"node"}, p.probe); f != nil || p.calls["node"].Load() != 1 {
		t.Errorf("failures %v with %d probes after the retry window, want none and 1 probe", f, p.calls["node"].Load())
	}
}

func TestForget(t *testing.T) {
	clock := clocktest.New(time.Unix(1e9, 0))
	tr := New(Options{Now: clock.Now})
	p := newProbes("node")
	tr.Record("node", errRefused)
	tr.Forget(nil)
	if f := tr.Check(context.Background(), []string{"node"}, p.probe); f != nil || p.calls["node"].Load() != 1 {
		t.Errorf("after Forget: failures %v, %d probes; want a fresh probe that succeeds", f, p.calls["node"].Load())
	}
}

// Concurrent checks of an unknown upstream share one probe.
func TestConcurrentChecksShareAProbe(t *testing.T) {
	tr := New(Options{})
	release := make(chan struct{})
	var calls atomic.Int32
	probe := func(context.Context, string) error {
		calls.Add(1)
		<-release
		return nil
	}
	done := make(chan []Failure, 8)
	for range 8 {
		go func() { done <- tr.Check(context.Background(), []string{"node"}, probe) }()
	}
	// Every Check either joins the running probe or, once it has been
	// recorded, finds the evidence; none starts a second probe.
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	for range 8 {
		if f := <-done; f != nil {
			t.Errorf("failures = %v", f)
		}
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("probes = %d, want 1", got)
	}
}
