package jobs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/alloyci/hardened-runner/builds"
	"github.com/alloyci/hardened-runner/config"
	"github.com/alloyci/hardened-runner/coordinator"
	"github.com/alloyci/hardened-runner/shell"
)

// Causes of a job's end that are not the script's doing.
var (
	errCanceled        = errors.New("canceled on the coordinator")
	errForbidden       = errors.New("the job token is no longer valid")
	errTimedOut        = errors.New("job execution timeout")
	errAfterScriptTime = errors.New("after_script timeout")
)

// jobRun is one job from request to report.
type jobRun struct {
	l        *Loop
	runner   config.Runner
	runnerID string
	job      *coordinator.Job
	logger   log.Logger
	build    *builds.Build
	trace    *traceBuffer
	out      *shell.Masker
	// stop ends the job's processes with a cause.
	stop context.CancelCauseFunc
	// sent is the runner's own count of the trace bytes the coordinator
	// accepted (a 416 alone may correct it). The uploader owns it while the
	// job runs, the final report afterwards.
	sent int64
}

// result is how a job ended.
type result struct {
	build   builds.State
	update  coordinator.Update
	message string // the trace's last line
	// report: whether and how hard to report the result. A job whose token
	// was revoked cannot be reported; every other result carries the whole
	// trace and is retried with back-off.
	report bool
	retry  coordinator.Retry
}

func newJobRun(l *Loop, r config.Runner, runnerID string, job *coordinator.Job) *jobRun {
	j := &jobRun{
		l: l, runner: r, runnerID: runnerID, job: job,
		logger: log.With(l.logger, "runner", r.Name, "job", job.ID, "project", job.JobInfo.ProjectID),
		trace:  newTraceBuffer(l.outputLimit),
	}
	j.out = shell.NewMasker(j.trace, job.Secrets())
	return j
}

func (j *jobRun) printf(format string, args ...any) {
	fmt.Fprintf(j.out, format, args...)
}

func (j *jobRun) run() {
	started := time.Now()
	level.Info(j.logger).Log("msg", "job received", "name", j.job.JobInfo.Name, "stage", j.job.JobInfo.Stage)
	j.build = j.l.tracker.Start()
	defer j.build.Done()

	ctx, stop := context.WithCancelCause(j.l.abortCtx)
	defer stop(nil)
	j.stop = stop

	stopUpload := make(chan struct{})
	uploaded := make(chan struct{})
	go func() {
		defer close(uploaded)
		j.upload(stopUpload)
	}()

	res := j.execute(ctx)
	j.build.SetState(res.build)
	if res.update.State == coordinator.StateSuccess {
		j.printf("Job succeeded\n")
	} else {
		j.printf("ERROR: Job failed: %s\n", res.message)
	}
	_ = j.out.Flush()
	close(stopUpload)
	<-uploaded

	j.report(res)
	if j.l.finished != nil {
		j.l.finished(j.runner.Name, res.update.State, res.update.FailureReason, time.Since(started))
	}
	level.Info(j.logger).Log("msg", "job finished", "state", res.update.State, "failure_reason", res.update.FailureReason,
		"outcome", res.build, "duration", time.Since(started).Round(time.Millisecond))
}

// workspace is what a job's stages share: where it runs, its environment,
// the variables that tune the stages, and the contexts that stop it.
type workspace struct {
	// outer ends with a cancel on the coordinator, a revoked job token or
	// the runner's abort; ctx is outer bounded by the job's timeout.
	outer, ctx context.Context
	timeout    time.Duration
	// dir is the project directory; tmp is the runner's scratch directory
	// for the job beside it (scripts, archives in transit), which the job's
	// files never share.
	dir, tmp string
	env      []string
	expand   func(string) string
	opts     stageOptions
}

// stoppedIn is stopped for the job running in w.
func (j *jobRun) stoppedIn(w *workspace) (result, bool) { return j.stopped(w.outer, w.ctx, w.timeout) }

// execute runs the job's stages in the upstream runner's order and says how
// it ended. A stage before build_script that fails ends the job there; after
// it, after_script runs whatever the result, then archive_cache on success,
// then upload_artifacts as artifacts: when says. A job that was stopped
// (canceled, token revoked, runner aborting) runs none of the stages after
// its script: the coordinator no longer wants its results.
func (j *jobRun) execute(ctx context.Context) result {
	timeout := j.l.defaultTimeout
	if t := j.job.RunnerInfo.Timeout; t > 0 {
		timeout = time.Duration(t) * time.Second
	}
	jctx, cancel := context.WithTimeoutCause(ctx, timeout, errTimedOut)
	defer cancel()

	w, release, res, ok := j.prepare(ctx, jctx, timeout)
	if !ok {
		return res
	}
	defer release()
	defer os.RemoveAll(w.tmp)
	script, _ := j.job.Step(coordinator.StepScript)

	if res, ok := j.getSources(w); !ok {
		return res
	}
	cache, err := j.cache(w)
	if err != nil {
		return systemFailure(err.Error())
	}
	j.restoreCache(w, cache)
	if res, stopped := j.stoppedIn(w); stopped {
		return res
	}
	if res, ok := j.downloadArtifacts(w); !ok {
		return res
	}

	j.build.SetStage(builds.StageBuildScript)
	j.printf("Executing \"step_script\" stage of the job script\n")
	err = shell.RunScript(jctx, shell.Script{
		Name: "script", Commands: script.Script, Dir: w.dir, Env: w.env, ScriptDir: w.tmp,
	}, j.out)
	_ = j.out.Flush()
	res = j.scriptResult(ctx, jctx, timeout, err)
	res = j.afterScript(w, res)
	if ctx.Err() != nil {
		return res
	}
	if cacheWanted(res) {
		j.archiveCache(w, cache)
	}
	return j.uploadArtifacts(w, res)
}

