package shell

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// repo is a git repository made for a test, reachable at url (file://).
type repo struct {
	t   *testing.T
	dir string
	url string
}

func newRepo(t *testing.T) *repo {
	t.Helper()
	return newRepoAt(t, filepath.Join(t.TempDir(), "src"))
}

// newRepoAt makes a repository in dir, whose parent must exist.
func newRepoAt(t *testing.T, dir string) *repo {
	t.Helper()
	r := &repo{t: t, dir: dir}
	r.url = "file://" + r.dir
	r.git("init", "-q", r.dir)
	return r
}

func (r *repo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=Test", "-c", "user.email=test@example.invalid",
		"-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"}, args...)...)
	cmd.Dir = filepath.Dir(r.dir)
	if _, err := os.Stat(r.dir); err == nil {
		cmd.Dir = r.dir
	}
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files and commits them, returning the commit id.
func (r *repo) commit(files map[string]string) string {
	r.t.Helper()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(r.dir, name), []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	r.git("add", "-A")
	r.git("commit", "-q", "-m", "change")
	return r.git("rev-parse", "HEAD")
}

func baseEnv() []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "GIT_CONFIG_GLOBAL=/dev/null"}
}

func TestGetSourcesClonesThenFetches(t *testing.T) {
	r := newRepo(t)
	sha1 := r.commit(map[string]string{"file.txt": "first\n"})
	dir := filepath.Join(t.TempDir(), "builds", "project-7")
	src := Sources{RepoURL: r.url, SHA: sha1, Ref: "main", Dir: dir, AllowFetch: true, Token: "job-token", Env: baseEnv()}

	var out bytes.Buffer
	if err := GetSources(context.Background(), src, &out); err != nil {
		t.Fatalf("clone: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "Cloning repository...") || !strings.Contains(out.String(), "Checking out "+sha1[:8]+" as main...") {
		t.Fatalf("clone output: %q", out.String())
	}
	assertFile(t, filepath.Join(dir, "file.txt"), "first\n")

	// What a second job must find: a fetched tree, not a fresh clone (the
	// marker in .git survives), without the previous job's leftovers.
	os.WriteFile(filepath.Join(dir, ".git", "marker"), nil, 0o600)
	os.WriteFile(filepath.Join(dir, "leftover"), nil, 0o600)
	os.WriteFile(filepath.Join(dir, ".git", "index.lock"), nil, 0o600) // as a killed git leaves it
	sha2 := r.commit(map[string]string{"file.txt": "second\n"})
	src.SHA = sha2
	out.Reset()
	if err := GetSources(context.Background(), src, &out); err != nil {
		t.Fatalf("fetch: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "Fetching changes...") || strings.Contains(out.String(), "Cloning") {
		t.Fatalf("fetch output: %q", out.String())
	}
	assertFile(t, filepath.Join(dir, "file.txt"), "second\n")
	for _, p := range []string{filepath.Join(dir, ".git", "marker")} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s is gone: the tree was cloned again", p)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "leftover")); err == nil {
		t.Fatal("the previous job's untracked file is still there")
	}

	// An older commit checks out too, and without fetch the tree is cloned.
	src.SHA, src.AllowFetch = sha1, false
	out.Reset()
	if err := GetSources(context.Background(), src, &out); err != nil {
		t.Fatalf("clone again: %v\n%s", err, out.String())
	}
	assertFile(t, filepath.Join(dir, "file.txt"), "first\n")
	if _, err := os.Stat(filepath.Join(dir, ".git", "marker")); err == nil {
		t.Fatal("allow_git_fetch false did not clone afresh")
	}
	cfg, _ := os.ReadFile(filepath.Join(dir, ".git", "config"))
	if strings.Contains(string(cfg), "job-token") {
		t.Fatal(".git/config holds the job token")
	}
}

func TestGetSourcesRefusesBadInput(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "p")
	for _, tc := range []struct{ name, url, sha, dir string }{
		{"option as sha", "file:///nowhere", "--upload-pack=touch", dir},
		{"ext transport", "ext::sh -c touch% /tmp/pwned", "0123456789abcdef", dir},
		{"ssh", "ssh://host/repo", "0123456789abcdef", dir},
		{"relative dir", "file:///nowhere", "0123456789abcdef", "relative"},
	} {
		err := GetSources(context.Background(), Sources{RepoURL: tc.url, SHA: tc.sha, Dir: tc.dir, Env: baseEnv()}, &bytes.Buffer{})
		if err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

// TestHTTPSTokenOnlyInAHeader checks how the job token reaches an https
// repository: as basic auth, and nowhere in the output or the error.
func TestHTTPSTokenOnlyInAHeader(t *testing.T) {
	var mu sync.Mutex
	var auth []string
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth = append(auth, r.Header.Get("Authorization"))
		mu.Unlock()
		http.NotFound(w, r)
	}))
	srv.Listener = l
	srv.StartTLS()
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)

	for _, tc := range []struct {
		url, token, wantAuth string
	}{
		{srv.URL + "/group/app.git", "the-job-token", "gitlab-ci-token:the-job-token"},
		{strings.Replace(srv.URL, "https://", "https://gitlab-ci-token:url-token@", 1) + "/group/app.git", "the-job-token", "gitlab-ci-token:url-token"},
	} {
		mu.Lock()
		auth = nil
		mu.Unlock()
		var out bytes.Buffer
		err := GetSources(context.Background(), Sources{
			RepoURL: tc.url, SHA: "0123456789abcdef", Ref: "main", Token: tc.token,
			Dir: filepath.Join(t.TempDir(), "p"), Env: append(baseEnv(), "GIT_SSL_CAINFO="+ca),
		}, &out)
		if err == nil {
			t.Fatal("clone from a 404 server succeeded")
		}
		mu.Lock()
		got := strings.Join(auth, ",")
		mu.Unlock()
		want := "Basic " + base64.StdEncoding.EncodeToString([]byte(tc.wantAuth))
		if !strings.Contains(got, want) {
			t.Errorf("Authorization headers %q, want %q", got, want)
		}
		for _, secret := range []string{"the-job-token", "url-token"} {
			if strings.Contains(out.String()+err.Error(), secret) {
				t.Errorf("output or error shows %q: %q %v", secret, out.String(), err)
			}
		}
	}
}

