// Package jobs is the runner's job loop: it polls every runner entry for
// jobs, runs them with the shell executor within the concurrent and per-runner
// limits, keeps the coordinator informed (trace chunks, state, cancellation),
// tracks them in the builds tracker, and stops gracefully or at once.
//
// A job goes through the upstream runner's eight stages, each shown in
// ci_runner_builds: prepare_script, get_sources, restore_cache,
// download_artifacts, build_script, after_script, archive_cache and
// upload_artifacts. What an .alloy-ci.yml asks beyond its scripts works as
// follows.
//
//   - cache: is kept on the runner's host, in
//     <cache_dir>/<runner id>/project-<id>/<key>-<hash>.zip (the runner id
//     and project name of the builds directory; the key's variables
//     expanded, the name cleaned and hashed so no key leaves the directory
//     and none holding a secret names a file). It is restored after
//     get_sources and saved after after_script, only for a successful job.
//     Both are best effort: a missing, broken or too large cache is a
//     warning. RESTORE_CACHE_ATTEMPTS retries a cache that cannot be read.
//   - dependencies: each archive is downloaded to the job's scratch
//     directory beside the project directory, then extracted into the
//     project as untrusted input (archive.Extract). The failure reason
//     follows what went wrong. A refused, too large or missing (404)
//     archive is the job's input being wrong, as invalid variables are:
//     script_failure, the upstream shell executor's reason for a failed
//     download stage; the pipeline made the archive and only the project
//     can fix it, and a crafted archive does not raise the operator's
//     runner_system_failure alarm. Not getting it (network, 5xx after
//     every attempt, a refused token, the runner's disk) is
//     runner_system_failure. ARTIFACT_DOWNLOAD_ATTEMPTS retries those
//     whole downloads.
//   - artifacts: are uploaded as artifacts: when says after the job's
//     result, written once to a file in the scratch directory so that
//     every attempt sends the same bytes. Sending them is the runner's
//     work, like getting the sources: failing after the client's retries,
//     they fail a successful job with runner_system_failure. Larger than
//     artifacts_limit is the project's choice to fix: script_failure. A
//     failed job keeps its own failure.
//
// A canceled job, one whose token was revoked and one the runner aborts
// neither save a cache nor upload artifacts: the coordinator no longer
// wants their results. A timed-out job uploads its on_failure or always
// artifacts, which tell why it hung, within the after_script time bound.
package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/alloyci/hardened-runner/builds"
	"github.com/alloyci/hardened-runner/config"
	"github.com/alloyci/hardened-runner/coordinator"
)

// DefaultTraceInterval is the default time between two reports of a
// running job. A cancel on the coordinator is seen at the next report, so
// it stops a job within this interval and the kill of its process group:
// under 5 s, as an operator who cancels a job expects.
const DefaultTraceInterval = 3 * time.Second

// Options configures a Loop. Zero values take the defaults.
type Options struct {
	// Client talks to the coordinators. Required.
	Client *coordinator.Client
	// Tracker counts the jobs by stage and state. Default: a new one.
	Tracker *builds.Tracker
	// Finished, when set, is told of every job the loop reported: the
	// runner's name, the state and failure reason sent, and how long the
	// job took from its request to its report (runnermetrics.Jobs).
	Finished func(runner, state, failureReason string, took time.Duration)
	// Logger gets the loop's logs. It never gets tokens, secret values or
	// a job's JSON. Default: no logging.
	Logger log.Logger
	// Concurrent bounds the jobs running at once over all runners. Default 1.
	Concurrent int
	// CheckInterval is the time between two rounds of job requests.
	// Default 3 s.
	CheckInterval time.Duration
	// TraceInterval is the time between two reports of a running job: a
	// trace chunk when there is new output, otherwise an empty one (the
	// keep-alive). It is how soon a cancel on the coordinator stops the
	// job. Default DefaultTraceInterval.
	TraceInterval time.Duration
	// DefaultTimeout limits a job whose runner_info.timeout is 0.
	// Default 1 hour.
	DefaultTimeout time.Duration
	// AfterScriptTimeout bounds after_script (or its step timeout when
	// shorter). Default 5 minutes.
	AfterScriptTimeout time.Duration
	// OutputLimit bounds a job's trace in bytes; output past it is dropped,
	// with a note. Default 4 MiB.
	OutputLimit int
	// Env is the environment jobs and git start from; the job's variables
	// come on top. Default: PATH, HOME, locale, time zone and proxy settings
	// of the runner's own environment, nothing else, so the runner's
	// secrets do not reach jobs.
	Env []string
}

