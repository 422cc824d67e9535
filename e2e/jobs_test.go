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

	"github.com/alloyci/hardened-runner/coordinator"
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
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	writeFile(t, cfg, fmt.Sprintf(`concurrent = 2
check_interval = 1
metrics_server = "127.0.0.1:0"

[[runners]]
  name = "e2e"
  url = %q
  token = %q
  executor = "shell"
  builds_dir = %q
`, c.URL, e2eRunnerToken, filepath.Join(dir, "builds")))
	p := start(t, "alloy-runner", "run", "--config", cfg)
	return p, p.waitLog(`msg="metrics server listening" addr=tcp:(\S+)`)
}

// startJobs is a coordinator double that knows the e2e runner's token, a
// repository with one commit for its jobs, and the runner polling the
// double (startJobRunner).
func startJobs(t *testing.T) (c *coordinatortest.Server, repoURL, sha string, runner *proc, metricsAddr string) {
	t.Helper()
	c = coordinatortest.New(t)
	c.AddRunner(e2eRunnerToken)
	repoURL, sha = gitRepo(t)
	runner, metricsAddr = startJobRunner(t, c)
	return c, repoURL, sha, runner, metricsAddr
}

func e2eJob(repoURL, sha string, timeout int, script ...string) coordinator.Job {
	return coordinator.Job{
		AllowGitFetch: true,
		JobInfo:       coordinator.JobInfo{Name: "test", Stage: "test", ProjectID: 7, ProjectName: "app"},
		GitInfo:       coordinator.GitInfo{RepoURL: repoURL, Ref: "main", Sha: sha, RefType: "branch"},
		RunnerInfo:    coordinator.RunnerInfo{Timeout: timeout},
		Variables: []coordinator.Variable{
			{Key: "CI", Value: "true", Public: true},
			{Key: "SECRET_VAR", Value: e2eSecret, Public: false},
		},
		Steps: []coordinator.Step{
			{Name: "script", Script: script, Timeout: timeout, When: "on_success"},
			{Name: "after_script", Script: []string{"echo after-script-ran"}, Timeout: 60, When: "always"},
		},
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
func processGone(pid int) bool {
	for range 100 {
		if proctest.Gone(pid) {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// The runner takes jobs from the coordinator and runs them with the shell
// executor: a successful job (its secret masked in the trace, the build
// counted as running while it runs), a failing script, a canceled job and a
// timed-out one, whose processes are gone afterwards.
func TestRunnerRunsJobsEndToEnd(t *testing.T) {
	c, repo, sha, runner, addr := startJobs(t)
	sync := t.TempDir()

	// A successful job, held in build_script until the test has seen it there.
	started, release := filepath.Join(sync, "started"), filepath.Join(sync, "release")
	id := c.Enqueue(e2eRunnerToken, e2eJob(repo, sha, 600,
		"cat README", "echo secret is $SECRET_VAR",
		"echo yes > "+started, "while [ ! -e "+release+" ]; do sleep 0.1; done"))
	waitFile(t, started)
	if v := buildsGauge(t, addr, "build_script", "running"); v != 1 {
		t.Fatalf("ci_runner_builds{stage=build_script,state=running} = %v while the job runs, want 1", v)
	}
	writeFile(t, release, "go")
	j := c.AwaitFinal(id)
	if j.State != "success" || !strings.Contains(j.Trace, "hello from the e2e repository") ||
		!strings.Contains(j.Trace, "secret is [MASKED]") || !strings.Contains(j.Trace, "after-script-ran") {
		t.Fatalf("success job: state %q, trace:\n%s", j.State, j.Trace)
	}
	if strings.Contains(j.Trace, e2eSecret) || strings.Contains(runner.Logs(), e2eSecret) || strings.Contains(runner.Logs(), e2eRunnerToken) {
		t.Fatal("a secret reached the trace or the log")
	}

	// A failing script.
	id = c.Enqueue(e2eRunnerToken, e2eJob(repo, sha, 600, "echo before", "false", "echo never"))
	j = c.AwaitFinal(id)
	if j.State != "failed" || j.FailureReason != "script_failure" || strings.Contains(j.Trace, "\nnever") ||
		!strings.Contains(j.Trace, "after-script-ran") {
		t.Fatalf("failing job: %q/%q, trace:\n%s", j.State, j.FailureReason, j.Trace)
	}

	// A canceled job: its processes are gone.
	pidFile := filepath.Join(sync, "cancel.pid")
	id = c.Enqueue(e2eRunnerToken, e2eJob(repo, sha, 600, "sleep 300 & echo $! > "+pidFile+"; wait"))
	pid, _ := strconv.Atoi(waitFile(t, pidFile))
	c.Cancel(id)
	j = c.AwaitFinal(id)
	if j.State != "failed" || !processGone(pid) {
		t.Fatalf("canceled job: state %q, process %d gone: %v", j.State, pid, processGone(pid))
	}

	// A timed-out job: its processes are gone too.
	pidFile = filepath.Join(sync, "timeout.pid")
	id = c.Enqueue(e2eRunnerToken, e2eJob(repo, sha, 2, "sleep 300 & echo $! > "+pidFile+"; wait"))
	pid, _ = strconv.Atoi(waitFile(t, pidFile))
	j = c.AwaitFinal(id)
	if j.State != "failed" || j.FailureReason != "job_execution_timeout" || !processGone(pid) {
		t.Fatalf("timed-out job: %q/%q, process gone: %v", j.State, j.FailureReason, processGone(pid))
	}

	for _, stage := range []string{"prepare_script", "get_sources", "build_script", "after_script"} {
		if v := buildsGauge(t, addr, stage, "running"); v != 0 {
			t.Errorf("ci_runner_builds{stage=%q,state=running} = %v after all jobs ended", stage, v)
		}
	}
}

// SIGQUIT lets the running job finish, reports it, and then the runner exits 0.
func TestRunnerSIGQUITFinishesRunningJob(t *testing.T) {
	c, repo, sha, runner, _ := startJobs(t)
	sync := t.TempDir()
	started, release := filepath.Join(sync, "started"), filepath.Join(sync, "release")
	id := c.Enqueue(e2eRunnerToken, e2eJob(repo, sha, 600,
		"echo yes > "+started, "while [ ! -e "+release+" ]; do sleep 0.1; done", "echo finished-after-quit"))
	waitFile(t, started)
	runner.cmd.Process.Signal(syscall.SIGQUIT)
	runner.waitLog(`SIGQUIT: taking no more jobs`)
	writeFile(t, release, "go")
	if code := runner.wait(60 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGQUIT", code)
	}
	if j := c.Job(id); j.State != "success" || !strings.Contains(j.Trace, "finished-after-quit") {
		t.Fatalf("job after SIGQUIT: %q, trace:\n%s", j.State, j.Trace)
	}
}

// SIGTERM stops the running job at once and reports runner_system_failure.
func TestRunnerSIGTERMAbortsRunningJob(t *testing.T) {
	c, repo, sha, runner, _ := startJobs(t)
	pidFile := filepath.Join(t.TempDir(), "job.pid")
	id := c.Enqueue(e2eRunnerToken, e2eJob(repo, sha, 600, "sleep 300 & echo $! > "+pidFile+"; wait"))
	pid, _ := strconv.Atoi(waitFile(t, pidFile))
	runner.cmd.Process.Signal(syscall.SIGTERM)
	runner.wait(60 * time.Second)
	j := c.Job(id)
	if j.State != "failed" || j.FailureReason != "runner_system_failure" || !processGone(pid) {
		t.Fatalf("job after SIGTERM: %q/%q, process gone: %v", j.State, j.FailureReason, processGone(pid))
	}
}

// register refuses a wrong registration token without printing it and
// writes the runner into the config (mode 0600, keeping what was there);
// list, verify and unregister then work on it, and a second unregister
// says there is no such runner.
func TestRunnerRegistrationCommands(t *testing.T) {
	c := coordinatortest.New(t)
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
