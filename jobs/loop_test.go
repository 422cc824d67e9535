package jobs_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alloyci/hardened-runner/builds"
	"github.com/alloyci/hardened-runner/config"
	"github.com/alloyci/hardened-runner/coordinator"
	"github.com/alloyci/hardened-runner/internal/proctest"
	"github.com/alloyci/hardened-runner/jobs"
)

const secretValue = "s3cr3t-VALUE-for-tests"

func TestSuccessfulJob(t *testing.T) {
	h := newHarness(t, "runner-token-a")
	r := newRepo(t)
	sha := r.commit("file.txt", "hello from the repo\n")
	j := job(r, sha, []string{
		"cat file.txt",
		"echo $SECRET",
		// The secret in two writes, with a trace chunk likely in between.
		`printf '%s' "${SECRET:0:7}"; sleep 0.2; printf '%s\n' "${SECRET:7}"`,
		"echo token=$CI_JOB_TOKEN",
		"echo ci=$CI job=$CI_JOB_ID sha=$CI_COMMIT_SHA public=$PUBLIC",
		`test "$CI_PROJECT_DIR" = "$PWD" && echo in-project-dir`,
	}, []string{"echo after-ran status=$CI_JOB_STATUS"})
	j.Variables = append(j.Variables,
		coordinator.Variable{Key: "SECRET", Value: secretValue, Public: false},
		coordinator.Variable{Key: "PUBLIC", Value: "visible", Public: true})
	id := h.enqueue("runner-token-a", j)
	h.start(1, h.runner("a", "runner-token-a"))

	got := h.d.AwaitFinal(id)
	if got.State != "success" || got.FailureReason != "" {
		t.Fatalf("final = %s/%s, want success\n%s", got.State, got.FailureReason, got.Trace)
	}
	for _, want := range []string{
		"Running with alloy-runner",
		"Cloning repository...",
		"Checking out " + sha[:8] + " as main...",
		"$ cat file.txt\x1b[0;m\nhello from the repo\n",
		"$ echo $SECRET\x1b[0;m\n[MASKED]\n",
		"\x1b[0;m\n[MASKED]\n\x1b[32;1m$ echo token",
		"token=[MASKED]\n",
		"ci=true job=" + itoa(id) + " sha=" + sha + " public=visible\n",
		"in-project-dir\n",
		"after-ran status=success\n",
		"Job succeeded\n",
	} {
		if !strings.Contains(got.Trace, want) {
			t.Errorf("trace lacks %q", want)
		}
	}
	if strings.Contains(got.Trace, "WARNING") {
		t.Errorf("trace warns though the job asks for nothing unsupported:\n%s", got.Trace)
	}
	h.assertNoSecrets(got.Trace)
	// Contiguous chunks while it runs, and the whole trace with the final
	// state too (AlloyCI keeps only that one).
	if !got.TraceInUpdate || got.RangeErrors != 0 || got.Patches == 0 {
		t.Errorf("trace chunks: %d sent, %d did not line up, whole trace with the state: %v; want contiguous chunks and the whole trace",
			got.Patches, got.RangeErrors, got.TraceInUpdate)
	}
	h.stop()
	if n := len(h.tracker.Counts()); n != 0 {
		t.Errorf("tracker still counts builds after the job: %v", h.tracker.Counts())
	}
}

func TestFailingScriptRunsAfterScript(t *testing.T) {
	h := newHarness(t, "runner-token-a")
	r := newRepo(t)
	sha := r.commit("file.txt", "x")
	id := h.enqueue("runner-token-a", job(r, sha, []string{"echo before", "exit 3", "echo never"},
		[]string{"echo after-ran status=$CI_JOB_STATUS"}))
	h.start(1, h.runner("a", "runner-token-a"))

	got := h.d.AwaitFinal(id)
	if got.State != "failed" || got.FailureReason != "script_failure" {
		t.Fatalf("final = %s/%s, want failed/script_failure", got.State, got.FailureReason)
	}
	for _, want := range []string{"before\n", "after-ran status=failed\n", "ERROR: Job failed: exit code 3\n"} {
		if !strings.Contains(got.Trace, want) {
			t.Errorf("trace lacks %q:\n%s", want, got.Trace)
		}
	}
	if strings.Contains(got.Trace, "never") {
		t.Errorf("the script went on after the failing command:\n%s", got.Trace)
	}
}

