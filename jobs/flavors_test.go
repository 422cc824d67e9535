package jobs_test

import (
	"strings"
	"testing"
	"time"

	"github.com/alloyci/hardened-runner/coordinator/coordinatortest"
	"github.com/alloyci/hardened-runner/internal/proctest"
	"github.com/alloyci/hardened-runner/jobs"
)

// forFlavors runs test against a Strict and an AlloyCI double.
func forFlavors(t *testing.T, test func(t *testing.T, f coordinatortest.Flavor)) {
	for _, f := range coordinatortest.Flavors() {
		t.Run(string(f), func(t *testing.T) { test(t, f) })
	}
}

func spec(r *repo, sha string, script, after []string, vars ...coordinatortest.Variable) coordinatortest.Spec {
	return coordinatortest.Spec{RepoURL: r.url, Ref: "main", SHA: sha, Script: script, AfterScript: after, Variables: vars}
}

// assertTraceKept checks what the coordinator keeps of a finished job: the
// whole masked trace, from a final PUT that carried it, no PUT running, and
// no chunk sent more than once.
func (h *harness) assertTraceKept(got coordinatortest.Job, wants ...string) {
	h.t.Helper()
	for _, want := range append([]string{"Running with alloy-runner"}, wants...) {
		if !strings.Contains(got.Stored, want) {
			h.t.Errorf("stored trace lacks %q:\n%s", want, got.Stored)
		}
	}
	h.assertNoSecrets(got.Stored)
	h.assertNoSecrets(got.Live)
	if !got.TraceInUpdate {
		h.t.Error("the final state did not carry the whole trace")
	}
	if got.Puts["running"] != 0 || got.StartResets != 0 {
		h.t.Errorf("%d PUT running (%d start resets): never a keep-alive", got.Puts["running"], got.StartResets)
	}
	if limit := len(got.Stored) * 11 / 10; got.Patched > limit {
		h.t.Errorf("patched %d bytes for a trace of %d: more than 10%% sent again", got.Patched, len(got.Stored))
	}
}

// Variables of every YAML type reach the script as YAML shows them, secret
// ones masked; the stored trace is complete.
func TestFlavorsSuccessfulJob(t *testing.T) {
	forFlavors(t, func(t *testing.T, f coordinatortest.Flavor) {
		h := newFlavorHarness(t, f, "runner-token-a")
		r := newRepo(t)
		sha := r.commit("file.txt", "x")
		id := h.enqueueSpec("runner-token-a", spec(r, sha, []string{
			"echo depth=$DEPTH ratio=$RATIO flag=$FLAG nothing=[$NOTHING] secret=$SECRET",
			"sleep 0.1", "echo token=$CI_JOB_TOKEN repo=$CI_REPOSITORY_URL",
		}, []string{"echo after-ran"},
			coordinatortest.Variable{Key: "DEPTH", Value: 3, Public: true},
			coordinatortest.Variable{Key: "RATIO", Value: 1.5, Public: true},
			coordinatortest.Variable{Key: "FLAG", Value: true, Public: true},
			coordinatortest.Variable{Key: "NOTHING", Value: nil, Public: true},
			coordinatortest.Variable{Key: "SECRET", Value: "flavor-s3cret-value", Public: false}))
		h.start(1, h.runner("a", "runner-token-a"))

		got := h.d.AwaitFinal(id)
		if got.State != "success" {
			t.Fatalf("final = %s/%s\n%s", got.State, got.FailureReason, got.Stored)
		}
		h.assertTraceKept(got, "depth=3 ratio=1.5 flag=true nothing=[] secret=[MASKED]\n", "token=[MASKED]", "after-ran\n", "Job succeeded\n")
	})
}

// A failing and a timed-out job keep their whole trace too, and the final
// PUT outlasts an outage.
func TestFlavorsFailureAndTimeoutKeepTheTrace(t *testing.T) {
	forFlavors(t, func(t *testing.T, f coordinatortest.Flavor) {
		h := newFlavorHarness(t, f, "runner-token-a")
		r := newRepo(t)
		sha := r.commit("file.txt", "x")
		failing := h.enqueueSpec("runner-token-a", spec(r, sha, []string{"echo before", "exit 3"}, []string{"echo after-ran"}))
		h.d.FailFinalUpdates(failing, 502, 0)
		slow := spec(r, sha, []string{"echo sleeping", "sleep 300"}, nil)
		slow.Raw = map[string]any{"runner_info": map[string]any{"timeout": 1}}
		timedOut := h.enqueueSpec("runner-token-a", slow)
		h.start(1, h.runner("a", "runner-token-a"))

		got := h.d.AwaitFinal(failing)
		if got.State != "failed" || got.FinalAttempts < 3 {
			t.Errorf("failing job: %s after %d final attempts", got.State, got.FinalAttempts)
		}
		h.assertTraceKept(got, "before\n", "after-ran\n", "ERROR: Job failed: exit code 3\n")
		got = h.d.AwaitFinal(timedOut)
		if got.State != "failed" {
			t.Errorf("timed-out job: %s", got.State)
		}
		h.assertTraceKept(got, "sleeping\n", "ERROR: Job failed: execution took longer than 1s\n")
	})
}

