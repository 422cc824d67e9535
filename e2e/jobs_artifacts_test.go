package e2e

// What an .alloy-ci.yml promises on the shell executor beyond its scripts,
// with the real runner and real git repositories: artifacts between stages,
// hostile dependencies, the cache, the Git variables, and the metrics that
// count it all.

import (
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/alloyci/hardened-runner/coordinator"
	"github.com/alloyci/hardened-runner/coordinator/coordinatortest"
	"github.com/alloyci/hardened-runner/internal/ziptest"
)

// artRepo is a git repository of the tests below, at a file:// URL.
type artRepo struct {
	t   *testing.T
	dir string
	url string
}

func newArtRepo(t *testing.T, dir string) *artRepo {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r := &artRepo{t: t, dir: dir, url: "file://" + dir}
	r.git("init", "-q", "-b", "main")
	return r
}

func (r *artRepo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes name and commits it, returning the new commit's id.
func (r *artRepo) commit(name, content string) string {
	r.t.Helper()
	writeFile(r.t, filepath.Join(r.dir, name), content)
	r.git("add", name)
	r.git("commit", "-q", "-m", "change "+name)
	return r.git("rev-parse", "HEAD")
}

// addSubmodule commits sub's HEAD as the submodule at path, with the
// relative url .gitmodules gives.
func (r *artRepo) addSubmodule(path, url string, sub *artRepo) string {
	r.t.Helper()
	r.git("config", "-f", ".gitmodules", "submodule."+path+".path", path)
	r.git("config", "-f", ".gitmodules", "submodule."+path+".url", url)
	r.git("add", ".gitmodules")
	r.git("update-index", "--add", "--cacheinfo", "160000,"+sub.git("rev-parse", "HEAD")+","+path)
	r.git("commit", "-q", "-m", "submodule "+path)
	return r.git("rev-parse", "HEAD")
}

// artRunner is alloy-runner polling c every second, with extra appended to
// its [[runners]] entry; dir holds its config, builds and cache.
type artRunner struct {
	*proc
	addr string
	dir  string
}

func startArtRunner(t *testing.T, c *coordinatortest.Server, extra string) *artRunner {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	writeFile(t, cfg, fmt.Sprintf(`concurrent = 2
check_interval = 1
metrics_server = "127.0.0.1:0"

[[runners]]
  name = "e2e"
  url = %q
  token = %q
  executor = "shell"
  builds_dir = %q
%s`, c.URL, e2eRunnerToken, filepath.Join(dir, "builds"), extra))
	p := start(t, "alloy-runner", "run", "--config", cfg)
	return &artRunner{proc: p, addr: p.waitLog(`msg="metrics server listening" addr=tcp:(\S+)`), dir: dir}
}

// projectDir is the one checkout of project 7 the runner made.
func (r *artRunner) projectDir(t *testing.T) string {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(r.dir, "builds", "*", "0", "project-7"))
	if len(dirs) != 1 {
		t.Fatalf("project directories: %v, want one", dirs)
	}
	return dirs[0]
}

func artJob(repoURL, sha string, script ...string) coordinatortest.Spec {
	return coordinatortest.Spec{RepoURL: repoURL, Ref: "main", SHA: sha, Script: script}
}

func assertStored(t *testing.T, what string, j coordinatortest.Job, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(j.Stored, w) {
			t.Errorf("%s: stored trace lacks %q:\n%s", what, w, j.Stored)
		}
	}
}

