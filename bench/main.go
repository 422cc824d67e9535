// Command bench measures metrics-proxy against two baselines, side by side on
// one machine, and prints figures and ratios next to the targets in DESIGN.md.
// It never passes or fails on time.
//
// All three proxies run in front of the same real alloy-runner, each as a
// fresh process started the same way (default GOMAXPROCS), one at a time:
//
//	A  bin/metrics-proxy: TLS and basic auth (bcrypt cost 12)
//	B  "the limit": httputil.ReverseProxy behind a TLS http.Server, no authentication
//	C  "what users run today": exporter-toolkit's web.ListenAndServe with the
//	   same web config around the same ReverseProxy
//
// B and C are this program re-executed with -mode=plain-proxy or
// -mode=toolkit-proxy. Run it from the repository root after `make build`;
// `make bench` does both. See bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
)

// options are the bench's flags; the defaults are the full measurement.
type options struct {
	binDir        string
	clients       int
	warmup        time.Duration
	rateDur       time.Duration
	rounds        int
	floodConns    int
	floodDur      time.Duration
	goodInterval  time.Duration
	scrapeTimeout time.Duration
	gzip          bool
	cost          int
	keep          bool
}

func main() {
	if isChild(os.Args[1:]) {
		os.Exit(runChild(os.Args[1:]))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.binDir, "bin", "bin", "directory holding alloy-runner and metrics-proxy (make build)")
	fs.IntVar(&o.clients, "rate.clients", 8, "keep-alive clients in the scrape-rate test, each with its own connection")
	fs.DurationVar(&o.warmup, "rate.warmup", time.Second, "warm-up before the scrape-rate window (not counted)")
	fs.DurationVar(&o.rateDur, "rate.duration", 10*time.Second, "counted scrape-rate window per proxy")
	fs.IntVar(&o.rounds, "rate.rounds", 1, "rounds of the scrape-rate test; each round measures A, B, C in turn (more rounds average out other load on the machine)")
	fs.IntVar(&o.floodConns, "flood.conns", 64, "connections sending wrong passwords in the flood")
	fs.DurationVar(&o.floodDur, "flood.duration", 20*time.Second, "length of the wrong-password flood per proxy")
	fs.DurationVar(&o.goodInterval, "flood.interval", 500*time.Millisecond, "the good client's scrape interval during the flood")
	fs.DurationVar(&o.scrapeTimeout, "flood.scrape-timeout", 10*time.Second, "the good client's scrape timeout (Prometheus's default is 10s)")
	fs.BoolVar(&o.gzip, "gzip", true, "scrape with Accept-Encoding: gzip, as Prometheus does")
	fs.IntVar(&o.cost, "bcrypt.cost", 12, "bcrypt cost of the user's hash")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (certificates, configs, process logs)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	case o.clients < 1 || o.clients > 64:
		return o, errors.New("-rate.clients must be 1 to 64")
	case o.rounds < 1 || o.rounds > 20:
		return o, errors.New("-rate.rounds must be 1 to 20")
	case o.floodConns < 1 || o.floodConns > 512:
		return o, errors.New("-flood.conns must be 1 to 512")
	case o.rateDur <= 0 || o.rateDur > 10*time.Minute || o.warmup < 0 || o.warmup > time.Minute:
		return o, errors.New("-rate.duration must be in (0, 10m] and -rate.warmup in [0, 1m]")
	case o.floodDur < time.Second || o.floodDur > 10*time.Minute:
		return o, errors.New("-flood.duration must be 1s to 10m")
	case o.goodInterval < 10*time.Millisecond || o.scrapeTimeout <= 0 || o.scrapeTimeout > time.Minute:
		return o, errors.New("-flood.interval must be at least 10ms and -flood.scrape-timeout in (0, 1m]")
	case o.cost < 10 || o.cost > 16:
		return o, errors.New("-bcrypt.cost must be 10 to 16")
	}
	return o, nil
}

// setup is what every scenario shares: credentials, TLS files, the web
// config, and the upstream runner.
type setup struct {
	dir            string
	tls            tlsFiles
	user, password string
	webConfig      string
	runner         *proc
	runnerURL      string
	self           string // this program, re-executed for the baselines
}

