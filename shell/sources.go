package shell

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
)

// Sources says what get_sources checks out, and where.
type Sources struct {
	// RepoURL is git_info.repo_url: https, http or file. Credentials in it
	// are used for the fetch but never stored in the repository nor shown.
	RepoURL string
	// SHA is the commit to check out; Ref is shown in the trace.
	SHA, Ref string
	// Dir is the absolute path of the checked-out tree.
	Dir string
	// AllowFetch lets a later job of the project fetch into the tree the
	// previous one left, instead of cloning afresh.
	AllowFetch bool
	// Token is the job token, sent as HTTP basic auth (user
	// gitlab-ci-token) to an https repository when RepoURL has no
	// credentials of its own. It is passed to git in its environment, never
	// on the command line nor in .git/config.
	Token string
	// Env is the environment git starts from (PATH, HOME, ...). The job's
	// variables do not belong here: git runs with the runner's settings.
	Env []string
}

var shaPattern = regexp.MustCompile(`^[0-9a-f]{7,64}$`)

// GetSources clones s.RepoURL into s.Dir, or fetches into the tree already
// there when s.AllowFetch, and checks out s.SHA with a clean tree. Progress
// and git's own output go to out. Errors never contain the credentials.
func GetSources(ctx context.Context, s Sources, out io.Writer) error {
	if !filepath.IsAbs(s.Dir) {
		return fmt.Errorf("the project directory %q is not absolute", s.Dir)
	}
	if !shaPattern.MatchString(s.SHA) {
		return errors.New("git_info.sha is not a commit id (hexadecimal)")
	}
	u, err := url.Parse(s.RepoURL)
	if err != nil {
		return errors.New("git_info.repo_url is not a URL")
	}
	switch u.Scheme {
	case "https", "http":
		if u.Host == "" {
			return errors.New("git_info.repo_url has no host")
		}
	case "file":
	default:
		return fmt.Errorf("git_info.repo_url has scheme %q: only https, http and file repositories can be cloned", u.Scheme)
	}
	git, err := exec.LookPath("git")
	if err != nil {
		return fmt.Errorf("getting sources needs git: %w", err)
	}

	user, pass := "gitlab-ci-token", s.Token
	if u.User != nil {
		user = u.User.Username()
		pass, _ = u.User.Password()
	}
	plain := *u
	plain.User = nil
	remote := plain.String()

	env := append(append([]string(nil), s.Env...),
		"GIT_TERMINAL_PROMPT=0",        // never wait for a password
		"GCM_INTERACTIVE=never",        // nor for a credential manager's dialog
		"GIT_ALLOW_PROTOCOL="+u.Scheme, // no other transport, such as ext::
		"GIT_CONFIG_NOSYSTEM=1",
	)
	// Credentials go only over https (never in clear text), and only to the
	// repository's own scheme and host.
	if u.Scheme == "https" && pass != "" {
		scope := (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/"}).String()
		env = append(env,
			"GIT_CONFIG_COUNT=1",
			"GIT_CONFIG_KEY_0=http."+scope+".extraHeader",
			"GIT_CONFIG_VALUE_0=Authorization: Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+pass)),
		)
	}
	g := gitRunner{git: git, env: env, dir: s.Dir, out: out}

	if s.AllowFetch && g.usable(ctx) {
		fmt.Fprintf(out, "Fetching changes...\n")
		// A job killed during git may have left its locks behind.
		for _, lock := range []string{"index.lock", "shallow.lock", "HEAD.lock", "config.lock"} {
			_ = os.Remove(filepath.Join(s.Dir, ".git", lock))
		}
		if err := g.in(ctx, "remote", "set-url", "origin", remote); err != nil {
			if err := g.in(ctx, "remote", "add", "origin", remote); err != nil {
				return fmt.Errorf("setting the remote: %w", err)
			}
		}
		if err := g.in(ctx, "fetch", "--prune", "origin",
			"+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"); err != nil {
			return fmt.Errorf("git fetch: %w", err)
		}
	} else {
		fmt.Fprintf(out, "Cloning repository...\n")
		if err := os.RemoveAll(s.Dir); err != nil {
			return fmt.Errorf("removing the old project directory: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(s.Dir), 0o700); err != nil {
			return fmt.Errorf("creating the builds directory: %w", err)
		}
		if err := g.clone(ctx, remote); err != nil {
			return fmt.Errorf("git clone: %w", err)
		}
	}
	if g.quiet().in(ctx, "cat-file", "-e", s.SHA+"^{commit}") != nil {
		// Not on any branch or tag (a force-pushed or merge-request
		// commit): ask for it by id.
		if err := g.in(ctx, "fetch", "origin", s.SHA); err != nil {
			return fmt.Errorf("commit %s is not in the repository: %w", s.SHA, err)
		}
	}
	short := s.SHA[:8]
	fmt.Fprintf(out, "Checking out %s as %s...\n", short, s.Ref)
	if err := g.in(ctx, "checkout", "-f", "-q", s.SHA, "--"); err != nil {
		return fmt.Errorf("git checkout: %w", err)
	}
	if err := g.in(ctx, "clean", "-ffdxq"); err != nil {
		return fmt.Errorf("git clean: %w", err)
	}
	return nil
}

// gitRunner runs git for one project directory.
type gitRunner struct {
	git string
	env []string
	dir string
	out io.Writer
}

// gitArgs prefixes args with the settings every git command gets: no hooks
// (a cached tree must not run code at checkout), no credential helpers
// (which could store the job token), no file system monitor.
func gitArgs(args ...string) []string {
	return append([]string{
		"-c", "core.hooksPath=/dev/null",
		"-c", "credential.helper=",
		"-c", "core.fsmonitor=false",
		"-c", "advice.detachedHead=false",
		"-c", "init.defaultBranch=main",
	}, args...)
}

// in runs git in the project's tree, pinned to its .git so that git never
// wanders up to a repository around the builds directory.
func (g gitRunner) in(ctx context.Context, args ...string) error {
	env := append(append([]string(nil), g.env...),
		"GIT_DIR="+filepath.Join(g.dir, ".git"), "GIT_WORK_TREE="+g.dir)
	return run(ctx, proc{path: g.git, args: gitArgs(args...), dir: g.dir, env: env}, g.out)
}

func (g gitRunner) clone(ctx context.Context, remote string) error {
	args := gitArgs("clone", "--no-checkout", "--", remote, g.dir)
	return run(ctx, proc{path: g.git, args: args, dir: filepath.Dir(g.dir), env: g.env}, g.out)
}

// usable reports whether the project directory holds a git repository.
func (g gitRunner) usable(ctx context.Context) bool {
	if fi, err := os.Stat(filepath.Join(g.dir, ".git")); err != nil || !fi.IsDir() {
		return false
	}
	return g.quiet().in(ctx, "rev-parse", "--git-dir") == nil
}

// quiet is g with git's output discarded, for questions whose "no" is not
// an error worth showing.
func (g gitRunner) quiet() gitRunner {
	g.out = io.Discard
	return g
}