func TestCancelKillsTheJob(t *testing.T) {
	h := newHarness(t, "runner-token-a")
	r := newRepo(t)
	sha := r.commit("file.txt", "x")
	tmp := t.TempDir()
	pidfile, afterfile := filepath.Join(tmp, "pid"), filepath.Join(tmp, "after")
	id := h.enqueue("runner-token-a", job(r, sha,
		[]string{"sleep 300 & echo $! > " + pidfile + "; wait", "echo never"},
		[]string{"touch " + afterfile}))
	h.start(1, h.runner("a", "runner-token-a"))

	pid := h.pidFrom(pidfile)
	if n := count(h.tracker, builds.StageBuildScript, builds.StateRunning); n != 1 {
		t.Errorf("tracker: %d builds in build_script/running while the script runs, want 1: %v", n, h.tracker.Counts())
	}
	h.d.Cancel(id)
	got := h.d.AwaitFinal(id)
	if got.State != "failed" || got.FailureReason != "" {
		t.Errorf("final = %s/%s, want failed with no reason (the coordinator canceled it)", got.State, got.FailureReason)
	}
	h.d.Await("the script's background process to be gone", func() bool { return proctest.Gone(pid) })
	if !strings.Contains(got.Trace, "ERROR: Job failed: canceled\n") || strings.Contains(got.Trace, "$ echo never") {
		t.Errorf("trace:\n%s", got.Trace)
	}
	if exists(afterfile) {
		t.Error("after_script ran for a canceled job")
	}
	h.stop()
	if n := len(h.tracker.Counts()); n != 0 {
		t.Errorf("tracker still counts builds: %v", h.tracker.Counts())
	}
}

func TestRevokedTokenKillsTheJob(t *testing.T) {
	h := newHarness(t, "runner-token-a")
	r := newRepo(t)
	sha := r.commit("file.txt", "x")
	pidfile := filepath.Join(t.TempDir(), "pid")
	id := h.enqueue("runner-token-a", job(r, sha, []string{"sleep 300 & echo $! > " + pidfile + "; wait"}, nil))
	h.start(1, h.runner("a", "runner-token-a"))

	pid := h.pidFrom(pidfile)
	h.d.Revoke(id)
	h.d.Await("the script's background process to be gone", func() bool { return proctest.Gone(pid) })
	h.d.Await("the job to leave the tracker", func() bool { return len(h.tracker.Counts()) == 0 })
	h.stop()
	if got := h.d.Job(id); got.Final {
		t.Errorf("a final state got through with a revoked token: %+v", got)
	}
}

func TestTimeout(t *testing.T) {
	h := newHarness(t, "runner-token-a")
	r := newRepo(t)
	sha := r.commit("file.txt", "x")
	pidfile := filepath.Join(t.TempDir(), "pid")
	j := job(r, sha, []string{"sleep 300 & echo $! > " + pidfile + "; wait"}, []string{"echo after-ran status=$CI_JOB_STATUS"})
	j.RunnerInfo.Timeout = 1
	id := h.enqueue("runner-token-a", j)
	h.start(1, h.runner("a", "runner-token-a"))

	got := h.d.AwaitFinal(id)
	if got.State != "failed" || got.FailureReason != "job_execution_timeout" {
		t.Fatalf("final = %s/%s, want failed/job_execution_timeout", got.State, got.FailureReason)
	}
	pid := h.pidFrom(pidfile)
	h.d.Await("the script's background process to be gone", func() bool { return proctest.Gone(pid) })
	for _, want := range []string{"after-ran status=failed\n", "ERROR: Job failed: execution took longer than 1s\n"} {
		if !strings.Contains(got.Trace, want) {
			t.Errorf("trace lacks %q:\n%s", want, got.Trace)
		}
	}
}

func TestFinalStateSurvivesAnOutage(t *testing.T) {
	h := newHarness(t, "runner-token-a")
	r := newRepo(t)
	sha := r.commit("file.txt", "x")
	id := h.enqueue("runner-token-a", job(r, sha, []string{"echo done"}, nil))
	// Two 5xx answers and a dropped connection.
	h.d.FailFinalUpdates(id, 502, 503, 0)
	h.start(1, h.runner("a", "runner-token-a"))

	got := h.d.AwaitFinal(id)
	if got.State != "success" {
		t.Fatalf("final = %s, want success", got.State)
	}
	if got.FinalAttempts < 4 {
		t.Errorf("final attempts = %d, want at least 4", got.FinalAttempts)
	}
	if !strings.Contains(got.Trace, "done\n") {
		t.Errorf("trace:\n%s", got.Trace)
	}
}

