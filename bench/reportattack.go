package main

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// The DESIGN targets of the attack scenarios, and the done-when
// figures beside them.
const (
	targetP99      = 50 * time.Millisecond
	doneWhenP99    = 100 * time.Millisecond
	targetRSSMiB   = 64
	doneWhenRSSMiB = 96
	targetCores    = 0.3
)

// reportAttacks prints one table per attack scenario, then a summary.
func reportAttacks(p func(string, ...any), o options, attacks map[string]map[string]attackResult) {
	if len(o.attacks) == 0 {
		return
	}
	defs := attackDefs()
	for _, name := range o.attacks {
		reportAttack(p, o, defs[name], attacks[name])
	}
	p("")
	p("== Attacks, summary (figures only). Targets: the good client gets every scrape with p99 < %.0f ms (done-when < %.0f ms);",
		ms(targetP99), ms(doneWhenP99))
	p("   proxy RSS < %d MiB (done-when < %d MiB); a flood that needs no bcrypt (all but auth-hog) costs the proxy < %.1f core",
		targetRSSMiB, doneWhenRSSMiB, targetCores)
	p("%-18s %-3s %-13s %7s %8s %8s %9s %6s   %s", "scenario", "", "good ok/total", "p50 ms", "p99 ms", "max ms", "RSS MiB", "cores", "good client's failures")
	for _, name := range o.attacks {
		for _, k := range []string{"A", "C"} {
			r, ok := attacks[name][k]
			if !ok {
				if k == "C" && defs[name].token {
					p("%-18s %-3s n/a: exporter-toolkit has no bearer tokens", name, k)
				}
				continue
			}
			if r.good.attempts == 0 && r.failed != "" {
				p("%-18s %-3s not measured: %s", name, k, r.failed)
				continue
			}
			p("%-18s %-3s %-13s %7.1f %8.1f %8.1f %9.1f %6.3f   %s", name, k,
				fmt.Sprintf("%d/%d", r.good.ok, r.good.attempts), ms(r.good.lat.pct(.5)), ms(r.good.lat.pct(.99)), ms(r.good.lat.pct(1)),
				float64(r.peakRSSKiB)/1024, cores(r.proxyCPU, r.dur), r.good.fail)
		}
	}
	reportTokenVsPassword(p, attacks)
}

// reportTokenVsPassword compares, when both ran, what a flood of wrong tokens
// and one of wrong passwords cost A: the acceptance criterion is that
// the token flood costs the proxy less and no good scrape fails.
func reportTokenVsPassword(p func(string, ...any), attacks map[string]map[string]attackResult) {
	pw, ok1 := attacks[scWrongH2]["A"]
	tok, ok2 := attacks[scWrongTok]["A"]
	if !ok1 || !ok2 || pw.failed != "" || tok.failed != "" || pw.dur <= 0 || tok.dur <= 0 {
		return
	}
	pc, tc := cores(pw.proxyCPU, pw.dur), cores(tok.proxyCPU, tok.dur)
	p("")
	p("== A: wrong tokens vs wrong passwords over HTTP/2 (target: the token flood costs the proxy less, and no good scrape fails)")
	p("   proxy CPU, cores: %s %.3f (%s), %s %.3f (%s); token / password = %s",
		scWrongTok, tc, tok.proxyCPU.Round(time.Millisecond), scWrongH2, pc, pw.proxyCPU.Round(time.Millisecond), ratioOrNA(tc, pc))
	p("   answers the floods got: %s %d, %s %d; good scrapes ok: %s %d/%d, %s %d/%d",
		scWrongTok, counts(tok.flood.Status).total(), scWrongH2, counts(pw.flood.Status).total(),
		scWrongTok, tok.good.ok, tok.good.attempts, scWrongH2, pw.good.ok, pw.good.attempts)
	cheaper := tc < pc
	allOK := tok.good.attempts > 0 && tok.good.ok == tok.good.attempts
	p("   token flood cheaper: %s; every good scrape under it: %s", yesNo(cheaper), yesNo(allOK))
}

