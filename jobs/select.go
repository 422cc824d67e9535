package jobs

import (
	"github.com/alloyci/hardened-runner/archive"
	"github.com/alloyci/hardened-runner/shell"
)

// selectFiles chooses the files of a cache or artifacts archive: paths, and
// the files git does not track when untracked is set. Select's warnings go
// to the trace. ok is false when the project directory cannot be read.
func (j *jobRun) selectFiles(w *workspace, paths []string, untracked bool) (files []string, ok bool) {
	var others []string
	if untracked {
		var err error
		others, err = shell.UntrackedFiles(w.ctx, w.dir, j.l.env)
		if err != nil {
			j.printf("WARNING: the untracked files cannot be listed (%v): only the paths are archived\n", err)
		}
	}
	files, warnings, err := archive.Select(w.dir, paths, others)
	for _, msg := range warnings {
		j.printf("WARNING: %s\n", msg)
	}
	if err != nil {
		j.printf("WARNING: %v\n", err)
		return nil, false
	}
	return files, true
}
