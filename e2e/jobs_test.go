package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alloyci/hardened-runner/coordinator/coordinatortest"
	"github.com/alloyci/hardened-runner/internal/proctest"
)

const (
	e2eRunnerToken = "glrt-e2e-runner-token-0001"
	e2eSecret      = "s3cr3t-value-never-shown"
)

// gitRepo makes a repository with one commit and returns its file:// URL and sha.
func gitRepo(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q", "-b", "main")
	writeFile(t, filepath.Join(dir, "README"), "hello from the e2e repository\n")
	git("add", "README")
	git("commit", "-q", "-m", "first")
	return "file://" + dir, git("rev-parse", "HEAD")
}

// startJobRunner starts alloy-runner polling the double every second.
func startJobRunner(t *testing.T, c *coordinatortest.Server) (*proc, string) {
	t.Helper()
	r := startArtRunner(t, c, "")
	return r.proc, r.addr
}

// startJobs is a coordinator double of flavor f that knows the e2e runner's
// token, a repository with one commit for its jobs, and the runner polling
// the double (startJobRunner).
func startJobs(t *testing.T, f coordinatortest.Flavor) (c *coordinatortest.Server, repoURL, sha string, runner *proc, metricsAddr string) {
	t.Helper()
	c = coordinatortest.NewFlavor(t, f)
	c.AddRunner(e2eRunnerToken)
	repoURL, sha = gitRepo(t)
	runner, metricsAddr = startJobRunner(t, c)
	return c, repoURL, sha, runner, metricsAddr
}

// forEachFlavor runs test against each flavor of the coordinator double:
// the real AlloyCI server's behaviour, quirks included, and a strict
// GitLab-like one. The runner must work against both.
func forEachFlavor(t *testing.T, test func(t *testing.T, f coordinatortest.Flavor)) {
	for _, f := range coordinatortest.Flavors() {
		t.Run(string(f), func(t *testing.T) { test(t, f) })
	}
}

// e2eJob is a job as a project's .alloy-ci.yml gives it: a secret, variables
// of YAML's types (AlloyCI sends them as they are; the strict flavor as
// strings), the script and an after_script. timeout goes in runner_info
// (AlloyCI's own payload always says 3600).
func e2eJob(repoURL, sha string, timeout int, script ...string) coordinatortest.Spec {
	return coordinatortest.Spec{
		RepoURL: repoURL, Ref: "main", SHA: sha,
		Variables: []coordinatortest.Variable{
			{Key: "SECRET_VAR", Value: e2eSecret, Public: false},
			{Key: "GIT_DEPTH", Value: 3, Public: true},
			{Key: "FLAG", Value: true, Public: true},
			{Key: "RATIO", Value: 0.5, Public: true},
			{Key: "CI_COMMIT_PUSHER", Value: nil, Public: true},
		},
		Script:      script,
		AfterScript: []string{"echo after-script-ran"},
		Timeout:     timeout,
		Raw:         map[string]any{"runner_info": map[string]any{"timeout": timeout}},
	}
}

