package main

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"
)

// report prints the tables, then the ratios next to the DESIGN targets.
func report(w io.Writer, o options, s *setup, ts []target, rates map[string]map[string]rateResult, floods map[string]floodResult,
	attacks map[string]map[string]attackResult, load string, took time.Duration) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	enc := "identity"
	if o.gzip {
		enc = "gzip"
	}
	p("metrics-proxy bench, %s, %s %s/%s, %d CPUs, GOMAXPROCS default in every process, load average before: %s",
		time.Now().UTC().Format(time.RFC3339), runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), load)
	p("upstreams (plain HTTP on 127.0.0.1):")
	p("  static  the runner's /metrics captured once at start (%d bytes; %d gzip-compressed, served to clients that accept gzip),",
		s.page.size, s.page.gzLen)
	p("          Content-Type %q, served from memory by this program re-executed: what the proxies cost", s.page.contentType)
	p("  runner  %s/alloy-runner (idle, no builds) on %s, rendering and compressing every scrape; also the flood's upstream",
		o.binDir, strings.TrimPrefix(s.runnerURL, "http://"))
	p("proxies, each a fresh process per scenario and upstream, started the same way, measured one at a time:")
	p("  A  metrics-proxy     %s/metrics-proxy, TLS + basic auth (bcrypt cost %d); %s", o.binDir, o.cost, s.proxyVersion)
	if len(o.proxyArgs) > 0 {
		p("     with the extra flags %s", strings.Join(o.proxyArgs, " "))
	}
	if len(s.uncommitted) > 0 {
		p("     built from a working tree with uncommitted changes to %s", strings.Join(s.uncommitted, ", "))
	} else if strings.Contains(s.proxyVersion, "-dirty") {
		p("     (\"dirty\": the working tree differs from HEAD only in tests, bench/ or files that are not Go sources)")
	}
	p("  B  plain TLS proxy   httputil.ReverseProxy behind a TLS http.Server, no authentication (the limit)")
	p("  C  exporter-toolkit  web.ListenAndServe (exporter-toolkit %s), same web config, same ReverseProxy (what users run today)", toolkitVersion())
	for _, up := range o.upstreams {
		if r, ok := rates[up]["A"]; ok && r.tls != "" {
			p("clients: HTTP/1.1 keep-alive, Accept-Encoding: %s; negotiated with A: %s", enc, r.tls)
			break
		}
	}

	if o.rate {
		for _, up := range o.upstreams {
			reportRate(p, o, ts, up, rates[up])
		}
	}
	if o.flood {
		reportFlood(p, o, floods)
	}
	if !o.rate && !o.flood {
		reportAttacks(p, o, attacks)
		p("")
		p("proxy bench took %s", took.Round(time.Second))
		return
	}

	p("")
	p("== 3. Peak resident memory of each proxy process, MiB: VmHWM (VmRSS at the end)")
	ups := o.upstreams
	if !o.rate {
		ups = nil
	}
	head := fmt.Sprintf("%-20s", "")
	for _, up := range ups {
		head += fmt.Sprintf(" %-22s", "rate, upstream "+up)
	}
	p("%s %s", head, "flood")
	for _, t := range ts {
		line := fmt.Sprintf("%-20s", t.key+" "+t.name)
		for _, up := range ups {
			r := rates[up][t.key]
			line += fmt.Sprintf(" %-22s", fmt.Sprintf("%.1f (%.1f)", r.mem.hwmMiB(), r.mem.rssMiB()))
		}
		fl := "n/a"
		if r, ok := floods[t.key]; ok {
			fl = fmt.Sprintf("%.1f (%.1f)", r.mem.hwmMiB(), r.mem.rssMiB())
		}
		p("%s %s", line, fl)
	}

	p("")
	p("== Ratios and DESIGN targets (figures only; the bench never passes or fails on time)")
	for _, up := range o.upstreams {
		if !o.rate {
			break
		}
		rs := rates[up]
		what := "the proxy layer alone"
		if up == upstreamRunner {
			what = "each scrape also pays the runner's render and gzip"
		}
		p("  keep-alive scrapes, upstream %s (%s):", up, what)
		ra, rb, rc := rs["A"].rps(), rs["B"].rps(), rs["C"].rps()
		p("    rate          metrics-proxy / plain TLS proxy = %-16s (target >= 0.95x)   metrics-proxy / exporter-toolkit = %-16s (target >= 1.40x)",
			ratio(ra, rb, 0.95), ratio(ra, rc, 1.4))
		pa, pb, pc := rs["A"].perReq(rs["A"].proxyCPU), rs["B"].perReq(rs["B"].proxyCPU), rs["C"].perReq(rs["C"].proxyCPU)
		if pa > 0 && pb > 0 && pc > 0 {
			p("    proxy CPU/req metrics-proxy / plain TLS proxy = %-16s                     metrics-proxy / exporter-toolkit = %-16s (lower is better; %.0f / %.0f / %.0f us)",
				fmt.Sprintf("%.2fx", pa/pb), fmt.Sprintf("%.2fx", pa/pc), pa, pb, pc)
			p("                  as a rate if proxy CPU were the only limit: vs B %.2fx, vs C %.2fx", pb/pa, pc/pa)
		}
	}
	if o.flood {
		reportFloodRatios(p, floods)
	}
	p("  runner /metrics render with 100 builds: BenchmarkRender100Builds below (target p99 < 5 ms)")
	if len(o.attacks) > 0 {
		reportAttacks(p, o, attacks)
	}
	p("")
	p("proxy bench took %s", took.Round(time.Second))
}

