package jobs

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/alloyci/hardened-runner/shell"
)

// MaxStageAttempts is the most RESTORE_CACHE_ATTEMPTS and
// ARTIFACT_DOWNLOAD_ATTEMPTS may ask for, as GET_SOURCES_ATTEMPTS.
const MaxStageAttempts = shell.MaxGetSourcesAttempts

// stageOptions are the job variables that change how the runner's stages
// work, read once before any of them runs.
type stageOptions struct {
	git shell.GitOptions
	// restoreCacheAttempts is RESTORE_CACHE_ATTEMPTS, 1 by default.
	restoreCacheAttempts int
	// downloadAttempts is ARTIFACT_DOWNLOAD_ATTEMPTS, 1 by default.
	downloadAttempts int
}

var digits = regexp.MustCompile(`^[0-9]+$`)

// parseStageOptions reads the Git variables (shell.ParseGitVariables) and
// the attempts variables through get. Every invalid value is reported, one
// error each, so that one run shows every fix: a guess at what a job meant
// could hide that it never got what it asked for.
func parseStageOptions(get func(string) (string, bool)) (stageOptions, []error) {
	o := stageOptions{restoreCacheAttempts: 1, downloadAttempts: 1}
	var errs []error
	git, err := shell.ParseGitVariables(get)
	if err != nil {
		var joined interface{ Unwrap() []error }
		if errors.As(err, &joined) {
			errs = append(errs, joined.Unwrap()...)
		} else {
			errs = append(errs, err)
		}
	}
	o.git = git
	for _, a := range []struct {
		key string
		dst *int
	}{
		{"RESTORE_CACHE_ATTEMPTS", &o.restoreCacheAttempts},
		{"ARTIFACT_DOWNLOAD_ATTEMPTS", &o.downloadAttempts},
	} {
		v, _ := get(a.key)
		if v == "" {
			continue
		}
		// Digits only, as GET_SOURCES_ATTEMPTS: strconv alone takes "+3".
		n, err := strconv.Atoi(v)
		if !digits.MatchString(v) || err != nil || n < 1 || n > MaxStageAttempts {
			errs = append(errs, fmt.Errorf("%s is %q: set it to a whole number from 1 to %d, or leave it empty for 1", a.key, v, MaxStageAttempts))
			continue
		}
		*a.dst = n
	}
	return o, errs
}

// expander returns what $VAR and ${VAR} stand for in a cache key, cache
// paths or artifacts paths: the job's variables and the runner's predefined
// ones, as the script sees them (later entries of env win), but not the
// runner's own environment (PATH, HOME), which is no part of the job's
// definition. An unknown variable is empty, as in GitLab.
func expander(env []string, runnerEnv int) func(string) string {
	vars := make(map[string]string, len(env)-runnerEnv)
	for _, kv := range env[runnerEnv:] {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	return func(s string) string { return os.Expand(s, func(k string) string { return vars[k] }) }
}
