package jobs

import (
	"net/url"
	"runtime"
	"strconv"
	"strings"

	"github.com/alloyci/hardened-runner/coordinator"
)

// env is the environment of the job's script steps, later entries winning:
// the runner's base environment, the predefined CI variables, the job's
// variables, and last the directories, which only the runner decides.
func (j *jobRun) env(projectDir, buildsDir string) []string {
	job := j.job
	info := coordinator.DefaultInfo()
	env := append([]string(nil), j.l.env...)
	set := func(k, v string) { env = append(env, k+"="+v) }

	set("CI", "true")
	set("CI_SERVER", "yes")
	set("CI_SERVER_URL", withoutCredentials(j.runner.URL))
	set("CI_JOB_ID", strconv.FormatInt(job.ID, 10))
	set("CI_JOB_NAME", job.JobInfo.Name)
	set("CI_JOB_STAGE", job.JobInfo.Stage)
	set("CI_JOB_TOKEN", job.Token)
	set("CI_PROJECT_ID", strconv.FormatInt(job.JobInfo.ProjectID, 10))
	set("CI_PROJECT_NAME", job.JobInfo.ProjectName)
	set("CI_REPOSITORY_URL", withoutCredentials(job.GitInfo.RepoURL))
	set("CI_COMMIT_SHA", job.GitInfo.Sha)
	if len(job.GitInfo.Sha) >= 8 {
		set("CI_COMMIT_SHORT_SHA", job.GitInfo.Sha[:8])
	}
	set("CI_COMMIT_BEFORE_SHA", job.GitInfo.BeforeSha)
	set("CI_COMMIT_REF_NAME", job.GitInfo.Ref)
	switch job.GitInfo.RefType {
	case "tag":
		set("CI_COMMIT_TAG", job.GitInfo.Ref)
	case "branch":
		set("CI_COMMIT_BRANCH", job.GitInfo.Ref)
	}
	set("CI_RUNNER_DESCRIPTION", j.runner.Name)
	set("CI_RUNNER_VERSION", info.Version)
	set("CI_RUNNER_REVISION", info.Revision)
	set("CI_RUNNER_EXECUTABLE_ARCH", runtime.GOOS+"/"+runtime.GOARCH)

	for _, v := range job.Variables {
		if !validEnv(v.Key, v.Value) {
			// The key is the job's own text; the value stays out.
			j.printf("WARNING: variable %q cannot be passed to the environment, skipped\n", v.Key)
			continue
		}
		set(v.Key, v.Value)
	}
	set("CI_PROJECT_DIR", projectDir)
	set("CI_BUILDS_DIR", buildsDir)
	return env
}

// validEnv reports whether k=v can be an environment entry.
func validEnv(k, v string) bool {
	return k != "" && !strings.ContainsAny(k, "=\x00") && !strings.Contains(v, "\x00")
}

// withoutCredentials drops user information from a URL.
func withoutCredentials(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	u.User = nil
	return u.String()
}
