package shell

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// UntrackedFiles lists the files under dir that git does not track and does
// not ignore, relative to dir, as untracked: true means in GitLab.
//
// git runs with the runner's environment, without the system config, and
// never looks above dir for a repository (a project without one, under
// GIT_STRATEGY none, must not list a parent's files). core.fsmonitor is off:
// the job may have set a hook in .git/config, which must not run outside
// the job's own steps.
func UntrackedFiles(ctx context.Context, dir string, env []string) ([]string, error) {
	git, err := exec.LookPath("git")
	if err != nil {
		return nil, fmt.Errorf("listing untracked files needs git: %w", err)
	}
	cmd := exec.CommandContext(ctx, git, "-c", "core.fsmonitor=false", "-c", "core.quotePath=false",
		"ls-files", "-z", "--others", "--exclude-standard")
	cmd.Dir = dir
	cmd.Env = append(append([]string(nil), env...),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0",
		"GIT_CEILING_DIRECTORIES="+filepath.Dir(dir))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		if msg == "" {
			return nil, fmt.Errorf("git ls-files: %w", err)
		}
		return nil, fmt.Errorf("git ls-files: %s", msg)
	}
	var files []string
	for _, f := range bytes.Split(out, []byte{0}) {
		if len(f) > 0 {
			files = append(files, string(f))
		}
	}
	return files, nil
}
