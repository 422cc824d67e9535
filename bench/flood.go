package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// floodResult is scenario 2 for one proxy.
type floodResult struct {
	dur time.Duration

	// The good clients, each on its own keep-alive connection from
	// o.goodFrom, with the right password, every o.goodInterval, timeout
	// o.scrapeTimeout: the one Prometheus that has been scraping since before
	// the flood (2), and a new scraper that arrives during it (2b).
	good, newcomer scrapeStats

	// The flood: o.floodConns connections, a fresh wrong password each time.
	sent        int
	status      counts // by status code
	errs        counts // transport errors (no response)
	unanswered  int    // still waiting when the flood ended
	newConns    int    // connections (TLS handshakes) the flood opened
	late401     int    // 401 answers in the second half of the flood
	lateAnswers int    // answers (any status) in the second half
	lat429      latencies
	quick429    int // 429s answered in less than quick429Limit (not held back)

	// bcrypt checks the flood obtained, over the whole flood and in its
	// second half (after the first burst), and how they were counted.
	checks, lateChecks float64
	lateFrom           time.Duration // lateChecks count from here to the end of the flood
	checksHow          string
	goodChecks         float64            // bcrypt checks with a right password during the flood (metrics-proxy only)
	attempts           map[string]float64 // metrics_proxy_auth_attempts_total deltas (metrics-proxy only)
	timeline           []string           // cumulative flood checks when they changed (metrics-proxy only)
	// After the first burst (metrics-proxy only): when the flood's
	// freeBurst-th check was seen (-1: never), and when each later check
	// was seen, at the resolution of the counter samples.
	burstDone  time.Duration
	afterBurst []time.Duration

	proxyCPU  time.Duration // the proxy's CPU during the flood
	clientCPU time.Duration // the bench's (good clients and counter reads)
	floodCPU  time.Duration // the flood process's
	mem       memory
}

// quick429Limit separates 429s answered at once from those held back by
// metrics-proxy's --web.throttle-delay (default 1 s).
const quick429Limit = 500 * time.Millisecond

// scrapeStats are one good client's scrapes.
type scrapeStats struct {
	began    time.Duration // first attempt, from the start of the flood
	attempts int           // attempts begun while the flood ran
	ok       int           // ... that returned a complete page
	lat      latencies     // every such attempt, a failed one at the time it took
	fail     counts
	failAt   []string        // when and how the first failures happened
	newConns int             // connections opened (for the primed client: after the first)
	at       []time.Duration // when each attempt in lat began, from the start of the flood

	// firstOK is from the first attempt to the end of the first good scrape
	// (-1: none). A new scraper that had none when the flood ended keeps
	// trying, at most until newcomerGrace after it; afterFlood counts those
	// attempts, and firstOKAfterFlood says the first success was among them.
	firstOK           time.Duration
	firstOKIdx        int // index in lat of the first success in the flood (-1: none)
	firstOKAfterFlood bool
	afterFlood        int
	gaveUp            time.Duration // when it stopped trying, from the start of the flood
}

// scrape makes one attempt and records it when the flood is still running
// (during); at is when it began, from the start of the flood.
func (st *scrapeStats) scrape(ctx context.Context, c *http.Client, url, user, pass string, hdr http.Header, timeout, at time.Duration, during bool) bool {
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t0 := time.Now()
	a := get(sctx, c, url, user, pass, true, hdr)
	d := time.Since(t0)
	if a.newConn {
		st.newConns++
	}
	ok, why := goodScrape(a)
	if !during {
		st.afterFlood++
		return ok
	}
	st.attempts++
	st.lat = append(st.lat, d)
	st.at = append(st.at, at)
	if ok {
		if st.ok == 0 {
			st.firstOKIdx = len(st.lat) - 1
		}
		st.ok++
		return true
	}
	st.fail[why]++
	if len(st.failAt) < 6 {
		st.failAt = append(st.failAt, fmt.Sprintf("t=%.1fs %s after %.0f ms", at.Seconds(), why, ms(d)))
	}
	return false
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
	out, err := selfMetrics(rctx, c, base, s, func(name string) bool { return strings.HasPrefix(name, "metrics_proxy_auth_") })
	if err != nil {
		return nil, err
	}
	if _, ok := out[bcryptChecksMetric]; !ok {
		return nil, fmt.Errorf("/proxy/metrics has no %s", bcryptChecksMetric)
	}
	return out, nil
}