func assertFile(t *testing.T, path, want string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || string(b) != want {
		t.Fatalf("%s = %q, %v; want %q", path, b, err, want)
	}
}

// addSubmodule commits sub's HEAD as the submodule at path, with url as
// .gitmodules gives it (relative or absolute), and returns the commit id.
func (r *repo) addSubmodule(path, url string, sub *repo) string {
	r.t.Helper()
	r.git("config", "-f", ".gitmodules", "submodule."+path+".path", path)
	r.git("config", "-f", ".gitmodules", "submodule."+path+".url", url)
	r.git("add", ".gitmodules")
	r.git("update-index", "--add", "--cacheinfo", "160000,"+sub.git("rev-parse", "HEAD")+","+path)
	r.git("commit", "-q", "-m", "submodule "+path)
	return r.git("rev-parse", "HEAD")
}

// inTree runs git in a checked-out tree, for what a test checks there.
func inTree(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v in %s: %v\n%s", args, dir, err, out)
	}
	return strings.TrimSpace(string(out))
}

// entries lists the names in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func getSources(t *testing.T, src Sources) string {
	t.Helper()
	var out bytes.Buffer
	if err := GetSources(context.Background(), src, &out); err != nil {
		t.Fatalf("GetSources: %v\n%s", err, out.String())
	}
	return out.String()
}