// Loop polls the coordinators and runs jobs. Create it with New, start it
// with Run, stop it with StopAccepting or Abort.
type Loop struct {
	client         *coordinator.Client
	tracker        *builds.Tracker
	finished       func(runner, state, failureReason string, took time.Duration)
	logger         log.Logger
	concurrent     int
	checkInterval  time.Duration
	traceInterval  time.Duration
	defaultTimeout time.Duration
	afterTimeout   time.Duration
	outputLimit    int
	env            []string

	// abortCtx ends with Abort: job requests in flight and every running job.
	abortCtx context.Context
	abort    context.CancelCauseFunc

	mu       sync.Mutex
	runners  []*runnerState
	next     int // which runner polls first in the next round, for fairness
	running  int // slots taken over all runners
	started  bool
	quit     chan struct{}
	quitOnce sync.Once
	dirs     map[string]bool // project directories in use

	polls sync.WaitGroup
	jobs  sync.WaitGroup
}

// runnerState is a runner entry and its bookkeeping, guarded by Loop.mu.
type runnerState struct {
	config.Runner
	id         string
	lastUpdate string
	running    int
	polling    bool
	removed    bool
	lastErr    string
}

// errAborted is the cause of the jobs Abort stops.
var errAborted = errors.New("the runner is shutting down")

// New returns a Loop for runners, which must pass config.ValidateRunners.
func New(opts Options, runners []config.Runner) (*Loop, error) {
	if opts.Client == nil {
		return nil, errors.New("jobs: Options.Client is required")
	}
	if opts.Concurrent < 0 {
		return nil, fmt.Errorf("concurrent = %d: must be 1 or more", opts.Concurrent)
	}
	if err := config.ValidateRunners(runners); err != nil {
		return nil, err
	}
	l := &Loop{
		client:         opts.Client,
		tracker:        opts.Tracker,
		finished:       opts.Finished,
		logger:         opts.Logger,
		concurrent:     opts.Concurrent,
		checkInterval:  opts.CheckInterval,
		traceInterval:  opts.TraceInterval,
		defaultTimeout: opts.DefaultTimeout,
		afterTimeout:   opts.AfterScriptTimeout,
		outputLimit:    opts.OutputLimit,
		env:            opts.Env,
		quit:           make(chan struct{}),
		dirs:           make(map[string]bool),
	}
	if l.tracker == nil {
		l.tracker = builds.NewTracker()
	}
	if l.logger == nil {
		l.logger = log.NewNopLogger()
	}
	if l.concurrent == 0 {
		l.concurrent = 1
	}
	if l.checkInterval <= 0 {
		l.checkInterval = 3 * time.Second
	}
	if l.traceInterval <= 0 {
		l.traceInterval = DefaultTraceInterval
	}
	if l.defaultTimeout <= 0 {
		l.defaultTimeout = time.Hour
	}
	if l.afterTimeout <= 0 {
		l.afterTimeout = 5 * time.Minute
	}
	if l.outputLimit <= 0 {
		l.outputLimit = 4 << 20
	}
	if l.env == nil {
		l.env = DefaultEnv(os.Environ())
	}
	l.abortCtx, l.abort = context.WithCancelCause(context.Background())
	l.runners = l.states(runners, nil)
	return l, nil
}

