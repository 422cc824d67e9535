package jobs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/alloyci/hardened-runner/builds"
	"github.com/alloyci/hardened-runner/config"
	"github.com/alloyci/hardened-runner/coordinator"
	"github.com/alloyci/hardened-runner/coordinator/coordinatortest"
	"github.com/alloyci/hardened-runner/internal/logtest"
	"github.com/alloyci/hardened-runner/jobs"
)

// syncBuffer captures log output from concurrent goroutines.
type syncBuffer = logtest.Buffer

// Short intervals keep the tests quick; nothing asserts how long anything
// takes.
const (
	checkInterval = 20 * time.Millisecond
	traceInterval = 20 * time.Millisecond
)

// harness is a loop running against a coordinator double.
type harness struct {
	t       *testing.T
	d       *coordinatortest.Server
	tracker *builds.Tracker
	logs    *syncBuffer
	loop    *jobs.Loop
	done    chan error
	secrets []string
	// traceEvery, when set, is the loop's trace interval instead of the
	// short traceInterval (the loop's default is 0's meaning: 3 s).
	traceEvery time.Duration
}

// newHarness returns a double with the runner tokens known; start the loop
// with start once the jobs are queued.
func newHarness(t *testing.T, tokens ...string) *harness {
	return newFlavorHarness(t, coordinatortest.Strict, tokens...)
}

// newFlavorHarness is newHarness with a double of flavor f.
func newFlavorHarness(t *testing.T, f coordinatortest.Flavor, tokens ...string) *harness {
	h := &harness{t: t, d: coordinatortest.NewFlavor(t, f), tracker: builds.NewTracker(), logs: &syncBuffer{}}
	for _, tok := range tokens {
		h.d.AddRunner(tok)
		h.secrets = append(h.secrets, tok)
	}
	return h
}

// runner is a runner entry for the double with token.
func (h *harness) runner(name, token string) config.Runner {
	return config.Runner{Name: name, URL: h.d.URL, Token: token, Executor: "shell", Shell: "bash", BuildsDir: h.t.TempDir()}
}

// enqueueSpec queues sp as the double's flavor renders it and remembers
// its secrets.
func (h *harness) enqueueSpec(token string, sp coordinatortest.Spec) int64 {
	id := h.d.EnqueueSpec(token, sp)
	h.secrets = append(h.secrets, "job-token-"+strconv.FormatInt(id, 10)+"-secret")
	for _, v := range sp.Variables {
		if s, ok := v.Value.(string); ok && !v.Public && s != "" {
			h.secrets = append(h.secrets, s)
		}
	}
	return id
}

// enqueue queues j and remembers its secrets, which the log must not show.
func (h *harness) enqueue(token string, j coordinator.Job) int64 {
	id := h.d.Enqueue(token, j)
	h.secrets = append(h.secrets, "job-token-"+strconv.FormatInt(id, 10)+"-secret")
	for _, v := range j.Variables {
		if !v.Public {
			h.secrets = append(h.secrets, v.Value)
		}
	}
	return id
}

func (h *harness) start(concurrent int, runners ...config.Runner) {
	h.t.Helper()
	client := coordinator.New(coordinator.Options{
		// No waiting between retries: the tests count attempts, not time.
		Sleep: func(ctx context.Context, d time.Duration) error { return ctx.Err() },
	})
	logger := level.NewFilter(log.NewLogfmtLogger(h.logs), level.AllowDebug())
	every := traceInterval
	if h.traceEvery != 0 {
		every = h.traceEvery
	}
	loop, err := jobs.New(jobs.Options{
		Client: client, Tracker: h.tracker, Logger: logger,
		Concurrent: concurrent, CheckInterval: checkInterval, TraceInterval: every,
	}, runners)
	if err != nil {
		h.t.Fatal(err)
	}
	h.loop = loop
	h.done = make(chan error, 1)
	go func() { h.done <- loop.Run(context.Background()) }()
	h.t.Cleanup(func() {
		loop.Abort()
		h.wait()
		logs := h.logs.String()
		for _, s := range h.secrets {
			if strings.Contains(logs, s) {
				h.t.Errorf("the log shows the secret %q:\n%s", s, logs)
			}
		}
	})
}

// wait waits for Run to return.
func (h *harness) wait() {
	h.t.Helper()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
		h.done <- nil // let a second wait (cleanup) pass
	case <-time.After(60 * time.Second):
		h.t.Fatal("Run did not return")
	}
}

// stop stops the loop gracefully and waits for it.
func (h *harness) stop() {
	h.t.Helper()
	h.loop.StopAccepting()
	h.wait()
}

// assertNoSecrets checks a trace for the secrets known so far.
func (h *harness) assertNoSecrets(trace string) {
	h.t.Helper()
	for _, s := range h.secrets {
		if strings.Contains(trace, s) {
			h.t.Errorf("the trace shows the secret %q:\n%s", s, trace)
		}
	}
}

// repo is a git repository for the jobs, at a file:// URL.
type repo struct {
	t   *testing.T
	dir string
	url string
}

func newRepo(t *testing.T) *repo {
	r := &repo{t: t, dir: filepath.Join(t.TempDir(), "src")}
	r.url = "file://" + r.dir
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r.git("init", "-q")
	return r
}

func (r *repo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=Test", "-c", "user.email=test@example.invalid",
		"-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"}, args...)...)
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func (r *repo) commit(name, content string) string {
	r.t.Helper()
	if err := os.WriteFile(filepath.Join(r.dir, name), []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
	r.git("add", "-A")
	r.git("commit", "-q", "-m", "change "+name)
	return r.git("rev-parse", "HEAD")
}

// job is a job of project 7 at sha of r, running script and after_script.
func job(r *repo, sha string, script, after []string) coordinator.Job {
	j := coordinator.Job{
		AllowGitFetch: true,
		JobInfo:       coordinator.JobInfo{Name: "test", Stage: "test", ProjectID: 7, ProjectName: "app"},
		GitInfo:       coordinator.GitInfo{RepoURL: r.url, Ref: "main", Sha: sha, RefType: "branch"},
		RunnerInfo:    coordinator.RunnerInfo{Timeout: 3600},
		Variables:     []coordinator.Variable{{Key: "CI", Value: "true", Public: true}},
		Steps:         []coordinator.Step{{Name: "script", Script: script, Timeout: 3600, When: "on_success"}},
		Image:         json.RawMessage(`null`),
		Services:      json.RawMessage(`[]`),
		Artifacts:     json.RawMessage(`[null]`),
		Cache:         json.RawMessage(`[null]`),
		Dependencies:  json.RawMessage(`[]`),
	}
	if after != nil {
		j.Steps = append(j.Steps, coordinator.Step{Name: "after_script", Script: after, Timeout: 3600, When: "always"})
	}
	return j
}

// pidFrom waits for a script to write its background pid to path.
func (h *harness) pidFrom(path string) int {
	h.t.Helper()
	var pid int
	h.d.Await("the job's pid file", func() bool {
		b, err := os.ReadFile(path)
		if err != nil || !bytes.HasSuffix(b, []byte("\n")) {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	return pid
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func count(tr *builds.Tracker, stage builds.Stage, state builds.State) int {
	return tr.Counts()[stage][state]
}