func TestGetSourcesDepth(t *testing.T) {
	r := newRepo(t)
	r.commit(map[string]string{"file.txt": "1\n"})
	sha2 := r.commit(map[string]string{"file.txt": "2\n"})
	sha3 := r.commit(map[string]string{"file.txt": "3\n"})
	dir := filepath.Join(t.TempDir(), "p")
	src := Sources{RepoURL: r.url, SHA: sha3, Ref: "main", Dir: dir, AllowFetch: true, Env: baseEnv(),
		GitOptions: GitOptions{Depth: 1}}

	out := getSources(t, src)
	if !strings.Contains(out, "Cloning repository with git depth set to 1...\n") {
		t.Errorf("trace %q does not tell of the depth", out)
	}
	if n := inTree(t, dir, "rev-list", "--count", "HEAD"); n != "1" {
		t.Errorf("GIT_DEPTH=1 checked out %s commits", n)
	}
	assertFile(t, filepath.Join(dir, "file.txt"), "3\n")

	// A commit below the tip of the branch is fetched by its id, as
	// shallow as the rest.
	src.SHA, src.AllowFetch = sha2, false
	getSources(t, src)
	if n := inTree(t, dir, "rev-list", "--count", "HEAD"); n != "1" {
		t.Errorf("GIT_DEPTH=1 on an older commit checked out %s commits", n)
	}
	assertFile(t, filepath.Join(dir, "file.txt"), "2\n")

	// The next job fetches into this shallow tree with no GIT_DEPTH: it
	// gets the whole history.
	src.SHA, src.AllowFetch, src.Depth = sha3, true, 0
	out = getSources(t, src)
	if !strings.Contains(out, "Fetching changes...\n") {
		t.Fatalf("trace %q: the tree was not fetched into", out)
	}
	if n := inTree(t, dir, "rev-list", "--count", "HEAD"); n != "3" {
		t.Errorf("GIT_DEPTH=0 after a shallow job left %s commits, want 3", n)
	}
	if s := inTree(t, dir, "rev-parse", "--is-shallow-repository"); s != "false" {
		t.Errorf("is-shallow-repository = %s", s)
	}

	// And a shallow fetch into that complete tree brings the new commit.
	sha4 := r.commit(map[string]string{"file.txt": "4\n"})
	src.SHA, src.Depth = sha4, 1
	if out := getSources(t, src); !strings.Contains(out, "Fetching changes with git depth set to 1...\n") {
		t.Fatalf("trace %q", out)
	}
	assertFile(t, filepath.Join(dir, "file.txt"), "4\n")
}

func TestGetSourcesStrategyNoneRunsNoGit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "p")
	if err := os.MkdirAll(filepath.Join(dir, ".git"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "stray"), []byte("left by an earlier job\n"), 0o600)
	os.WriteFile(filepath.Join(dir, ".git", "config"), []byte("not git's\n"), 0o600)
	// No git to run, and no repository to clone: any git command would
	// make the job fail.
	t.Setenv("PATH", t.TempDir())
	src := Sources{RepoURL: "file:///nonexistent/repo.git", SHA: "0123456789abcdef", Ref: "main", Dir: dir,
		AllowFetch: true, Token: "job-token", Env: baseEnv(),
		GitOptions: GitOptions{Strategy: GitNone, Submodules: SubmodulesRecursive, Depth: 1, Attempts: 3}}

	if out := getSources(t, src); out != "Skipping Git repository setup\n" {
		t.Errorf("trace %q", out)
	}
	if got := entries(t, dir); !slices.Equal(got, []string{".git", "stray"}) {
		t.Errorf("the directory holds %q", got)
	}
	assertFile(t, filepath.Join(dir, "stray"), "left by an earlier job\n")
	assertFile(t, filepath.Join(dir, ".git", "config"), "not git's\n")

	// A project directory that is not there yet is made, empty.
	src.Dir = filepath.Join(t.TempDir(), "new")
	getSources(t, src)
	if fi, err := os.Stat(src.Dir); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 || len(entries(t, src.Dir)) != 0 {
		t.Errorf("the new project directory: %v, %v", fi, err)
	}

	// What the same job does with git: fail, as there is none.
	src.Strategy = GitFetch
	err := GetSources(context.Background(), src, io.Discard)
	if err == nil || !strings.HasPrefix(err.Error(), "getting sources needs git: ") {
		t.Fatalf("with git: %v; the test does not prove git was not run", err)
	}
}

