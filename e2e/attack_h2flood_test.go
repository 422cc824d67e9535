package e2e

import (
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// h2Settings reads the SETTINGS the proxy sends on a new HTTP/2 connection.
func h2Settings(t *testing.T, p *proxy) map[http2.SettingID]uint32 {
	t.Helper()
	_, fr := p.h2Conn(t)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no SETTINGS from the proxy: %v", err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			got := map[http2.SettingID]uint32{}
			sf.ForeachSetting(func(s http2.Setting) error { got[s.ID] = s.Val; return nil })
			return got
		}
	}
}

// HTTP/2 lets one connection carry many requests at once, and a throttled
// answer is held back for a second: without bounds, a few connections of
// wrong passwords pile up goroutines and memory (505 MiB measured before the
// bounds). The proxy allows 8 streams per connection and holds back at most
// 256 answers; the flood stays cheap, and a good client keeps scraping.
func TestAttackHTTP2StreamFlood(t *testing.T) {
	p, _ := startWithUpstream(t, nil, proxyOptions{})
	if got := h2Settings(t, p)[http2.SettingMaxConcurrentStreams]; got != 8 {
		t.Fatalf("SETTINGS_MAX_CONCURRENT_STREAMS = %d, want 8", got)
	}

	good := p.client("127.0.0.2")
	if r := p.get(t, good, "/metrics"); r.Status != 200 {
		t.Fatalf("good client before the flood: %d", r.Status)
	}

	// 16 HTTP/2 connections, each carrying 24 requests at once.
	stop := make(chan struct{})
	conns := make([]*http.Client, 16)
	for i := range conns {
		conns[i] = p.h2Client("")
	}
	flood := p.floodWrongPasswords(16*24, 1<<30, func(w int) *http.Client { return conns[w/24] }, stop)
	peak := p.watchRSS(t, 500*time.Millisecond)
	scrapes := p.keepScraping(good, 500*time.Millisecond, 8, nil)()
	close(stop)
	statuses := flood()
	peakKiB := peak()
	scrapes.check(t, "good client during the HTTP/2 flood", 8)
	sent := 0
	for k, n := range statuses {
		sent += n
		// A transport error is the flood's own business.
		if k != "401" && k != "429" && k != "error" {
			t.Errorf("%d flood requests got %s, not 401/429", n, k)
		}
	}
	// Bounded, and far below the unit's MemoryMax=256M (an unbounded proxy
	// measured 505 MiB under a flood like this one).
	if peakKiB > 96<<10 {
		t.Errorf("proxy RSS peaked at %d KiB during the HTTP/2 flood, want under 96 MiB", peakKiB)
	}
	t.Logf("flood sent %d requests (%v); proxy peak RSS %d KiB", sent, statuses, peakKiB)
}
