package config

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
)

// Runner is one [[runners]] entry of config.toml: a registration at a
// coordinator that the job loop polls for jobs. The loop takes it as it is,
// so this is the one place its fields and rules are defined.
type Runner struct {
	// Name is the entry's unique name, as alloy-runner list shows it.
	Name string `toml:"name"`
	// URL is the coordinator's address.
	URL string `toml:"url"`
	// Token is the runner token; it is never logged.
	Token string `toml:"token"`
	// Executor must be "shell", the only executor this runner has.
	Executor string `toml:"executor"`
	// BuildsDir is where projects are checked out (relative to the working
	// directory unless absolute).
	BuildsDir string `toml:"builds_dir"`
	// Limit bounds this runner's jobs at once; 0 means no limit of its own.
	Limit int `toml:"limit"`
	// Shell is the shell for scripts: "bash" (or empty, meaning bash).
	Shell string `toml:"shell"`
	// CacheDir is where the jobs' caches are kept, by project and key.
	// Empty means BuildsDir's sibling "cache" (see CacheDirectory).
	CacheDir string `toml:"cache_dir"`
	// ArtifactsLimit bounds an artifacts or cache archive, in KiB as the
	// upstream runner's output_limit counts; 0 means DefaultArtifactsLimit.
	// It also bounds what a dependency's archive may unpack to.
	ArtifactsLimit int64 `toml:"artifacts_limit"`
}

// DefaultArtifactsLimit is ArtifactsLimit when unset: 100 MiB, in KiB.
const DefaultArtifactsLimit = 100 * 1024

// ArtifactsLimitBytes is ArtifactsLimit in bytes, the default applied.
func (r Runner) ArtifactsLimitBytes() int64 {
	if r.ArtifactsLimit <= 0 {
		return DefaultArtifactsLimit << 10
	}
	return r.ArtifactsLimit << 10
}

// CacheDirectory is CacheDir, or "cache" beside BuildsDir when unset: the
// caches outlive the checkouts but stay in the runner's state directory.
func (r Runner) CacheDirectory() string {
	if r.CacheDir != "" {
		return r.CacheDir
	}
	return filepath.Join(filepath.Dir(filepath.Clean(r.BuildsDir)), "cache")
}

// SafeURL is the runner's URL with any password in it hidden, for output.
func (r Runner) SafeURL() string { return safeURL(r.URL) }

// String names the runner without its token, for logs and errors.
func (r Runner) String() string {
	return fmt.Sprintf("runner %q (%s)", r.Name, safeURL(r.URL))
}

// Registration identifies the coordinator registration the entry polls as:
// the same url and token are the same runner, whatever its name. It holds
// the token, so it is for comparing entries, never for output.
func (r Runner) Registration() string { return r.URL + "\x00" + r.Token }

// ValidateRunners checks runner entries, alone and together, with an error
// naming each broken entry and what to change. Parse runs it on every file,
// and the job loop on what it is handed, so an entry it cannot honour (say,
// a docker executor) never runs as a shell job.
func ValidateRunners(runners []Runner) error {
	var errs []error
	names := make(map[string]bool, len(runners))
	registrations := make(map[string]string, len(runners))
	for i, r := range runners {
		where := fmt.Sprintf("[[runners]] #%d", i+1)
		if r.Name != "" {
			where = fmt.Sprintf("runner %q", r.Name)
		}
		if r.Name == "" {
			errs = append(errs, fmt.Errorf("%s: name is missing; give every runner a unique name", where))
		} else if names[r.Name] {
			errs = append(errs, fmt.Errorf("%s: the name is used twice; give every runner a unique name", where))
		}
		names[r.Name] = true
		if u, err := url.Parse(r.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s: url %q is not an http(s) URL of the coordinator, e.g. https://alloy.example.com/", where, safeURL(r.URL)))
		}
		if r.Token == "" {
			errs = append(errs, fmt.Errorf("%s: token is missing; get one with alloy-runner register", where))
		}
		if r.Executor != "shell" {
			errs = append(errs, fmt.Errorf("%s: executor %q is not supported: this runner has only the shell executor; set executor = \"shell\"", where, r.Executor))
		}
		if r.Shell != "" && r.Shell != "bash" {
			errs = append(errs, fmt.Errorf("%s: shell %q is not supported: set shell = \"bash\"", where, r.Shell))
		}
		if r.Limit < 0 {
			errs = append(errs, fmt.Errorf("%s: limit = %d: must be 0 (no limit) or more", where, r.Limit))
		}
		if r.ArtifactsLimit < 0 || r.ArtifactsLimit > 1<<30 {
			errs = append(errs, fmt.Errorf("%s: artifacts_limit = %d: give the largest artifacts or cache archive in KiB, from 1 to %d (0 means %d, 100 MiB)", where, r.ArtifactsLimit, 1<<30, DefaultArtifactsLimit))
		}
		if other, dup := registrations[r.Registration()]; dup {
			errs = append(errs, fmt.Errorf("%s: same url and token as %s: the two entries are one registration; remove one of them", where, other))
		}
		registrations[r.Registration()] = where
	}
	return errors.Join(errs...)
}

// safeURL is u for messages: its password, if any, replaced by "xxxxx", and
// "(not a URL)" when it does not parse.
func safeURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(not a URL)"
	}
	return p.Redacted()
}