// A payload the runner cannot use is reported failed with the reason in the
// stored trace, never dropped: the coordinator already marked it running.
func TestFlavorsUnusablePayloadIsReported(t *testing.T) {
	forFlavors(t, func(t *testing.T, f coordinatortest.Flavor) {
		h := newFlavorHarness(t, f, "runner-token-a")
		r := newRepo(t)
		sha := r.commit("file.txt", "x")
		for raw, why := range map[string]map[string]any{
			"cannot unmarshal number into Go struct field Job.steps of type []coordinator.Step": {"steps": 5},
			`the job has a step "release"`: {"steps": []any{
				map[string]any{"name": "script", "script": []string{"echo must-not-run"}},
				map[string]any{"name": "release", "script": []string{"echo must-not-run"}}}},
			`variable "MAP": the value is an object`: {"variables": []any{map[string]any{"key": "MAP", "value": map[string]any{"a": 1}, "public": true}}},
		} {
			sp := spec(r, sha, []string{"echo must-not-run"}, nil)
			sp.Raw = why
			id := h.enqueueSpec("runner-token-a", sp)
			if h.loop == nil {
				h.start(1, h.runner("a", "runner-token-a"))
			}
			got := h.d.AwaitFinal(id)
			// AlloyCI ignores failure_reason; the strict double records it.
			if got.State != "failed" || (f == coordinatortest.Strict && got.FailureReason != "runner_system_failure") {
				t.Errorf("%s: final = %s/%s", raw, got.State, got.FailureReason)
			}
			h.assertTraceKept(got, "ERROR: this runner cannot use the job the coordinator sent: ", raw)
			if strings.Contains(got.Stored, "must-not-run\n") {
				t.Errorf("%s: the script ran", raw)
			}
		}
	})
}

// A cancel on the coordinator ("canceled"; AlloyCI: "cancelled") reaches
// the runner through the keep-alive's Job-Status and kills the job within
// 5 s with the loop's default 3 s interval; its trace is kept.
func TestFlavorsCancelStopsTheJobAtTheNextReport(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the default trace interval")
	}
	forFlavors(t, func(t *testing.T, f coordinatortest.Flavor) {
		h := newFlavorHarness(t, f, "runner-token-a")
		h.traceEvery = -1 // the loop's default
		r := newRepo(t)
		sha := r.commit("file.txt", "x")
		pidfile := t.TempDir() + "/pid"
		id := h.enqueueSpec("runner-token-a", spec(r, sha, []string{"echo started", "sleep 300 & echo $! > " + pidfile + "; wait"}, nil))
		h.start(1, h.runner("a", "runner-token-a"))
		pid := h.pidFrom(pidfile)
		h.d.Await("the output to reach the coordinator", func() bool { return strings.Contains(h.d.Job(id).Live, "started") })
		h.d.Cancel(id)
		canceled := time.Now()
		h.d.Await("the script to be killed", func() bool { return proctest.Gone(pid) })
		// A figure, not an assertion: the promise rests on the report
		// interval, asserted below, and on the next report seeing the cancel.
		t.Logf("%s: killed %s after the cancel", f, time.Since(canceled).Round(10*time.Millisecond))
		if jobs.DefaultTraceInterval > 3*time.Second {
			t.Errorf("DefaultTraceInterval %s: a cancel could take longer than 5 s to stop a job", jobs.DefaultTraceInterval)
		}
		got := h.d.AwaitFinal(id)
		h.assertTraceKept(got, "started\n", "ERROR: Job failed: canceled\n")
	})
}

// A job printing for 10 s against AlloyCI, whose every answer says Range
// 0-100: the runner sends each byte once, keeps the job alive with empty
// chunks when it prints nothing, and stores the whole trace.
func TestAlloyCIJobPrintingFor10s(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 10 s job")
	}
	h := newFlavorHarness(t, coordinatortest.AlloyCI, "runner-token-a")
	h.traceEvery = -1 // the loop's default
	r := newRepo(t)
	sha := r.commit("file.txt", "x")
	id := h.enqueueSpec("runner-token-a", spec(r, sha, []string{
		`for i in $(seq 1 50); do echo "line $i of the output, with $SECRET"; sleep 0.1; done`,
		"sleep 5", "echo quiet-part-over",
	}, nil, coordinatortest.Variable{Key: "SECRET", Value: "printing-s3cret", Public: false}))
	h.start(1, h.runner("a", "runner-token-a"))
	got := h.d.AwaitFinal(id)
	if got.State != "success" {
		t.Fatalf("final = %s", got.State)
	}
	h.assertTraceKept(got, "line 1 of the output, with [MASKED]\n", "line 50 of the output, with [MASKED]\n", "quiet-part-over\n")
	if got.Patched < len(got.Stored)/2 {
		t.Errorf("patched %d bytes of a %d-byte trace: the output did not go out while the job ran", got.Patched, len(got.Stored))
	}
}