// Job A of stage build uploads out/result.txt; job B of stage test, which
// depends on A, finds it before its script runs and succeeds.
func TestJobsArtifactsBetweenStages(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, f coordinatortest.Flavor) {
		c := coordinatortest.NewFlavor(t, f)
		c.AddRunner(e2eRunnerToken)
		repo := newArtRepo(t, filepath.Join(t.TempDir(), "app"))
		sha := repo.commit("README", "hello\n")
		startArtRunner(t, c, "")

		a := artJob(repo.url, sha, "mkdir -p out", "echo built by A > out/result.txt")
		a.Name, a.Stage = "build", "build"
		a.Artifacts = &coordinator.ArtifactsSpec{Paths: []string{"out/"}, ExpireIn: "2 days"}
		idA := c.EnqueueSpec(e2eRunnerToken, a)
		j := c.AwaitFinal(idA)
		if j.State != "success" {
			t.Fatalf("job A: %s\n%s", j.State, j.Stored)
		}
		zip, expire, ok := c.Artifact(idA)
		if !ok || !reflect.DeepEqual(ziptest.Entries(t, zip), map[string]string{"out/result.txt": "built by A\n"}) || expire != "2 days" {
			t.Fatalf("job A's archive (kept: %v, expire_in %q): %q", ok, expire, ziptest.Entries(t, zip))
		}

		b := artJob(repo.url, sha, "cat out/result.txt")
		b.Dependencies = []coordinator.Dependency{{ID: idA, Name: "build"}}
		j = c.AwaitFinal(c.EnqueueSpec(e2eRunnerToken, b))
		if j.State != "success" {
			t.Fatalf("job B: %s\n%s", j.State, j.Stored)
		}
		assertStored(t, "job B", j, fmt.Sprintf(`Downloading artifacts for dependency "build" (job %d)...`, idA), "\nbuilt by A\n")
	})
}

// pathsUnder lists every path under root.
func pathsUnder(t *testing.T, root string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err == nil {
			out[p] = true
		}
		return nil
	})
	return out
}

// A dependency's archive is hostile input: an entry climbing out of the
// project directory, a symlink to /etc and a 1 GiB bomb past
// artifacts_limit each fail the job with the reason in its trace; nothing
// outside its project directory changes and the script never runs.
func TestJobsArtifactsCraftedDependency(t *testing.T) {
	c := coordinatortest.NewFlavor(t, coordinatortest.AlloyCI)
	c.AddRunner(e2eRunnerToken)
	repo := newArtRepo(t, filepath.Join(t.TempDir(), "app"))
	sha := repo.commit("README", "hello\n")
	runner := startArtRunner(t, c, "  artifacts_limit = 2048\n")
	// The root of the runner's directory and of the repository: the
	// runner's own files and everything a ../ could reach in a few steps.
	root := filepath.Dir(runner.dir)

	const refusal = "; the runner never writes such an entry, so the archive is damaged or hostile: check the job that made it"
	for i, tc := range []struct {
		zip    []byte
		reason string
	}{
		{ziptest.Zip(t, ziptest.Entry{Name: "../../../../escape", Body: "x"}), `archive: entry "../../../../escape" refused: its name contains a ".." segment` + refusal},
		{ziptest.Zip(t, ziptest.Symlink("etc", "/etc")), `archive: entry "etc" refused: it is a symlink to the absolute path "/etc"` + refusal},
		{ziptest.ZeroBomb(t, "zeros", 1<<30, 0), `archive: entry "zeros": archive too large: the archive holds more than 2097152 bytes; archive fewer files or raise the limit`},
	} {
		dep := int64(9001 + i)
		c.SetArtifact(dep, "", tc.zip)
		before := pathsUnder(t, root)
		sp := artJob(repo.url, sha, "echo script-ran")
		sp.Dependencies = []coordinator.Dependency{{ID: dep, Name: "build"}}
		j := c.AwaitFinal(c.EnqueueSpec(e2eRunnerToken, sp))
		name := fmt.Sprintf(`dependency "build" (job %d)`, dep)
		if j.State != "failed" || j.FailureReason != "script_failure" || strings.Contains(j.Stored, "script-ran\n") {
			t.Errorf("%s: %s/%s\n%s", name, j.State, j.FailureReason, j.Stored)
		}
		assertStored(t, name, j, "ERROR: "+name+": "+tc.reason+"\n")
		project := runner.projectDir(t)
		var outside []string
		for p := range pathsUnder(t, root) {
			if !before[p] && p != project && !strings.HasPrefix(p, project+"/") && !strings.HasPrefix(project, p+"/") {
				outside = append(outside, p)
			}
		}
		sort.Strings(outside)
		if len(outside) > 0 {
			t.Errorf("%s: written outside the project directory: %v", name, outside)
		}
		if _, err := os.Lstat(filepath.Join(project, "etc")); err == nil {
			t.Errorf("%s: the project directory got the archive's etc", name)
		}
	}
}

