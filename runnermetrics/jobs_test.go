package runnermetrics

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func isJobFamily(n string) bool {
	switch n {
	case "ci_runner_jobs_total", "ci_runner_failed_jobs_total", "ci_runner_job_duration_seconds", "ci_runner_errors_total":
		return true
	}
	return false
}

// Every family is exported from the first scrape, at zero, for each
// configured runner.
func TestJobFamiliesStartAtZero(t *testing.T) {
	j := NewJobs()
	j.Runners([]string{"build-1"})
	reg := prometheus.NewRegistry()
	reg.MustRegister(j.Collectors()...)
	want := `# HELP ci_runner_errors_total Log lines the runner wrote at level warn and error, by level: a rising rate says to read its log.
# TYPE ci_runner_errors_total counter
ci_runner_errors_total{level="error"} 0
ci_runner_errors_total{level="warn"} 0
# HELP ci_runner_failed_jobs_total Failed jobs by runner and failure_reason: script_failure (the job's own doing: its script, its variables, artifacts too large, a bad or missing dependency archive), runner_system_failure (the runner could not run it: sources, the coordinator's artifacts service, the runner's disk, a job it cannot read), job_execution_timeout.
# TYPE ci_runner_failed_jobs_total counter
ci_runner_failed_jobs_total{failure_reason="job_execution_timeout",runner="build-1"} 0
ci_runner_failed_jobs_total{failure_reason="runner_system_failure",runner="build-1"} 0
ci_runner_failed_jobs_total{failure_reason="script_failure",runner="build-1"} 0
# HELP ci_runner_jobs_total Jobs this runner finished and reported, by runner (its name in config.toml) and state (success or failed).
# TYPE ci_runner_jobs_total counter
ci_runner_jobs_total{runner="build-1",state="failed"} 0
ci_runner_jobs_total{runner="build-1",state="success"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ci_runner_errors_total", "ci_runner_failed_jobs_total", "ci_runner_jobs_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(j.duration, "ci_runner_job_duration_seconds"); n != 1 {
		t.Errorf("duration series = %d, want 1", n)
	}
}

func TestFinishedCountsByRunnerStateAndReason(t *testing.T) {
	j := NewJobs()
	j.Finished("build-1", JobSuccess, "", 90*time.Second)
	j.Finished("build-1", JobFailed, "script_failure", 10*time.Second)
	j.Finished("build-2", JobFailed, "runner_system_failure", time.Second)
	for series, want := range map[prometheus.Collector]float64{
		j.jobs.WithLabelValues("build-1", JobSuccess):                1,
		j.jobs.WithLabelValues("build-1", JobFailed):                 1,
		j.jobs.WithLabelValues("build-2", JobFailed):                 1,
		j.jobs.WithLabelValues("build-2", JobSuccess):                0,
		j.failed.WithLabelValues("build-1", "script_failure"):        1,
		j.failed.WithLabelValues("build-2", "runner_system_failure"): 1,
		j.failed.WithLabelValues("build-1", "runner_system_failure"): 0,
		j.failed.WithLabelValues("build-2", "job_execution_timeout"): 0,
	} {
		if got := testutil.ToFloat64(series); got != want {
			t.Errorf("%v = %v, want %v", series, got, want)
		}
	}
	h := j.duration.WithLabelValues("build-1").(prometheus.Histogram)
	if n := testutil.CollectAndCount(h); n != 1 {
		t.Fatalf("histogram series %d", n)
	}
}

func TestCountErrorsByLevel(t *testing.T) {
	j := NewJobs()
	var buf bytes.Buffer
	l := j.CountErrors(log.NewLogfmtLogger(&buf))
	level.Info(l).Log("msg", "fine")
	level.Warn(l).Log("msg", "hm")
	level.Error(l).Log("msg", "bad")
	level.Error(log.With(l, "component", "jobs")).Log("msg", "bad again")
	l.Log("msg", "no level")
	if w, e := testutil.ToFloat64(j.errors.WithLabelValues("warn")), testutil.ToFloat64(j.errors.WithLabelValues("error")); w != 1 || e != 2 {
		t.Errorf("warn %v error %v, want 1 and 2", w, e)
	}
	if n := strings.Count(buf.String(), "\n"); n != 5 {
		t.Errorf("%d lines passed on, want 5:\n%s", n, buf.String())
	}
}
