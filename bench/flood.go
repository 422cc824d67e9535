package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// floodResult is scenario 2 for one proxy.
type floodResult struct {
	dur time.Duration

	// The good client: one keep-alive connection, the right password, every
	// o.goodInterval, timeout o.scrapeTimeout.
	goodAttempts, goodOK int
	goodLat              latencies // every attempt, a failed one at the time it took
	goodFail             counts
	goodFailAt           []string // when and how the first failures happened
	goodNewConns         int      // connections opened after the first

	// The flood: o.floodConns connections, a fresh wrong password each time.
	sent       int
	status     counts // by status code
	errs       counts // transport errors (no response)
	unanswered int    // still waiting when the flood ended
	newConns   int    // connections (TLS handshakes) the flood opened
	late401    int    // 401 answers in the second half of the flood

	// bcrypt checks the flood obtained, over the whole flood and in its
	// second half (after the first burst), and how they were counted.
	checks, lateChecks float64
	lateFrom           time.Duration // lateChecks count from here to the end of the flood
	checksHow          string
	goodChecks         float64            // bcrypt checks by the good client during the flood (metrics-proxy only)
	attempts           map[string]float64 // metrics_proxy_auth_attempts_total deltas (metrics-proxy only)
	timeline           []string           // cumulative flood checks when they changed (metrics-proxy only)

	proxyCPU, clientCPU time.Duration
	mem                 memory
}

const (
	bcryptChecksMetric = "metrics_proxy_auth_bcrypt_checks_total"
	attemptsMetric     = "metrics_proxy_auth_attempts_total"
)

// proxyCounters reads metrics-proxy's own auth counters from /proxy/metrics
// with the right password (a known-good credential: it costs no bcrypt).
func proxyCounters(ctx context.Context, c *http.Client, base string, s *setup) (map[string]float64, error) {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	a := get(rctx, c, base+"/proxy/metrics", s.user, s.password, true, nil)
	if a.err != nil || a.status != http.StatusOK {
		return nil, fmt.Errorf("GET /proxy/metrics: status %d, %v", a.status, a.err)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(a.body))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "metrics_proxy_auth_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	if _, ok := out[bcryptChecksMetric]; !ok {
		return nil, fmt.Errorf("/proxy/metrics has no %s", bcryptChecksMetric)
	}
	return out, nil
}

// floodChecks is the bcrypt checks not made for the good client's right
// password (each of those is an attempt with outcome "ok").
func floodChecks(m map[string]float64) float64 {
	return m[bcryptChecksMetric] - m[attemptsMetric+`{outcome="ok"}`]
}

type counterSample struct {
	at time.Duration
	m  map[string]float64
}