// target is one proxy under test.
type target struct {
	key, name string
	auth      bool // has basic auth (takes part in the flood)
	start     func(s *setup, addr, logPath string) (*proc, error)
}

func targets(o options) []target {
	proxyBin := filepath.Join(o.binDir, "metrics-proxy")
	return []target{
		{key: "A", name: "metrics-proxy", auth: true, start: func(s *setup, addr, logPath string) (*proc, error) {
			return startProc("metrics-proxy", logPath, proxyBin,
				"--web.listen-address="+addr, "--web.config.file="+s.webConfig, "--upstream.url="+s.runnerURL)
		}},
		{key: "B", name: "plain TLS proxy", start: func(s *setup, addr, logPath string) (*proc, error) {
			return startProc("plain TLS proxy", logPath, s.self, "-mode="+modePlainProxy,
				"-listen="+addr, "-upstream="+s.runnerURL, "-cert="+s.tls.certFile, "-key="+s.tls.keyFile)
		}},
		{key: "C", name: "exporter-toolkit", auth: true, start: func(s *setup, addr, logPath string) (*proc, error) {
			return startProc("exporter-toolkit proxy", logPath, s.self, "-mode="+modeToolkitProxy,
				"-listen="+addr, "-upstream="+s.runnerURL, "-web.config="+s.webConfig)
		}},
	}
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 2
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	began := time.Now()
	load := loadAverage()

	s, cleanup, err := prepare(ctx, o, stderr)
	defer cleanup()
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}

	ts := targets(o)
	rates := map[string]rateResult{}
	floods := map[string]floodResult{}
	fail := func(t target, err error) int {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "bench: interrupted; every process it started is stopped")
			return 1
		}
		fmt.Fprintf(stderr, "bench: %s %s: %v\n", t.key, t.name, err)
		return 1
	}

	// 1. Scrape rate: a fresh process of each proxy, all started first and
	// measured one at a time, round after round (the others stay idle).
	procs := map[string]*proc{}
	bases := map[string]string{}
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	for _, t := range ts {
		p, base, err := startTarget(ctx, s, t, "rate")
		if err != nil {
			return fail(t, err)
		}
		procs[t.key], bases[t.key] = p, base
	}
	for round := 1; round <= o.rounds; round++ {
		for _, t := range ts {
			progress(stderr, "round %d/%d, %s %s: keep-alive scrapes, %d clients, %s warm-up + %s",
				round, o.rounds, t.key, t.name, o.clients, o.warmup, o.rateDur)
			r := measureRate(ctx, o, s, bases[t.key]+"/metrics", procs[t.key].pid())
			if err := alive(ctx, procs[t.key], "scrape-rate"); err != nil {
				return fail(t, err)
			}
			agg := rates[t.key]
			agg.add(r)
			rates[t.key] = agg
		}
	}
	for _, t := range ts {
		r := rates[t.key]
		r.mem, _ = readMemory(procs[t.key].pid())
		rates[t.key] = r
		procs[t.key].stop()
		delete(procs, t.key)
	}

	// 2. The flood, on a fresh process of each proxy with authentication.
	for _, t := range ts {
		if !t.auth {
			continue
		}
		progress(stderr, "%s %s: wrong-password flood, %d connections, %s", t.key, t.name, o.floodConns, o.floodDur)
		p, base, err := startTarget(ctx, s, t, "flood")
		if err != nil {
			return fail(t, err)
		}
		procs[t.key] = p
		r, err := measureFlood(ctx, o, s, base, p.pid(), t.key == "A")
		if err == nil {
			err = alive(ctx, p, "flood")
		}
		if err != nil {
			return fail(t, err)
		}
		floods[t.key] = r
		p.stop()
		delete(procs, t.key)
	}

	report(stdout, o, s, ts, rates, floods, load, time.Since(began))
	return 0
}