// The second run of a job finds the cache the first saved, in
// <cache_dir>/<runner>/project-7/, before its script runs.
func TestJobsArtifactsCache(t *testing.T) {
	c := coordinatortest.NewFlavor(t, coordinatortest.AlloyCI)
	c.AddRunner(e2eRunnerToken)
	repo := newArtRepo(t, filepath.Join(t.TempDir(), "app"))
	sha := repo.commit("README", "hello\n")
	runner := startArtRunner(t, c, "")
	cache := &coordinator.CacheSpec{Key: "deps-$CI_COMMIT_REF_NAME", Paths: []string{"vendor/"}}

	first := artJob(repo.url, sha, "test ! -e vendor", "mkdir vendor", "echo cached by the first run > vendor/lib.txt")
	first.Cache = cache
	j := c.AwaitFinal(c.EnqueueSpec(e2eRunnerToken, first))
	if j.State != "success" {
		t.Fatalf("first run: %s\n%s", j.State, j.Stored)
	}
	assertStored(t, "first run", j, `WARNING: no cache for key "deps-main" yet: the job runs without it`+"\n", `Created cache for key "deps-main" (1 file)`+"\n")
	files, _ := filepath.Glob(filepath.Join(runner.dir, "cache", "*", "project-7", "deps-main-*.zip"))
	if len(files) != 1 {
		t.Fatalf("cache files: %v, want one", files)
	}

	second := artJob(repo.url, sha, "cat vendor/lib.txt")
	second.Cache = cache
	j = c.AwaitFinal(c.EnqueueSpec(e2eRunnerToken, second))
	if j.State != "success" {
		t.Fatalf("second run: %s\n%s", j.State, j.Stored)
	}
	assertStored(t, "second run", j, `Checking cache for key "deps-main"...`+"\nSuccessfully extracted cache\n", "\ncached by the first run\n")
}

// counterValue is the value of the sample of family name whose labels are
// exactly labels: a counter's value or a histogram's count.
func counterValue(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	for _, m := range mfs[name].GetMetric() {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		if !reflect.DeepEqual(got, labels) {
			continue
		}
		if h := m.GetHistogram(); h != nil {
			return float64(h.GetSampleCount())
		}
		return m.GetCounter().GetValue()
	}
	t.Fatalf("no %s%v", name, labels)
	return 0
}

