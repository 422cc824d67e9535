package runnermetrics

import (
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/alloyci/hardened-runner/builds"
	dto "github.com/prometheus/client_model/go"
)

func TestFamilies(t *testing.T) {
	reg := NewRegistry(builds.NewTracker(), NewJobs())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
		n := mf.GetName()
		if !strings.HasPrefix(n, "go_") && !strings.HasPrefix(n, "process_") &&
			n != "ci_runner_builds" && n != "ci_runner_version_info" && !isJobFamily(n) {
			t.Errorf("undocumented family %q", n)
		}
		if strings.Contains(n, "docker_machines") {
			t.Errorf("docker+machine family %q exported", n)
		}
	}
	for _, n := range []string{"go_goroutines", "go_gc_duration_seconds", "go_memstats_alloc_bytes", "process_start_time_seconds"} {
		if byName[n] == nil && (n != "process_start_time_seconds" || runtime.GOOS == "linux") {
			t.Errorf("family %q missing", n)
		}
	}
	vi := byName["ci_runner_version_info"]
	if vi == nil || vi.GetType() != dto.MetricType_GAUGE || len(vi.Metric) != 1 || vi.Metric[0].GetGauge().GetValue() != 1 {
		t.Fatalf("ci_runner_version_info = %v", vi)
	}
	var labels []string
	for _, l := range vi.Metric[0].Label {
		labels = append(labels, l.GetName())
		if l.GetName() == "name" && l.GetValue() != "alloy-runner" {
			t.Errorf("name = %q", l.GetValue())
		}
		if l.GetName() == "go_version" && l.GetValue() != runtime.Version() {
			t.Errorf("go_version = %q", l.GetValue())
		}
	}
	sort.Strings(labels)
	if got := strings.Join(labels, ","); got != "architecture,branch,built_at,go_version,name,os,revision,version" {
		t.Fatalf("labels = %s", got)
	}
	b := byName["ci_runner_builds"]
	if b == nil || b.GetType() != dto.MetricType_GAUGE || b.GetHelp() != "The current number of running builds." {
		t.Fatalf("ci_runner_builds = %v", b)
	}
}