func TestTraceResentFromTheRangeTheCoordinatorHolds(t *testing.T) {
	h := newHarness(t, "runner-token-a")
	r := newRepo(t)
	sha := r.commit("file.txt", "x")
	id := h.enqueue("runner-token-a", job(r, sha, []string{"echo line-one", "sleep 0.1", "echo line-two"}, nil))
	h.d.LoseTraceOnce(id, 10)
	h.start(1, h.runner("a", "runner-token-a"))

	got := h.d.AwaitFinal(id)
	if got.State != "success" || got.RangeErrors == 0 {
		t.Fatalf("final = %s, range errors %d; want success after a 416", got.State, got.RangeErrors)
	}
	if !got.TraceInUpdate {
		t.Error("the final state did not carry the whole trace")
	}
	if !strings.HasPrefix(got.Trace, "Running with alloy-runner") {
		t.Errorf("trace does not start with the header:\n%q", got.Trace)
	}
	for _, once := range []string{"Running with alloy-runner", "line-one\n", "line-two\n", "Job succeeded\n"} {
		if n := strings.Count(got.Trace, once); n != 1 {
			t.Errorf("trace has %q %d times, want once:\n%s", once, n, got.Trace)
		}
	}
}

func TestSecondJobFetches(t *testing.T) {
	h := newHarness(t, "runner-token-a")
	r := newRepo(t)
	sha1 := r.commit("file.txt", "first\n")
	run := h.runner("a", "runner-token-a")
	id1 := h.enqueue("runner-token-a", job(r, sha1, []string{"cat file.txt"}, nil))
	h.start(1, run)
	if got := h.d.AwaitFinal(id1); got.State != "success" || !strings.Contains(got.Trace, "Cloning repository...") {
		t.Fatalf("first job: %s\n%s", got.State, got.Trace)
	}
	gits, _ := filepath.Glob(filepath.Join(run.BuildsDir, "*", "0", "project-7", ".git"))
	if len(gits) != 1 {
		t.Fatalf("project checkouts: %v, want one", gits)
	}
	marker := filepath.Join(gits[0], "kept-by-fetch")
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	sha2 := r.commit("file.txt", "second\n")
	id2 := h.enqueue("runner-token-a", job(r, sha2, []string{"cat file.txt"}, nil))
	got := h.d.AwaitFinal(id2)
	if got.State != "success" {
		t.Fatalf("second job: %s\n%s", got.State, got.Trace)
	}
	if !strings.Contains(got.Trace, "Fetching changes...") || strings.Contains(got.Trace, "Cloning") {
		t.Errorf("second job did not fetch:\n%s", got.Trace)
	}
	if !strings.Contains(got.Trace, "second\n") {
		t.Errorf("second job did not check out the new commit:\n%s", got.Trace)
	}
	if !exists(marker) {
		t.Error("the checkout was replaced, not fetched into")
	}
}

func TestConcurrencyLimits(t *testing.T) {
	h := newHarness(t, "runner-token-a", "runner-token-b")
	r := newRepo(t)
	sha := r.commit("file.txt", "x")
	release := filepath.Join(t.TempDir(), "release")
	wait := []string{"while [ ! -e " + release + " ]; do sleep 0.02; done"}
	var ids []int64
	for range 3 {
		ids = append(ids, h.enqueue("runner-token-a", job(r, sha, wait, nil)))
		ids = append(ids, h.enqueue("runner-token-b", job(r, sha, wait, nil)))
	}
	a := h.runner("a", "runner-token-a")
	a.Limit = 1
	h.start(2, a, h.runner("b", "runner-token-b"))

	h.d.Await("two jobs to run", func() bool { total, _ := h.d.InFlight("runner-token-a"); return total == 2 })
	if n := count(h.tracker, builds.StageBuildScript, builds.StateRunning); n > 2 {
		t.Errorf("tracker: %d builds running, want at most 2", n)
	}
	// While both slots are taken the loop must not even ask for a job. The
	// running jobs report every trace interval: let them make 20 calls.
	requests := h.d.Requests("runner-token-a") + h.d.Requests("runner-token-b")
	calls := h.d.Calls()
	h.d.Await("20 more calls", func() bool { return h.d.Calls() >= calls+20 })
	if now := h.d.Requests("runner-token-a") + h.d.Requests("runner-token-b"); now != requests {
		t.Errorf("the loop asked for jobs %d times with no slot free", now-requests)
	}
	if err := os.WriteFile(release, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if got := h.d.AwaitFinal(id); got.State != "success" {
			t.Errorf("job %d: %s", id, got.State)
		}
	}
	total, perA := h.d.MaxInFlight("runner-token-a")
	if total != 2 || perA != 1 {
		t.Errorf("most jobs at once: %d overall, %d for runner a; want 2 and 1", total, perA)
	}
}