func TestGetSourcesStrategyCloneStartsAfresh(t *testing.T) {
	r := newRepo(t)
	sha := r.commit(map[string]string{"file.txt": "first\n"})
	dir := filepath.Join(t.TempDir(), "p")
	src := Sources{RepoURL: r.url, SHA: sha, Ref: "main", Dir: dir, AllowFetch: true, Env: baseEnv(),
		GitOptions: GitOptions{Strategy: GitClone}}
	getSources(t, src)
	leave := func() {
		os.WriteFile(filepath.Join(dir, ".git", "marker"), nil, 0o600)
		os.WriteFile(filepath.Join(dir, "stray"), nil, 0o600)
	}

	leave()
	out := getSources(t, src)
	if !strings.Contains(out, "Cloning repository...\n") || strings.Contains(out, "Fetching") {
		t.Errorf("GIT_STRATEGY=clone trace %q", out)
	}
	if got := entries(t, dir); !slices.Equal(got, []string{".git", "file.txt"}) {
		t.Errorf("after GIT_STRATEGY=clone the directory holds %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, ".git", "marker")); err == nil {
		t.Error("GIT_STRATEGY=clone kept the old .git")
	}

	leave()
	src.Strategy = GitFetch
	out = getSources(t, src)
	if !strings.Contains(out, "Fetching changes...\n") || strings.Contains(out, "Cloning") {
		t.Errorf("GIT_STRATEGY=fetch trace %q", out)
	}
	if _, err := os.Stat(filepath.Join(dir, ".git", "marker")); err != nil {
		t.Error("GIT_STRATEGY=fetch cloned afresh")
	}
	if got := entries(t, dir); !slices.Equal(got, []string{".git", "file.txt"}) {
		t.Errorf("after GIT_STRATEGY=fetch the directory holds %q", got)
	}
}

func TestGetSourcesWithoutCheckout(t *testing.T) {
	app, _, _ := submoduleRepos(t)
	sha := app.git("rev-parse", "HEAD")
	dir := filepath.Join(t.TempDir(), "p")
	out := getSources(t, Sources{RepoURL: app.url, SHA: sha, Ref: "main", Dir: dir, Env: baseEnv(),
		GitOptions: GitOptions{SkipCheckout: true, Submodules: SubmodulesRecursive}})
	if !strings.HasSuffix(out, "Skipping Git checkout\nSkipping Git submodules setup\n") || strings.Contains(out, "Checking out") {
		t.Errorf("trace %q", out)
	}
	if got := entries(t, dir); !slices.Equal(got, []string{".git"}) {
		t.Errorf("GIT_CHECKOUT=false left %q in the tree", got)
	}
	// The commit is there for the job to check out itself.
	if typ := inTree(t, dir, "cat-file", "-t", sha); typ != "commit" {
		t.Errorf("%s is a %q", sha, typ)
	}
}

// submoduleRepos makes app, whose submodule lib ("../lib") has the
// submodule deep ("../deep"), side by side as relative URLs need.
func submoduleRepos(t *testing.T) (app, lib, deep *repo) {
	t.Helper()
	root := t.TempDir()
	deep = newRepoAt(t, filepath.Join(root, "deep"))
	deep.commit(map[string]string{"deep.txt": "deep\n"})
	lib = newRepoAt(t, filepath.Join(root, "lib"))
	lib.commit(map[string]string{"lib.txt": "lib 1\n"})
	lib.commit(map[string]string{"lib.txt": "lib 2\n"})
	lib.addSubmodule("deep", "../deep", deep)
	app = newRepoAt(t, filepath.Join(root, "app"))
	app.commit(map[string]string{"app.txt": "app\n"})
	app.addSubmodule("lib", "../lib", lib)
	return app, lib, deep
}

func TestGetSourcesSubmodules(t *testing.T) {
	app, _, _ := submoduleRepos(t)
	sha := app.git("rev-parse", "HEAD")
	source := func(s SubmoduleStrategy, depth int) Sources {
		return Sources{RepoURL: app.url, SHA: sha, Ref: "main", Dir: filepath.Join(t.TempDir(), "p"),
			AllowFetch: true, Env: baseEnv(), GitOptions: GitOptions{Submodules: s, Depth: depth}}
	}

	t.Run("none", func(t *testing.T) {
		src := source(SubmodulesNone, 0)
		if out := getSources(t, src); !strings.HasSuffix(out, "Skipping Git submodules setup\n") {
			t.Errorf("trace %q", out)
		}
		if got := entries(t, filepath.Join(src.Dir, "lib")); len(got) != 0 {
			t.Errorf("lib holds %q", got)
		}
	})

	t.Run("normal", func(t *testing.T) {
		src := source(SubmodulesNormal, 0)
		if out := getSources(t, src); !strings.Contains(out, "Updating/initializing submodules...\n") {
			t.Errorf("trace %q", out)
		}
		assertFile(t, filepath.Join(src.Dir, "app.txt"), "app\n")
		assertFile(t, filepath.Join(src.Dir, "lib", "lib.txt"), "lib 2\n")
		if got := entries(t, filepath.Join(src.Dir, "lib", "deep")); len(got) != 0 {
			t.Errorf("normal checked out the nested submodule too: lib/deep holds %q", got)
		}
	})

	t.Run("recursive", func(t *testing.T) {
		src := source(SubmodulesRecursive, 0)
		if out := getSources(t, src); !strings.Contains(out, "Updating/initializing submodules recursively...\n") {
			t.Errorf("trace %q", out)
		}
		assertFile(t, filepath.Join(src.Dir, "lib", "lib.txt"), "lib 2\n")
		assertFile(t, filepath.Join(src.Dir, "lib", "deep", "deep.txt"), "deep\n")

		// The next job fetches into the tree: what this one changed in the
		// submodules is gone.
		os.WriteFile(filepath.Join(src.Dir, "lib", "lib.txt"), []byte("changed\n"), 0o600)
		os.WriteFile(filepath.Join(src.Dir, "lib", "deep", "stray"), nil, 0o600)
		if out := getSources(t, src); !strings.Contains(out, "Fetching changes...\n") {
			t.Fatalf("trace %q: the tree was not fetched into", out)
		}
		assertFile(t, filepath.Join(src.Dir, "lib", "lib.txt"), "lib 2\n")
		if got := entries(t, filepath.Join(src.Dir, "lib", "deep")); !slices.Equal(got, []string{".git", "deep.txt"}) {
			t.Errorf("lib/deep holds %q after the next job", got)
		}
	})

	t.Run("depth", func(t *testing.T) {
		src := source(SubmodulesRecursive, 1)
		if out := getSources(t, src); !strings.Contains(out, "Updating/initializing submodules recursively with git depth set to 1...\n") {
			t.Errorf("trace %q", out)
		}
		for _, d := range []string{src.Dir, filepath.Join(src.Dir, "lib")} {
			if n := inTree(t, d, "rev-list", "--count", "HEAD"); n != "1" {
				t.Errorf("%s has %s commits with GIT_DEPTH=1", d, n)
			}
		}
		assertFile(t, filepath.Join(src.Dir, "lib", "deep", "deep.txt"), "deep\n")
	})
}

// triggerWriter keeps the trace, and calls do once, when the trace first
// holds when: a step of a test that happens at a known point of the job.
type triggerWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	when string
	do   func()
	done bool
}

