package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/go-kit/log/level"

	"github.com/alloyci/hardened-runner/archive"
	"github.com/alloyci/hardened-runner/builds"
	"github.com/alloyci/hardened-runner/coordinator"
)

// The failure reasons of download_artifacts and upload_artifacts, and why:
// see the package doc.

// errUploadTime ends the artifacts upload of a timed-out job.
var errUploadTime = errors.New("the artifacts upload of a timed-out job took too long")

// dependencyName names a dependency in the trace, never with its token.
func dependencyName(d coordinator.Dependency) string {
	return fmt.Sprintf("dependency %q (job %d)", d.Name, d.ID)
}

// downloadArtifacts extracts the archives of the job's dependencies into
// the project directory, in the coordinator's order. The first that cannot
// be downloaded or is refused fails the job: its script would run on a
// tree without what it was promised. ok is false with the result then.
func (j *jobRun) downloadArtifacts(w *workspace) (res result, ok bool) {
	j.build.SetStage(builds.StageDownloadArtifacts)
	deps := j.job.ArtifactDependencies()
	if len(deps) == 0 {
		return result{}, true
	}
	defer j.out.Flush()
	j.printf("Downloading artifacts\n")
	for _, d := range deps {
		if d.File == nil || d.File.Filename == "" {
			// As the upstream runner: the coordinator knows of no archive,
			// the dependency made none (nothing matched its paths).
			j.printf("%s has no artifacts: nothing to download\n", dependencyName(d))
			continue
		}
		if res, ok := j.downloadDependency(w, d); !ok {
			return res, false
		}
	}
	return result{}, true
}

func (j *jobRun) downloadDependency(w *workspace, d coordinator.Dependency) (result, bool) {
	name := dependencyName(d)
	j.printf("Downloading artifacts for %s...\n", name)
	// The archive waits in the job's scratch directory, never in the
	// project directory, where the job's own files could be taken for it.
	if err := os.MkdirAll(w.tmp, 0o700); err != nil {
		return systemFailure("creating the job's temporary directory: " + err.Error()), false
	}
	f, err := os.CreateTemp(w.tmp, "dependency-*.zip")
	if err != nil {
		return systemFailure("creating a file for the artifacts of " + name + ": " + err.Error()), false
	}
	defer os.Remove(f.Name())
	defer f.Close()

	// The client retries briefly already; each of the job's attempts is a
	// whole download again, and only of what another attempt could change.
	limit := j.runner.ArtifactsLimitBytes()
	attempts := w.opts.downloadAttempts
	var n int64
	for attempt := 1; ; attempt++ {
		n, err = j.l.client.DownloadArtifacts(w.ctx, j.runner.URL, d.ID, d.Token, f, limit)
		if err == nil || w.ctx.Err() != nil || !transient(err) || attempt >= attempts {
			break
		}
		j.printf("WARNING: %s: %v: retrying, attempt %d of %d\n", name, err, attempt+1, attempts)
	}
	if err != nil {
		if res, stopped := j.stoppedIn(w); stopped {
			return res, false
		}
		j.printf("ERROR: %s: %v\n", name, err)
		switch {
		case errors.Is(err, coordinator.ErrArtifactsTooLarge):
			j.printf("ERROR: artifacts_limit in config.toml allows %d bytes: make the dependency's artifacts smaller, or ask the runner's operator to raise it\n", limit)
			return scriptFailure("the artifacts of " + name + " are too large"), false
		case errors.Is(err, coordinator.ErrNoArtifacts):
			return scriptFailure("the coordinator no longer has the artifacts of " + name + ": run that job again"), false
		}
		level.Warn(j.logger).Log("msg", "downloading a dependency's artifacts failed", "dependency", d.ID, "err", err)
		if transient(err) && attempts > 1 {
			return systemFailure(fmt.Sprintf("downloading the artifacts of %s failed %d times (ARTIFACT_DOWNLOAD_ATTEMPTS)", name, attempts)), false
		}
		return systemFailure("downloading the artifacts of " + name + " failed"), false
	}
	if err := archive.Extract(f, n, w.dir, limit); err != nil {
		j.printf("ERROR: %s: %v\n", name, err)
		if errors.Is(err, archive.ErrTooLarge) {
			return scriptFailure(fmt.Sprintf("the artifacts of %s unpack to more than the %d bytes artifacts_limit in config.toml allows", name, limit)), false
		}
		return scriptFailure("the artifacts of " + name + " are refused"), false
	}
	j.printf("Extracted the artifacts of %s (%d bytes)\n", name, n)
	return result{}, true
}