func progress(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "bench %s: "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// prepare makes the temporary directory, certificates, credentials and web
// config, and starts the runner. cleanup stops it and removes the directory.
func prepare(ctx context.Context, o options, stderr io.Writer) (*setup, func(), error) {
	cleanup := func() {}
	for _, b := range []string{"alloy-runner", "metrics-proxy"} {
		if _, err := os.Stat(filepath.Join(o.binDir, b)); err != nil {
			return nil, cleanup, fmt.Errorf("%s not found in %s: run `make build` first, or point -bin at the binaries", b, o.binDir)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return nil, cleanup, fmt.Errorf("cannot find this program to re-execute it for the baselines: %w", err)
	}
	dir, err := os.MkdirTemp("", "metrics-proxy-bench-")
	if err != nil {
		return nil, cleanup, err
	}
	s := &setup{dir: dir, self: self, user: "prometheus", password: randomPassword(16)}
	cleanup = func() {
		if s.runner != nil {
			s.runner.stop()
		}
		if o.keep {
			fmt.Fprintf(stderr, "bench: kept %s\n", dir)
		} else {
			os.RemoveAll(dir)
		}
	}
	if s.tls, err = makeCerts(dir); err != nil {
		return s, cleanup, err
	}
	hash, err := hashPassword(filepath.Join(o.binDir, "metrics-proxy"), s.password, o.cost)
	if err != nil {
		return s, cleanup, err
	}
	s.webConfig = filepath.Join(dir, "web-config.yml")
	if err := writeWebConfig(s.webConfig, s.tls, s.user, hash); err != nil {
		return s, cleanup, err
	}
	runnerConfig := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(runnerConfig, []byte("concurrent = 1\n"), 0o600); err != nil {
		return s, cleanup, err
	}
	addr, err := freeAddr()
	if err != nil {
		return s, cleanup, err
	}
	s.runnerURL = "http://" + addr
	s.runner, err = startProc("alloy-runner", filepath.Join(dir, "alloy-runner.log"), filepath.Join(o.binDir, "alloy-runner"),
		"run", "--config", runnerConfig, "--metrics-server", addr)
	if err != nil {
		return s, cleanup, err
	}
	if err := waitListening(ctx, s.runner, addr, 15*time.Second); err != nil {
		return s, cleanup, err
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if ok, why := goodScrape(get(rctx, http.DefaultClient, s.runnerURL+"/metrics", "", "", true, nil)); !ok {
		return s, cleanup, fmt.Errorf("the runner's /metrics is not a good page (%s); its log:\n%s", why, s.runner.logTail())
	}
	return s, cleanup, nil
}

// startTarget starts a fresh process of t on a free port and waits until it
// listens; it returns the process and https://addr.
func startTarget(ctx context.Context, s *setup, t target, scenario string) (*proc, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	p, err := t.start(s, addr, filepath.Join(s.dir, fmt.Sprintf("%s-%s.log", t.key, scenario)))
	if err != nil {
		return nil, "", err
	}
	if err := waitListening(ctx, p, addr, 15*time.Second); err != nil {
		p.stop()
		return nil, "", err
	}
	return p, "https://" + addr, nil
}

// alive reports an error if the bench was interrupted or p has exited.
func alive(ctx context.Context, p *proc, scenario string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-p.exited:
		return fmt.Errorf("%s exited during the %s test (%v); its log:\n%s", p.name, scenario, p.waitErr, p.logTail())
	default:
	}
	return nil
}

// toolkitVersion is the exporter-toolkit version this program was built with.
func toolkitVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/prometheus/exporter-toolkit" {
				return d.Version
			}
		}
	}
	return "unknown version"
}

