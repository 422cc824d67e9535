package builds

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestGaugeFollowsBuilds(t *testing.T) {
	tr := NewTracker()
	if n := testutil.CollectAndCount(tr); n != len(Stages())*len(States()) {
		t.Fatalf("series = %d, want %d", n, len(Stages())*len(States()))
	}
	a, b := tr.Start(), tr.Start()
	b.SetStage(StageBuildScript)
	want := func(prep, build, buildTimedout float64) string {
		var s strings.Builder
		s.WriteString("# HELP ci_runner_builds The current number of running builds.\n# TYPE ci_runner_builds gauge\n")
		for _, st := range Stages() {
			for _, sa := range States() {
				v := 0.0
				switch {
				case st == StagePrepareScript && sa == StateRunning:
					v = prep
				case st == StageBuildScript && sa == StateRunning:
					v = build
				case st == StageBuildScript && sa == StateTimedout:
					v = buildTimedout
				}
				s.WriteString("ci_runner_builds{stage=\"" + string(st) + "\",state=\"" + string(sa) + "\"} ")
				s.WriteString(map[float64]string{0: "0", 1: "1", 2: "2"}[v] + "\n")
			}
		}
		return s.String()
	}
	if err := testutil.CollectAndCompare(tr, strings.NewReader(want(1, 1, 0))); err != nil {
		t.Fatal(err)
	}
	b.SetState(StateTimedout)
	if err := testutil.CollectAndCompare(tr, strings.NewReader(want(1, 0, 1))); err != nil {
		t.Fatal(err)
	}
	a.Done()
	b.Done()
	if err := testutil.CollectAndCompare(tr, strings.NewReader(want(0, 0, 0))); err != nil {
		t.Fatal(err)
	}
}