// measureFlood runs the wrong-password flood against the proxy at base while
// a good client scrapes. withCounters reads metrics-proxy's own counters;
// otherwise the flood's 401 answers count its bcrypt checks.
func measureFlood(ctx context.Context, o options, s *setup, base string, proxyPID int, withCounters bool) (floodResult, error) {
	url := base + "/metrics"
	r := floodResult{dur: o.floodDur, goodFail: counts{}, status: counts{}, errs: counts{}}
	scrapeHdr := http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {strconv.FormatFloat(o.scrapeTimeout.Seconds(), 'f', -1, 64)}}

	// Prometheus has been scraping for a while: the good client's credential
	// has been accepted once before the flood starts.
	good := newClient(s.tls.pool, o.gzip)
	defer closeIdle(good)
	var primed bool
	for i := 0; i < 3 && !primed; i++ {
		sctx, cancel := context.WithTimeout(ctx, o.scrapeTimeout)
		primed, _ = goodScrape(get(sctx, good, url, s.user, s.password, true, scrapeHdr))
		cancel()
	}
	if !primed {
		return r, fmt.Errorf("the good client's scrape before the flood failed three times")
	}

	var monitor *http.Client
	var samples []counterSample
	if withCounters {
		monitor = newClient(s.tls.pool, o.gzip)
		defer closeIdle(monitor)
		m, err := proxyCounters(ctx, monitor, base, s)
		if err != nil {
			return r, err
		}
		samples = append(samples, counterSample{0, m})
	}

	meter := cpuMeter{pids: []int{proxyPID, 0}}
	cpu0 := meter.sample()
	start := time.Now()
	half := o.floodDur / 2
	fctx, stop := context.WithDeadline(ctx, start.Add(o.floodDur))
	defer stop()

	var wg sync.WaitGroup
	var mu sync.Mutex // guards r's flood fields while workers merge
	for range o.floodConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newClient(s.tls.pool, false)
			defer closeIdle(c)
			var sent, unanswered, newConns, late401 int
			status, errs := counts{}, counts{}
			for fctx.Err() == nil {
				rctx, cancel := context.WithTimeout(fctx, 30*time.Second)
				a := get(rctx, c, url, s.user, randomPassword(12), false, nil)
				cancel()
				sent++
				if a.newConn {
					newConns++
				}
				if a.status == 0 {
					if fctx.Err() != nil {
						unanswered++
						break
					}
					errs[errKind(a.err)]++
					sleepCtx(fctx, 5*time.Millisecond) // reconnect, but do not spin on a refusal
					continue
				}
				status[strconv.Itoa(a.status)]++
				if a.status == http.StatusUnauthorized && time.Since(start) >= half {
					late401++
				}
			}
			mu.Lock()
			defer mu.Unlock()
			r.sent += sent
			r.unanswered += unanswered
			r.newConns += newConns
			r.late401 += late401
			for k, v := range status {
				r.status[k] += v
			}
			for k, v := range errs {
				r.errs[k] += v
			}
		}()
	}

	// The good client scrapes every interval until the flood ends; a scrape
	// in flight then finishes (within its timeout).
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(o.goodInterval)
		defer tick.Stop()
		for {
			select {
			case <-fctx.Done():
				return
			case <-tick.C:
			}
			sctx, cancel := context.WithTimeout(ctx, o.scrapeTimeout)
			st := time.Now()
			a := get(sctx, good, url, s.user, s.password, true, scrapeHdr)
			d := time.Since(st)
			cancel()
			r.goodAttempts++
			r.goodLat = append(r.goodLat, d)
			if a.newConn {
				r.goodNewConns++
			}
			if ok, why := goodScrape(a); ok {
				r.goodOK++
			} else {
				r.goodFail[why]++
				if len(r.goodFailAt) < 6 {
					r.goodFailAt = append(r.goodFailAt, fmt.Sprintf("t=%.1fs %s after %.0f ms", st.Sub(start).Seconds(), why, ms(d)))
				}
			}
		}
	}()

	// metrics-proxy's counters, sampled through the flood.
	if withCounters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			every := min(time.Second, o.floodDur/10)
			for sleepCtx(fctx, every) {
				if m, err := proxyCounters(ctx, monitor, base, s); err == nil {
					samples = append(samples, counterSample{time.Since(start), m})
				}
			}
		}()
	}
	wg.Wait()
	cpu := diff(cpu0, meter.sample())
	r.proxyCPU, r.clientCPU = cpu[0], cpu[1]

	if withCounters {
		sleepCtx(ctx, 300*time.Millisecond) // let the last refused requests be counted
		m, err := proxyCounters(ctx, monitor, base, s)
		if err != nil {
			return r, fmt.Errorf("after the flood: %w", err)
		}
		samples = append(samples, counterSample{time.Since(start), m})
		first, last := samples[0].m, samples[len(samples)-1].m
		r.checks = floodChecks(last) - floodChecks(first)
		r.goodChecks = last[attemptsMetric+`{outcome="ok"}`] - first[attemptsMetric+`{outcome="ok"}`]
		mid := samples[0]
		for _, sm := range samples {
			if absDur(sm.at-half) < absDur(mid.at-half) {
				mid = sm
			}
		}
		r.lateChecks = floodChecks(last) - floodChecks(mid.m)
		r.lateFrom = mid.at
		r.checksHow = fmt.Sprintf("%s from /proxy/metrics, minus the good client's (outcome=\"ok\")", bcryptChecksMetric)
		r.attempts = map[string]float64{}
		for k, v := range last {
			if strings.HasPrefix(k, attemptsMetric+"{") {
				r.attempts[strings.TrimSuffix(strings.TrimPrefix(k, attemptsMetric+`{outcome="`), `"}`)] = v - first[k]
			}
		}
		prev := -1.0
		for _, sm := range samples {
			if n := floodChecks(sm.m) - floodChecks(first); n != prev {
				r.timeline = append(r.timeline, fmt.Sprintf("%.1fs:%.0f", sm.at.Seconds(), n))
				prev = n
			}
		}
	} else {
		r.checks = float64(r.status["401"])
		r.lateChecks = float64(r.late401)
		r.lateFrom = half
		r.checksHow = "the flood's 401 answers (every password is fresh, so each cost one bcrypt; a lower bound: requests cut off at the end are not counted)"
	}
	r.mem, _ = readMemory(proxyPID)
	return r, nil
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// perMinute is n events over d, per minute.
func perMinute(n float64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return n / d.Minutes()
}
