package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The attack scenarios (bench/README.md, "Attacks"): each runs against A and
// C, a fresh process of each, in front of the real runner, for
// o.attackDur, while a good client scrapes from another address.
const (
	scIdleOne    = "idle-h2-one"
	scIdleMany   = "idle-h2-many"
	scZeroWindow = "zero-window"
	scHandshake  = "handshake-flood"
	scAuthHog    = "auth-hog"
	scWrongH2    = "wrong-password-h2"
	scWrongTok   = "wrong-token-h2"
)

// attackNames are the attack scenarios in the order they run.
var attackNames = []string{scIdleOne, scIdleMany, scZeroWindow, scHandshake, scAuthHog, scWrongH2, scWrongTok}

// attackDef says how the good client behaves in one attack scenario, and
// which DESIGN targets apply.
type attackDef struct {
	name     string
	h2       bool // the good client speaks HTTP/2 (else HTTP/1.1)
	newConn  bool // a new TCP connection per good scrape (else one keep-alive connection, opened before the flood)
	newcomer bool // a never-seen client starts during the flood
	noBcrypt bool // the flood needs no bcrypt: the CPU target applies
	// token: the flood sends a wrong bearer token, and A reads a routes file
	// with one real token, which the good client scrapes with. C
	// (exporter-toolkit) has no bearer tokens, so it does not run.
	token bool
}

// h2Flood reports whether the scenario's flood is wrong credentials over
// HTTP/2 as fast as they are answered, sent by h2load when there is one.
func (d attackDef) h2Flood() bool { return d.name == scWrongH2 || d.name == scWrongTok }

func attackDefs() map[string]attackDef {
	return map[string]attackDef{
		scIdleOne:    {name: scIdleOne, h2: true, newConn: true, noBcrypt: true},
		scIdleMany:   {name: scIdleMany, h2: true, newConn: true, newcomer: true, noBcrypt: true},
		scZeroWindow: {name: scZeroWindow, h2: true, noBcrypt: true},
		scHandshake:  {name: scHandshake, newConn: true, noBcrypt: true},
		scAuthHog:    {name: scAuthHog},
		scWrongH2:    {name: scWrongH2, h2: true, noBcrypt: true},
		scWrongTok:   {name: scWrongTok, h2: true, noBcrypt: true, token: true},
	}
}

// describe is one line on what the attack does, for the report.
func (d attackDef) describe(o options) string {
	switch d.name {
	case scIdleOne:
		return fmt.Sprintf("%d TLS connections from 127.0.0.1 that negotiate h2, send the client preface and a SETTINGS frame, then nothing; reopened when closed", o.idleConns)
	case scIdleMany:
		return fmt.Sprintf("the same %d idle h2 connections spread over %d source addresses, 127.0.1.1 to 127.0.1.%d", o.idleConns, o.idleSources, o.idleSources)
	case scZeroWindow:
		return fmt.Sprintf("%d TLS h2 connections from 127.0.0.1 with SETTINGS_INITIAL_WINDOW_SIZE=0, no WINDOW_UPDATE, each sending %d GET /metrics with %d bytes of extra headers and no credentials, reading nothing; reopened when closed",
			o.zwConns, o.zwStreams, o.zwHeaderBytes)
	case scHandshake:
		return fmt.Sprintf("%d loops from 127.0.0.1 doing full TLS handshakes (no resumption) and closing, back to back", o.hsLoops)
	case scAuthHog:
		return fmt.Sprintf("an authenticated client (right password) from 127.0.0.1 keeping %d requests in flight: HTTP/2, %d connections x %d streams, GET /metrics back to back",
			o.hogConns*o.hogStreams, o.hogConns, o.hogStreams)
	case scWrongH2:
		return fmt.Sprintf("the same wrong password as fast as possible over HTTP/2 from 127.0.0.1: %d connections x %d streams", o.h2Conns, o.h2Streams)
	case scWrongTok:
		return fmt.Sprintf("the same wrong, well-formed bearer token (%s + 43 base64url characters, matching no configured token) as fast as possible over HTTP/2 from 127.0.0.1: %d connections x %d streams",
			tokenPrefix, o.h2Conns, o.h2Streams)
	}
	return d.name
}