// prepare is prepare_script: the trace's header, the checks of the job, its
// directories, environment and stage variables. ok is false with the job's
// result when it cannot run.
func (j *jobRun) prepare(ctx, jctx context.Context, timeout time.Duration) (w *workspace, release func(), res result, ok bool) {
	j.header()
	if why := j.job.Unusable; why != "" {
		// The coordinator marked the job running when it handed it out:
		// it must be reported, with the reason in its trace.
		level.Warn(j.logger).Log("msg", "the coordinator sent a job this runner cannot use; reporting it failed", "reason", why)
		j.printf("ERROR: this runner cannot use the job the coordinator sent: %s\n", why)
		return nil, nil, systemFailure("unusable job: " + why), false
	}
	if _, ok := j.job.Step(coordinator.StepScript); !ok {
		return nil, nil, systemFailure("the job has no script step"), false
	}
	base, err := filepath.Abs(j.runner.BuildsDir)
	if err != nil {
		return nil, nil, systemFailure("builds_dir: " + err.Error()), false
	}
	buildsDir := filepath.Join(base, j.runnerID)
	if err := os.MkdirAll(buildsDir, 0o700); err != nil {
		return nil, nil, systemFailure("creating the builds directory: " + err.Error()), false
	}
	dir, release := j.l.projectDir(buildsDir, projectName(j.job.JobInfo))
	env := j.env(dir, base)
	w = &workspace{outer: ctx, ctx: jctx, timeout: timeout, dir: dir, tmp: dir + ".tmp", env: env,
		expand: expander(env, len(j.l.env))}
	opts, errs := parseStageOptions(j.variable)
	if len(errs) > 0 {
		release()
		// The project's .alloy-ci.yml is wrong, not the runner: the job's
		// own failure, with what to change in its trace.
		msgs := make([]string, len(errs))
		for i, e := range errs {
			j.printf("ERROR: %s\n", e)
			msgs[i] = e.Error()
		}
		return nil, nil, scriptFailure("invalid variables: " + strings.Join(msgs, "; ")), false
	}
	w.opts = opts
	return w, release, result{}, true
}

// getSources is get_sources: the checkout as the Git variables say.
func (j *jobRun) getSources(w *workspace) (result, bool) {
	j.build.SetStage(builds.StageGetSources)
	j.printf("Getting source from Git repository\n")
	err := shell.GetSources(w.ctx, shell.Sources{
		RepoURL: j.job.GitInfo.RepoURL, SHA: j.job.GitInfo.Sha, Ref: j.job.GitInfo.Ref,
		Dir: w.dir, AllowFetch: j.job.AllowGitFetch, Token: j.job.Token, Env: j.l.env,
		GitOptions: w.opts.git,
	}, j.out)
	_ = j.out.Flush()
	if err != nil {
		if res, stopped := j.stoppedIn(w); stopped {
			return res, false
		}
		// Not the job's script: the runner could not prepare the job.
		return systemFailure("getting sources: " + err.Error()), false
	}
	return result{}, true
}

// afterScript runs after_script after the script whatever its result, with
// its own time, unless the job was stopped: then nothing more of it runs.
// It returns the job's result, which after_script does not change.
func (j *jobRun) afterScript(w *workspace, res result) result {
	after, ok := j.job.Step(coordinator.StepAfterScript)
	if !ok || len(after.Script) == 0 || w.outer.Err() != nil {
		return res
	}
	j.build.SetStage(builds.StageAfterScript)
	j.printf("Running after_script\n")
	limit := j.l.afterTimeout
	if t := time.Duration(after.Timeout) * time.Second; t > 0 && t < limit {
		limit = t
	}
	actx, acancel := context.WithTimeoutCause(w.outer, limit, errAfterScriptTime)
	defer acancel()
	status := "success"
	if res.update.State != coordinator.StateSuccess {
		status = "failed"
	}
	err := shell.RunScript(actx, shell.Script{
		Name: "after_script", Commands: after.Script, Dir: w.dir,
		Env: append(w.env, "CI_JOB_STATUS="+status), ScriptDir: w.tmp,
	}, j.out)
	_ = j.out.Flush()
	switch {
	case w.outer.Err() != nil:
		res, _ = j.stoppedIn(w)
	case errors.Is(err, errAfterScriptTime):
		j.printf("WARNING: after_script timed out after %s\n", limit)
	case err != nil:
		// As in GitLab, after_script does not change the job's result.
		j.printf("WARNING: after_script failed: %s\n", err)
	}
	return res
}