// report prints the tables, then the ratios next to the DESIGN targets.
func report(w io.Writer, o options, s *setup, ts []target, rates map[string]rateResult, floods map[string]floodResult, load string, took time.Duration) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	enc := "identity"
	if o.gzip {
		enc = "gzip"
	}
	p("metrics-proxy bench, %s, %s %s/%s, %d CPUs, GOMAXPROCS default in every process, load average before: %s",
		time.Now().UTC().Format(time.RFC3339), runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), load)
	p("upstream: %s/alloy-runner (idle, no builds) on %s, shared by all proxies", o.binDir, strings.TrimPrefix(s.runnerURL, "http://"))
	p("proxies, each a fresh process per scenario, started the same way, measured one at a time:")
	p("  A  metrics-proxy     %s/metrics-proxy, TLS + basic auth (one user, bcrypt cost %d)", o.binDir, o.cost)
	p("  B  plain TLS proxy   httputil.ReverseProxy behind a TLS http.Server, no authentication (the limit)")
	p("  C  exporter-toolkit  web.ListenAndServe (exporter-toolkit %s), same web config, same ReverseProxy (what users run today)", toolkitVersion())
	if r, ok := rates["A"]; ok {
		p("clients: HTTP/1.1 keep-alive, Accept-Encoding: %s; negotiated with A: %s", enc, r.tls)
	}

	p("")
	p("== 1. Keep-alive authenticated scrapes: %d clients, each on its own connection, back to back; %s counted after %s warm-up", o.clients, o.rateDur, o.warmup)
	if o.rounds > 1 {
		p("   %d rounds, each measuring A, B, C in turn; figures are over all rounds", o.rounds)
	}
	p("   every answer must be 200 with ci_runner_version_info in the body, else it is an error")
	p("%-20s %9s %8s %8s %8s %7s   %s", "", "req/s", "p50 ms", "p99 ms", "max ms", "errors", "CPU us/req: proxy runner client")
	for _, t := range ts {
		r := rates[t.key]
		p("%-20s %9.1f %8.2f %8.2f %8.2f %7d   %17.0f %6.0f %6.0f",
			t.key+" "+t.name, r.rps(), ms(r.lat.pct(.5)), ms(r.lat.pct(.99)), ms(r.lat.pct(1)), r.errs.total(),
			r.perReq(r.proxyCPU), r.perReq(r.runnerCPU), r.perReq(r.clientCPU))
	}
	for _, t := range ts {
		r := rates[t.key]
		if r.errs.total() > 0 {
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

	p("")
	p("== 2. Wrong-password flood: %d connections for %s, the right user and a fresh random wrong password per request,", o.floodConns, o.floodDur)
	p("   ignoring Retry-After, reconnecting when closed; meanwhile a good client scrapes every %s (timeout %s) on its own", o.goodInterval, o.scrapeTimeout)
	p("   connection. Its credential was accepted once before the flood began (Prometheus has been scraping for a while).")
	p("   All flood traffic comes from one client address, 127.0.0.1. B has no authentication: n/a.")
	a, c := floods["A"], floods["C"]
	row := func(label string, f func(r floodResult) string) {
		p("%-44s %-24s %-24s", label, f(a), f(c))
	}
	p("%-44s %-24s %-24s", "", "A metrics-proxy", "C exporter-toolkit")
	row("good scrapes succeeded / attempted", func(r floodResult) string { return fmt.Sprintf("%d / %d", r.goodOK, r.goodAttempts) })
	row("good scrape latency p50 / p99 / max, ms", func(r floodResult) string {
		return fmt.Sprintf("%.1f / %.1f / %.1f", ms(r.goodLat.pct(.5)), ms(r.goodLat.pct(.99)), ms(r.goodLat.pct(1)))
	})
	row("good scrape failures", func(r floodResult) string { return r.goodFail.String() })
	row("good client reconnections", func(r floodResult) string { return fmt.Sprint(r.goodNewConns) })
	row("flood requests sent", func(r floodResult) string { return fmt.Sprint(r.sent) })
	row("flood answers 401 / 429 / other", func(r floodResult) string {
		other := r.status.total() - r.status["401"] - r.status["429"]
		return fmt.Sprintf("%d / %d / %d", r.status["401"], r.status["429"], other)
	})
	row("flood transport errors / cut off at end", func(r floodResult) string {
		return fmt.Sprintf("%d / %d", r.errs.total(), r.unanswered)
	})
	row("flood connections opened (TLS handshakes)", func(r floodResult) string { return fmt.Sprint(r.newConns) })
	row("bcrypt checks the flood obtained", func(r floodResult) string { return fmt.Sprintf("%.0f", r.checks) })
	row("  per minute per address, whole flood", func(r floodResult) string { return fmt.Sprintf("%.1f", perMinute(r.checks, r.dur)) })
	row("  per minute per address, second half", func(r floodResult) string {
		return fmt.Sprintf("%.1f (%.0f in %.1fs)", perMinute(r.lateChecks, r.dur-r.lateFrom), r.lateChecks, (r.dur - r.lateFrom).Seconds())
	})
	row("proxy CPU during the flood, s", func(r floodResult) string { return fmt.Sprintf("%.1f", r.proxyCPU.Seconds()) })
	row("bench (clients) CPU during the flood, s", func(r floodResult) string { return fmt.Sprintf("%.1f", r.clientCPU.Seconds()) })
	row("peak RSS (VmHWM) / VmRSS at end, MiB", func(r floodResult) string {
		return fmt.Sprintf("%.1f / %.1f", r.mem.hwmMiB(), r.mem.rssMiB())
	})
	for _, k := range []string{"A", "C"} {
		r := floods[k]
		if len(r.goodFailAt) > 0 {
			p("   %s first good-scrape failures: %s", k, strings.Join(r.goodFailAt, "; "))
		}
		if k == "A" {
			p("   A bcrypt checks: %s; the good client's own during the flood: %.0f", r.checksHow, r.goodChecks)
			p("   A flood checks over time (s:cumulative): %s", strings.Join(r.timeline, " "))
			p("   A metrics_proxy_auth_attempts_total during the flood: %s", attemptsString(r.attempts))
		} else {
			p("   C bcrypt checks: %s", r.checksHow)
			if r.checks < 100 {
				p("   C note: the toolkit caches every failure in one 100-entry cache and evicts at random only once it is full; %.0f failures", r.checks)
				p("     did not fill it, so the good client's cached credential could not have been evicted in this flood")
			}
		}
	}

	p("")
	p("== 3. Peak resident memory of each proxy process, MiB: VmHWM (VmRSS at the end)")
	p("%-20s %-18s %-18s", "", "scrape-rate test", "flood")
	for _, t := range ts {
		fl := "n/a"
		if r, ok := floods[t.key]; ok {
			fl = fmt.Sprintf("%.1f (%.1f)", r.mem.hwmMiB(), r.mem.rssMiB())
		}
		r := rates[t.key]
		p("%-20s %-18s %-18s", t.key+" "+t.name, fmt.Sprintf("%.1f (%.1f)", r.mem.hwmMiB(), r.mem.rssMiB()), fl)
	}

	p("")
	p("== Ratios and DESIGN targets (figures only; the bench never passes or fails on time)")
	ra, rb, rc := rates["A"].rps(), rates["B"].rps(), rates["C"].rps()
	p("  keep-alive rate  metrics-proxy / plain TLS proxy  = %s (target >= 0.95x)", ratio(ra, rb, 0.95))
	p("  keep-alive rate  metrics-proxy / exporter-toolkit = %s (target >= 1.40x)", ratio(ra, rc, 1.4))
	pa, pb, pc := rates["A"].perReq(rates["A"].proxyCPU), rates["B"].perReq(rates["B"].proxyCPU), rates["C"].perReq(rates["C"].proxyCPU)
	if pa > 0 && pb > 0 && pc > 0 {
		p("  proxy CPU per scrape (not a target): metrics-proxy / plain TLS proxy = %.2fx, metrics-proxy / exporter-toolkit = %.2fx", pa/pb, pa/pc)
	}
	p("  flood, good scrapes: metrics-proxy %d/%d, p99 %.1f ms %s (target: every scrape, p99 < 50 ms); exporter-toolkit %d/%d, p99 %.1f ms",
		a.goodOK, a.goodAttempts, ms(a.goodLat.pct(.99)),
		mark(a.goodAttempts > 0 && a.goodOK == a.goodAttempts && a.goodLat.pct(.99) < 50*time.Millisecond),
		c.goodOK, c.goodAttempts, ms(c.goodLat.pct(.99)))
	lateA := perMinute(a.lateChecks, a.dur-a.lateFrom)
	p("  flood, bcrypt checks per minute per address after the first burst (second half): metrics-proxy %.1f %s (target <= 10); exporter-toolkit %.1f",
		lateA, mark(lateA <= 10), perMinute(c.lateChecks, c.dur-c.lateFrom))
	p("  flood, metrics-proxy peak RSS %.1f MiB %s (target < 64 MiB); exporter-toolkit %.1f MiB",
		a.mem.hwmMiB(), mark(a.mem.hwmMiB() < 64), c.mem.hwmMiB())
	p("  runner /metrics render with 100 builds: BenchmarkRender100Builds below (target p99 < 5 ms)")
	p("")
	p("proxy bench took %s", took.Round(time.Second))
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