// DefaultEnv picks from environ (os.Environ()) what jobs may inherit from
// the runner: PATH, HOME, user, shell, locale, time zone, temporary
// directory and proxy settings.
func DefaultEnv(environ []string) []string {
	keep := map[string]bool{
		"PATH": true, "HOME": true, "USER": true, "LOGNAME": true, "SHELL": true,
		"LANG": true, "LANGUAGE": true, "LC_ALL": true, "LC_CTYPE": true, "TZ": true, "TMPDIR": true,
		"HTTP_PROXY": true, "HTTPS_PROXY": true, "NO_PROXY": true,
		"http_proxy": true, "https_proxy": true, "no_proxy": true,
	}
	var out []string
	hasPath := false
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if keep[k] {
			out = append(out, kv)
			hasPath = hasPath || k == "PATH"
		}
	}
	if !hasPath {
		out = append(out, "PATH=/usr/local/bin:/usr/bin:/bin")
	}
	return out
}

// states builds the runner states for runners, keeping the bookkeeping of
// those in old with the same url and token.
func (l *Loop) states(runners []config.Runner, old []*runnerState) []*runnerState {
	byKey := make(map[string]*runnerState, len(old))
	for _, rs := range old {
		byKey[rs.Registration()] = rs
	}
	out := make([]*runnerState, 0, len(runners))
	for _, r := range runners {
		if rs := byKey[r.Registration()]; rs != nil {
			rs.Runner = r // a new name, limit or builds_dir applies from now on
			delete(byKey, r.Registration())
			out = append(out, rs)
			continue
		}
		out = append(out, &runnerState{Runner: r, id: shortID(r)})
	}
	for _, rs := range byKey {
		rs.removed = true
	}
	return out
}

// shortID names the runner's builds directory. It is derived from the token
// without revealing it, unlike GitLab's token prefix.
func shortID(r config.Runner) string {
	sum := sha256.Sum256([]byte(r.Registration()))
	return hex.EncodeToString(sum[:4])
}

// SetRunners replaces the runner entries, as on a reload (SIGHUP): new ones
// are polled from the next round, removed ones no longer (their running jobs
// finish), and changed ones keep their place. When runners do not pass
// config.ValidateRunners, nothing changes and the error says why.
func (l *Loop) SetRunners(runners []config.Runner) error {
	if err := config.ValidateRunners(runners); err != nil {
		return err
	}
	l.mu.Lock()
	before := make(map[string]bool, len(l.runners))
	for _, rs := range l.runners {
		before[rs.Registration()] = true
	}
	l.runners = l.states(runners, l.runners)
	var added []string
	for _, rs := range l.runners {
		if !before[rs.Registration()] {
			added = append(added, rs.Name)
		}
		delete(before, rs.Registration())
	}
	l.mu.Unlock()
	level.Info(l.logger).Log("msg", "runners reloaded", "runners", len(runners), "added", strings.Join(added, ","), "removed", len(before))
	return nil
}

// Run polls for jobs and runs them until StopAccepting or Abort is called,
// or ctx ends (which aborts). It returns when no job runs any more and every
// result is reported. Run may be called once.
func (l *Loop) Run(ctx context.Context) error {
	l.mu.Lock()
	if l.started {
		l.mu.Unlock()
		return errors.New("jobs: Run called twice")
	}
	l.started = true
	l.mu.Unlock()
	stop := context.AfterFunc(ctx, l.Abort)
	defer stop()

	level.Info(l.logger).Log("msg", "job loop started", "concurrent", l.concurrent, "check_interval", l.checkInterval)
	t := time.NewTicker(l.checkInterval)
	defer t.Stop()
	for {
		l.pollAll()
		select {
		case <-t.C:
		case <-l.quit:
			// A request in flight may still bring a job, which runs.
			l.polls.Wait()
			l.jobs.Wait()
			level.Info(l.logger).Log("msg", "job loop stopped")
			return nil
		}
	}
}

// StopAccepting stops asking for jobs (SIGQUIT); the running jobs finish,
// and then Run returns. It does not wait.
func (l *Loop) StopAccepting() {
	l.quitOnce.Do(func() {
		level.Info(l.logger).Log("msg", "no longer accepting jobs; waiting for the running ones")
		close(l.quit)
	})
}