// attackResult is one attack scenario against one proxy.
type attackResult struct {
	def       attackDef
	dur       time.Duration // the flood's wall time, as measured here
	good      scrapeStats   // the primed good client
	newcomer  scrapeStats   // idle-h2-many: a client from an address the proxy has never seen
	goodProto string        // what the good client negotiated before the flood

	peakRSSKiB int64  // the most VmRSS seen, sampled every rssEvery
	mem        memory // VmHWM and VmRSS at the end of the flood
	proxyCPU   time.Duration

	flood     attackCounts
	floodHow  string   // the flood's client: this program (-mode=attack) or h2load
	floodNote string   // e.g. why h2load was not used
	h2load    []string // h2load's summary lines

	// metrics-proxy only: deltas of its /proxy/metrics series over the flood
	// (by series), and the watched families it does not export.
	counters       map[string]float64
	absent         []string
	countersFailed string

	failed string // why the scenario could not be measured (or the proxy died), if so
}

const rssEvery = 100 * time.Millisecond

// watchedFamilies are metrics-proxy's series whose deltas the attack report
// shows; the product is changing, so any may be absent.
var watchedFamilies = []string{
	"metrics_proxy_connections_rejected_total",
	"metrics_proxy_connections_evicted_total",
	"metrics_proxy_requests_total",
	attemptsMetric,
	bcryptChecksMetric,
	"metrics_proxy_tls_handshake_errors_total",
}

// readWatched GETs /proxy/metrics with the good client's credentials, from
// its address, on a connection of its own, and returns the watched series.
func readWatched(ctx context.Context, o options, s *setup, base string) (map[string]float64, error) {
	c := newClientProto(s.tls.pool, o.gzip, o.goodFrom, false)
	defer closeIdle(c)
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return selfMetrics(rctx, c, base, s, func(name string) bool { return slices.Contains(watchedFamilies, name) })
}

// attackLimit bounds the wait for an attack process after its flood.
const attackLimit = 30 * time.Second