func (w *triggerWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.done && strings.Contains(w.buf.String(), w.when) {
		w.done = true
		w.do()
	}
	return len(p), nil
}

func (w *triggerWriter) lines(prefix string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var found []string
	for _, l := range strings.Split(w.buf.String(), "\n") {
		if strings.HasPrefix(l, prefix) {
			found = append(found, l)
		}
	}
	return found
}

func TestGetSourcesRetries(t *testing.T) {
	r := newRepo(t)
	sha := r.commit(map[string]string{"file.txt": "first\n"})
	later := filepath.Join(t.TempDir(), "later")
	dir := filepath.Join(t.TempDir(), "p")
	src := Sources{RepoURL: "file://" + later, SHA: sha, Ref: "main", Dir: dir, Env: baseEnv(),
		GitOptions: GitOptions{Attempts: 3}}

	// The repository appears once two attempts have failed.
	var moved error
	w := &triggerWriter{when: "attempt 3 of 3\n", do: func() { moved = os.Rename(r.dir, later) }}
	if err := GetSources(context.Background(), src, w); err != nil {
		t.Fatalf("GetSources: %v\n%s", err, w.buf.String())
	}
	if moved != nil {
		t.Fatal(moved)
	}
	want := []string{
		"WARNING: getting sources failed (git clone: exit code 128): retrying, attempt 2 of 3",
		"WARNING: getting sources failed (git clone: exit code 128): retrying, attempt 3 of 3",
	}
	if got := w.lines("WARNING:"); !slices.Equal(got, want) {
		t.Errorf("retry lines %q, want %q", got, want)
	}
	assertFile(t, filepath.Join(dir, "file.txt"), "first\n")

	// When every attempt fails, the last error says how many there were.
	src.RepoURL, src.Attempts = "file://"+filepath.Join(t.TempDir(), "never"), 2
	w = &triggerWriter{do: func() {}}
	err := GetSources(context.Background(), src, w)
	if want := "git clone: exit code 128 (2 attempts, as GET_SOURCES_ATTEMPTS says)"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
	if got := w.lines("WARNING:"); len(got) != 1 {
		t.Errorf("retry lines %q, want one", got)
	}
}