// Abort stops asking for jobs and stops the running ones at once
// (SIGTERM, SIGINT): their processes are killed and they are reported failed
// with runner_system_failure. Run returns when that is reported. It does not
// wait.
func (l *Loop) Abort() {
	l.StopAccepting()
	if l.abortCtx.Err() == nil {
		level.Warn(l.logger).Log("msg", "aborting the running jobs")
	}
	l.abort(errAborted)
}

func (l *Loop) closing() bool {
	select {
	case <-l.quit:
		return true
	default:
		return false
	}
}

// pollAll starts a job request for every runner that is not already asking
// and has room for a job.
func (l *Loop) pollAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing() || len(l.runners) == 0 {
		return
	}
	n := len(l.runners)
	first := l.next % n
	l.next = first + 1
	for i := range n {
		rs := l.runners[(first+i)%n]
		if rs.polling || !l.reserveLocked(rs) {
			continue
		}
		rs.polling = true
		l.polls.Add(1)
		go l.poll(rs)
	}
}

// reserveLocked takes a slot for a job of rs, if the limits allow one. The
// slot is taken before asking, so a job the coordinator hands out always has
// room to run.
func (l *Loop) reserveLocked(rs *runnerState) bool {
	if l.running >= l.concurrent || (rs.Limit > 0 && rs.running >= rs.Limit) {
		return false
	}
	l.running++
	rs.running++
	return true
}

func (l *Loop) releaseLocked(rs *runnerState) {
	l.running--
	rs.running--
}

// poll asks the coordinator for jobs for rs, holding one slot, and again
// while jobs come and there is room, so a queue drains without waiting a
// check interval per job.
func (l *Loop) poll(rs *runnerState) {
	defer l.polls.Done()
	for {
		l.mu.Lock()
		r, lastUpdate := rs.Runner, rs.lastUpdate
		l.mu.Unlock()
		job, lastUpdate, err := l.client.RequestJob(l.abortCtx, r.URL, r.Token, lastUpdate)

		l.mu.Lock()
		rs.lastUpdate = lastUpdate
		l.noteLocked(rs, err)
		if job == nil {
			l.releaseLocked(rs)
			rs.polling = false
			l.mu.Unlock()
			return
		}
		l.jobs.Add(1) // before polls.Done, so Run waits for it
		go l.runJob(rs, r, job)
		if l.closing() || rs.removed || !l.reserveLocked(rs) {
			rs.polling = false
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
	}
}

// noteLocked logs a job request's error when it differs from the previous
// one, and the recovery, so an unreachable coordinator or a revoked token
// is said once, not every few seconds.
func (l *Loop) noteLocked(rs *runnerState, err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg == rs.lastErr || (err != nil && errors.Is(err, context.Canceled)) {
		return
	}
	rs.lastErr = msg
	switch {
	case err == nil:
		level.Info(l.logger).Log("msg", "job requests work again", "runner", rs.Name)
	case errors.Is(err, coordinator.ErrUnauthorized):
		level.Error(l.logger).Log("msg", "the coordinator does not know this runner's token; register it again", "runner", rs.Name, "err", err)
	case errors.Is(err, coordinator.ErrConflict):
		level.Debug(l.logger).Log("msg", "job request conflict, trying again later", "runner", rs.Name)
	default:
		level.Warn(l.logger).Log("msg", "job request failed", "runner", rs.Name, "err", err)
	}
}

// runJob runs job in the slot its request took.
func (l *Loop) runJob(rs *runnerState, r config.Runner, job *coordinator.Job) {
	defer l.jobs.Done()
	defer func() {
		l.mu.Lock()
		l.releaseLocked(rs)
		l.mu.Unlock()
	}()
	newJobRun(l, r, rs.id, job).run()
}

// projectDir reserves a directory for a job of project under base: the
// lowest numbered one no running job uses, so a later job of the project
// finds the previous checkout and concurrent ones never share a tree.
func (l *Loop) projectDir(base, project string) (dir string, release func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := 0; ; i++ {
		dir = filepath.Join(base, strconv.Itoa(i), project)
		if !l.dirs[dir] {
			l.dirs[dir] = true
			return dir, func() {
				l.mu.Lock()
				delete(l.dirs, dir)
				l.mu.Unlock()
			}
		}
	}
}