func ratioOrNA(x, y float64) string {
	if y <= 0 || math.IsNaN(x) || math.IsNaN(y) {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", x/y)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// reportAttack prints one attack scenario's table, A beside C.
func reportAttack(p func(string, ...any), o options, d attackDef, rs map[string]attackResult) {
	a, c := rs["A"], rs["C"]
	keys := []string{"A", "C"}
	if d.token {
		keys = keys[:1]
	}
	row := func(label, target string, f func(r attackResult) string) {
		av, cv := f(a), "n/a"
		if !d.token {
			cv = f(c)
		}
		if len(av) > 36 { // C's value on a line of its own, in its column
			p("%-46s %-28s %s", label, target, av)
			p("%-46s %-28s %-36s %s", "", "", "", cv)
			return
		}
		p("%-46s %-28s %-36s %s", label, target, av, cv)
	}
	p("")
	if d.token {
		p("== Attack %s, %s, in front of the runner; A a fresh process, same web config, and a routes file (/metrics from the", d.name, o.attackDur)
		p("   runner) with one token made by hash-token; C n/a: exporter-toolkit has no bearer tokens")
	} else {
		p("== Attack %s, %s, in front of the runner; A and C each a fresh process, same web config", d.name, o.attackDur)
	}
	p("   flood: %s", d.describe(o))
	conn := "one keep-alive connection opened before the flood"
	if d.newConn {
		conn = "a new TCP connection per scrape"
	}
	proto := "HTTP/1.1"
	if d.h2 {
		proto = "HTTP/2"
	}
	who := fmt.Sprintf("user %q", "prometheus")
	if d.token {
		who = fmt.Sprintf("the right bearer token (%q)", tokenName)
	}
	p("   good client: %s, %s, from %s, %s, every %s with a %s timeout, missed ticks dropped; it scraped once before the flood",
		who, proto, o.goodFrom, conn, o.goodInterval, o.scrapeTimeout)
	if d.newcomer {
		p("   never-seen client (informational; a full table may refuse unknown sources): the same user and password (a credential the")
		p("   proxy knows), from %s, an address it has never seen, from t=%.1fs, %s like the good client", o.newcomerFrom, (o.attackDur / 4).Seconds(), conn)
	}
	for _, k := range keys {
		if r := rs[k]; r.failed != "" {
			p("   %s: %s", k, r.failed)
		}
	}
	p("%-46s %-28s %-36s %s", "", "target", "A metrics-proxy", "C exporter-toolkit")
	row("good scrapes ok / attempted", "every scrape", func(r attackResult) string {
		return fmt.Sprintf("%d / %d %s", r.good.ok, r.good.attempts, mark(r.good.attempts > 0 && r.good.ok == r.good.attempts))
	})
	row("good latency p50 / p99 / max, ms", fmt.Sprintf("p99 < %.0f (done-when < %.0f)", ms(targetP99), ms(doneWhenP99)), func(r attackResult) string {
		if len(r.good.lat) == 0 {
			return "n/a"
		}
		return latencyString(r.good.lat) + " " + mark2(ms(r.good.lat.pct(.99)), ms(targetP99), ms(doneWhenP99))
	})
	row("good failures", "none", func(r attackResult) string { return r.good.fail.String() })
	row("good: negotiated before the flood", "", func(r attackResult) string { return r.goodProto })
	if !d.newConn {
		row("good: connections opened in the flood", "0", func(r attackResult) string { return fmt.Sprint(r.good.newConns) })
	}
	if d.newcomer {
		row("never-seen client ok / attempted", "informational", func(r attackResult) string {
			return fmt.Sprintf("%d / %d", r.newcomer.ok, r.newcomer.attempts)
		})
		row("  first success after", "", func(r attackResult) string { return firstOK(r.newcomer) })
		row("  latency p50 / p99 / max, ms", "", func(r attackResult) string { return latencyString(r.newcomer.lat) })
		row("  failures", "", func(r attackResult) string { return r.newcomer.fail.String() })
	}
	row("proxy peak RSS (VmRSS every 100 ms), MiB", fmt.Sprintf("< %d (done-when < %d)", targetRSSMiB, doneWhenRSSMiB), func(r attackResult) string {
		return fmt.Sprintf("%.1f %s", float64(r.peakRSSKiB)/1024, mark2(float64(r.peakRSSKiB)/1024, targetRSSMiB, doneWhenRSSMiB))
	})
	row("  VmHWM / VmRSS at the end of the flood, MiB", "", func(r attackResult) string {
		return fmt.Sprintf("%.1f / %.1f", r.mem.hwmMiB(), r.mem.rssMiB())
	})
	cpuTarget := fmt.Sprintf("< %.1f", targetCores)
	if !d.noBcrypt {
		cpuTarget = "none (it serves the client)"
	}
	// With CPU time in 10 ms ticks, a cheap flood's is a few ticks: the
	// seconds beside the cores say how coarse the figure is.
	row("proxy CPU over the flood, cores (CPU time)", cpuTarget, func(r attackResult) string {
		v := cores(r.proxyCPU, r.dur)
		if !d.noBcrypt {
			return fmt.Sprintf("%.3f (%.2f s)", v, r.proxyCPU.Seconds())
		}
		return fmt.Sprintf("%.3f (%.2f s) %s", v, r.proxyCPU.Seconds(), mark(v < targetCores))
	})

	row("flood's client", "", func(r attackResult) string { return r.floodHow })
	switch d.name {
	case scIdleOne, scIdleMany, scZeroWindow:
		row("  connections set up / closed by the proxy", "", func(r attackResult) string {
			return fmt.Sprintf("%d / %d", r.flood.Opened, r.flood.Closed)
		})
		row("  most open at once / open at the end", "", func(r attackResult) string {
			return fmt.Sprintf("%d / %d", r.flood.MaxOpen, r.flood.OpenAtEnd)
		})
		row("  all open at once after", "", func(r attackResult) string {
			if r.flood.AllOpenAt < 0 {
				return fmt.Sprintf("never (%d wanted)", r.flood.Conns)
			}
			return fmt.Sprintf("%.1fs (%d)", time.Duration(r.flood.AllOpenAt).Seconds(), r.flood.Conns)
		})
		row("  closed ones' life p50 / max, s", "", func(r attackResult) string {
			if r.flood.Closed == 0 {
				return "n/a"
			}
			return fmt.Sprintf("%.1f / %.1f", time.Duration(r.flood.LifeP50).Seconds(), time.Duration(r.flood.LifeMax).Seconds())
		})
		row("  failed set-ups", "", func(r attackResult) string { return counts(r.flood.SetupErrs).String() })
		if d.name == scZeroWindow {
			row("  requests sent", "", func(r attackResult) string { return fmt.Sprint(r.flood.Requests) })
			row("  failed writes", "", func(r attackResult) string { return counts(r.flood.Errs).String() })
		}
	case scHandshake:
		row("  handshakes completed, per second", "", func(r attackResult) string {
			return fmt.Sprintf("%d, %.0f/s", r.flood.Handshakes, float64(r.flood.Handshakes)/o.attackDur.Seconds())
		})
		row("  failed handshakes", "", func(r attackResult) string { return counts(r.flood.SetupErrs).String() })
	case scAuthHog, scWrongH2, scWrongTok:
		row("  requests answered / sent", "", func(r attackResult) string {
			return fmt.Sprintf("%d / %d", counts(r.flood.Status).total(), r.flood.Requests)
		})
		row("  answers per second", "", func(r attackResult) string {
			return fmt.Sprintf("%.0f", float64(counts(r.flood.Status).total())/o.attackDur.Seconds())
		})
		row("  answers by status", "", func(r attackResult) string { return counts(r.flood.Status).String() })
		row("  no answer", "", func(r attackResult) string { return counts(r.flood.Errs).String() })
		if a.h2load == nil || c.h2load == nil && !d.token {
			row("  answer time p50 / p99 / max, ms", "", func(r attackResult) string {
				if r.h2load != nil {
					return "see h2load below"
				}
				return fmt.Sprintf("%.1f / %.1f / %.1f", ms(time.Duration(r.flood.LatP50)), ms(time.Duration(r.flood.LatP99)), ms(time.Duration(r.flood.LatMax)))
			})
			row("  connections opened", "", func(r attackResult) string {
				if r.h2load != nil {
					return "n/a (h2load)"
				}
				return fmt.Sprint(r.flood.Opened)
			})
		}
	}
	row("flood process's CPU, cores", "", func(r attackResult) string {
		return fmt.Sprintf("%.2f", cores(r.flood.CPU, o.attackDur))
	})
	for _, k := range keys {
		r := rs[k]
		if r.floodNote != "" {
			p("   %s flood note: %s", k, r.floodNote)
		}
		if answered := counts(r.flood.Status).total(); r.h2load != nil && answered < 4*o.h2Conns*o.h2Streams {
			p("   %s note: h2load never reopens a connection the proxy refused or closed: this flood died out after %d answers", k, answered)
			p("     (%d connections x %d streams); -attack.h2-client go floods with a client that reconnects", o.h2Conns, o.h2Streams)
		}
		for _, l := range r.h2load {
			p("   %s h2load: %s", k, l)
		}
		if len(r.good.failAt) > 0 {
			p("   %s good client's first failures: %s", k, strings.Join(r.good.failAt, "; "))
		}
		if len(r.good.lat) > 0 {
			p("   %s good client's slowest scrapes: %s", k, r.good.slowest(3))
		}
		if len(r.newcomer.failAt) > 0 {
			p("   %s never-seen client's first failures: %s", k, strings.Join(r.newcomer.failAt, "; "))
		}
	}
	p("   A /proxy/metrics over the flood (read with the good client's credentials; each read is itself one request):")
	switch {
	case a.countersFailed != "":
		p("     not read: %s", a.countersFailed)
	case a.counters == nil:
		p("     not read")
	default:
		for _, f := range watchedFamilies {
			p("     %-44s %s", f, seriesDeltas(a.counters, f, a.absent))
		}
	}
}

// seriesDeltas lists the non-zero deltas of family's series.
func seriesDeltas(deltas map[string]float64, family string, absent []string) string {
	for _, f := range absent {
		if f == family {
			return "absent"
		}
	}
	var parts []string
	for _, k := range sortedKeys(deltas) {
		if k != family && !strings.HasPrefix(k, family+"{") {
			continue
		}
		if v := deltas[k]; v != 0 {
			parts = append(parts, strings.TrimSpace(fmt.Sprintf("%s +%.0f", strings.TrimPrefix(k, family), v)))
		}
	}
	if len(parts) == 0 {
		return "+0"
	}
	return strings.Join(parts, ", ")
}

// mark2 marks v against the DESIGN target and the done-when figure (lower is
// better).
func mark2(v, target, doneWhen float64) string {
	switch {
	case math.IsNaN(v):
		return ""
	case v < target:
		return "[meets]"
	case v < doneWhen:
		return "[misses; meets done-when]"
	}
	return "[misses]"
}