// While an upload is held the runner's /metrics shows the job in
// upload_artifacts; once jobs end, the job counters say exactly how each
// ended: a success, a script failure (a hostile dependency), and a runner
// system failure (artifacts over artifacts_limit).
func TestJobsArtifactsMetrics(t *testing.T) {
	c := coordinatortest.NewFlavor(t, coordinatortest.AlloyCI)
	c.AddRunner(e2eRunnerToken)
	repo := newArtRepo(t, filepath.Join(t.TempDir(), "app"))
	sha := repo.commit("README", "hello\n")
	runner := startArtRunner(t, c, "  artifacts_limit = 1\n")

	release := c.HoldUploads()
	held := artJob(repo.url, sha, "echo small > small.txt")
	held.Artifacts = &coordinator.ArtifactsSpec{Paths: []string{"small.txt"}}
	id := c.EnqueueSpec(e2eRunnerToken, held)
	c.Await("the upload to be held", func() bool { return c.UploadsHeld() == 1 })
	if v := buildsGauge(t, runner.addr, "upload_artifacts", "running"); v != 1 {
		t.Errorf("ci_runner_builds{stage=upload_artifacts,state=running} = %v while the upload is held, want 1", v)
	}
	if v := buildsGauge(t, runner.addr, "build_script", "running"); v != 0 {
		t.Errorf("ci_runner_builds{stage=build_script,state=running} = %v during the upload, want 0", v)
	}
	release()
	if j := c.AwaitFinal(id); j.State != "success" {
		t.Fatalf("held job: %s\n%s", j.State, j.Stored)
	}

	c.SetArtifact(9001, "", ziptest.Zip(t, ziptest.Entry{Name: "../escape", Body: "x"}))
	hostile := artJob(repo.url, sha, "true")
	hostile.Dependencies = []coordinator.Dependency{{ID: 9001, Name: "build"}}
	if j := c.AwaitFinal(c.EnqueueSpec(e2eRunnerToken, hostile)); j.State != "failed" || j.FailureReason != "script_failure" {
		t.Fatalf("hostile dependency: %s/%s\n%s", j.State, j.FailureReason, j.Stored)
	}

	large := artJob(repo.url, sha, "head -c 5000 /dev/zero > big.bin")
	large.Artifacts = &coordinator.ArtifactsSpec{Paths: []string{"big.bin"}}
	largeID := c.EnqueueSpec(e2eRunnerToken, large)
	j := c.AwaitFinal(largeID)
	if j.State != "failed" || j.FailureReason != "script_failure" {
		t.Fatalf("artifacts too large: %s/%s\n%s", j.State, j.FailureReason, j.Stored)
	}
	assertStored(t, "artifacts too large", j,
		"ERROR: Job failed: artifacts too large: 3976 bytes over the limit of 1024 bytes set by artifacts_limit in config.toml\n")
	if up := c.Uploads(largeID); len(up) != 0 {
		t.Errorf("uploads of the too large artifacts: %+v", up)
	}

	want := map[string]float64{
		`ci_runner_jobs_total{runner=e2e,state=success}`:                                1,
		`ci_runner_jobs_total{runner=e2e,state=failed}`:                                 2,
		`ci_runner_failed_jobs_total{failure_reason=script_failure,runner=e2e}`:         2,
		`ci_runner_failed_jobs_total{failure_reason=runner_system_failure,runner=e2e}`:  0,
		`ci_runner_failed_jobs_total{failure_reason=job_execution_timeout,runner=e2e}`:  0,
		`ci_runner_job_duration_seconds_count{runner=e2e}`:                              3,
		`ci_runner_builds{stage=upload_artifacts,state=running} (after the jobs ended)`: 0,
	}
	read := func() map[string]float64 {
		_, mfs := scrape(t, http.DefaultClient, "http://"+runner.addr+"/metrics", nil)
		got := map[string]float64{}
		for _, st := range []string{"success", "failed"} {
			got[`ci_runner_jobs_total{runner=e2e,state=`+st+`}`] = counterValue(t, mfs, "ci_runner_jobs_total", map[string]string{"runner": "e2e", "state": st})
		}
		for _, r := range []string{"script_failure", "runner_system_failure", "job_execution_timeout"} {
			got[`ci_runner_failed_jobs_total{failure_reason=`+r+`,runner=e2e}`] = counterValue(t, mfs, "ci_runner_failed_jobs_total",
				map[string]string{"runner": "e2e", "failure_reason": r})
		}
		got[`ci_runner_job_duration_seconds_count{runner=e2e}`] = counterValue(t, mfs, "ci_runner_job_duration_seconds", map[string]string{"runner": "e2e"})
		got[`ci_runner_builds{stage=upload_artifacts,state=running} (after the jobs ended)`] = buildsGauge(t, runner.addr, "upload_artifacts", "running")
		return got
	}
	// The runner counts a job just after the coordinator has its result.
	var got map[string]float64
	eventually(t, "the job metrics to count the three jobs", func() bool { got = read(); return reflect.DeepEqual(got, want) })
	if !reflect.DeepEqual(got, want) {
		t.Errorf("metrics after the jobs:\n got %v\nwant %v", got, want)
	}
}