// Image and services are other executors' features: the trace says they
// were ignored. Artifacts, cache and dependencies have stages of their own,
// and are never called unsupported.
func TestUnsupportedFeaturesAreWarned(t *testing.T) {
	h := newHarness(t, "runner-token-a")
	r := newRepo(t)
	sha := r.commit("file.txt", "x")
	j := job(r, sha, []string{"true"}, nil)
	j.Image = json.RawMessage(`{"name":"ruby:3.3"}`)
	j.Services = json.RawMessage(`[{"name":"postgres"}]`)
	j.Artifacts = json.RawMessage(`[{"paths":["out/"]}]`)
	j.Cache = json.RawMessage(`[{"key":"k","paths":["vendor/"]}]`)
	j.Dependencies = json.RawMessage(`[{"id":1,"name":"build"}]`)
	j.Variables = append(j.Variables, coordinator.Variable{Key: "BAD=KEY", Value: "v", Public: true})
	id := h.enqueue("runner-token-a", j)
	h.start(1, h.runner("a", "runner-token-a"))

	got := h.d.AwaitFinal(id)
	if got.State != "success" {
		t.Fatalf("final = %s, want success: ignored features do not fail a job\n%s", got.State, got.Trace)
	}
	if want := `WARNING: variable "BAD=KEY" cannot be passed to the environment, skipped` + "\n"; !strings.Contains(got.Trace, want) {
		t.Errorf("trace lacks %q", want)
	}
	for _, f := range []string{"image", "services"} {
		want := `WARNING: "` + f + `" is not supported by the shell executor, ignored` + "\n"
		if !strings.Contains(got.Trace, want) {
			t.Errorf("trace lacks %q", want)
		}
	}
	for _, f := range []string{"artifacts", "cache", "dependencies"} {
		if strings.Contains(got.Trace, `"`+f+`" is not supported`) {
			t.Errorf("trace calls %s unsupported:\n%s", f, got.Trace)
		}
	}
	// What their stages said instead: a dependency without an archive, a
	// first run without a cache, and paths that matched nothing.
	for _, want := range []string{
		`dependency "build" (job 1) has no artifacts: nothing to download` + "\n",
		`WARNING: no cache for key "k" yet: the job runs without it` + "\n",
		`WARNING: no files to cache: the cache for key "k" is left as it was` + "\n",
		"WARNING: no files to upload\n",
	} {
		if !strings.Contains(got.Trace, want) {
			t.Errorf("trace lacks %q:\n%s", want, got.Trace)
		}
	}
}

func TestAbortReportsSystemFailure(t *testing.T) {
	h := newHarness(t, "runner-token-a")
	r := newRepo(t)
	sha := r.commit("file.txt", "x")
	pidfile := filepath.Join(t.TempDir(), "pid")
	id := h.enqueue("runner-token-a", job(r, sha, []string{"sleep 300 & echo $! > " + pidfile + "; wait"}, []string{"echo after-ran"}))
	h.start(1, h.runner("a", "runner-token-a"))

	pid := h.pidFrom(pidfile)
	h.loop.Abort()
	h.wait()
	got := h.d.Job(id)
	if !got.Final || got.State != "failed" || got.FailureReason != "runner_system_failure" {
		t.Fatalf("after Abort: final=%v %s/%s, want failed/runner_system_failure", got.Final, got.State, got.FailureReason)
	}
	h.d.Await("the job's process to be gone after Abort", func() bool { return proctest.Gone(pid) })
	if strings.Contains(got.Trace, "after-ran") {
		t.Error("after_script ran while the runner was aborting")
	}
	if n := len(h.tracker.Counts()); n != 0 {
		t.Errorf("tracker still counts builds: %v", h.tracker.Counts())
	}
}

