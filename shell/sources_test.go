package shell

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
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
	r := &repo{t: t, dir: filepath.Join(t.TempDir(), "src")}
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
