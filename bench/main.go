// Command bench measures metrics-proxy against two baselines, side by side on
// one machine, and prints figures and ratios next to the targets in docs/DESIGN.md.
// It never passes or fails on time.
//
// Three proxies, each a fresh process started the same way (default
// GOMAXPROCS), are measured one at a time:
//
//	A  bin/metrics-proxy: TLS and basic auth (bcrypt cost 12)
//	B  "the limit": httputil.ReverseProxy behind a TLS http.Server, no authentication
//	C  "what users run today": exporter-toolkit's web.ListenAndServe with the
//	   same web config around the same ReverseProxy
//
// Their upstream in the scrape-rate test is, in turn, a static server of a
// page captured from the real runner (so the figures are the proxy layer's)
// and the real alloy-runner; in the flood and the attacks (idle HTTP/2
// connections, zero-window, handshake flood, an authenticated hog, wrong
// passwords over HTTP/2; A and C only; and wrong bearer tokens over HTTP/2,
// A only, since C has no tokens) it is the real runner.
//
// B, C, the static upstream, the flood's and the attacks' clients are this
// program re-executed with -mode=plain-proxy, -mode=toolkit-proxy,
// -mode=static-upstream, -mode=flood or -mode=attack. Run it from
// the repository root after `make build`; `make bench` does both. See
// bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Upstreams of the scrape-rate test (-upstream).
const (
	upstreamStatic = "static" // the captured runner page, served from memory by a re-executed bench
	upstreamRunner = "runner" // the real alloy-runner
)

// options are the bench's flags; the defaults are the full measurement.
type options struct {
	binDir        string
	clients       int
	warmup        time.Duration
	rateDur       time.Duration
	rounds        int
	upstreams     []string
	proxyArgs     []string // extra flags for metrics-proxy (A)
	rate, flood   bool     // the scenarios to run (-scenarios)
	floodConns    int
	floodDur      time.Duration
	goodInterval  time.Duration
	scrapeTimeout time.Duration
	goodFrom      net.IP
	newcomerAt    time.Duration
	newcomerNote  string // set when -flood.newcomer-at had to be moved
	gzip          bool
	cost          int
	keep          bool

	// The attack scenarios (attack.go), in the order they run.
	attacks       []string
	attackDur     time.Duration
	idleConns     int
	idleSources   int
	zwConns       int
	zwStreams     int
	zwHeaderBytes int
	hsLoops       int
	hogConns      int
	hogStreams    int
	h2Conns       int
	h2Streams     int
	h2Client      string // h2load or go
	newcomerFrom  net.IP
}