// reportFloodRatios prints the flood's figures next to the DESIGN targets.
func reportFloodRatios(p func(string, ...any), floods map[string]floodResult) {
	a, c := floods["A"], floods["C"]
	p("  flood, primed good client: metrics-proxy %d/%d, p99 %.1f ms %s (target: every scrape, p99 < 50 ms); exporter-toolkit %d/%d, p99 %.1f ms",
		a.good.ok, a.good.attempts, ms(a.good.lat.pct(.99)),
		mark(a.good.attempts > 0 && a.good.ok == a.good.attempts && a.good.lat.pct(.99) < 50*time.Millisecond),
		c.good.ok, c.good.attempts, ms(c.good.lat.pct(.99)))
	p("  flood, new scraper (2b, no DESIGN target; its first scrape pays one bcrypt): metrics-proxy first success after %s, %d/%d, p99 %.1f ms;",
		firstOK(a.newcomer), a.newcomer.ok, a.newcomer.attempts, ms(a.newcomer.lat.pct(.99)))
	p("    exporter-toolkit first success after %s, %d/%d", firstOK(c.newcomer), c.newcomer.ok, c.newcomer.attempts)
	if a.burstDone >= 0 {
		span := min(time.Minute, a.dur-a.burstDone)
		p("  flood, bcrypt checks per address after the first burst: metrics-proxy at most %d in any minute (observed %.1fs after the burst) %s (target <= 10 a minute);",
			a.mostInAMinute(), span.Seconds(), mark(a.mostInAMinute() <= 10))
	} else {
		p("  flood, bcrypt checks per address after the first burst: metrics-proxy's burst of %d free failures was not over by the end of the flood (target <= 10 a minute)", freeBurst)
	}
	p("    second half of the flood, extrapolated to a minute: metrics-proxy %.1f, exporter-toolkit %.1f (exporter-toolkit has no back-off: %.0f checks in the flood)",
		perMinute(a.lateChecks, a.dur-a.lateFrom), perMinute(c.lateChecks, c.dur-c.lateFrom), c.checks)
	p("  flood, metrics-proxy peak RSS %.1f MiB %s (target < 64 MiB); exporter-toolkit %.1f MiB",
		a.mem.hwmMiB(), mark(a.mem.hwmMiB() < 64), c.mem.hwmMiB())
}

// reportRate prints scenario 1's table for one upstream.
func reportRate(p func(string, ...any), o options, ts []target, up string, rates map[string]rateResult) {
	p("")
	p("== 1. Keep-alive authenticated scrapes, upstream %s: %d clients, each on its own connection, back to back; %s counted after %s warm-up",
		up, o.clients, o.rateDur, o.warmup)
	if o.rounds > 1 {
		p("   %d rounds, each measuring A, B, C in turn; figures are over all rounds", o.rounds)
	}
	p("   every answer must be 200 with ci_runner_version_info in the body, else it is an error")
	p("%-20s %9s %8s %8s %8s %7s   %s", "", "req/s", "p50 ms", "p99 ms", "max ms", "errors", "CPU us/req: proxy upstream client")
	for _, t := range ts {
		r := rates[t.key]
		p("%-20s %9.1f %8.2f %8.2f %8.2f %7d   %17.0f %8.0f %6.0f",
			t.key+" "+t.name, r.rps(), ms(r.lat.pct(.5)), ms(r.lat.pct(.99)), ms(r.lat.pct(1)), r.errs.total(),
			r.perReq(r.proxyCPU), r.perReq(r.upstreamCPU), r.perReq(r.clientCPU))
	}
	for _, t := range ts {
		if r := rates[t.key]; r.errs.total() > 0 {
			p("   %s errors: %s", t.key, r.errs)
		}
	}
	if o.rounds > 1 {
		for _, t := range ts {
			var rs []string
			for _, v := range rates[t.key].rounds {
				rs = append(rs, fmt.Sprintf("%.1f", v))
			}
			p("   %s req/s by round: %s", t.key, strings.Join(rs, ", "))
		}
	}
	p("   first contact (fresh process; %d clients at once until each has one 200, then the warm-up starts):", o.clients)
	for _, t := range ts {
		r := rates[t.key]
		p("     %s all had a 200 after %.0f ms; failed answers meanwhile: %s; failed in the warm-up: %s",
			t.key, ms(r.primeTook), r.primeErrs, r.warmupErrs)
	}
}

