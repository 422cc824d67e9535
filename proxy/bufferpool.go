package proxy

import "sync"

// BufferPool is an httputil.BufferPool of ReverseProxy's 32 KiB copy
// buffers: without one, every scrape allocates and clears a fresh buffer, a
// measurable share of a proxy's CPU at scrape rates (10-15% here). The zero
// value is ready to use.
type BufferPool struct{ p sync.Pool }

// Get returns a buffer from the pool, or a new one.
func (b *BufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

// Put returns buf to the pool.
func (b *BufferPool) Put(buf []byte) { b.p.Put(&buf) }
