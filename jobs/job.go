package jobs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
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

// execute runs the job's stages and says how it ended.
func (j *jobRun) execute(ctx context.Context) result {
	timeout := j.l.defaultTimeout
	if t := j.job.RunnerInfo.Timeout; t > 0 {
		timeout = time.Duration(t) * time.Second
	}
	jctx, cancel := context.WithTimeoutCause(ctx, timeout, errTimedOut)
	defer cancel()

	// prepare_script
	j.header()
	if why := j.job.Unusable; why != "" {
		// The coordinator marked the job running when it handed it out:
		// it must be reported, with the reason in its trace.
		level.Warn(j.logger).Log("msg", "the coordinator sent a job this runner cannot use; reporting it failed", "reason", why)
		j.printf("ERROR: this runner cannot use the job the coordinator sent: %s\n", why)
		return systemFailure("unusable job: " + why)
	}
	script, ok := j.job.Step(coordinator.StepScript)
	if !ok {
		return systemFailure("the job has no script step")
	}
	base, err := filepath.Abs(j.runner.BuildsDir)
	if err != nil {
		return systemFailure("builds_dir: " + err.Error())
	}
	buildsDir := filepath.Join(base, j.runnerID)
	if err := os.MkdirAll(buildsDir, 0o700); err != nil {
		return systemFailure("creating the builds directory: " + err.Error())
	}
	dir, release := j.l.projectDir(buildsDir, projectName(j.job.JobInfo))
	defer release()
	tmp := dir + ".tmp"
	defer os.RemoveAll(tmp)
	env := j.env(dir, base)

	// get_sources
	j.build.SetStage(builds.StageGetSources)
	gitOpts, err := shell.ParseGitVariables(j.variable)
	if err != nil {
		// The project's .alloy-ci.yml is wrong, not the runner: the job's
		// own failure, with what to change in its trace.
		j.printf("ERROR: %s\n", err)
		return scriptFailure("invalid Git variables")
	}
	j.printf("Getting source from Git repository\n")
	err = shell.GetSources(jctx, shell.Sources{
		RepoURL: j.job.GitInfo.RepoURL, SHA: j.job.GitInfo.Sha, Ref: j.job.GitInfo.Ref,
		Dir: dir, AllowFetch: j.job.AllowGitFetch, Token: j.job.Token, Env: j.l.env,
		GitOptions: gitOpts,
	}, j.out)
	_ = j.out.Flush()
	if err != nil {
		if res, stopped := j.stopped(ctx, jctx, timeout); stopped {
			return res
		}
		// Not the job's script: the runner could not prepare the job.
		return systemFailure("getting sources: " + err.Error())
	}

	// build_script
	j.build.SetStage(builds.StageBuildScript)
	j.printf("Executing \"step_script\" stage of the job script\n")
	err = shell.RunScript(jctx, shell.Script{
		Name: "script", Commands: script.Script, Dir: dir, Env: env, ScriptDir: tmp,
	}, j.out)
	_ = j.out.Flush()
	res := j.scriptResult(ctx, jctx, timeout, err)

	// after_script runs after the script whatever its result, with its own
	// time, unless the job was stopped: then nothing more of it runs.
	after, ok := j.job.Step(coordinator.StepAfterScript)
	if !ok || len(after.Script) == 0 || ctx.Err() != nil {
		return res
	}
	j.build.SetStage(builds.StageAfterScript)
	j.printf("Running after_script\n")
	limit := j.l.afterTimeout
	if t := time.Duration(after.Timeout) * time.Second; t > 0 && t < limit {
		limit = t
	}
	actx, acancel := context.WithTimeoutCause(ctx, limit, errAfterScriptTime)
	defer acancel()
	status := "success"
	if res.update.State != coordinator.StateSuccess {
		status = "failed"
	}
	err = shell.RunScript(actx, shell.Script{
		Name: "after_script", Commands: after.Script, Dir: dir,
		Env: append(env, "CI_JOB_STATUS="+status), ScriptDir: tmp,
	}, j.out)
	_ = j.out.Flush()
	switch {
	case ctx.Err() != nil:
		res, _ = j.stopped(ctx, ctx, timeout)
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