func main() {
	if isChild(os.Args[1:]) {
		os.Exit(runChild(os.Args[1:]))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	var upstreams, goodFrom, newcomerFrom, scenarios, proxyArgs string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.binDir, "bin", "bin", "directory holding alloy-runner and metrics-proxy (make build)")
	fs.StringVar(&scenarios, "scenarios", "rate,flood,attacks", "scenarios to run, comma-separated: rate (1), flood (2, 2b), and the attacks "+
		strings.Join(attackNames, ", ")+" (or attacks for all of them)")
	fs.IntVar(&o.clients, "rate.clients", 8, "keep-alive clients in the scrape-rate test, each with its own connection")
	fs.DurationVar(&o.warmup, "rate.warmup", time.Second, "warm-up before the scrape-rate window (not counted)")
	fs.DurationVar(&o.rateDur, "rate.duration", 5*time.Second, "counted scrape-rate window per proxy and round")
	fs.IntVar(&o.rounds, "rate.rounds", 2, "rounds of the scrape-rate test; each round measures A, B, C in turn (more rounds average out other load on the machine)")
	fs.StringVar(&upstreams, "upstream", upstreamStatic+","+upstreamRunner,
		"upstreams of the scrape-rate test, measured in this order, comma-separated: "+upstreamStatic+
			" (a page captured from the runner, served from memory: the proxy layer's cost) and "+upstreamRunner+" (the real alloy-runner)")
	fs.IntVar(&o.floodConns, "flood.conns", 64, "connections sending wrong passwords in the flood")
	fs.DurationVar(&o.floodDur, "flood.duration", 20*time.Second, "length of the wrong-password flood per proxy")
	fs.DurationVar(&o.goodInterval, "flood.interval", 500*time.Millisecond, "the good clients' scrape interval during the flood")
	fs.DurationVar(&o.scrapeTimeout, "flood.scrape-timeout", 10*time.Second, "the good clients' scrape timeout (Prometheus's default is 10s)")
	fs.StringVar(&goodFrom, "flood.good-from", "127.0.0.2", "loopback source address of the good clients in the flood (the flood comes from 127.0.0.1)")
	fs.DurationVar(&o.newcomerAt, "flood.newcomer-at", 5*time.Second, "when, into the flood, the new scraper (2b) starts; a quarter of the flood if that is not before its end")
	fs.StringVar(&proxyArgs, "proxy.args", "", "extra flags for metrics-proxy (A), space-separated, e.g. --web.bcrypt-workers=1 (for experiments; the report shows them)")
	fs.DurationVar(&o.attackDur, "attack.duration", 20*time.Second, "length of each attack's flood, per proxy")
	fs.IntVar(&o.idleConns, "attack.idle-conns", 1100, "idle HTTP/2 connections in idle-h2-one and idle-h2-many")
	fs.IntVar(&o.idleSources, "attack.idle-sources", 200, "source addresses of idle-h2-many's connections: 127.0.1.1 to 127.0.1.N")
	fs.IntVar(&o.zwConns, "attack.zero-window-conns", 1024, "zero-window connections")
	fs.IntVar(&o.zwStreams, "attack.zero-window-streams", 8, "requests each zero-window connection sends")
	fs.IntVar(&o.zwHeaderBytes, "attack.zero-window-header-bytes", 7168, "extra header bytes in each zero-window request")
	fs.IntVar(&o.hsLoops, "attack.handshake-loops", 32, "concurrent handshake loops in handshake-flood")
	fs.IntVar(&o.hogConns, "attack.hog-conns", 4, "auth-hog's HTTP/2 connections")
	fs.IntVar(&o.hogStreams, "attack.hog-streams", 8, "auth-hog's requests in flight per connection")
	fs.IntVar(&o.h2Conns, "attack.h2-conns", 200, "wrong-password-h2's and wrong-token-h2's HTTP/2 connections (h2load -c)")
	fs.IntVar(&o.h2Streams, "attack.h2-streams", 8, "wrong-password-h2's and wrong-token-h2's requests in flight per connection (h2load -m)")
	fs.StringVar(&o.h2Client, "attack.h2-client", "h2load", "wrong-password-h2's and wrong-token-h2's client: h2load (installed with apt-get if missing and root; the Go client otherwise) or go")
	fs.StringVar(&newcomerFrom, "attack.newcomer-from", "127.0.0.3", "loopback source address of idle-h2-many's never-seen client")
	fs.BoolVar(&o.gzip, "gzip", true, "scrape with Accept-Encoding: gzip, as Prometheus does")
	fs.IntVar(&o.cost, "bcrypt.cost", 12, "bcrypt cost of the users' hashes")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (certificates, configs, captured page, process logs)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	picked := map[string]bool{}
	for _, sc := range strings.Split(scenarios, ",") {
		switch sc = strings.TrimSpace(sc); {
		case sc == "rate":
			o.rate = true
		case sc == "flood":
			o.flood = true
		case sc == "attacks":
			for _, a := range attackNames {
				picked[a] = true
			}
		case slices.Contains(attackNames, sc):
			picked[sc] = true
		default:
			return o, fmt.Errorf("-scenarios %q: each must be rate, flood, attacks or one of %s", scenarios, strings.Join(attackNames, ", "))
		}
	}
	for _, a := range attackNames {
		if picked[a] {
			o.attacks = append(o.attacks, a)
		}
	}
	for _, u := range strings.Split(upstreams, ",") {
		u = strings.TrimSpace(u)
		if u != upstreamStatic && u != upstreamRunner {
			return o, fmt.Errorf("-upstream %q: each must be %s or %s", upstreams, upstreamStatic, upstreamRunner)
		}
		if !slices.Contains(o.upstreams, u) {
			o.upstreams = append(o.upstreams, u)
		}
	}
	o.proxyArgs = strings.Fields(proxyArgs)
	o.goodFrom = net.ParseIP(goodFrom).To4()
	o.newcomerFrom = net.ParseIP(newcomerFrom).To4()
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
	case o.goodFrom == nil || !o.goodFrom.IsLoopback() || o.goodFrom.Equal(net.IPv4(127, 0, 0, 1)):
		return o, fmt.Errorf("-flood.good-from %q must be an IPv4 loopback address other than 127.0.0.1 (the flood's)", goodFrom)
	case o.newcomerAt < 0:
		return o, errors.New("-flood.newcomer-at must not be negative")
	case o.attackDur < time.Second || o.attackDur > 10*time.Minute:
		return o, errors.New("-attack.duration must be 1s to 10m")
	case o.idleConns < 1 || o.idleConns > 5000 || o.zwConns < 1 || o.zwConns > 5000:
		return o, errors.New("-attack.idle-conns and -attack.zero-window-conns must be 1 to 5000")
	case o.idleSources < 1 || o.idleSources > 254:
		return o, errors.New("-attack.idle-sources must be 1 to 254")
	case o.zwStreams < 1 || o.zwStreams > 100 || o.hogStreams < 1 || o.hogStreams > 100 || o.h2Streams < 1 || o.h2Streams > 100:
		return o, errors.New("-attack.*-streams must be 1 to 100")
	case o.zwHeaderBytes < 0 || o.zwHeaderBytes > 64<<10:
		return o, errors.New("-attack.zero-window-header-bytes must be 0 to 65536")
	case o.hsLoops < 1 || o.hsLoops > 1000 || o.hogConns < 1 || o.hogConns > 1000 || o.h2Conns < 1 || o.h2Conns > 5000:
		return o, errors.New("-attack.handshake-loops and -attack.hog-conns must be 1 to 1000, -attack.h2-conns 1 to 5000")
	case o.h2Client != "h2load" && o.h2Client != "go":
		return o, fmt.Errorf("-attack.h2-client %q must be h2load or go", o.h2Client)
	case o.newcomerFrom == nil || !o.newcomerFrom.IsLoopback() || o.newcomerFrom.Equal(o.goodFrom) ||
		o.newcomerFrom.Equal(net.IPv4(127, 0, 0, 1)) || (o.newcomerFrom[2] == 1 && int(o.newcomerFrom[3]) <= o.idleSources):
		return o, fmt.Errorf("-attack.newcomer-from %q must be an IPv4 loopback address used by no other client", newcomerFrom)
	case o.cost < 10 || o.cost > 16:
		return o, errors.New("-bcrypt.cost must be 10 to 16")
	}
	if o.newcomerAt >= o.floodDur {
		o.newcomerNote = fmt.Sprintf("-flood.newcomer-at %s is not before the end of the %s flood: moved to %s", o.newcomerAt, o.floodDur, o.floodDur/4)
		o.newcomerAt = o.floodDur / 4
	}
	return o, nil
}

