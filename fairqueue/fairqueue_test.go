package fairqueue

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// waitFor polls until cond holds (the queue's state changes in other goroutines).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

// A client with many requests waiting cannot make one with a single request
// wait behind all of them: slots alternate between keys.
func TestAttackHogWaitsItsTurn(t *testing.T) {
	q := New(1, 64, 8)
	hold, err := q.Acquire(context.Background(), "hog")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	enqueue := func(key string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rel, err := q.Acquire(context.Background(), key)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, key)
			mu.Unlock()
			rel()
		}()
	}
	for i := 0; i < 5; i++ {
		enqueue("hog")
		n := i + 1
		waitFor(t, func() bool { return q.Waiting() == n })
	}
	enqueue("good")
	waitFor(t, func() bool { return q.Waiting() == 6 })
	hold()
	wg.Wait()
	if got := order[:2]; got[0] != "hog" || got[1] != "good" {
		t.Errorf("served %v; want the good client second, right after the hog's oldest", order)
	}
	if q.InUse() != 0 || q.Waiting() != 0 {
		t.Errorf("in use %d, waiting %d after all released; want 0, 0", q.InUse(), q.Waiting())
	}
}

// Beyond its share of the queue a key is refused at once, while another key
// still queues.
func TestPerKeyBound(t *testing.T) {
	q := New(1, 64, 2)
	hold, _ := q.Acquire(context.Background(), "a")
	defer hold()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := 0; i < 2; i++ {
		go q.Acquire(ctx, "hog")
	}
	waitFor(t, func() bool { return q.Waiting() == 2 })
	if _, err := q.Acquire(ctx, "hog"); !errors.Is(err, ErrFull) {
		t.Fatalf("third waiter of one key: err = %v, want ErrFull", err)
	}
	go q.Acquire(ctx, "other")
	waitFor(t, func() bool { return q.Waiting() == 3 })
}

// The whole queue is bounded too.
func TestTotalBound(t *testing.T) {
	q := New(1, 2, 0)
	hold, _ := q.Acquire(context.Background(), "a")
	defer hold()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go q.Acquire(ctx, "b")
	go q.Acquire(ctx, "c")
	waitFor(t, func() bool { return q.Waiting() == 2 })
	if _, err := q.Acquire(ctx, "d"); !errors.Is(err, ErrFull) {
		t.Fatalf("err = %v, want ErrFull", err)
	}
}

// A wait ends with the caller's deadline, leaving nothing behind.
func TestWaitEndsWithContext(t *testing.T) {
	q := New(1, 8, 8)
	hold, _ := q.Acquire(context.Background(), "a")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := q.Acquire(ctx, "b"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if q.Waiting() != 0 {
		t.Fatalf("waiting = %d after the wait ended, want 0", q.Waiting())
	}
	hold()
	hold() // a second call is harmless
	if q.InUse() != 0 {
		t.Fatalf("in use = %d, want 0", q.InUse())
	}
	rel, err := q.Acquire(context.Background(), "c")
	if err != nil {
		t.Fatal(err)
	}
	rel()
}

// Free slots are taken without waiting, up to their number.
func TestSlotsWithoutWaiting(t *testing.T) {
	q := New(3, 0, 0)
	var rels []func()
	for i, key := range []string{"a", "b", "c"} {
		rel, err := q.Acquire(context.Background(), key)
		if err != nil {
			t.Fatalf("slot %d: %v", i, err)
		}
		rels = append(rels, rel)
	}
	if _, err := q.Acquire(context.Background(), "d"); !errors.Is(err, ErrFull) {
		t.Fatalf("fourth with no queue: err = %v, want ErrFull", err)
	}
	for _, r := range rels {
		r()
	}
	if q.InUse() != 0 {
		t.Fatalf("in use = %d, want 0", q.InUse())
	}
}

// One client whose requests are slow (it does not read its answers) holds
// at most half of the slots: its further requests wait even while slots are
// free, and another client takes those at once. When one of the hog's
// requests ends, its next waiter gets the slot.
func TestAttackOneKeyHoldsAtMostHalf(t *testing.T) {
	q := New(8, 64, 8)
	var held []func()
	for i := 0; i < 4; i++ {
		rel, err := q.Acquire(context.Background(), "hog")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, rel)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan func(), 1)
	go func() {
		rel, err := q.Acquire(ctx, "hog")
		if err == nil {
			got <- rel
		}
	}()
	waitFor(t, func() bool { return q.Waiting() == 1 })
	if q.InUse() != 4 {
		t.Fatalf("in use = %d, want the hog's 4", q.InUse())
	}
	for i := 0; i < 4; i++ {
		rel, err := q.Acquire(context.Background(), "good")
		if err != nil {
			t.Fatalf("good request %d while the hog waits: %v", i, err)
		}
		defer rel()
	}
	held[0]()
	rel := <-got
	rel()
	for _, r := range held[1:] {
		r()
	}
	if q.InUse() != 4 || q.Waiting() != 0 {
		t.Fatalf("in use %d, waiting %d; want the good client's 4, none", q.InUse(), q.Waiting())
	}
}

// Many goroutines acquiring and releasing never exceed the slots.
func TestNeverMoreThanSlots(t *testing.T) {
	q := New(4, 1000, 0)
	var mu sync.Mutex
	cur, peak := 0, 0
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rel, err := q.Acquire(context.Background(), string(rune('a'+i%7)))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			cur++
			peak = max(peak, cur)
			mu.Unlock()
			time.Sleep(100 * time.Microsecond)
			mu.Lock()
			cur--
			mu.Unlock()
			rel()
		}()
	}
	wg.Wait()
	if peak > 4 {
		t.Errorf("peak %d holders, want at most 4", peak)
	}
}
