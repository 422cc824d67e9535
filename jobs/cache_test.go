package jobs_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alloyci/hardened-runner/config"
	"github.com/alloyci/hardened-runner/coordinator"
	"github.com/alloyci/hardened-runner/coordinator/coordinatortest"
	"github.com/alloyci/hardened-runner/internal/ziptest"
)

func withCache(sp coordinatortest.Spec, c coordinator.CacheSpec) coordinatortest.Spec {
	sp.Cache = &c
	return sp
}

// cacheFiles lists the archives under the runner's cache directory.
func cacheFiles(t *testing.T, run config.Runner) []string {
	t.Helper()
	var out []string
	root := run.CacheDirectory()
	if _, err := os.Stat(root); err != nil {
		return nil
	}
	for p := range tree(t, root) {
		if fi, err := os.Lstat(p); err == nil && !fi.IsDir() {
			out = append(out, p)
		}
	}
	return out
}

// The next job of a project finds the cache the previous one saved, under
// the key with its variables expanded, in its tree before its script runs;
// the checkout's clean does not keep vendor/, the cache brings it.
func TestCacheReachesTheNextJob(t *testing.T) {
	forFlavors(t, func(t *testing.T, f coordinatortest.Flavor) {
		h := newFlavorHarness(t, f, "runner-token-a")
		r := newRepo(t)
		sha := r.commit("file.txt", "x")
		cache := coordinator.CacheSpec{Key: "deps-$CI_COMMIT_REF_NAME-${CI_JOB_STAGE}", Paths: []string{"vendor/"}}
		first := h.enqueueSpec("runner-token-a", withCache(spec(r, sha,
			[]string{"test ! -e vendor", "mkdir vendor", "echo from-the-first-job > vendor/lib.txt"}, nil), cache))
		run := h.runner("a", "runner-token-a")
		h.start(1, run)

		got := h.d.AwaitFinal(first)
		if got.State != "success" {
			t.Fatalf("first job: %s\n%s", got.State, got.Stored)
		}
		h.assertTraceKept(got, "Restoring cache\n", `Checking cache for key "deps-main-test"...`+"\n",
			`WARNING: no cache for key "deps-main-test" yet: the job runs without it`+"\n",
			"Saving cache for successful job\n", `Creating cache for key "deps-main-test"...`+"\n",
			`Created cache for key "deps-main-test" (1 file)`+"\n")
		files := cacheFiles(t, run)
		if len(files) != 1 || filepath.Dir(filepath.Dir(filepath.Dir(files[0]))) != run.CacheDirectory() ||
			filepath.Base(filepath.Dir(files[0])) != "project-7" || !strings.HasPrefix(filepath.Base(files[0]), "deps-main-test-") {
			t.Fatalf("cache files: %v, want one, <cache_dir>/<runner>/project-7/deps-main-test-<hash>.zip", files)
		}
		if fi, _ := os.Stat(files[0]); fi.Mode().Perm() != 0o600 {
			t.Errorf("the cache is mode %o, want 0600: it is the runner's", fi.Mode().Perm())
		}

		second := h.enqueueSpec("runner-token-a", withCache(spec(r, sha, []string{"cat vendor/lib.txt"}, nil), cache))
		got = h.d.AwaitFinal(second)
		if got.State != "success" {
			t.Fatalf("second job: %s\n%s", got.State, got.Stored)
		}
		h.assertTraceKept(got, `Checking cache for key "deps-main-test"...`+"\nSuccessfully extracted cache\n",
			"$ cat vendor/lib.txt\x1b[0;m\nfrom-the-first-job\n")
	})
}

// A key is the job's text: one with "/" and ".." stays a file in the
// project's cache directory, and does not meet another key's file.
func TestCacheKeyStaysInTheProjectCache(t *testing.T) {
	h := newHarness(t, "runner-token-a")
	r := newRepo(t)
	sha := r.commit("file.txt", "x")
	run := h.runner("a", "runner-token-a")
	h.start(1, run)
	for _, key := range []string{"../../../../escape", "a/b", "a-b", "$SECRET_KEY"} {
		sp := withCache(spec(r, sha, []string{"echo " + key + " > kept.txt"}, nil,
			coordinatortest.Variable{Key: "SECRET_KEY", Value: "cache-key-s3cret", Public: false}),
			coordinator.CacheSpec{Key: key, Paths: []string{"kept.txt"}})
		if got := h.d.AwaitFinal(h.enqueueSpec("runner-token-a", sp)); got.State != "success" {
			t.Fatalf("key %q: %s\n%s", key, got.State, got.Stored)
		}
	}
	files := cacheFiles(t, run)
	if len(files) != 4 {
		t.Fatalf("cache files: %v, want one per key", files)
	}
	dir := filepath.Dir(files[0])
	for _, f := range files {
		if filepath.Dir(f) != dir || filepath.Base(dir) != "project-7" || filepath.Dir(filepath.Dir(dir)) != run.CacheDirectory() {
			t.Errorf("cache file %s is not in the project's cache directory %s", f, dir)
		}
		if strings.Contains(f, "s3cret") {
			t.Errorf("cache file %s is named after a secret", f)
		}
	}
	if escaped, _ := filepath.Glob(filepath.Join(filepath.Dir(run.BuildsDir), "escape*")); len(escaped) != 0 {
		t.Errorf("a key left the cache directory: %v", escaped)
	}
}