// setup is what every scenario shares: credentials, TLS files, the web
// config, the runner and the page captured from it.
type setup struct {
	dir              string
	tls              tlsFiles
	user, password   string // the primed good client's, and the scrape-rate clients'
	user2, password2 string // the new scraper's (2b): never used before it arrives
	wrongPassword    string // wrong-password-h2's, the same for every request
	token            string // wrong-token-h2's good client's bearer token, configured in routesFile
	wrongToken       string // wrong-token-h2's flood's, well formed, matching no configured token
	routesFile       string // wrong-token-h2's routes file for A: /metrics from the runner, and the token
	h2load           string // h2load's path, if wrong-password-h2 or wrong-token-h2 uses it
	h2loadNote       string // why it does not, if it does not
	webConfig        string
	runner           *proc
	runnerURL        string
	page             capturedPage
	proxyVersion     string   // first line of metrics-proxy --version
	uncommitted      []string // product source files that differ from git HEAD, if any
	self             string   // this program, re-executed for the baselines and the static upstream
}

// target is one proxy under test.
type target struct {
	key, name string
	auth      bool // has basic auth (takes part in the flood)
	// start starts the proxy in front of upstreamURL, or with routesFile
	// (A only, which then reads its upstream from that file) if not empty.
	start func(s *setup, upstreamURL, routesFile, addr, logPath string) (*proc, error)
}