// stopped says how the job ended when it was stopped from outside: canceled,
// token revoked, runner shutting down, or out of time.
func (j *jobRun) stopped(ctx, jctx context.Context, timeout time.Duration) (result, bool) {
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errAborted):
		return result{build: builds.StateTerminated, message: "the runner is shutting down", report: true,
			update: coordinator.Update{State: coordinator.StateFailed, FailureReason: coordinator.RunnerSystemFailure},
			retry:  coordinator.RetryPersistently}, true
	case errors.Is(cause, errCanceled):
		// Settled on the coordinator already, but AlloyCI stores the
		// trace of this PUT: it must get through like any other.
		return result{build: builds.StateCanceled, message: "canceled", report: true,
			update: coordinator.Update{State: coordinator.StateFailed},
			retry:  coordinator.RetryPersistently}, true
	case errors.Is(cause, errForbidden):
		return result{build: builds.StateCanceled, message: "the job token is no longer valid"}, true
	}
	if jctx.Err() != nil && errors.Is(context.Cause(jctx), errTimedOut) {
		return result{build: builds.StateTimedout, message: fmt.Sprintf("execution took longer than %s", timeout), report: true,
			update: coordinator.Update{State: coordinator.StateFailed, FailureReason: coordinator.JobExecutionTimeout},
			retry:  coordinator.RetryPersistently}, true
	}
	return result{}, false
}

// scriptResult says how the job ended after its script step returned err.
func (j *jobRun) scriptResult(ctx, jctx context.Context, timeout time.Duration, err error) result {
	if ctx.Err() != nil {
		res, _ := j.stopped(ctx, jctx, timeout)
		return res
	}
	if err == nil {
		return result{build: builds.StateFinished, report: true,
			update: coordinator.Update{State: coordinator.StateSuccess}, retry: coordinator.RetryPersistently}
	}
	if res, stopped := j.stopped(ctx, jctx, timeout); stopped {
		return res
	}
	var ee *shell.ExitError
	if errors.As(err, &ee) {
		return result{build: builds.StateFinished, message: ee.Error(), report: true,
			update: coordinator.Update{State: coordinator.StateFailed, FailureReason: coordinator.ScriptFailure},
			retry:  coordinator.RetryPersistently}
	}
	return systemFailure(err.Error())
}

// variable returns the job's variable key as text (the last one wins, as
// in the job's environment).
func (j *jobRun) variable(key string) (string, bool) {
	var v string
	found := false
	for _, kv := range j.job.Variables {
		if kv.Key == key {
			v, found = kv.Value, true
		}
	}
	return v, found
}

// scriptFailure is a job that failed through its own configuration.
func scriptFailure(msg string) result {
	return result{build: builds.StateFinished, message: msg, report: true,
		update: coordinator.Update{State: coordinator.StateFailed, FailureReason: coordinator.ScriptFailure},
		retry:  coordinator.RetryPersistently}
}

func systemFailure(msg string) result {
	return result{build: builds.StateFinished, message: "runner system failure: " + msg, report: true,
		update: coordinator.Update{State: coordinator.StateFailed, FailureReason: coordinator.RunnerSystemFailure},
		retry:  coordinator.RetryPersistently}
}

// header writes the trace's opening lines, including what the job asks for
// that the shell executor does not do.
func (j *jobRun) header() {
	info := coordinator.DefaultInfo()
	j.printf("Running with %s %s (%s)\n", info.Name, info.Version, info.Revision)
	j.printf("  on %s %s\n", j.runner.Name, j.runnerID)
	j.printf("Preparing the \"shell\" executor\n")
	j.printf("Using Shell executor...\n")
	for _, f := range j.job.Unsupported() {
		switch f {
		case "artifacts", "cache", "dependencies":
			continue // the stages of their own handle them
		}
		j.printf("WARNING: %q is not supported by the shell executor, ignored\n", f)
	}
	if host, err := os.Hostname(); err == nil {
		j.printf("Running on %s...\n", host)
	}
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// projectName is the job's directory name below the builds directory. The
// project id is the name; a name from the coordinator is used only when
// there is no id, cleaned so it cannot leave the builds directory.
func projectName(info coordinator.JobInfo) string {
	if info.ProjectID > 0 {
		return "project-" + strconv.FormatInt(info.ProjectID, 10)
	}
	name := unsafeName.ReplaceAllString(info.ProjectName, "-")
	if name == "" || name == "." || name == ".." {
		name = "unnamed"
	}
	return "project-" + name
}