// transient says whether another whole download could succeed after err:
// not after an answer that would be the same (403, 404, too large, another
// 4xx).
func transient(err error) bool {
	if errors.Is(err, coordinator.ErrForbidden) || errors.Is(err, coordinator.ErrNoArtifacts) ||
		errors.Is(err, coordinator.ErrArtifactsTooLarge) {
		return false
	}
	var se *coordinator.StatusError
	if errors.As(err, &se) {
		return se.Code >= 500 || se.Code == 429
	}
	return true
}

// artifactsWanted says whether artifacts of when are uploaded after the
// job's result so far.
func artifactsWanted(when string, res result) bool {
	succeeded := res.update.State == coordinator.StateSuccess
	switch when {
	case coordinator.ArtifactsAlways:
		return true
	case coordinator.ArtifactsOnFailure:
		return !succeeded
	default:
		return succeeded
	}
}

// uploadArtifacts sends the job's artifacts, when its artifacts: when
// matches res, and returns the job's result: res, or the upload's failure
// (runner_system_failure) for a job that had succeeded. A failed job keeps
// its own failure, the first one, with the upload's in its trace.
//
// The caller does not call it for a canceled job, or one the runner
// stopped: the coordinator would not take the archive, and the job must end
// now. A timed-out job uploads its on_failure artifacts, which are what
// tells why it hung, within the after_script time bound, as after_script
// runs after a timeout too.
//
// The archive is written once to a file in the job's scratch directory and
// reopened for every attempt, so a retry sends the same bytes (the project
// directory may change under a job's background process) and the upload's
// size is known before anything is sent.
func (j *jobRun) uploadArtifacts(w *workspace, res result) result {
	j.build.SetStage(builds.StageUploadArtifacts)
	spec, ok := j.job.ArtifactsSpec()
	if !ok || !artifactsWanted(spec.When, res) {
		return res
	}
	defer j.out.Flush()
	failed := func(msg string) result {
		if res.update.State != coordinator.StateSuccess {
			return res
		}
		return systemFailure(msg)
	}
	ctx := w.ctx
	if res.build == builds.StateTimedout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(w.outer, j.l.afterTimeout, errUploadTime)
		defer cancel()
	}
	if res.update.State == coordinator.StateSuccess {
		j.printf("Uploading artifacts for successful job\n")
	} else {
		j.printf("Uploading artifacts for failed job\n")
	}
	paths := make([]string, 0, len(spec.Paths))
	for _, p := range spec.Paths {
		paths = append(paths, w.expand(p))
	}
	files, ok := j.selectFiles(w, paths, spec.Untracked)
	if !ok {
		return failed("the project directory cannot be read to upload the artifacts")
	}
	if len(files) == 0 {
		j.printf("WARNING: no files to upload\n")
		return res
	}
	j.printf("Uploading artifacts (%s)...\n", nFiles(len(files)))
	zip, size, err := j.writeArtifacts(w, files)
	if err != nil {
		if errors.Is(err, archive.ErrTooLarge) {
			// The project chose what to upload and can fix it: its own
			// failure, so a project cannot raise the operator's
			// runner_system_failure alarm at will.
			msg := j.tooLarge(w, files)
			if res.update.State != coordinator.StateSuccess {
				return res
			}
			return scriptFailure(msg)
		}
		j.printf("ERROR: writing the artifacts archive: %v\n", err)
		return failed("writing the artifacts archive failed")
	}
	defer os.Remove(zip)
	// The file's name is fixed: AlloyCI stores the archive under the name
	// sent and shows it to the jobs that depend on this one, so nothing of
	// the job's text (a path, a secret in a variable) goes there.
	err = j.l.client.UploadArtifacts(ctx, j.runner.URL, j.job.ID, j.job.Token,
		func() (io.ReadCloser, error) { return os.Open(zip) }, coordinator.DefaultArtifactsFilename, spec.ExpireIn)
	switch {
	case err == nil:
		j.printf("Uploaded %s (%d bytes)\n", coordinator.DefaultArtifactsFilename, size)
		return res
	case w.outer.Err() != nil:
		r, _ := j.stoppedIn(w)
		return r
	case errors.Is(context.Cause(ctx), errUploadTime):
		j.printf("ERROR: uploading the artifacts took longer than %s after the job timed out: they are not uploaded\n", j.l.afterTimeout)
		return res
	case ctx.Err() != nil:
		if r, stopped := j.stoppedIn(w); stopped {
			return r
		}
	}
	level.Warn(j.logger).Log("msg", "uploading the artifacts failed", "err", err)
	j.printf("ERROR: uploading the artifacts failed: %v\n", err)
	return failed("uploading the artifacts failed")
}