// reportFlood prints scenarios 2 and 2b.
func reportFlood(p func(string, ...any), o options, floods map[string]floodResult) {
	a, c := floods["A"], floods["C"]
	row := func(label string, f func(r floodResult) string) {
		p("%-48s %-34s %-34s", label, f(a), f(c))
	}
	p("")
	p("== 2. Wrong-password flood (upstream runner): %d connections from 127.0.0.1 for %s, the right user and a fresh random wrong",
		o.floodConns, o.floodDur)
	p("   password per request, Retry-After ignored, one request at a time per connection (a held-back 429 holds its connection),")
	p("   reconnecting when closed. B has no authentication: n/a. Two good clients scrape from %s (their connections' bound", o.goodFrom)
	p("   source address: another client address, as another Prometheus would be), every %s with a %s timeout, each on", o.goodInterval, o.scrapeTimeout)
	p("   its own keep-alive connection, missed ticks dropped as Prometheus does:")
	p("   2   the primed client: its credential was accepted once just before the flood (Prometheus has been scraping for a while)")
	p("   2b  a new scraper: user %q, whose credential this process has never verified (a second Prometheus, or the first", "prometheus-new")
	p("       scrape after a restart or a password rotation), from %.1fs into the flood, at once and then every %s; without a",
		o.newcomerAt.Seconds(), o.goodInterval)
	p("       success by the end of the flood it keeps trying, at most %s more, to measure its wait", newcomerGrace(o))
	if o.newcomerNote != "" {
		p("       (%s)", o.newcomerNote)
	}
	p("%-48s %-34s %-34s", "", "A metrics-proxy", "C exporter-toolkit")
	p("2 primed client")
	row("  scrapes succeeded / attempted", func(r floodResult) string { return fmt.Sprintf("%d / %d", r.good.ok, r.good.attempts) })
	row("  latency p50 / p99 / max, ms", func(r floodResult) string { return latencyString(r.good.lat) })
	row("  failures", func(r floodResult) string { return r.good.fail.String() })
	row("  reconnections", func(r floodResult) string { return fmt.Sprint(r.good.newConns) })
	p("2b new scraper (from t=%.1fs)", o.newcomerAt.Seconds())
	row("  time to first success", func(r floodResult) string { return firstOK(r.newcomer) })
	row("  scrapes succeeded / attempted in the flood", func(r floodResult) string {
		return fmt.Sprintf("%d / %d", r.newcomer.ok, r.newcomer.attempts)
	})
	row("  latency p50 / p99 / max, ms (in the flood)", func(r floodResult) string { return latencyString(r.newcomer.lat) })
	row("  latency p50 / p99 / max after 1st success, ms", func(r floodResult) string {
		if r.newcomer.firstOKIdx < 0 {
			return "n/a"
		}
		return latencyString(r.newcomer.lat[r.newcomer.firstOKIdx+1:])
	})
	row("  failures", func(r floodResult) string { return r.newcomer.fail.String() })
	row("  attempts after the flood, until a success", func(r floodResult) string {
		if r.newcomer.afterFlood == 0 {
			return "none"
		}
		return fmt.Sprintf("%d (stopped at t=%.1fs)", r.newcomer.afterFlood, r.newcomer.gaveUp.Seconds())
	})
	row("  connections opened", func(r floodResult) string { return fmt.Sprint(r.newcomer.newConns) })
	p("the flood")
	row("  requests sent", func(r floodResult) string { return fmt.Sprint(r.sent) })
	row("  answers per second, whole / second half", func(r floodResult) string {
		return fmt.Sprintf("%.1f / %.1f", float64(r.status.total())/r.dur.Seconds(), float64(r.lateAnswers)/(r.dur-r.dur/2).Seconds())
	})
	row("  answers 401 / 429 / other", func(r floodResult) string {
		other := r.status.total() - r.status["401"] - r.status["429"]
		return fmt.Sprintf("%d / %d / %d", r.status["401"], r.status["429"], other)
	})
	row(fmt.Sprintf("  429s answered in < %s / held back", quick429Limit), func(r floodResult) string {
		return fmt.Sprintf("%d / %d", r.quick429, r.status["429"]-r.quick429)
	})
	row("  429 answer time p50 / p99 / max, ms", func(r floodResult) string { return latencyString(r.lat429) })
	row("  transport errors / cut off at end", func(r floodResult) string {
		return fmt.Sprintf("%d / %d", r.errs.total(), r.unanswered)
	})
	row("  connections opened (TLS handshakes)", func(r floodResult) string { return fmt.Sprint(r.newConns) })
	row("  bcrypt checks the flood obtained", func(r floodResult) string { return fmt.Sprintf("%.0f", r.checks) })
	row("    per minute per address, whole flood", func(r floodResult) string { return fmt.Sprintf("%.1f", perMinute(r.checks, r.dur)) })
	row("    per minute per address, second half", func(r floodResult) string {
		return fmt.Sprintf("%.1f (%.0f in %.1fs)", perMinute(r.lateChecks, r.dur-r.lateFrom), r.lateChecks, (r.dur - r.lateFrom).Seconds())
	})
	row(fmt.Sprintf("    after the first burst (A: %d free failures)", freeBurst), func(r floodResult) string {
		if r.attempts == nil {
			return "n/a (no back-off)"
		}
		if r.burstDone < 0 {
			return "burst not over"
		}
		return fmt.Sprintf("%d in %.1fs (burst over at %.1fs)", len(r.afterBurst), (r.dur - r.burstDone).Seconds(), r.burstDone.Seconds())
	})
	row("proxy CPU during the flood, s", func(r floodResult) string { return fmt.Sprintf("%.1f", r.proxyCPU.Seconds()) })
	row("flood process's CPU during the flood, s", func(r floodResult) string { return fmt.Sprintf("%.1f", r.floodCPU.Seconds()) })
	row("the bench's (good clients') CPU, s", func(r floodResult) string { return fmt.Sprintf("%.1f", r.clientCPU.Seconds()) })
	row("peak RSS (VmHWM) / VmRSS at end, MiB", func(r floodResult) string {
		return fmt.Sprintf("%.1f / %.1f", r.mem.hwmMiB(), r.mem.rssMiB())
	})
	for _, k := range []string{"A", "C"} {
		r := floods[k]
		p("   %s slowest scrapes: primed client %s; new scraper %s", k, r.good.slowest(3), r.newcomer.slowest(3))
		if len(r.good.failAt) > 0 {
			p("   %s primed client's first failures: %s", k, strings.Join(r.good.failAt, "; "))
		}
		if len(r.newcomer.failAt) > 0 {
			p("   %s new scraper's first failures: %s", k, strings.Join(r.newcomer.failAt, "; "))
		}
		if k == "A" {
			p("   A bcrypt checks: %s; right-password checks during the flood (the new scraper's): %.0f", r.checksHow, r.goodChecks)
			p("   A flood checks over time (s:cumulative, from outcome=\"unauthorized\", sampled every second): %s", strings.Join(r.timeline, " "))
			var gaps []string
			for i := 1; i < len(r.afterBurst); i++ {
				gaps = append(gaps, fmt.Sprintf("%.0f", (r.afterBurst[i]-r.afterBurst[i-1]).Seconds()))
			}
			if len(gaps) > 0 {
				p("   A seconds between the flood's checks after its burst (back-off windows 1, 2, 4 ... 60 s; +-1 s sampling): %s", strings.Join(gaps, ", "))
			}
			p("   A metrics_proxy_auth_attempts_total during the flood (all clients): %s", attemptsString(r.attempts))
		} else {
			p("   C bcrypt checks: %s", r.checksHow)
			if r.checks < 100 {
				p("   C note: the toolkit caches every failure in one 100-entry cache and evicts at random only once it is full; %.0f failures", r.checks)
				p("     did not fill it, so the primed client's cached credential could not have been evicted in this flood")
			}
		}
	}
}

func latencyString(l latencies) string {
	if len(l) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f / %.1f / %.1f", ms(l.pct(.5)), ms(l.pct(.99)), ms(l.pct(1)))
}

// firstOK is a new scraper's time to its first success, from its first attempt.
func firstOK(st scrapeStats) string {
	switch {
	case st.firstOK < 0 && st.gaveUp > 0:
		return fmt.Sprintf("none (tried %.1fs)", (st.gaveUp - st.began).Seconds())
	case st.firstOK < 0:
		return "none"
	case st.firstOKAfterFlood:
		return fmt.Sprintf("%.2fs (after the flood)", st.firstOK.Seconds())
	}
	return fmt.Sprintf("%.2fs", st.firstOK.Seconds())
}

func ratio(a, b, target float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx %s", a/b, mark(a/b >= target))
}

func mark(met bool) string {
	if met {
		return "[meets]"
	}
	return "[misses]"
}

func attemptsString(m map[string]float64) string {
	var parts []string
	for _, k := range []string{"ok_cached", "ok", "unauthorized", "throttled", "busy"} {
		if v, ok := m[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %.0f", k, v))
		}
	}
	return strings.Join(parts, ", ")
}
