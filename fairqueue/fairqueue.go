// Package fairqueue shares a fixed number of slots among clients, so that a
// client with many requests in flight cannot starve one with a single
// request. metrics-proxy takes a slot for every upstream call: the runner
// serves only a few requests at once and answers 503 beyond, so without the
// queue one authenticated client with 32 concurrent requests made about half
// of another client's scrapes fail.
//
// Waiting requests are grouped by key (a client source and user); a freed
// slot goes to the next key in round-robin order, so a key waits for at most
// one slot per other waiting key, whatever their numbers of requests. No key
// holds more than half of the slots at once (at least one), so one that
// keeps its requests slow (a client that does not read its answers) cannot
// take them all. Waits are bounded: in number (in total and per key; beyond
// them Acquire fails at once) and in time (the caller's context, the
// scrape's own deadline).
package fairqueue

import (
	"container/list"
	"context"
	"errors"
	"sync"
)

// ErrFull is returned by Acquire when no slot is free and the queue, or the
// key's share of it, is full.
var ErrFull = errors.New("fairqueue: no slot free and the wait queue is full")

// Queue is a set of slots with a fair wait queue. It is safe for concurrent
// use.
type Queue struct {
	slots, maxWaiting, maxPerKey int
	maxHeld                      int // slots one key may hold at once

	mu      sync.Mutex
	inUse   int
	held    map[string]int // slots held, by key
	waiting int
	keys    *list.List               // keys with waiters, in serving order
	byKey   map[string]*list.Element // key -> its element in keys
}

// waiters is one key's queue, oldest first.
type waiters struct {
	key   string
	queue *list.List // of *waiter
}

type waiter struct {
	granted chan struct{} // closed when a slot is handed over
	elem    *list.Element
}

// New returns a Queue of slots slots (at least 1) that holds at most
// maxWaiting waiting requests, and at most maxPerKey of one key (each at
// least 0; 0 per key means no per-key bound beyond maxWaiting).
func New(slots, maxWaiting, maxPerKey int) *Queue {
	if maxPerKey <= 0 {
		maxPerKey = maxWaiting
	}
	slots = max(1, slots)
	return &Queue{
		slots:      slots,
		maxWaiting: max(0, maxWaiting),
		maxPerKey:  maxPerKey,
		maxHeld:    max(1, slots/2),
		held:       make(map[string]int),
		keys:       list.New(),
		byKey:      make(map[string]*list.Element),
	}
}

// Acquire takes a slot for key, waiting while ctx allows. It returns the
// function that gives the slot back (call it exactly once), or ErrFull, or
// ctx's error when the wait ended first.
func (q *Queue) Acquire(ctx context.Context, key string) (release func(), err error) {
	q.mu.Lock()
	// A free slot with others waiting means every waiter's key is at its
	// maxHeld: this key may take it if it is not.
	if q.inUse < q.slots && q.held[key] < q.maxHeld {
		q.inUse++
		q.held[key]++
		q.mu.Unlock()
		return q.releaser(key), nil
	}
	ke, ok := q.byKey[key]
	if q.waiting >= q.maxWaiting || (ok && ke.Value.(*waiters).queue.Len() >= q.maxPerKey) {
		q.mu.Unlock()
		return nil, ErrFull
	}
	if !ok {
		ke = q.keys.PushBack(&waiters{key: key, queue: list.New()})
		q.byKey[key] = ke
	}
	w := &waiter{granted: make(chan struct{})}
	w.elem = ke.Value.(*waiters).queue.PushBack(w)
	q.waiting++
	q.mu.Unlock()

	select {
	case <-w.granted:
		return q.releaser(key), nil
	case <-ctx.Done():
	}
	q.mu.Lock()
	select {
	case <-w.granted:
		// Handed a slot just as the wait ended: give it on.
		q.mu.Unlock()
		q.releaser(key)()
		return nil, ctx.Err()
	default:
	}
	ws := ke.Value.(*waiters)
	ws.queue.Remove(w.elem)
	q.waiting--
	if ws.queue.Len() == 0 {
		q.keys.Remove(ke)
		delete(q.byKey, key)
	}
	q.mu.Unlock()
	return nil, ctx.Err()
}

// releaser returns a function that frees key's slot, once.
func (q *Queue) releaser(key string) func() {
	var once sync.Once
	return func() { once.Do(func() { q.release(key) }) }
}

// release hands key's slot to the oldest waiter of the next key in turn
// that holds fewer than maxHeld, or frees it.
func (q *Queue) release(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.held[key]--; q.held[key] <= 0 {
		delete(q.held, key)
	}
	ke := q.keys.Front()
	for ke != nil && q.held[ke.Value.(*waiters).key] >= q.maxHeld {
		ke = ke.Next()
	}
	if ke == nil {
		q.inUse--
		return
	}
	ws := ke.Value.(*waiters)
	q.held[ws.key]++
	w := ws.queue.Remove(ws.queue.Front()).(*waiter)
	q.waiting--
	if ws.queue.Len() == 0 {
		q.keys.Remove(ke)
		delete(q.byKey, ws.key)
	} else {
		q.keys.MoveToBack(ke)
	}
	close(w.granted)
}

// InUse reports the slots taken, for a gauge.
func (q *Queue) InUse() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.inUse
}

// Waiting reports the requests waiting, for a gauge.
func (q *Queue) Waiting() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.waiting
}