func targets(o options) []target {
	proxyBin := filepath.Join(o.binDir, "metrics-proxy")
	return []target{
		{key: "A", name: "metrics-proxy", auth: true, start: func(s *setup, up, routes, addr, logPath string) (*proc, error) {
			args := []string{"--web.listen-address=" + addr, "--web.config.file=" + s.webConfig, "--upstream.url=" + up}
			if routes != "" {
				args[2] = "--web.routes.file=" + routes
			}
			return startProc("metrics-proxy", logPath, proxyBin, append(args, o.proxyArgs...)...)
		}},
		{key: "B", name: "plain TLS proxy", start: func(s *setup, up, _, addr, logPath string) (*proc, error) {
			return startProc("plain TLS proxy", logPath, s.self, "-mode="+modePlainProxy,
				"-listen="+addr, "-upstream="+up, "-cert="+s.tls.certFile, "-key="+s.tls.keyFile)
		}},
		{key: "C", name: "exporter-toolkit", auth: true, start: func(s *setup, up, _, addr, logPath string) (*proc, error) {
			return startProc("exporter-toolkit proxy", logPath, s.self, "-mode="+modeToolkitProxy,
				"-listen="+addr, "-upstream="+up, "-web.config="+s.webConfig)
		}},
	}
}

// upstream is what the proxies forward to in one scrape-rate test.
type upstream struct {
	name, url string
	pid       int
	stop      func()
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
	if o.newcomerNote != "" {
		progress(stderr, "%s", o.newcomerNote)
	}

	ts := targets(o)
	rates := map[string]map[string]rateResult{} // by upstream, then target key
	floods := map[string]floodResult{}
	fail := func(what string, err error) int {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "bench: interrupted; every process it started is stopped")
			return 1
		}
		fmt.Fprintf(stderr, "bench: %s: %v\n", what, err)
		return 1
	}

	// Every process started below is stopped on the way out.
	procs := map[string]*proc{}
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()

	// 1. Scrape rate, for each upstream in turn: a fresh process of each
	// proxy, all started first and measured one at a time, round after round
	// (the others stay idle).
	for _, upName := range o.upstreams {
		if !o.rate {
			break
		}
		up, err := startUpstream(ctx, s, upName)
		if err != nil {
			return fail("upstream "+upName, err)
		}
		bases := map[string]string{}
		for _, t := range ts {
			p, base, err := startTarget(ctx, s, t, up.url, "", "rate-"+upName)
			if err != nil {
				up.stop()
				return fail(t.key+" "+t.name, err)
			}
			procs[t.key], bases[t.key] = p, base
		}
		rs := map[string]rateResult{}
		for round := 1; round <= o.rounds; round++ {
			for _, t := range ts {
				progress(stderr, "upstream %s, round %d/%d, %s %s: keep-alive scrapes, %d clients, %s warm-up + %s",
					upName, round, o.rounds, t.key, t.name, o.clients, o.warmup, o.rateDur)
				r := measureRate(ctx, o, s, bases[t.key]+"/metrics", procs[t.key].pid(), up.pid)
				if err := alive(ctx, procs[t.key], "scrape-rate"); err != nil {
					up.stop()
					return fail(t.key+" "+t.name, err)
				}
				agg := rs[t.key]
				agg.add(r)
				rs[t.key] = agg
			}
		}
		for _, t := range ts {
			r := rs[t.key]
			r.mem, _ = readMemory(procs[t.key].pid())
			rs[t.key] = r
			procs[t.key].stop()
			delete(procs, t.key)
		}
		up.stop()
		rates[upName] = rs
	}

	// 2. The flood, on a fresh process of each proxy with authentication,
	// in front of the real runner.
	for _, t := range ts {
		if !t.auth || !o.flood {
			continue
		}
		progress(stderr, "%s %s: wrong-password flood, %d connections, %s; new scraper at %s", t.key, t.name, o.floodConns, o.floodDur, o.newcomerAt)
		p, base, err := startTarget(ctx, s, t, s.runnerURL, "", "flood")
		if err != nil {
			return fail(t.key+" "+t.name, err)
		}
		procs[t.key] = p
		r, err := measureFlood(ctx, o, s, t.key, base, p.pid(), t.key == "A")
		if err == nil {
			err = alive(ctx, p, "flood")
		}
		if err != nil {
			return fail(t.key+" "+t.name, err)
		}
		floods[t.key] = r
		p.stop()
		delete(procs, t.key)
	}

	// The attacks, each on a fresh process of A and of C in front of the
	// real runner.
	attacks := map[string]map[string]attackResult{}
	defs := attackDefs()
	if slices.ContainsFunc(o.attacks, func(name string) bool { return defs[name].h2Flood() }) {
		if o.h2Client == "h2load" {
			s.h2load, s.h2loadNote = findH2load(ctx, stderr)
		} else {
			s.h2loadNote = "-attack.h2-client go"
		}
		if s.h2loadNote != "" {
			progress(stderr, "wrong-password-h2, wrong-token-h2: %s", s.h2loadNote)
		}
	}
	var tokensFailed string // why wrong-token-h2 cannot run, if so
	if slices.Contains(o.attacks, scWrongTok) {
		if err := prepareTokens(s, o); err != nil {
			tokensFailed = err.Error()
			progress(stderr, "%s: %s", scWrongTok, tokensFailed)
		}
	}
	for _, name := range o.attacks {
		attacks[name] = map[string]attackResult{}
		def := defs[name]
		for _, t := range ts {
			// exporter-toolkit has no bearer tokens: no C in a token scenario.
			if !t.auth || def.token && t.key != "A" {
				continue
			}
			if def.token && tokensFailed != "" {
				attacks[name][t.key] = attackResult{def: def, failed: tokensFailed}
				continue
			}
			routes := ""
			if def.token {
				routes = s.routesFile
			}
			progress(stderr, "%s %s: attack %s, %s", t.key, t.name, name, o.attackDur)
			p, base, err := startTarget(ctx, s, t, s.runnerURL, routes, name)
			if err != nil {
				return fail(t.key+" "+t.name, err)
			}
			procs[t.key] = p
			// A scenario that cannot be measured (the good client never got
			// in before the flood, the proxy died) is reported, and the
			// next one runs.
			r, err := measureAttack(ctx, o, s, def, t.key, base, p.pid(), t.key == "A")
			if ctx.Err() != nil {
				return fail(t.key+" "+t.name+", "+name, ctx.Err())
			}
			if err != nil {
				r.failed = err.Error()
				progress(stderr, "%s %s, %s: %v", t.key, t.name, name, err)
			}
			if err := alive(ctx, p, name); err != nil {
				r.failed = strings.TrimPrefix(r.failed+"; "+err.Error(), "; ")
				progress(stderr, "%s %s, %s: %v", t.key, t.name, name, err)
			}
			attacks[name][t.key] = r
			p.stop()
			delete(procs, t.key)
		}
	}

	report(stdout, o, s, ts, rates, floods, attacks, load, time.Since(began))
	return 0
}