// GIT_DEPTH: 1 checks out one commit of history; GIT_STRATEGY: none runs
// no git and leaves the tree as the last job left it; GIT_SUBMODULE_STRATEGY:
// recursive checks out the submodules of the submodules.
func TestJobsArtifactsGitVariables(t *testing.T) {
	c := coordinatortest.NewFlavor(t, coordinatortest.AlloyCI)
	c.AddRunner(e2eRunnerToken)
	root := t.TempDir()
	deep := newArtRepo(t, filepath.Join(root, "deep"))
	deep.commit("deep.txt", "from deep\n")
	lib := newArtRepo(t, filepath.Join(root, "lib"))
	lib.commit("lib.txt", "from lib\n")
	lib.addSubmodule("deep", "../deep", deep)
	app := newArtRepo(t, filepath.Join(root, "app"))
	app.commit("one.txt", "1\n")
	app.commit("two.txt", "2\n")
	app.addSubmodule("lib", "../lib", lib)
	sha := app.commit("three.txt", "3\n")
	runner := startArtRunner(t, c, "")
	vars := func(kv ...string) []coordinatortest.Variable {
		var out []coordinatortest.Variable
		for i := 0; i < len(kv); i += 2 {
			out = append(out, coordinatortest.Variable{Key: kv[i], Value: kv[i+1], Public: true})
		}
		return out
	}

	shallow := artJob(app.url, sha, `echo "commits=$(git rev-list --count HEAD)"`, "echo left-by-the-last-job > marker.txt", "echo changed > one.txt")
	shallow.Variables = vars("GIT_DEPTH", "1")
	j := c.AwaitFinal(c.EnqueueSpec(e2eRunnerToken, shallow))
	if j.State != "success" {
		t.Fatalf("GIT_DEPTH 1: %s\n%s", j.State, j.Stored)
	}
	assertStored(t, "GIT_DEPTH 1", j, "Cloning repository with git depth set to 1...\n", "\ncommits=1\n", "Skipping Git submodules setup\n")

	newer := app.commit("four.txt", "4\n")
	none := artJob(app.url, newer, "git rev-parse HEAD", "cat marker.txt one.txt", "test ! -e four.txt && echo no-four")
	none.Variables = vars("GIT_STRATEGY", "none")
	j = c.AwaitFinal(c.EnqueueSpec(e2eRunnerToken, none))
	if j.State != "success" {
		t.Fatalf("GIT_STRATEGY none: %s\n%s", j.State, j.Stored)
	}
	assertStored(t, "GIT_STRATEGY none", j, "Skipping Git repository setup\n", "\n"+sha+"\n", "\nleft-by-the-last-job\nchanged\n", "\nno-four\n")
	for _, git := range []string{"Fetching changes", "Cloning", "Checking out"} {
		if strings.Contains(j.Stored[strings.Index(j.Stored, "Getting source"):], git) {
			t.Errorf("GIT_STRATEGY none ran git (%q):\n%s", git, j.Stored)
		}
	}

	sub := artJob(app.url, sha, "cat lib/lib.txt lib/deep/deep.txt")
	sub.Variables = vars("GIT_STRATEGY", "clone", "GIT_SUBMODULE_STRATEGY", "recursive")
	j = c.AwaitFinal(c.EnqueueSpec(e2eRunnerToken, sub))
	if j.State != "success" {
		t.Fatalf("GIT_SUBMODULE_STRATEGY recursive: %s\n%s", j.State, j.Stored)
	}
	assertStored(t, "GIT_SUBMODULE_STRATEGY recursive", j, "Updating/initializing submodules recursively...\n", "\nfrom lib\nfrom deep\n")
	if got := strings.TrimSpace(readFile(t, filepath.Join(runner.projectDir(t), "lib", "deep", "deep.txt"))); got != "from deep" {
		t.Errorf("lib/deep/deep.txt = %q", got)
	}
}
