// Package builds tracks the jobs a runner is working on right now, by stage and
// state, and exports them as the ci_runner_builds gauge the runner's
// documentation describes.
package builds

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Stage is the part of a job being executed.
type Stage string

// The stages a job goes through, in order: the upstream runner's eight.
const (
	StagePrepareScript     Stage = "prepare_script"
	StageGetSources        Stage = "get_sources"
	StageRestoreCache      Stage = "restore_cache"
	StageDownloadArtifacts Stage = "download_artifacts"
	StageBuildScript       Stage = "build_script"
	StageAfterScript       Stage = "after_script"
	StageArchiveCache      Stage = "archive_cache"
	StageUploadArtifacts   Stage = "upload_artifacts"
)

// Stages lists every stage in the order a job goes through them. It is a
// function so that no caller can change the list for everyone.
func Stages() []Stage {
	return []Stage{StagePrepareScript, StageGetSources, StageRestoreCache, StageDownloadArtifacts,
		StageBuildScript, StageAfterScript, StageArchiveCache, StageUploadArtifacts}
}

// State is where a job stands: running, or the way it ended.
type State string

// The states of a job. A job is running until it ends in one of the others.
const (
	StateRunning    State = "running"
	StateFinished   State = "finished"
	StateCanceled   State = "canceled"
	StateTimedout   State = "timedout"
	StateTerminated State = "terminated"
)

// States lists every state, running first.
func States() []State {
	return []State{StateRunning, StateFinished, StateCanceled, StateTimedout, StateTerminated}
}

// Tracker holds the runner's live builds. It is safe for concurrent use and
// is a prometheus.Collector for ci_runner_builds.
type Tracker struct {
	mu     sync.Mutex
	builds map[*Build]struct{}
	desc   *prometheus.Desc
}

// Build is one job's entry in a Tracker. Its methods are safe for concurrent use.
type Build struct {
	t     *Tracker
	stage Stage
	state State
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker {
	return &Tracker{
		builds: make(map[*Build]struct{}),
		desc: prometheus.NewDesc("ci_runner_builds",
			"The current number of running builds.",
			[]string{"stage", "state"}, nil),
	}
}

// Start adds a build in stage prepare_script, state running.
func (t *Tracker) Start() *Build {
	b := &Build{t: t, stage: StagePrepareScript, state: StateRunning}
	t.mu.Lock()
	t.builds[b] = struct{}{}
	t.mu.Unlock()
	return b
}

// SetStage moves the build to stage s.
func (b *Build) SetStage(s Stage) {
	b.t.mu.Lock()
	b.stage = s
	b.t.mu.Unlock()
}

// SetState records how the build ended (or that it runs again).
func (b *Build) SetState(s State) {
	b.t.mu.Lock()
	b.state = s
	b.t.mu.Unlock()
}

// Done removes the build from the tracker; it no longer counts.
func (b *Build) Done() {
	b.t.mu.Lock()
	delete(b.t.builds, b)
	b.t.mu.Unlock()
}

// Counts returns how many builds are in each stage and state right now.
func (t *Tracker) Counts() map[Stage]map[State]int {
	out := make(map[Stage]map[State]int, len(Stages()))
	t.mu.Lock()
	defer t.mu.Unlock()
	for b := range t.builds {
		if out[b.stage] == nil {
			out[b.stage] = make(map[State]int, len(States()))
		}
		out[b.stage][b.state]++
	}
	return out
}

// Describe implements prometheus.Collector.
func (t *Tracker) Describe(ch chan<- *prometheus.Desc) { ch <- t.desc }

// Collect implements prometheus.Collector. Every stage and state is exported,
// zero when no build is there, so dashboards and alerts never see the series
// vanish when the runner goes idle.
func (t *Tracker) Collect(ch chan<- prometheus.Metric) {
	counts := t.Counts()
	states := States()
	for _, stage := range Stages() {
		for _, state := range states {
			ch <- prometheus.MustNewConstMetric(t.desc, prometheus.GaugeValue,
				float64(counts[stage][state]), string(stage), string(state))
		}
	}
}
