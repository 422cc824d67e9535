// Package runnermetrics assembles the runner's metric registry: exactly the
// families its documentation lists that this distribution has (builds, version
// information, Go runtime and process), on a registry of its own.
package runnermetrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/version"
)

// Name is the runner's name in ci_runner_version_info.
const Name = "alloy-runner"

// NewRegistry returns a registry with ci_runner_builds (from builds), the
// job counters (from jobs; nil for none), ci_runner_version_info, and the
// go_* and process_* collectors. The seed's
// ci_docker_machines* and ci_ssh_docker_machines* families belong to the
// docker+machine executor, which this distribution does not ship, so they are
// not exported.
func NewRegistry(builds prometheus.Collector, jobs *Jobs) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	if jobs != nil {
		reg.MustRegister(jobs.Collectors()...)
	}
	reg.MustRegister(
		builds,
		VersionInfo(),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// VersionInfo is the constant ci_runner_version_info gauge, labelled with the
// build information the Makefile injects.
func VersionInfo() prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "ci_runner_version_info",
		Help: "A metric with a constant '1' value labeled by different build stats fields.",
		ConstLabels: prometheus.Labels{
			"architecture": version.GoArch,
			"branch":       version.Branch,
			"built_at":     version.BuildDate,
			"go_version":   version.GoVersion,
			"name":         Name,
			"os":           version.GoOS,
			"revision":     version.Revision,
			"version":      version.Version,
		},
	})
	g.Set(1)
	return g
}
