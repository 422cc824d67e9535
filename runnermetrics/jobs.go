package runnermetrics

import (
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
)

// Job results and failure reasons, the values of the state and
// failure_reason labels: what the runner reported to the coordinator.
const (
	JobSuccess = "success"
	JobFailed  = "failed"
)

// FailureReasons are the failure_reason values the runner reports, each
// exported at zero from the first scrape.
func FailureReasons() []string {
	return []string{"script_failure", "runner_system_failure", "job_execution_timeout"}
}

// Jobs are the counters an operator graphs: jobs by runner and result,
// failures by reason, how long jobs take, and the runner's own warnings and
// errors. The runner label is the runner's name from config.toml, never any
// part of its token.
type Jobs struct {
	jobs     *prometheus.CounterVec
	failed   *prometheus.CounterVec
	duration *prometheus.HistogramVec
	errors   *prometheus.CounterVec

	mu    sync.Mutex
	known map[string]bool // runners whose series exist
}

// NewJobs returns the job metrics with the error series at zero; call
// Runners with the configured runners' names.
func NewJobs() *Jobs {
	j := &Jobs{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ci_runner_jobs_total",
			Help: "Jobs this runner finished and reported, by runner (its name in config.toml) and state (success or failed).",
		}, []string{"runner", "state"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ci_runner_failed_jobs_total",
			Help: "Failed jobs by runner and failure_reason: script_failure (the job's own doing: its script, its variables, artifacts too large, a bad or missing dependency archive), runner_system_failure (the runner could not run it: sources, the coordinator's artifacts service, the runner's disk, a job it cannot read), job_execution_timeout.",
		}, []string{"runner", "failure_reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ci_runner_job_duration_seconds",
			Help:    "How long jobs took, from receiving them to reporting their result, in seconds, by runner.",
			Buckets: []float64{10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200},
		}, []string{"runner"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ci_runner_errors_total",
			Help: "Log lines the runner wrote at level warn and error, by level: a rising rate says to read its log.",
		}, []string{"level"}),
		known: map[string]bool{},
	}
	for _, l := range []string{"warn", "error"} {
		j.errors.WithLabelValues(l)
	}
	return j
}

// Collectors lists the families, for a registry.
func (j *Jobs) Collectors() []prometheus.Collector {
	return []prometheus.Collector{j.jobs, j.failed, j.duration, j.errors}
}

// Runners makes every series of the named runners exist at zero, so a rate
// or an alert works before the first job. Runners removed from the config
// keep their series until restart: their counts stay true.
func (j *Jobs) Runners(names []string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, n := range names {
		if j.known[n] {
			continue
		}
		j.known[n] = true
		j.jobs.WithLabelValues(n, JobSuccess)
		j.jobs.WithLabelValues(n, JobFailed)
		for _, r := range FailureReasons() {
			j.failed.WithLabelValues(n, r)
		}
		j.duration.WithLabelValues(n)
	}
}

// Finished counts one reported job.
func (j *Jobs) Finished(runner, state, failureReason string, took time.Duration) {
	j.Runners([]string{runner})
	j.jobs.WithLabelValues(runner, state).Inc()
	if state == JobFailed {
		j.failed.WithLabelValues(runner, failureReason).Inc()
	}
	j.duration.WithLabelValues(runner).Observe(took.Seconds())
}

// CountErrors returns a logger that passes every line to next and counts
// those at level warn and error in ci_runner_errors_total. (The name keeps
// the counter suffix Prometheus's conventions and promtool require; the
// upstream runner's old ci_runner_errors lacked it.)
func (j *Jobs) CountErrors(next log.Logger) log.Logger {
	return log.LoggerFunc(func(keyvals ...any) error {
		for i := 0; i+1 < len(keyvals); i += 2 {
			if keyvals[i] != level.Key() {
				continue
			}
			switch keyvals[i+1] {
			case level.WarnValue():
				j.errors.WithLabelValues("warn").Inc()
			case level.ErrorValue():
				j.errors.WithLabelValues("error").Inc()
			}
			break
		}
		return next.Log(keyvals...)
	})
}
