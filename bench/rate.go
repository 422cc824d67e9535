package main

import (
	"context"
	"sync"
	"time"
)

// rateResult is scenario 1 for one proxy, one round or all rounds together.
type rateResult struct {
	window     time.Duration
	ok         int       // complete 200 pages in the window
	errs       counts    // failed requests in the window, by kind
	lat        latencies // every request completed in the window
	warmup     int       // requests completed during the warm-up (not counted)
	warmupErrs counts
	// primeTook is how long until every client had had one good answer
	// (the first right password costs bcrypt); primeErrs are the failed
	// answers meanwhile. Only the first round, on a fresh process, says
	// something about first contact.
	primeTook   time.Duration
	primeErrs   counts
	proxyCPU    time.Duration // CPU used in the window by the proxy,
	upstreamCPU time.Duration // ... the upstream (runner or static),
	clientCPU   time.Duration // ... and the bench's clients
	mem         memory        // the proxy's, at the end
	tls         string
	rounds      []float64 // req/s of each round
}

func (r rateResult) rps() float64 {
	if r.window <= 0 {
		return 0
	}
	return float64(r.ok) / r.window.Seconds()
}

// perReq is CPU microseconds per good request.
func (r rateResult) perReq(d time.Duration) float64 {
	if r.ok == 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(r.ok)
}

// add merges one round into r.
func (r *rateResult) add(x rateResult) {
	if r.errs == nil {
		*r = rateResult{errs: counts{}, warmupErrs: counts{}, primeErrs: counts{}, primeTook: x.primeTook, tls: x.tls}
		for k, v := range x.primeErrs {
			r.primeErrs[k] += v
		}
	}
	r.window += x.window
	r.ok += x.ok
	r.lat = append(r.lat, x.lat...)
	r.warmup += x.warmup
	for k, v := range x.errs {
		r.errs[k] += v
	}
	for k, v := range x.warmupErrs {
		r.warmupErrs[k] += v
	}
	r.proxyCPU += x.proxyCPU
	r.upstreamCPU += x.upstreamCPU
	r.clientCPU += x.clientCPU
	r.rounds = append(r.rounds, x.rps())
}

// primeLimit bounds the wait for every client's first good answer.
const primeLimit = 60 * time.Second

// measureRate runs o.clients goroutines, each with its own keep-alive
// connection, scraping url with the right password: first until each has had
// one good answer, then back to back for o.warmup (not counted) and o.rateDur
// (counted: requests completed in the window). CPU is sampled from the proxy
// (proxyPID), its upstream (upstreamPID) and the bench itself.
func measureRate(ctx context.Context, o options, s *setup, url string, proxyPID, upstreamPID int) rateResult {
	start := time.Now()
	var t0, tEnd time.Time // set before go is closed
	goCh := make(chan struct{})
	var primed sync.WaitGroup
	primed.Add(o.clients)

	outs := make([]rateResult, o.clients)
	var wg sync.WaitGroup
	for i := range outs {
		wg.Add(1)
		go func(out *rateResult) {
			defer wg.Done()
			c := newClient(s.tls.pool, o.gzip)
			defer closeIdle(c)
			out.errs, out.warmupErrs, out.primeErrs = counts{}, counts{}, counts{}
			out.lat = make(latencies, 0, 4096)
			scrape := func() (answer, bool, string) {
				rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				a := get(rctx, c, url, s.user, s.password, true, nil)
				ok, why := goodScrape(a)
				if ok && out.tls == "" {
					out.tls = tlsSummary(a)
				}
				return a, ok, why
			}
			for time.Since(start) < primeLimit && ctx.Err() == nil {
				_, ok, why := scrape()
				if ok {
					break
				}
				out.primeErrs[why]++
				sleepCtx(ctx, 20*time.Millisecond)
			}
			primed.Done()
			select {
			case <-goCh:
			case <-ctx.Done():
				return
			}
			for ctx.Err() == nil {
				st := time.Now()
				if !st.Before(tEnd) {
					return
				}
				a, ok, why := scrape()
				en := time.Now()
				switch {
				case en.Before(t0):
					out.warmup++
					if !ok {
						out.warmupErrs[why]++
					}
				case !en.Before(tEnd):
					return
				default:
					out.lat = append(out.lat, en.Sub(st))
					if ok {
						out.ok++
					} else {
						out.errs[why]++
					}
				}
				if a.status == 0 {
					sleepCtx(ctx, 5*time.Millisecond) // no busy loop against a refusing server
				}
			}
		}(&outs[i])
	}

	primed.Wait()
	primeTook := time.Since(start)
	t0 = time.Now().Add(o.warmup)
	tEnd = t0.Add(o.rateDur)
	close(goCh)
	meter := cpuMeter{pids: []int{proxyPID, upstreamPID, 0}}
	var cpu []time.Duration
	if sleepCtx(ctx, time.Until(t0)) {
		cpu0 := meter.sample()
		if sleepCtx(ctx, time.Until(tEnd)) {
			cpu = diff(cpu0, meter.sample())
		}
	}
	wg.Wait()

	r := rateResult{window: o.rateDur, errs: counts{}, warmupErrs: counts{}, primeErrs: counts{}, primeTook: primeTook}
	for _, w := range outs {
		r.ok += w.ok
		r.warmup += w.warmup
		r.lat = append(r.lat, w.lat...)
		for k, v := range w.errs {
			r.errs[k] += v
		}
		for k, v := range w.warmupErrs {
			r.warmupErrs[k] += v
		}
		for k, v := range w.primeErrs {
			r.primeErrs[k] += v
		}
		if r.tls == "" {
			r.tls = w.tls
		}
	}
	if cpu != nil {
		r.proxyCPU, r.upstreamCPU, r.clientCPU = cpu[0], cpu[1], cpu[2]
	}
	return r
}