// writeArtifacts writes the zip of files to a new file in the job's scratch
// directory, within artifacts_limit, and returns its path and size.
func (j *jobRun) writeArtifacts(w *workspace, files []string) (path string, size int64, err error) {
	if err := os.MkdirAll(w.tmp, 0o700); err != nil {
		return "", 0, err
	}
	f, err := os.CreateTemp(w.tmp, "artifacts-*.zip")
	if err != nil {
		return "", 0, err
	}
	err = archive.Write(f, w.dir, files, j.runner.ArtifactsLimitBytes())
	if err == nil {
		var fi os.FileInfo
		if fi, err = f.Stat(); err == nil {
			size = fi.Size()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", 0, err
	}
	return f.Name(), size, nil
}

// tooLarge says in the trace that the artifacts are larger than
// artifacts_limit, and returns the job's failure message.
func (j *jobRun) tooLarge(w *workspace, files []string) string {
	limit := j.runner.ArtifactsLimitBytes()
	total, err := contentSize(w.dir, files)
	if err != nil || total <= limit {
		// The files changed since archive.Write saw them.
		j.printf("ERROR: the artifacts come to more than the %d bytes artifacts_limit in config.toml allows: archive fewer files, or ask the runner's operator to raise artifacts_limit\n", limit)
		return fmt.Sprintf("artifacts too large: over the limit of %d bytes set by artifacts_limit in config.toml", limit)
	}
	j.printf("ERROR: the artifacts come to %d bytes, more than the %d bytes artifacts_limit in config.toml allows: archive fewer files, or ask the runner's operator to raise artifacts_limit\n", total, limit)
	return fmt.Sprintf("artifacts too large: %d bytes over the limit of %d bytes set by artifacts_limit in config.toml", total-limit, limit)
}

// nFiles is "1 file", "2 files".
func nFiles(n int) string {
	if n == 1 {
		return "1 file"
	}
	return fmt.Sprintf("%d files", n)
}

// contentSize adds up what archive.Write counts against its limit for
// files: the contents of regular files and the targets of symlinks.
func contentSize(dir string, files []string) (int64, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return 0, err
	}
	defer root.Close()
	var total int64
	for _, name := range files {
		fi, err := root.Lstat(name)
		if err != nil {
			return 0, err
		}
		switch {
		case fi.Mode().IsRegular():
			total += fi.Size()
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := root.Readlink(name)
			if err != nil {
				return 0, err
			}
			total += int64(len(target))
		}
	}
	return total, nil
}
