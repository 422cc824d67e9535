package jobs_test

import (
	"strings"
	"testing"

	"github.com/alloyci/hardened-runner/coordinator"
)

// A job the runner cannot use was already marked running by the
// coordinator: it is reported failed with the reason in its trace, and no
// script of it runs.
func TestUnusableJobIsReportedFailed(t *testing.T) {
	h := newHarness(t, "runner-token-a")
	r := newRepo(t)
	sha := r.commit("file.txt", "x")
	j := job(r, sha, []string{"echo must-not-run"}, nil)
	j.Steps = append(j.Steps, coordinator.Step{Name: "release", Script: []string{"echo must-not-run"}})
	id := h.enqueue("runner-token-a", j)
	h.start(1, h.runner("a", "runner-token-a"))

	got := h.d.AwaitFinal(id)
	if got.State != "failed" || got.FailureReason != "runner_system_failure" {
		t.Fatalf("final = %s/%s, want failed/runner_system_failure", got.State, got.FailureReason)
	}
	want := `ERROR: this runner cannot use the job the coordinator sent: the job has a step "release"; this runner knows only "script" and "after_script"` + "\n"
	if !strings.Contains(got.Trace, want) || strings.Contains(got.Trace, "must-not-run\n") || !strings.Contains(got.Trace, "ERROR: Job failed: runner system failure: unusable job: ") {
		t.Fatalf("trace lacks %q or ran the script:\n%s", want, got.Trace)
	}
}
