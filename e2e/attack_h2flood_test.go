package e2e

import (
	"crypto/tls"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// atkH2Settings reads the SETTINGS the proxy sends on a new HTTP/2 connection.
func atkH2Settings(t *testing.T, p *atkProxy) map[http2.SettingID]uint32 {
	t.Helper()
	c, err := tls.Dial("tcp", p.Addr, &tls.Config{RootCAs: p.PKI.Pool, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.ConnectionState().NegotiatedProtocol != "h2" {
		t.Fatalf("negotiated %q, want h2", c.ConnectionState().NegotiatedProtocol)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
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
// bounds). The proxy allows 8
// streams per connection and holds back at most 256 answers; the flood stays
// cheap, and a good client keeps scraping.
func TestAttackHTTP2StreamFlood(t *testing.T) {
	up := atkStartUpstream(t, nil)
	p := atkStartProxy(t, atkProxyOptions{Upstream: up.URL})
	if got := atkH2Settings(t, p)[http2.SettingMaxConcurrentStreams]; got != 8 {
		t.Fatalf("SETTINGS_MAX_CONCURRENT_STREAMS = %d, want 8", got)
	}

	good := p.atkClient("127.0.0.2")
	if r := atkDo(t, good, "GET", p.URL+"/metrics", map[string]string{"Authorization": atkBasic(atkUser, atkPassword)}); r.Status != 200 {
		t.Fatalf("good client before the flood: %d", r.Status)
	}

	stop := make(chan struct{})
	var sent, wrongAnswers atomic.Int64
	var wg sync.WaitGroup
	for c := range 16 {
		cl := p.atkH2Client("")
		for s := range 24 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					sent.Add(1)
					r, err := atkTry(cl, "GET", p.URL+"/metrics", map[string]string{"Authorization": atkBasic(atkUser, fmt.Sprintf("wrong-%d-%d-%d", c, s, i))})
					if err == nil && r.Status != 401 && r.Status != 429 {
						wrongAnswers.Add(1)
					}
				}
			}()
		}
	}
	var failures []string
	peak := int64(0)
	for i := range 8 {
		time.Sleep(500 * time.Millisecond)
		r, err := atkTry(good, "GET", p.URL+"/metrics", map[string]string{"Authorization": atkBasic(atkUser, atkPassword)})
		if err != nil || r.Status != 200 {
			failures = append(failures, fmt.Sprintf("scrape %d: %v %v", i, r.Status, err))
		}
		peak = max(peak, atkRSSKiB(t, p.proc.cmd.Process.Pid))
	}
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("good scrapes failed during the HTTP/2 flood: %v", failures)
	}
	if n := wrongAnswers.Load(); n != 0 {
		t.Errorf("%d flood requests got something other than 401/429", n)
	}
	// Bounded, and far below the unit's MemoryMax=256M (an unbounded proxy
	// measured 505 MiB under a flood like this one).
	if peak > 96<<10 {
		t.Errorf("proxy RSS peaked at %d KiB during the HTTP/2 flood, want under 96 MiB", peak)
	}
	t.Logf("flood sent %d requests; proxy peak RSS %d KiB", sent.Load(), peak)
}