// buildsGauge reads ci_runner_builds{stage,state} from the runner.
func buildsGauge(t *testing.T, addr, stage, state string) float64 {
	t.Helper()
	_, mfs := scrape(t, http.DefaultClient, "http://"+addr+"/metrics", nil)
	for _, m := range mfs["ci_runner_builds"].GetMetric() {
		var st, sa string
		for _, l := range m.Label {
			switch l.GetName() {
			case "stage":
				st = l.GetValue()
			case "state":
				sa = l.GetValue()
			}
		}
		if st == stage && sa == state {
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no ci_runner_builds{stage=%q,state=%q}", stage, state)
	return 0
}

func waitFile(t *testing.T, path string) string {
	t.Helper()
	for range 600 {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return strings.TrimSpace(string(b))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never appeared", path)
	return ""
}

// processGone waits a little for pid to be gone: the runner kills it as it
// reports the job, and the report may arrive first.
func processGone(pid int) bool { return processGoneWithin(pid, 5*time.Second) }

// processGoneWithin waits up to limit for pid to be gone (a safety net for
// the test, not a promise about time).
func processGoneWithin(pid int, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for !proctest.Gone(pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// The runner takes jobs from the coordinator and runs them with the shell
// executor: a successful job (its secret masked in the trace, the build
// counted as running while it runs), a failing script, a canceled job and a
// timed-out one, whose processes are gone afterwards.
func TestRunnerRunsJobsEndToEnd(t *testing.T) { forEachFlavor(t, testRunsJobsEndToEnd) }

func testRunsJobsEndToEnd(t *testing.T, f coordinatortest.Flavor) {
	c, repo, sha, runner, addr := startJobs(t, f)
	sync := t.TempDir()

	// A successful job, held in build_script until the test has seen it there.
	started, release := filepath.Join(sync, "started"), filepath.Join(sync, "release")
	id := c.EnqueueSpec(e2eRunnerToken, e2eJob(repo, sha, 600,
		"cat README", "echo secret is $SECRET_VAR", `echo "depth=$GIT_DEPTH flag=$FLAG ratio=$RATIO pusher=[$CI_COMMIT_PUSHER]"`,
		"echo yes > "+started, "while [ ! -e "+release+" ]; do sleep 0.1; done"))
	waitFile(t, started)
	if v := buildsGauge(t, addr, "build_script", "running"); v != 1 {
		t.Fatalf("ci_runner_builds{stage=build_script,state=running} = %v while the job runs, want 1", v)
	}
	writeFile(t, release, "go")
	j := c.AwaitFinal(id)
	// What the server keeps for the finished job (AlloyCI: the final PUT's
	// trace only) is the whole, masked trace.
	if j.State != "success" || !strings.Contains(j.Stored, "hello from the e2e repository") ||
		!strings.Contains(j.Stored, "secret is [MASKED]") || !strings.Contains(j.Stored, "after-script-ran") ||
		!strings.Contains(j.Stored, "depth=3 flag=true ratio=0.5 pusher=[]") {
		t.Fatalf("success job: state %q, stored trace:\n%s", j.State, j.Stored)
	}
	if strings.Contains(j.Stored, e2eSecret) || strings.Contains(j.Live, e2eSecret) || strings.Contains(runner.Logs(), e2eSecret) || strings.Contains(runner.Logs(), e2eRunnerToken) {
		t.Fatal("a secret reached the trace or the log")
	}

	// A failing script.
	id = c.EnqueueSpec(e2eRunnerToken, e2eJob(repo, sha, 600, "echo before", "false", "echo never"))
	j = c.AwaitFinal(id)
	if j.State != "failed" || (f == coordinatortest.Strict && j.FailureReason != "script_failure") ||
		!strings.Contains(j.Stored, "before") || strings.Contains(j.Stored, "\nnever") ||
		!strings.Contains(j.Stored, "after-script-ran") {
		t.Fatalf("failing job: %q/%q, stored trace:\n%s", j.State, j.FailureReason, j.Stored)
	}

	// A canceled job: its processes are gone.
	pidFile := filepath.Join(sync, "cancel.pid")
	id = c.EnqueueSpec(e2eRunnerToken, e2eJob(repo, sha, 600, "sleep 300 & echo $! > "+pidFile+"; wait"))
	pid, _ := strconv.Atoi(waitFile(t, pidFile))
	canceled := time.Now()
	c.Cancel(id)
	if !processGoneWithin(pid, 30*time.Second) {
		t.Fatalf("canceled job: process %d still running", pid)
	}
	t.Logf("%s: the canceled job's process was gone %v after the cancel", f, time.Since(canceled).Round(10*time.Millisecond))
	j = c.AwaitFinal(id)
	if j.State != "failed" {
		t.Fatalf("canceled job: state %q", j.State)
	}

	// A timed-out job: its processes are gone too.
	pidFile = filepath.Join(sync, "timeout.pid")
	id = c.EnqueueSpec(e2eRunnerToken, e2eJob(repo, sha, 2, "sleep 300 & echo $! > "+pidFile+"; wait"))
	pid, _ = strconv.Atoi(waitFile(t, pidFile))
	j = c.AwaitFinal(id)
	if j.State != "failed" || (f == coordinatortest.Strict && j.FailureReason != "job_execution_timeout") || !processGone(pid) {
		t.Fatalf("timed-out job: %q/%q, process gone: %v", j.State, j.FailureReason, processGone(pid))
	}
	if !strings.Contains(j.Stored, "after-script-ran") {
		t.Fatalf("timed-out job: stored trace incomplete:\n%s", j.Stored)
	}
	// No job of this test ever asked the server to restart it.
	for _, id := range []int64{id - 3, id - 2, id - 1, id} {
		if j := c.Job(id); j.Puts["running"] != 0 || j.StartResets != 0 {
			t.Errorf("job %d: %d PUT running, %d start resets; want none", id, j.Puts["running"], j.StartResets)
		}
	}

	for _, stage := range []string{"prepare_script", "get_sources", "build_script", "after_script"} {
		if v := buildsGauge(t, addr, stage, "running"); v != 0 {
			t.Errorf("ci_runner_builds{stage=%q,state=running} = %v after all jobs ended", stage, v)
		}
	}
}

// SIGQUIT lets the running job finish, reports it, and then the runner exits 0.
func TestRunnerSIGQUITFinishesRunningJob(t *testing.T) {
	forEachFlavor(t, testSIGQUITFinishesRunningJob)
}

func testSIGQUITFinishesRunningJob(t *testing.T, f coordinatortest.Flavor) {
	c, repo, sha, runner, _ := startJobs(t, f)
	sync := t.TempDir()
	started, release := filepath.Join(sync, "started"), filepath.Join(sync, "release")
	id := c.EnqueueSpec(e2eRunnerToken, e2eJob(repo, sha, 600,
		"echo yes > "+started, "while [ ! -e "+release+" ]; do sleep 0.1; done", "echo finished-after-quit"))
	waitFile(t, started)
	runner.cmd.Process.Signal(syscall.SIGQUIT)
	runner.waitLog(`SIGQUIT: taking no more jobs`)
	writeFile(t, release, "go")
	if code := runner.wait(60 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGQUIT", code)
	}
	if j := c.Job(id); j.State != "success" || !strings.Contains(j.Stored, "finished-after-quit") {
		t.Fatalf("job after SIGQUIT: %q, stored trace:\n%s", j.State, j.Stored)
	}
}

// SIGTERM stops the running job at once and reports runner_system_failure.
func TestRunnerSIGTERMAbortsRunningJob(t *testing.T) {
	forEachFlavor(t, testSIGTERMAbortsRunningJob)
}

func testSIGTERMAbortsRunningJob(t *testing.T, f coordinatortest.Flavor) {
	c, repo, sha, runner, _ := startJobs(t, f)
	pidFile := filepath.Join(t.TempDir(), "job.pid")
	id := c.EnqueueSpec(e2eRunnerToken, e2eJob(repo, sha, 600, "sleep 300 & echo $! > "+pidFile+"; wait"))
	pid, _ := strconv.Atoi(waitFile(t, pidFile))
	runner.cmd.Process.Signal(syscall.SIGTERM)
	runner.wait(60 * time.Second)
	j := c.Job(id)
	if j.State != "failed" || (f == coordinatortest.Strict && j.FailureReason != "runner_system_failure") || !processGone(pid) {
		t.Fatalf("job after SIGTERM: %q/%q, process gone: %v", j.State, j.FailureReason, processGone(pid))
	}
}

// register refuses a wrong registration token without printing it and
// writes the runner into the config (mode 0600, keeping what was there);
// list, verify and unregister then work on it, and a second unregister
// says there is no such runner.
func TestRunnerRegistrationCommands(t *testing.T) { forEachFlavor(t, testRegistrationCommands) }

func testRegistrationCommands(t *testing.T, f coordinatortest.Flavor) {
	c := coordinatortest.NewFlavor(t, f)
	cfg := filepath.Join(t.TempDir(), "config.toml")
	writeFile(t, cfg, "concurrent = 3\n")

	code, out := run(t, 30*time.Second, "alloy-runner", "register", "--config", cfg, "--url", c.URL,
		"--registration-token", "wrong-registration-token", "--description", "ci-1")
	if code != 1 || !strings.Contains(out, "refused the registration token") || strings.Contains(out, "wrong-registration-token") {
		t.Fatalf("register with a wrong token: exit %d\n%s", code, out)
	}
	code, out = run(t, 30*time.Second, "alloy-runner", "register", "--config", cfg, "--url", c.URL,
		"--registration-token", coordinatortest.RegistrationToken, "--description", "ci-1", "--tag-list", "linux,bash")
	if code != 0 || !strings.Contains(out, `registered runner "ci-1"`) || strings.Contains(out, coordinatortest.RegistrationToken) {
		t.Fatalf("register: exit %d\n%s", code, out)
	}
	// What the server received: the runner's info (AlloyCI answers 500
	// without it) and the description.
	regs := c.Registrations()
	if len(regs) != 2 || regs[1].Status != 201 || regs[1].Description != "ci-1" || regs[1].TagList != "linux,bash" ||
		regs[1].Info["name"] != "alloy-runner" || regs[1].Info["executor"] != "shell" || regs[1].Info["shell"] != "bash" ||
		regs[1].Info["platform"] != "linux" || regs[1].Info["version"] == nil || regs[1].Info["revision"] == nil || regs[1].Info["architecture"] == nil {
		t.Fatalf("registrations the server received: %+v", regs)
	}
	fi, _ := os.Stat(cfg)
	b, _ := os.ReadFile(cfg)
	if fi.Mode().Perm() != 0o600 || !strings.Contains(string(b), "concurrent = 3") || !strings.Contains(string(b), `name = "ci-1"`) {
		t.Fatalf("config after register (mode %o):\n%s", fi.Mode().Perm(), b)
	}
	code, out = run(t, 30*time.Second, "alloy-runner", "list", "--config", cfg)
	if code != 0 || !strings.HasPrefix(out, "ci-1 ") || strings.Contains(out, "token") {
		t.Fatalf("list: exit %d\n%s", code, out)
	}
	if code, out = run(t, 30*time.Second, "alloy-runner", "verify", "--config", cfg); code != 0 || out != "runner \"ci-1\": valid\n" {
		t.Fatalf("verify: exit %d\n%s", code, out)
	}
	if code, out = run(t, 30*time.Second, "alloy-runner", "unregister", "--config", cfg, "--name", "ci-1"); code != 0 {
		t.Fatalf("unregister: exit %d\n%s", code, out)
	}
	if code, out = run(t, 30*time.Second, "alloy-runner", "list", "--config", cfg); code != 0 || out != "" {
		t.Fatalf("list after unregister: exit %d\n%q", code, out)
	}
	if code, out = run(t, 30*time.Second, "alloy-runner", "unregister", "--config", cfg, "--name", "ci-1"); code != 1 ||
		!strings.Contains(out, `no runner named "ci-1"`) {
		t.Fatalf("second unregister: exit %d\n%s", code, out)
	}
}

// Without --description, register describes the runner by the host name,
// which AlloyCI requires (403 without one), and writes the token it got.
func TestRunnerRegistersWithTheHostName(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, f coordinatortest.Flavor) {
		c := coordinatortest.NewFlavor(t, f)
		cfg := filepath.Join(t.TempDir(), "config.toml")
		code, out := run(t, 30*time.Second, "alloy-runner", "register", "--config", cfg, "--url", c.URL,
			"--registration-token", coordinatortest.RegistrationToken)
		host, _ := os.Hostname()
		regs := c.Registrations()
		if code != 0 || len(regs) != 1 || regs[0].Status != 201 || regs[0].Description != host {
			t.Fatalf("register without --description: exit %d, registrations %+v\n%s", code, regs, out)
		}
		b, _ := os.ReadFile(cfg)
		if !strings.Contains(string(b), fmt.Sprintf("token = %q", regs[0].RunnerToken)) {
			t.Fatalf("config does not hold the token the server gave:\n%s", b)
		}
	})
}