// A broken cache is a warning, tried RESTORE_CACHE_ATTEMPTS times; the job
// runs without it and succeeds, and saves a good one.
func TestBrokenCacheIsAWarning(t *testing.T) {
	h := newHarness(t, "runner-token-a")
	r := newRepo(t)
	sha := r.commit("file.txt", "x")
	cache := coordinator.CacheSpec{Key: "k", Paths: []string{"vendor/"}}
	run := h.runner("a", "runner-token-a")
	h.start(1, run)
	first := h.enqueueSpec("runner-token-a", withCache(spec(r, sha, []string{"mkdir vendor", "echo lib > vendor/lib"}, nil), cache))
	if got := h.d.AwaitFinal(first); got.State != "success" {
		t.Fatalf("first job: %s\n%s", got.State, got.Stored)
	}
	files := cacheFiles(t, run)
	if len(files) != 1 {
		t.Fatalf("cache files: %v", files)
	}
	writeFile(t, files[0], "not a zip at all")

	id := h.enqueueSpec("runner-token-a", withCache(spec(r, sha, []string{"test ! -e vendor", "mkdir vendor", "echo new > vendor/lib"}, nil,
		coordinatortest.Variable{Key: "RESTORE_CACHE_ATTEMPTS", Value: "3", Public: true}), cache))
	got := h.d.AwaitFinal(id)
	if got.State != "success" {
		t.Fatalf("job with a broken cache: %s/%s\n%s", got.State, got.FailureReason, got.Stored)
	}
	const broken = "archive: not a readable zip archive (zip: not a valid zip file): it is truncated, damaged or not an archive; run the job that made it again"
	h.assertTraceKept(got,
		"WARNING: restoring the cache failed ("+broken+"): retrying, attempt 2 of 3\n"+
			"WARNING: restoring the cache failed ("+broken+"): retrying, attempt 3 of 3\n"+
			`WARNING: the cache for key "k" cannot be restored (`+broken+"): the job runs without it\n",
		`Created cache for key "k" (1 file)`+"\n")
	b, _ := os.ReadFile(files[0])
	if ents := ziptest.Entries(t, b); len(ents) != 1 || ents["vendor/lib"] != "new\n" {
		t.Errorf("the cache after the job holds %q, want the new vendor/lib", ents)
	}
}

// The cache is saved only after a successful job (GitLab's default
// when: on_success): a failed one keeps the old cache. One larger than
// artifacts_limit is a warning, not a failure, and leaves nothing behind.
func TestCacheNotSaved(t *testing.T) {
	h := newHarness(t, "runner-token-a")
	r := newRepo(t)
	sha := r.commit("file.txt", "x")
	run := h.runner("a", "runner-token-a")
	run.ArtifactsLimit = 1 // KiB
	h.start(1, run)

	failed := h.enqueueSpec("runner-token-a", withCache(spec(r, sha, []string{"mkdir vendor", "echo x > vendor/lib", "exit 1"}, nil),
		coordinator.CacheSpec{Key: "k", Paths: []string{"vendor/"}}))
	got := h.d.AwaitFinal(failed)
	if got.State != "failed" || strings.Contains(got.Stored, "Saving cache") || len(cacheFiles(t, run)) != 0 {
		t.Errorf("failed job: %s, cache files %v\n%s", got.State, cacheFiles(t, run), got.Stored)
	}

	large := h.enqueueSpec("runner-token-a", withCache(spec(r, sha, []string{"mkdir vendor", "head -c 2000 /dev/zero > vendor/big"}, nil),
		coordinator.CacheSpec{Key: "k", Paths: []string{"vendor/"}}))
	got = h.d.AwaitFinal(large)
	if got.State != "success" {
		t.Errorf("job with a cache too large: %s/%s", got.State, got.FailureReason)
	}
	h.assertTraceKept(got, `WARNING: the cache for key "k" is not saved: its files come to more than the 1024 bytes artifacts_limit in config.toml allows`+"\n")
	if files := cacheFiles(t, run); len(files) != 0 {
		t.Errorf("left in the cache directory: %v", files)
	}
}

// cache: untracked: true keeps the files git does not track.
func TestCacheOfUntrackedFiles(t *testing.T) {
	h := newHarness(t, "runner-token-a")
	r := newRepo(t)
	sha := r.commit("file.txt", "x")
	cache := coordinator.CacheSpec{Untracked: true}
	h.start(1, h.runner("a", "runner-token-a"))
	first := h.enqueueSpec("runner-token-a", withCache(spec(r, sha, []string{"echo built > build.out"}, nil), cache))
	if got := h.d.AwaitFinal(first); got.State != "success" || !strings.Contains(got.Stored, `Created cache for key "default" (1 file)`) {
		t.Fatalf("first job: %s\n%s", got.State, got.Stored)
	}
	second := h.enqueueSpec("runner-token-a", withCache(spec(r, sha, []string{"cat build.out"}, nil), cache))
	if got := h.d.AwaitFinal(second); got.State != "success" || !strings.Contains(got.Stored, "\nbuilt\n") {
		t.Fatalf("second job: %s\n%s", got.State, got.Stored)
	}
}