// measureAttack runs one attack scenario against the proxy at base (process
// proxyPID) while the good client scrapes; key names the proxy in file names.
// withCounters reads metrics-proxy's own series before and after.
func measureAttack(ctx context.Context, o options, s *setup, def attackDef, key, base string, proxyPID int, withCounters bool) (attackResult, error) {
	url := base + "/metrics"
	addr := strings.TrimPrefix(base, "https://")
	r := attackResult{def: def,
		good:     scrapeStats{fail: counts{}, firstOK: -1, firstOKIdx: -1},
		newcomer: scrapeStats{fail: counts{}, firstOK: -1, firstOKIdx: -1}}
	scrapeHdr := http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {strconv.FormatFloat(o.scrapeTimeout.Seconds(), 'f', -1, 64)}}
	// The good client's credential: the password, or in a token scenario the
	// real token (as a Prometheus with credentials_file sends it).
	user, pass := s.user, s.password
	if def.token {
		user, pass = "", ""
		scrapeHdr.Set("Authorization", "Bearer "+s.token)
	}

	// The good client has scraped (authenticated) before the flood, from its
	// address; with keep-alive, that connection is the one it keeps using.
	good := newClientProto(s.tls.pool, o.gzip, o.goodFrom, def.h2)
	defer closeIdle(good)
	var primed bool
	for i := 0; i < 3 && !primed; i++ {
		sctx, cancel := context.WithTimeout(ctx, o.scrapeTimeout)
		a := get(sctx, good, url, user, pass, true, scrapeHdr)
		cancel()
		if primed, _ = goodScrape(a); primed {
			r.goodProto = a.proto
			if a.tls != nil {
				r.goodProto += ", " + tls.VersionName(a.tls.Version)
			}
		}
	}
	if !primed {
		return r, fmt.Errorf("the good client's scrape before the flood failed three times")
	}
	if def.newConn {
		closeIdle(good)
	}

	var before map[string]float64
	if withCounters {
		var err error
		if before, err = readWatched(ctx, o, s, base); err != nil {
			r.countersFailed = "before the flood: " + err.Error()
		}
	}

	// The flood's clients start at an agreed instant.
	start := time.Now().Add(500 * time.Millisecond)
	out := filepath.Join(s.dir, key+"-"+def.name+"-results.json")
	logPath := filepath.Join(s.dir, key+"-"+def.name+"-clients.log")
	var fp *proc
	var err error
	useH2load := def.h2Flood() && s.h2load != ""
	if useH2load {
		r.floodHow = "h2load"
		sleepCtx(ctx, time.Until(start))
		fp, err = startH2load(s, o, def, logPath, url)
	} else {
		r.floodHow = "bench -mode=" + modeAttack
		if def.h2Flood() {
			r.floodHow += " (Go h2 client)"
			r.floodNote = s.h2loadNote
		}
		fp, err = startAttack(s, o, def, logPath, addr, out, start)
	}
	if err != nil {
		return r, err
	}
	defer fp.stop()
	sleepCtx(ctx, time.Until(start))
	cpu0, _ := readCPU(proxyPID)
	t0 := time.Now()
	since := func() time.Duration { return time.Since(start) }
	fctx, stop := context.WithDeadline(ctx, start.Add(o.attackDur))
	defer stop()
	var wg sync.WaitGroup

	// The proxy's resident memory, every rssEvery.
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(rssEvery)
		defer tick.Stop()
		for {
			if m, err := readMemory(proxyPID); err == nil {
				r.peakRSSKiB = max(r.peakRSSKiB, m.rssKiB)
			}
			select {
			case <-fctx.Done():
				return
			case <-tick.C:
			}
		}
	}()

	// scrapeLoop scrapes every interval from `from` until the flood ends,
	// missed ticks dropped; first is the delay before the first attempt.
	scrapeLoop := func(st *scrapeStats, from net.IP, first time.Duration) {
		defer wg.Done()
		if !sleepCtx(fctx, first) {
			return
		}
		st.began = since()
		c := good
		if from != nil && !from.Equal(o.goodFrom) {
			c = newClientProto(s.tls.pool, o.gzip, from, def.h2)
			defer closeIdle(c)
		}
		tick := time.NewTicker(o.goodInterval)
		defer tick.Stop()
		for {
			if def.newConn {
				c = newClientProto(s.tls.pool, o.gzip, from, def.h2)
			}
			at := since()
			if st.scrape(ctx, c, url, user, pass, scrapeHdr, o.scrapeTimeout, at, true) && st.firstOK < 0 {
				st.firstOK = since() - st.began
			}
			if def.newConn {
				closeIdle(c)
			}
			select {
			case <-fctx.Done():
				return
			case <-tick.C:
			}
		}
	}
	wg.Add(1)
	go scrapeLoop(&r.good, o.goodFrom, o.goodInterval)
	if def.newcomer {
		wg.Add(1)
		go scrapeLoop(&r.newcomer, o.newcomerFrom, o.attackDur/4)
	}

	<-fctx.Done()
	cpu1, _ := readCPU(proxyPID)
	r.dur = time.Since(t0)
	r.proxyCPU = cpu1 - cpu0
	r.mem, _ = readMemory(proxyPID)
	wg.Wait()
	if ctx.Err() != nil {
		return r, ctx.Err()
	}

	if useH2load {
		select {
		case <-fp.exited:
		case <-time.After(attackLimit):
			fp.stop()
			r.floodNote = fmt.Sprintf("h2load had not finished %s after the flood: stopped", attackLimit)
		}
		r.flood, r.h2load = parseH2load(readLog(fp))
		if ps := fp.cmd.ProcessState; ps != nil {
			r.flood.CPU = ps.UserTime() + ps.SystemTime()
			if !ps.Success() && r.floodNote == "" {
				r.floodNote = "h2load exited with " + ps.String()
			}
		}
		r.flood.Conns = o.h2Conns
	} else {
		fc, err := readAttack(ctx, fp, out, attackLimit)
		if err != nil {
			return r, err
		}
		r.flood = fc
	}

	if withCounters && before != nil {
		// The flood's connections are gone; the proxy may still be freeing
		// slots, so try for a while.
		var after map[string]float64
		for deadline := time.Now().Add(15 * time.Second); ; {
			sleepCtx(ctx, 300*time.Millisecond)
			if after, err = readWatched(ctx, o, s, base); err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			r.countersFailed = "after the flood: " + err.Error()
		} else {
			r.counters = map[string]float64{}
			for k, v := range after {
				r.counters[k] = v - before[k]
			}
			for _, f := range watchedFamilies {
				found := false
				for k := range after {
					if k == f || strings.HasPrefix(k, f+"{") {
						found = true
						break
					}
				}
				if !found {
					r.absent = append(r.absent, f)
				}
			}
		}
	}
	return r, nil
}