// selfMetrics GETs /proxy/metrics with the right password and returns the
// samples whose metric name keep accepts, keyed by name and labels.
func selfMetrics(ctx context.Context, c *http.Client, base string, s *setup, keep func(name string) bool) (map[string]float64, error) {
	a := get(ctx, c, base+"/proxy/metrics", s.user, s.password, true, nil)
	if a.err != nil || a.status != http.StatusOK {
		return nil, fmt.Errorf("GET /proxy/metrics: status %d, %v", a.status, a.err)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(a.body))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, _, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		if !keep(name) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, nil
}

// freeBurst is metrics-proxy's number of failures an address may have at
// full speed before back-off starts (auth/backoff.go).
const freeBurst = 5

// flood401s is the flood's bcrypt-checked guesses as metrics-proxy counts
// them once answered: every fresh wrong password that bcrypt rejected is an
// "unauthorized" attempt, and no good client ever gets one. Unlike
// floodChecks it never counts a right-password check still in flight.
func flood401s(m map[string]float64) float64 {
	return m[attemptsMetric+`{outcome="unauthorized"}`]
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

// measureFlood runs the wrong-password flood (a process of its own, see
// floodproc.go) against the proxy at base while the good clients scrape; key
// names the proxy in file names. withCounters reads metrics-proxy's own counters;
// otherwise the flood's 401 answers count its bcrypt checks.
func measureFlood(ctx context.Context, o options, s *setup, key, base string, proxyPID int, withCounters bool) (floodResult, error) {
	url := base + "/metrics"
	r := floodResult{dur: o.floodDur, status: counts{}, errs: counts{},
		good:     scrapeStats{fail: counts{}, firstOK: -1, firstOKIdx: -1},
		newcomer: scrapeStats{fail: counts{}, firstOK: -1, firstOKIdx: -1}}
	scrapeHdr := http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {strconv.FormatFloat(o.scrapeTimeout.Seconds(), 'f', -1, 64)}}

	// Prometheus has been scraping for a while: the good client's credential
	// has been accepted once before the flood starts.
	good := newClientFrom(s.tls.pool, o.gzip, o.goodFrom)
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

	// The flood process starts at an agreed instant, so that both sides
	// time the flood from the same start.
	start := time.Now().Add(500 * time.Millisecond)
	out := filepath.Join(s.dir, key+"-flood-results.json")
	fp, err := startFlood(s, filepath.Join(s.dir, key+"-flood-clients.log"), url, out, o.floodConns, start, o.floodDur)
	if err != nil {
		return r, err
	}
	defer fp.stop()
	sleepCtx(ctx, time.Until(start))
	meter := cpuMeter{pids: []int{proxyPID, 0}}
	cpu0 := meter.sample()
	half := o.floodDur / 2
	since := func() time.Duration { return time.Since(start) }
	fctx, stop := context.WithDeadline(ctx, start.Add(o.floodDur))
	defer stop()
	var wg sync.WaitGroup

	// 2. The primed good client scrapes every interval until the flood ends;
	// a scrape in flight then finishes (within its timeout). Missed ticks are
	// dropped, as Prometheus never overlaps scrapes of one target.
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(o.goodInterval)
		defer tick.Stop()
		r.good.began = o.goodInterval
		for {
			select {
			case <-fctx.Done():
				return
			case <-tick.C:
			}
			at := since()
			if r.good.scrape(ctx, good, url, s.user, s.password, scrapeHdr, o.scrapeTimeout, at, true) && r.good.firstOK < 0 {
				r.good.firstOK = since() - r.good.began
			}
		}
	}()

	// 2b. A new scraper, whose credential this process has never verified,
	// arrives newcomerAt into the flood, from the good clients' address, and
	// scrapes every interval on its own connection: at once, then at each
	// tick. Without a success by the end of the flood it keeps trying, at
	// most until newcomerGrace after it, to measure how long it waited.
	var ncDone sync.WaitGroup
	ncDone.Add(1)
	go func() {
		defer ncDone.Done()
		if !sleepCtx(fctx, o.newcomerAt) {
			return
		}
		nc := newClientFrom(s.tls.pool, o.gzip, o.goodFrom)
		defer closeIdle(nc)
		tick := time.NewTicker(o.goodInterval)
		defer tick.Stop()
		began := time.Now()
		r.newcomer.began = since()
		giveUp := o.floodDur + newcomerGrace(o)
		for {
			at := since()
			during := fctx.Err() == nil && at < o.floodDur
			if !during && (r.newcomer.firstOK >= 0 || at >= giveUp) {
				r.newcomer.gaveUp = at
				return
			}
			if r.newcomer.scrape(ctx, nc, url, s.user2, s.password2, scrapeHdr, o.scrapeTimeout, at, during) && r.newcomer.firstOK < 0 {
				r.newcomer.firstOK = time.Since(began)
				r.newcomer.firstOKAfterFlood = !during
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
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
					samples = append(samples, counterSample{since(), m})
				}
			}
		}()
	}
	wg.Wait()
	cpu := diff(cpu0, meter.sample())
	r.proxyCPU, r.clientCPU = cpu[0], cpu[1]
	r.mem, _ = readMemory(proxyPID)
	fc, err := readFlood(ctx, fp, out, time.Minute)
	if err != nil {
		return r, err
	}
	r.sent, r.unanswered, r.newConns, r.late401, r.lateAnswers, r.quick429 = fc.Sent, fc.Unanswered, fc.NewConns, fc.Late401, fc.LateAnswers, fc.Quick429
	r.floodCPU = fc.CPU
	for _, d := range fc.Lat429 {
		r.lat429 = append(r.lat429, time.Duration(d))
	}
	for k, v := range fc.Status {
		r.status[k] += v
	}
	for k, v := range fc.Errs {
		r.errs[k] += v
	}
	ncDone.Wait()

	if withCounters {
		sleepCtx(ctx, 300*time.Millisecond) // let the last refused requests be counted
		m, err := proxyCounters(ctx, monitor, base, s)
		if err != nil {
			return r, fmt.Errorf("after the flood: %w", err)
		}
		samples = append(samples, counterSample{since(), m})
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
		r.checksHow = fmt.Sprintf("%s from /proxy/metrics, minus the right-password checks (outcome=\"ok\")", bcryptChecksMetric)
		r.attempts = map[string]float64{}
		for k, v := range last {
			if strings.HasPrefix(k, attemptsMetric+"{") {
				r.attempts[strings.TrimSuffix(strings.TrimPrefix(k, attemptsMetric+`{outcome="`), `"}`)] = v - first[k]
			}
		}
		prev := -1.0
		r.burstDone = -1
		for _, sm := range samples {
			n := flood401s(sm.m) - flood401s(first)
			if n == prev {
				continue
			}
			r.timeline = append(r.timeline, fmt.Sprintf("%.1fs:%.0f", sm.at.Seconds(), n))
			if n >= freeBurst && r.burstDone < 0 {
				r.burstDone = sm.at
			}
			// Checks beyond the free ones, at the sample that first showed them.
			for k := max(prev, freeBurst); k < n; k++ {
				r.afterBurst = append(r.afterBurst, sm.at)
			}
			prev = n
		}
	} else {
		r.checks = float64(r.status["401"])
		r.lateChecks = float64(r.late401)
		r.lateFrom = half
		r.checksHow = "the flood's 401 answers (every password is fresh, so each cost one bcrypt; a lower bound: requests cut off at the end are not counted)"
	}
	return r, nil
}

// newcomerGrace is how long after the flood a new scraper without a success
// keeps trying.
func newcomerGrace(o options) time.Duration { return 2 * o.scrapeTimeout }

// slowest names the n slowest attempts in the flood: when they began, and
// how long they took.
func (st scrapeStats) slowest(n int) string {
	idx := make([]int, len(st.lat))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return st.lat[idx[a]] > st.lat[idx[b]] })
	var parts []string
	for _, i := range idx[:min(n, len(idx))] {
		parts = append(parts, fmt.Sprintf("t=%.1fs %.0f ms", st.at[i].Seconds(), ms(st.lat[i])))
	}
	return strings.Join(parts, ", ")
}

// mostInAMinute is the most checks after the first burst in any 60 s window
// the flood covered.
func (r floodResult) mostInAMinute() int {
	most := 0
	for i, t := range r.afterBurst {
		n := 0
		for _, u := range r.afterBurst[i:] {
			if u-t < time.Minute {
				n++
			}
		}
		most = max(most, n)
	}
	return most
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