func progress(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "bench %s: "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// prepare makes the temporary directory, certificates, credentials and web
// config, starts the runner and captures its page. cleanup stops the runner
// and removes the directory.
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
	s := &setup{dir: dir, self: self,
		user: "prometheus", password: randomPassword(16),
		user2: "prometheus-new", password2: randomPassword(16), wrongPassword: randomPassword(12)}
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
	proxyBin := filepath.Join(o.binDir, "metrics-proxy")
	if out, err := exec.Command(proxyBin, "--version").CombinedOutput(); err == nil {
		s.proxyVersion, _, _ = strings.Cut(strings.TrimSpace(string(out)), "\n")
	}
	s.uncommitted = uncommittedSources()
	hash, err := hashPassword(proxyBin, s.password, o.cost)
	if err != nil {
		return s, cleanup, err
	}
	hash2, err := hashPassword(proxyBin, s.password2, o.cost)
	if err != nil {
		return s, cleanup, err
	}
	s.webConfig = filepath.Join(dir, "web-config.yml")
	if err := writeWebConfig(s.webConfig, s.tls, s.user, hash, s.user2, hash2); err != nil {
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
	if s.page, err = capturePage(ctx, s.runnerURL, filepath.Join(dir, "runner-metrics.txt")); err != nil {
		return s, cleanup, err
	}
	return s, cleanup, nil
}

// uncommittedSources lists the non-test Go files outside bench/ that differ
// from git HEAD (or are new): what `make build` compiled that no commit
// holds. Without git it returns nothing.
func uncommittedSources() []string {
	out, err := exec.Command("git", "status", "--porcelain", "--untracked-files=all").Output()
	if err != nil {
		return nil
	}
	var files []string
	for _, line := range strings.Split(string(out), "\n") {
		if len(line) < 4 {
			continue
		}
		f := line[3:]
		if _, to, ok := strings.Cut(f, " -> "); ok {
			f = to
		}
		if strings.HasSuffix(f, ".go") && !strings.HasSuffix(f, "_test.go") && !strings.HasPrefix(f, "bench/") {
			files = append(files, f)
		}
	}
	return files
}

// startUpstream returns the named upstream of the scrape-rate test: the
// shared runner, or a fresh static server of the captured page, checked to
// serve it (gzip-compressed on request) before it is used.
func startUpstream(ctx context.Context, s *setup, name string) (upstream, error) {
	if name == upstreamRunner {
		return upstream{name: name, url: s.runnerURL, pid: s.runner.pid(), stop: func() {}}, nil
	}
	addr, err := freeAddr()
	if err != nil {
		return upstream{}, err
	}
	p, err := startProc("static upstream", filepath.Join(s.dir, "static-upstream.log"), s.self,
		"-mode="+modeStaticUpstream, "-listen="+addr, "-page="+s.page.path)
	if err != nil {
		return upstream{}, err
	}
	if err := waitListening(ctx, p, addr, 15*time.Second); err != nil {
		p.stop()
		return upstream{}, err
	}
	want, err := os.ReadFile(s.page.path)
	if err == nil {
		err = checkStatic(ctx, "http://"+addr+"/metrics", want, s.page.contentType)
	}
	if err != nil {
		p.stop()
		return upstream{}, fmt.Errorf("the static upstream does not serve the captured page: %w; its log:\n%s", err, p.logTail())
	}
	return upstream{name: name, url: "http://" + addr, pid: p.pid(), stop: p.stop}, nil
}

// checkStatic GETs url with Accept-Encoding: gzip and checks that the answer
// is gzip-compressed and is the captured page with its Content-Type.
func checkStatic(ctx context.Context, url string, want []byte, contentType string) error {
	cl := &http.Client{Transport: &http.Transport{Proxy: nil}} // asks for gzip and decompresses
	defer cl.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := cl.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	switch {
	case err != nil:
		return err
	case resp.StatusCode != http.StatusOK || !resp.Uncompressed:
		return fmt.Errorf("status %d, gzip-compressed %v", resp.StatusCode, resp.Uncompressed)
	case resp.Header.Get("Content-Type") != contentType:
		return fmt.Errorf("Content-Type %q, the runner's is %q", resp.Header.Get("Content-Type"), contentType)
	case string(got) != string(want):
		return fmt.Errorf("%d bytes that differ from the %d captured", len(got), len(want))
	}
	return nil
}

// startTarget starts a fresh process of t in front of upstreamURL (or, for
// A, with routesFile if not empty) on a free port and waits until it
// listens; it returns the process and https://addr.
func startTarget(ctx context.Context, s *setup, t target, upstreamURL, routesFile, scenario string) (*proc, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	p, err := t.start(s, upstreamURL, routesFile, addr, filepath.Join(s.dir, fmt.Sprintf("%s-%s.log", t.key, scenario)))
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