func TestGetSourcesRefusesBadOptions(t *testing.T) {
	for _, tc := range []struct {
		opts GitOptions
		sha  string
		want string
	}{
		{GitOptions{Strategy: "clonee"}, "0123456789abcdef", `unknown git strategy "clonee": use GitFetch, GitClone or GitNone`},
		{GitOptions{Submodules: "deep"}, "0123456789abcdef", `unknown submodule strategy "deep": use SubmodulesNone, SubmodulesNormal or SubmodulesRecursive`},
		{GitOptions{Depth: -1}, "0123456789abcdef", "git depth -1 is negative: use 0 for the whole history"},
		{GitOptions{Attempts: 11}, "0123456789abcdef", "11 get_sources attempts: use 1 to 10"},
		// A job that can never work is not tried again.
		{GitOptions{Attempts: 3}, "not-a-sha", "git_info.sha is not a commit id (hexadecimal)"},
	} {
		var out bytes.Buffer
		err := GetSources(context.Background(), Sources{RepoURL: "file:///nowhere", SHA: tc.sha, Dir: filepath.Join(t.TempDir(), "p"),
			Env: baseEnv(), GitOptions: tc.opts}, &out)
		if err == nil || err.Error() != tc.want || out.Len() != 0 {
			t.Errorf("%+v: error %v, trace %q; want the error %q and no trace", tc.opts, err, out.String(), tc.want)
		}
	}
}