// startAttack starts the attack process for def against addr.
func startAttack(s *setup, o options, def attackDef, logPath, addr, out string, start time.Time) (*proc, error) {
	args := []string{"-mode=" + modeAttack, "-scenario=" + def.name, "-addr=" + addr, "-ca=" + s.tls.caFile,
		"-start=" + strconv.FormatInt(start.UnixNano(), 10), "-duration=" + o.attackDur.String(), "-out=" + out,
		"-gzip=" + strconv.FormatBool(o.gzip)}
	switch def.name {
	case scIdleOne:
		args = append(args, "-conns="+strconv.Itoa(o.idleConns))
	case scIdleMany:
		args = append(args, "-conns="+strconv.Itoa(o.idleConns), "-sources="+strconv.Itoa(o.idleSources))
	case scZeroWindow:
		args = append(args, "-conns="+strconv.Itoa(o.zwConns), "-streams="+strconv.Itoa(o.zwStreams), "-header-bytes="+strconv.Itoa(o.zwHeaderBytes))
	case scHandshake:
		args = append(args, "-conns="+strconv.Itoa(o.hsLoops))
	case scAuthHog:
		pf, err := passwordFile(s, "right-password", s.password)
		if err != nil {
			return nil, err
		}
		args = append(args, "-conns="+strconv.Itoa(o.hogConns), "-streams="+strconv.Itoa(o.hogStreams), "-user="+s.user, "-password-file="+pf)
	case scWrongH2:
		pf, err := passwordFile(s, "wrong-password", s.wrongPassword)
		if err != nil {
			return nil, err
		}
		args = append(args, "-conns="+strconv.Itoa(o.h2Conns), "-streams="+strconv.Itoa(o.h2Streams), "-user="+s.user, "-password-file="+pf)
	case scWrongTok:
		tf, err := passwordFile(s, "wrong-token", s.wrongToken)
		if err != nil {
			return nil, err
		}
		args = append(args, "-conns="+strconv.Itoa(o.h2Conns), "-streams="+strconv.Itoa(o.h2Streams), "-token-file="+tf)
	}
	return startProc(def.name+" clients", logPath, s.self, args...)
}

// passwordFile writes pass to a file of its own in the bench's directory (not
// on a command line, where ps shows it) and returns its path.
func passwordFile(s *setup, name, pass string) (string, error) {
	path := filepath.Join(s.dir, name)
	return path, os.WriteFile(path, []byte(pass+"\n"), 0o600)
}

// readAttack waits (at most limit) for the attack process to exit and reads
// its results.
func readAttack(ctx context.Context, p *proc, out string, limit time.Duration) (attackCounts, error) {
	var ac attackCounts
	select {
	case <-p.exited:
	case <-ctx.Done():
		p.stop()
		return ac, ctx.Err()
	case <-time.After(limit):
		p.stop()
		return ac, fmt.Errorf("the attack process did not finish within %s of its flood's end; its log:\n%s", limit, p.logTail())
	}
	if p.waitErr != nil {
		return ac, fmt.Errorf("the attack process failed (%v); its log:\n%s", p.waitErr, p.logTail())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return ac, fmt.Errorf("the attack process's results: %w", err)
	}
	if err := json.Unmarshal(b, &ac); err != nil {
		return ac, fmt.Errorf("the attack process's results: %w", err)
	}
	return ac, nil
}

// cores is CPU time over wall time.
func cores(cpu, wall time.Duration) float64 {
	if wall <= 0 {
		return math.NaN()
	}
	return cpu.Seconds() / wall.Seconds()
}