func TestStopAcceptingLetsRunningJobsFinish(t *testing.T) {
	h := newHarness(t, "runner-token-a")
	r := newRepo(t)
	sha := r.commit("file.txt", "x")
	release := filepath.Join(t.TempDir(), "release")
	id := h.enqueue("runner-token-a", job(r, sha, []string{"while [ ! -e " + release + " ]; do sleep 0.02; done", "echo finished"}, nil))
	h.start(1, h.runner("a", "runner-token-a"))

	h.d.Await("the job to run", func() bool { return count(h.tracker, builds.StageBuildScript, builds.StateRunning) == 1 })
	h.loop.StopAccepting()
	queued := h.enqueue("runner-token-a", job(r, sha, []string{"true"}, nil))
	if err := os.WriteFile(release, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	h.wait()
	if got := h.d.Job(id); got.State != "success" || !strings.Contains(got.Trace, "finished\n") {
		t.Errorf("running job after StopAccepting: %s\n%s", got.State, got.Trace)
	}
	if h.d.Queued("runner-token-a") != 1 || h.d.Job(queued).Final {
		t.Error("a job was taken after StopAccepting")
	}
}

func TestSetRunnersAddsAndRemoves(t *testing.T) {
	h := newHarness(t, "runner-token-a", "runner-token-b")
	r := newRepo(t)
	sha := r.commit("file.txt", "x")
	a, b := h.runner("a", "runner-token-a"), h.runner("b", "runner-token-b")
	h.start(1, a)

	idB := h.enqueue("runner-token-b", job(r, sha, []string{"echo from-b"}, nil))
	if err := h.loop.SetRunners([]config.Runner{a, {Name: "bad", URL: h.d.URL, Token: "t", Executor: "docker"}}); err == nil ||
		!strings.Contains(err.Error(), `runner "bad": executor "docker" is not supported`) {
		t.Fatalf("SetRunners with a docker runner: err = %v", err)
	}
	if err := h.loop.SetRunners([]config.Runner{a, b}); err != nil {
		t.Fatal(err)
	}
	if got := h.d.AwaitFinal(idB); got.State != "success" {
		t.Fatalf("job of the added runner: %s", got.State)
	}

	if err := h.loop.SetRunners([]config.Runner{b}); err != nil {
		t.Fatal(err)
	}
	// Rounds started before the reload may still ask for runner a; let them end.
	before := h.d.Requests("runner-token-b")
	h.d.Await("runner b to poll five times more", func() bool { return h.d.Requests("runner-token-b") >= before+5 })
	idA := h.enqueue("runner-token-a", job(r, sha, []string{"true"}, nil))
	before = h.d.Requests("runner-token-b")
	h.d.Await("runner b to poll five times more", func() bool { return h.d.Requests("runner-token-b") >= before+5 })
	if h.d.Job(idA).Final || h.d.Queued("runner-token-a") != 1 {
		t.Error("the removed runner still takes jobs")
	}
}

func TestUnknownRunnerTokenIsLoggedOnce(t *testing.T) {
	h := newHarness(t, "runner-token-b")
	h.secrets = append(h.secrets, "runner-token-unknown")
	r := newRepo(t)
	sha := r.commit("file.txt", "x")
	h.start(1, h.runner("lost", "runner-token-unknown"), h.runner("b", "runner-token-b"))
	before := h.d.Requests("runner-token-b")
	h.d.Await("several rounds of polling", func() bool { return h.d.Requests("runner-token-b") >= before+5 })
	id := h.enqueue("runner-token-b", job(r, sha, []string{"true"}, nil))
	if got := h.d.AwaitFinal(id); got.State != "success" {
		t.Fatalf("the other runner's job: %s", got.State)
	}
	h.stop()
	if n := strings.Count(h.logs.String(), "does not know this runner's token"); n != 1 {
		t.Errorf("the unknown token was logged %d times, want once:\n%s", n, h.logs.String())
	}
}

// The loop checks what it is handed with config.ValidateRunners (whose
// messages config's tests cover), so a docker entry never runs as shell.
func TestNewRefusesInvalidRunner(t *testing.T) {
	bad := config.Runner{Name: "dock", URL: "https://alloy.example.com/", Token: "t2", Executor: "docker", Shell: "bash"}
	if _, err := jobs.New(jobs.Options{Client: coordinator.New(coordinator.Options{})}, []config.Runner{bad}); err == nil {
		t.Error("New accepted a docker runner")
	}
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
