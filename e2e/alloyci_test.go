package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/alloyci/hardened-runner/coordinator/coordinatortest"
)

// A job's output reaches the server while it runs, and each byte is sent
// once: AlloyCI ignores Content-Range and always answers Range: 0-100, so a
// runner that believed it would resend everything from byte 100 every few
// seconds. Over a 10 s job printing all along, the bytes patched are at most
// 10 % more than the trace the server keeps, which holds every line.
func TestRunnerStreamsOutputOnce(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, f coordinatortest.Flavor) {
		c, repo, sha, _, _ := startJobs(t, f)
		id := c.EnqueueSpec(e2eRunnerToken, e2eJob(repo, sha, 600,
			`for i in $(seq 1 50); do echo "progress line $i of the long job"; sleep 0.2; done`))
		// Streamed: the first lines are on the server before the job ends.
		c.Await("the first lines streamed", func() bool {
			j := c.Job(id)
			return strings.Contains(j.Live, "progress line 1 of") || j.Final
		})
		if j := c.Job(id); j.Final {
			t.Fatal("no output reached the server before the job ended")
		}
		j := c.AwaitFinal(id)
		if j.State != "success" {
			t.Fatalf("job: %s\n%s", j.State, j.Stored)
		}
		for i := 1; i <= 50; i++ {
			if !strings.Contains(j.Stored, fmt.Sprintf("progress line %d of the long job\n", i)) {
				t.Fatalf("stored trace lacks line %d:\n%s", i, j.Stored)
			}
		}
		ratio := float64(j.Patched) / float64(len(j.Stored))
		t.Logf("%s: %d bytes patched for a stored trace of %d (%.3fx)", f, j.Patched, len(j.Stored), ratio)
		if j.Patched > len(j.Stored)*11/10 {
			t.Errorf("%d bytes patched for a trace of %d: more than 10 %% resent", j.Patched, len(j.Stored))
		}
		if j.Puts["running"] != 0 || j.StartResets != 0 {
			t.Errorf("%d PUT running, %d start resets; want none", j.Puts["running"], j.StartResets)
		}
	})
}

// A job payload the runner cannot use (a field of the wrong type, an unknown
// step) was already marked running by the server: it is reported failed,
// with the reason in the stored trace, and nothing of it runs.
func TestRunnerReportsAnUnusableJob(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, f coordinatortest.Flavor) {
		c, repo, sha, _, _ := startJobs(t, f)
		sp := e2eJob(repo, sha, 600, "echo must-not-run")
		sp.Raw["steps"] = []any{
			map[string]any{"name": "script", "script": []string{"echo must-not-run"}, "timeout": 60, "when": "on_success"},
			map[string]any{"name": "release", "script": []string{"echo must-not-run"}, "timeout": 60, "when": "on_success"},
		}
		id := c.EnqueueSpec(e2eRunnerToken, sp)
		j := c.AwaitFinal(id)
		want := `ERROR: this runner cannot use the job the coordinator sent: the job has a step "release"`
		if j.State != "failed" || !strings.Contains(j.Stored, want) || strings.Contains(j.Stored, "must-not-run\n") {
			t.Fatalf("unusable job: %s, stored trace:\n%s", j.State, j.Stored)
		}
		if f == coordinatortest.Strict && j.FailureReason != "runner_system_failure" {
			t.Errorf("failure reason %q, want runner_system_failure", j.FailureReason)
		}

		// A variable whose value is an object is just as unusable.
		sp = e2eJob(repo, sha, 600, "echo must-not-run")
		sp.Raw["variables"] = []any{map[string]any{"key": "WEIRD", "value": map[string]any{"a": 1}, "public": true}}
		id = c.EnqueueSpec(e2eRunnerToken, sp)
		j = c.AwaitFinal(id)
		if j.State != "failed" || !strings.Contains(j.Stored, `ERROR: this runner cannot use the job the coordinator sent: `) ||
			!strings.Contains(j.Stored, "WEIRD") || strings.Contains(j.Stored, "must-not-run\n") {
			t.Fatalf("job with an object variable: %s, stored trace:\n%s", j.State, j.Stored)
		}
	})
}
