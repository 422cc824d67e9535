package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// The flood runs in a process of its own (this program re-executed with
// -mode=flood), as an attacker would be: its TLS handshakes and requests then
// compete with the good clients only for the machine's cores, not for the Go
// scheduler of the process that times the good scrapes.
const modeFlood = "flood"

// floodCounts are what the flood's connections saw; the flood process writes
// them as JSON.
type floodCounts struct {
	Sent        int            // requests sent, answered or not
	Unanswered  int            // still waiting when the flood ended
	NewConns    int            // connections (TLS handshakes) opened
	Late401     int            // 401 answers in the second half
	LateAnswers int            // answers (any status) in the second half
	Quick429    int            // 429s answered in less than quick429Limit
	Lat429      []int64        // answer time of every 429, ns
	Status      map[string]int // answers by status code
	Errs        map[string]int // transport errors (no response) by kind
	CPU         time.Duration  // the flood process's CPU while it flooded
}

// startFlood starts the flood process: conns connections to url with user and
// fresh random wrong passwords, from start for dur, results to out.
func startFlood(s *setup, logPath, url, out string, conns int, start time.Time, dur time.Duration) (*proc, error) {
	return startProc("flood", logPath, s.self, "-mode="+modeFlood,
		"-url="+url, "-user="+s.user, "-ca="+s.tls.caFile, "-conns="+strconv.Itoa(conns),
		"-start="+strconv.FormatInt(start.UnixNano(), 10), "-duration="+dur.String(), "-out="+out)
}

// readFlood waits (at most limit) for the flood process to exit and reads
// its results.
func readFlood(ctx context.Context, p *proc, out string, limit time.Duration) (floodCounts, error) {
	var fc floodCounts
	select {
	case <-p.exited:
	case <-ctx.Done():
		p.stop()
		return fc, ctx.Err()
	case <-time.After(limit):
		p.stop()
		return fc, fmt.Errorf("the flood process did not finish within %s; its log:\n%s", limit, p.logTail())
	}
	if p.waitErr != nil {
		return fc, fmt.Errorf("the flood process failed (%v); its log:\n%s", p.waitErr, p.logTail())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return fc, fmt.Errorf("the flood process's results: %w", err)
	}
	if err := json.Unmarshal(b, &fc); err != nil {
		return fc, fmt.Errorf("the flood process's results: %w", err)
	}
	return fc, nil
}

// runFloodProc is the flood process's main.
func runFloodProc(args []string) int {
	fs := flag.NewFlagSet("bench -mode="+modeFlood, flag.ContinueOnError)
	url := fs.String("url", "", "https://127.0.0.1:port/metrics of the proxy")
	user := fs.String("user", "", "user name sent with every wrong password")
	caFile := fs.String("ca", "", "CA certificate that signed the proxy's")
	conns := fs.Int("conns", 64, "connections")
	startNs := fs.Int64("start", 0, "when to start, Unix nanoseconds")
	dur := fs.Duration("duration", 20*time.Second, "how long to flood")
	out := fs.String("out", "", "file for the results (JSON)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "bench %s: %v\n", modeFlood, err)
		return 1
	}
	switch {
	case *conns < 1 || *conns > 512:
		return fail(errors.New("-conns must be 1 to 512"))
	case *dur < time.Second || *dur > 10*time.Minute:
		return fail(errors.New("-duration must be 1s to 10m"))
	case *out == "":
		return fail(errors.New("-out is required"))
	}
	start := time.Unix(0, *startNs)
	if d := time.Until(start); d < 0 || d > time.Minute {
		return fail(fmt.Errorf("-start is %s from now, not in the next minute", d))
	}
	// A flood process left behind by a crashed bench does not run on.
	time.AfterFunc(time.Until(start)+*dur+2*time.Minute, func() { os.Exit(3) })
	pem, err := os.ReadFile(*caFile)
	if err != nil {
		return fail(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fail(fmt.Errorf("%s holds no PEM certificate", *caFile))
	}
	time.Sleep(time.Until(start))
	fc := flood(context.Background(), *url, *user, pool, *conns, start, *dur)
	b, err := json.Marshal(fc)
	if err != nil {
		return fail(err)
	}
	if err := os.WriteFile(*out, b, 0o600); err != nil {
		return fail(err)
	}
	return 0
}

// flood runs conns connections against url from start for dur: the right
// user, a fresh random wrong password per request, Retry-After ignored, one
// request at a time per connection (a 429 that metrics-proxy holds back for
// its throttle delay holds the connection too, as it would a real client's),
// reconnecting when closed. Every answer counts by its status when it
// arrives, even if its body is then cut off by the end of the flood.
func flood(ctx context.Context, url, user string, pool *x509.CertPool, conns int, start time.Time, dur time.Duration) floodCounts {
	cpu0 := selfCPU()
	half := dur / 2
	fctx, stop := context.WithDeadline(ctx, start.Add(dur))
	defer stop()
	fc := floodCounts{Status: map[string]int{}, Errs: map[string]int{}}
	var mu sync.Mutex // guards fc while workers merge
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newClient(pool, false)
			defer closeIdle(c)
			var w floodCounts
			status, errs := counts{}, counts{}
			for fctx.Err() == nil {
				rctx, cancel := context.WithTimeout(fctx, 30*time.Second)
				t0 := time.Now()
				a := get(rctx, c, url, user, randomPassword(12), false, nil)
				d := time.Since(t0)
				cancel()
				w.Sent++
				if a.newConn {
					w.NewConns++
				}
				if a.status == 0 {
					if fctx.Err() != nil {
						w.Unanswered++
						break
					}
					errs[errKind(a.err)]++
					sleepCtx(fctx, 5*time.Millisecond) // reconnect, but do not spin on a refusal
					continue
				}
				status[strconv.Itoa(a.status)]++
				late := time.Since(start) >= half
				if late {
					w.LateAnswers++
				}
				switch a.status {
				case http.StatusUnauthorized:
					if late {
						w.Late401++
					}
				case http.StatusTooManyRequests:
					w.Lat429 = append(w.Lat429, int64(d))
					if d < quick429Limit {
						w.Quick429++
					}
				}
			}
			mu.Lock()
			defer mu.Unlock()
			fc.Sent += w.Sent
			fc.Unanswered += w.Unanswered
			fc.NewConns += w.NewConns
			fc.Late401 += w.Late401
			fc.LateAnswers += w.LateAnswers
			fc.Quick429 += w.Quick429
			fc.Lat429 = append(fc.Lat429, w.Lat429...)
			for k, v := range status {
				fc.Status[k] += v
			}
			for k, v := range errs {
				fc.Errs[k] += v
			}
		}()
	}
	wg.Wait()
	fc.CPU = selfCPU() - cpu0
	return fc
}