// gitServer serves the repositories under root over https with git
// http-backend. Each request is first shown to allow, and refused with a 401
// when it says no.
func gitServer(t *testing.T, root string, allow func(*http.Request) bool) *httptest.Server {
	t.Helper()
	git, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	backend := &cgi.Handler{Path: git, Args: []string{"http-backend"}, Env: []string{
		"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
	}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allow(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// TestHTTPSSubmodulesGetTheTokenOnlyOnTheProjectsHost checks that the
// submodules on the project's host (by a relative URL or an absolute one)
// are fetched with the job token, that a submodule on another host never
// sees it, and that it is stored nowhere in the tree.
func TestHTTPSSubmodulesGetTheTokenOnlyOnTheProjectsHost(t *testing.T) {
	const token = "s3cret-job-token"
	basic := base64.StdEncoding.EncodeToString([]byte("gitlab-ci-token:" + token))
	var mu sync.Mutex
	var refused, projectRequests int
	var otherAuth []string

	projectRoot, otherRoot := t.TempDir(), t.TempDir()
	project := gitServer(t, projectRoot, func(r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		projectRequests++
		if r.Header.Get("Authorization") != "Basic "+basic {
			refused++
			return false
		}
		return true
	})
	other := gitServer(t, otherRoot, func(r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		if a := r.Header.Get("Authorization"); a != "" {
			otherAuth = append(otherAuth, a)
		}
		return true
	})
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: project.Certificate().Raw}), 0o600)

	work := t.TempDir()
	publish := func(r *repo, root, path string) {
		r.git("clone", "-q", "--bare", r.dir, filepath.Join(root, path))
	}
	lib := newRepoAt(t, filepath.Join(work, "lib"))
	lib.commit(map[string]string{"lib.txt": "lib\n"})
	publish(lib, projectRoot, "group/lib.git")
	ext := newRepoAt(t, filepath.Join(work, "ext"))
	ext.commit(map[string]string{"ext.txt": "ext\n"})
	publish(ext, otherRoot, "vendor/ext.git")
	app := newRepoAt(t, filepath.Join(work, "app"))
	app.commit(map[string]string{"app.txt": "app\n"})
	app.addSubmodule("relative", "../lib.git", lib)
	app.addSubmodule("same-host", project.URL+"/group/lib.git", lib)
	sha := app.addSubmodule("other-host", other.URL+"/vendor/ext.git", ext)
	publish(app, projectRoot, "group/app.git")

	dir := filepath.Join(t.TempDir(), "p")
	var out bytes.Buffer
	err := GetSources(context.Background(), Sources{
		RepoURL: project.URL + "/group/app.git", SHA: sha, Ref: "main", Dir: dir, Token: token,
		Env: append(baseEnv(), "GIT_SSL_CAINFO="+ca), GitOptions: GitOptions{Submodules: SubmodulesRecursive},
	}, &out)
	if err != nil {
		t.Fatalf("GetSources: %v\n%s", err, out.String())
	}
	assertFile(t, filepath.Join(dir, "relative", "lib.txt"), "lib\n")
	assertFile(t, filepath.Join(dir, "same-host", "lib.txt"), "lib\n")
	assertFile(t, filepath.Join(dir, "other-host", "ext.txt"), "ext\n")
	mu.Lock()
	if projectRequests == 0 || refused != 0 {
		t.Errorf("the project's host had %d requests, %d of them without the job token", projectRequests, refused)
	}
	if len(otherAuth) != 0 {
		t.Errorf("the other host was sent Authorization %q", otherAuth)
	}
	mu.Unlock()

	secrets := []string{token, basic}
	for _, s := range secrets {
		if strings.Contains(out.String(), s) {
			t.Errorf("the trace shows %q: %q", s, out.String())
		}
	}
	var configs int
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if d.Name() == "config" {
			configs++
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds %q", path, s)
			}
		}
		return nil
	})
	// .git/config and one per submodule (.git/modules/*/config).
	if configs != 4 {
		t.Errorf("%d git config files, want 4: the walk missed some", configs)
	}
}
