// Package readiness answers "is every upstream answering?" for
// metrics-proxy's /-/ready without letting that question become a load of
// its own: real traffic counts as evidence, and an upstream is probed only
// when there is no recent evidence, at most once at a time per upstream, and
// a failure is remembered for a short while before the next probe.
package readiness

import (
	"context"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Defaults for Options fields left at zero.
const (
	// DefaultFresh is how long an answer (from real traffic or a probe)
	// stands as evidence that an upstream is up. Prometheus scrapes every
	// 15 s to 1 min, so a scraped upstream is rarely probed.
	DefaultFresh = 10 * time.Second
	// DefaultRetry is how long a failure stands before the next probe, so
	// that a return is seen within about a second while a flood of /-/ready
	// requests still costs at most one probe a second per upstream.
	DefaultRetry = time.Second
)

// Options configure a Tracker. The zero value is usable.
type Options struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Fresh is how long a success stands; zero means DefaultFresh.
	Fresh time.Duration
	// Retry is how long a failure stands; zero means DefaultRetry.
	Retry time.Duration
}

// Tracker remembers the last answer of each upstream, by name (a route's
// name). It is safe for concurrent use.
type Tracker struct {
	now          func() time.Time
	fresh, retry time.Duration

	mu   sync.Mutex
	last map[string]answer

	flight singleflight.Group
}

// answer is one piece of evidence: when, and the failure (nil for success).
type answer struct {
	at  time.Time
	err error
}

// New returns a Tracker with no evidence yet.
func New(o Options) *Tracker {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Fresh <= 0 {
		o.Fresh = DefaultFresh
	}
	if o.Retry <= 0 {
		o.Retry = DefaultRetry
	}
	return &Tracker{now: o.Now, fresh: o.Fresh, retry: o.Retry, last: map[string]answer{}}
}

// Record notes that the named upstream answered (err nil) or failed.
// Callers record only what is the upstream's doing: a scrape cut short by
// the client's own tiny timeout says nothing about the upstream.
func (t *Tracker) Record(name string, err error) {
	t.mu.Lock()
	t.last[name] = answer{at: t.now(), err: err}
	t.mu.Unlock()
}

// Forget drops the evidence of names no longer served, so a route that
// comes back after a reload is judged afresh.
func (t *Tracker) Forget(keep []string) {
	k := make(map[string]bool, len(keep))
	for _, n := range keep {
		k[n] = true
	}
	t.mu.Lock()
	for n := range t.last {
		if !k[n] {
			delete(t.last, n)
		}
	}
	t.mu.Unlock()
}

// Failure is one upstream that is not ready, and why.
type Failure struct {
	Name string
	Err  error
}

// Check returns the failures among names, sorted by name, nil when all are
// ready. An upstream without standing evidence is probed (each once, all at
// the same time, the probe bounding its own time); concurrent Checks share
// a probe.
func (t *Tracker) Check(ctx context.Context, names []string, probe func(ctx context.Context, name string) error) []Failure {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []Failure
	)
	for _, n := range names {
		if err, ok := t.standing(n); ok {
			if err != nil {
				failures = append(failures, Failure{n, err})
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The probe runs on its own context: a client that hangs up
			// must not record a failure that is not the upstream's.
			ch := t.flight.DoChan(n, func() (any, error) {
				err := probe(context.WithoutCancel(ctx), n)
				t.Record(n, err)
				return nil, err
			})
			var err error
			select {
			case res := <-ch:
				err = res.Err
			case <-ctx.Done():
				err = ctx.Err()
			}
			if err != nil {
				mu.Lock()
				failures = append(failures, Failure{n, err})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sort.Slice(failures, func(i, j int) bool { return failures[i].Name < failures[j].Name })
	return failures
}

// standing returns the evidence about name that still stands, if any.
func (t *Tracker) standing(name string) (error, bool) {
	t.mu.Lock()
	a, ok := t.last[name]
	t.mu.Unlock()
	if !ok {
		return nil, false
	}
	age := t.now().Sub(a.at)
	if a.err == nil && age < t.fresh || a.err != nil && age < t.retry {
		return a.err, true
	}
	return nil, false
}
