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
	"slices"
	"strconv"
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
	// previous one left, instead of cloning afresh, when Strategy is
	// GitFetch (the default). Without it, GitFetch clones.
	AllowFetch bool
	// Token is the job token, sent as HTTP basic auth (user
	// gitlab-ci-token) to an https repository when RepoURL has no
	// credentials of its own. It is passed to git in its environment, never
	// on the command line nor in .git/config.
	Token string
	// Env is the environment git starts from (PATH, HOME, ...). The job's
	// variables do not belong here: git runs with the runner's settings.
	Env []string
	// GitOptions are the job's Git variables (see ParseGitVariables).
	GitOptions
}

var shaPattern = regexp.MustCompile(`^[0-9a-f]{7,64}$`)

// GetSources brings s.Dir to commit s.SHA of s.RepoURL as s.GitOptions say:
// it clones, or fetches into the tree already there (GitFetch with
// s.AllowFetch), checks out s.SHA with a clean tree and updates submodules;
// GitNone only makes sure s.Dir exists. A failed attempt is tried again, up
// to s.Attempts in all, with a line in out for each retry. Progress and
// git's own output go to out. Errors never contain the credentials.
func GetSources(ctx context.Context, s Sources, out io.Writer) error {
	if !filepath.IsAbs(s.Dir) {
		return fmt.Errorf("the project directory %q is not absolute", s.Dir)
	}
	if err := s.GitOptions.check(); err != nil {
		return err
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
	if s.Strategy == GitNone {
		fmt.Fprintf(out, "Skipping Git repository setup\n")
		if err := os.MkdirAll(s.Dir, 0o700); err != nil {
			return fmt.Errorf("creating the project directory: %w", err)
		}
		return nil
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
		"GIT_TERMINAL_PROMPT=0", // never wait for a password
		"GCM_INTERACTIVE=never", // nor for a credential manager's dialog
		// No other transport, such as ext::, for the project nor for its
		// submodules. It also overrides protocol.file.allow, so the
		// submodules of a file:// project (and only those) may be file://.
		"GIT_ALLOW_PROTOCOL="+u.Scheme,
		"GIT_CONFIG_NOSYSTEM=1",
	)
	// Credentials go only over https (never in clear text), and only to the
	// repository's own scheme, host and port. Git hands this environment on
	// to the clones of submodules, so a submodule there (a relative URL, or
	// an absolute one on the same host) gets them too, and one anywhere
	// else does not: we cannot tell whether another host is trusted with
	// the job token, so we assume it is not.
	if u.Scheme == "https" && pass != "" {
		scope := (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/"}).String()
		env = append(env,
			"GIT_CONFIG_COUNT=1",
			"GIT_CONFIG_KEY_0=http."+scope+".extraHeader",
			"GIT_CONFIG_VALUE_0=Authorization: Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+pass)),
		)
	}
	g := gitRunner{git: git, env: env, dir: s.Dir, out: out}

	attempts := max(s.Attempts, 1)
	for attempt := 1; ; attempt++ {
		err := g.getSources(ctx, s, remote)
		if err == nil || ctx.Err() != nil {
			return err
		}
		if attempt == attempts {
			if attempts > 1 {
				return fmt.Errorf("%w (%d attempts, as GET_SOURCES_ATTEMPTS says)", err, attempts)
			}
			return err
		}
		fmt.Fprintf(out, "WARNING: getting sources failed (%v): retrying, attempt %d of %d\n", err, attempt+1, attempts)
	}
}

// getSources is one attempt of GetSources, for a strategy other than
// GitNone.
func (g gitRunner) getSources(ctx context.Context, s Sources, remote string) error {
	var depth []string
	withDepth := ""
	if s.Depth > 0 {
		depth = []string{"--depth", strconv.Itoa(s.Depth)}
		withDepth = fmt.Sprintf(" with git depth set to %d", s.Depth)
	}
	// Submodules are fetched by "git submodule update", not by every fetch.
	fetch := slices.Concat([]string{"fetch", "--no-recurse-submodules"}, depth)

	if s.Strategy != GitClone && s.AllowFetch && g.usable(ctx) {
		fmt.Fprintf(g.out, "Fetching changes%s...\n", withDepth)
		// A job killed during git may have left its locks behind.
		for _, lock := range []string{"index.lock", "shallow.lock", "HEAD.lock", "config.lock"} {
			_ = os.Remove(filepath.Join(s.Dir, ".git", lock))
		}
		if err := g.in(ctx, "remote", "set-url", "origin", remote); err != nil {
			if err := g.in(ctx, "remote", "add", "origin", remote); err != nil {
				return fmt.Errorf("setting the remote: %w", err)
			}
		}
		args := slices.Clone(fetch)
		if _, err := os.Stat(filepath.Join(s.Dir, ".git", "shallow")); err == nil && s.Depth == 0 {
			// An earlier job fetched with GIT_DEPTH; this one wants it all.
			args = append(args, "--unshallow")
		}
		args = append(args, "--prune", "origin", "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*")
		if err := g.in(ctx, args...); err != nil {
			return fmt.Errorf("git fetch: %w", err)
		}
	} else {
		fmt.Fprintf(g.out, "Cloning repository%s...\n", withDepth)
		if err := os.RemoveAll(s.Dir); err != nil {
			return fmt.Errorf("removing the old project directory: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(s.Dir), 0o700); err != nil {
			return fmt.Errorf("creating the builds directory: %w", err)
		}
		if err := g.clone(ctx, remote, depth); err != nil {
			return fmt.Errorf("git clone: %w", err)
		}
	}
	if g.quiet().in(ctx, "cat-file", "-e", s.SHA+"^{commit}") != nil {
		// Not on any branch or tag (a force-pushed or merge-request
		// commit), or deeper than a shallow clone's default branch: ask
		// for it by id.
		if err := g.in(ctx, slices.Concat(fetch, []string{"origin", s.SHA})...); err != nil {
			return fmt.Errorf("commit %s is not in the repository: %w", s.SHA, err)
		}
	}
	if s.SkipCheckout {
		// Submodules are checked out at the commits the superproject's
		// index records, which without a checkout is not this job's commit.
		fmt.Fprintf(g.out, "Skipping Git checkout\nSkipping Git submodules setup\n")
		return nil
	}
	short := s.SHA[:8]
	fmt.Fprintf(g.out, "Checking out %s as %s...\n", short, s.Ref)
	if err := g.in(ctx, "checkout", "-f", "-q", s.SHA, "--"); err != nil {
		return fmt.Errorf("git checkout: %w", err)
	}
	if err := g.in(ctx, "clean", "-ffdxq"); err != nil {
		return fmt.Errorf("git clean: %w", err)
	}
	return g.submodules(ctx, s.Submodules, depth, withDepth)
}

// submodules checks out the submodules at the commits the superproject
// records, with the same credentials and transport rules as the project.
func (g gitRunner) submodules(ctx context.Context, strategy SubmoduleStrategy, depth []string, withDepth string) error {
	var recursive []string
	switch strategy {
	case SubmodulesNormal:
		fmt.Fprintf(g.out, "Updating/initializing submodules%s...\n", withDepth)
	case SubmodulesRecursive:
		fmt.Fprintf(g.out, "Updating/initializing submodules recursively%s...\n", withDepth)
		recursive = []string{"--recursive"}
	default:
		fmt.Fprintf(g.out, "Skipping Git submodules setup\n")
		return nil
	}
	foreach := func(command string) []string {
		return slices.Concat([]string{"submodule", "foreach", "-q"}, recursive, []string{command})
	}
	steps := []struct {
		what string
		args []string
	}{
		// init before sync, so that sync sees every submodule; sync, so
		// that a URL changed in .gitmodules since the last job is used.
		{"git submodule init", []string{"submodule", "init"}},
		{"git submodule sync", slices.Concat([]string{"submodule", "sync", "-q"}, recursive)},
		// A fetched tree's submodules still hold the last job's changes,
		// which would stop the update or end up in this job.
		{"cleaning the submodules", foreach("git clean -ffdxq")},
		{"resetting the submodules", foreach("git reset -q --hard")},
		{"git submodule update", slices.Concat([]string{"submodule", "update", "--init"}, recursive, depth)},
		// What the update left behind: nested submodules the new commits
		// no longer have.
		{"cleaning the submodules", foreach("git clean -ffdxq")},
	}
	for _, step := range steps {
		if err := g.in(ctx, step.args...); err != nil {
			return fmt.Errorf("%s: %w", step.what, err)
		}
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

// clone clones remote into g.dir without checking anything out; depth is
// none or "--depth N".
func (g gitRunner) clone(ctx context.Context, remote string, depth []string) error {
	args := gitArgs(slices.Concat([]string{"clone", "--no-checkout"}, depth, []string{"--", remote, g.dir})...)
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
