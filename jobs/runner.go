package jobs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
)

// Runner is one [[runners]] entry of config.toml: a registration at a
// coordinator that the loop polls for jobs. Its fields match config.Runner,
// so the command converts one into the other with a plain conversion.
type Runner struct {
	Name string
	// URL is the coordinator's address.
	URL string
	// Token is the runner token; it is never logged.
	Token string
	// Executor must be "shell", the only executor this runner has.
	Executor string
	// BuildsDir is where projects are checked out (relative to the working
	// directory unless absolute).
	BuildsDir string
	// Limit bounds this runner's jobs at once; 0 means no limit of its own.
	Limit int
	// Shell is the shell for scripts: "bash" (or empty, meaning bash).
	Shell string
}

// String names the runner without its token, for logs and errors.
func (r Runner) String() string {
	return fmt.Sprintf("runner %q", r.Name)
}

// key identifies a registration across reloads: the same coordinator and
// token is the same runner, whatever its name.
func (r Runner) key() string { return r.URL + "\x00" + r.Token }

// shortID names the runner's builds directory. It is derived from the token
// without revealing it, unlike GitLab's token prefix.
func (r Runner) shortID() string {
	sum := sha256.Sum256([]byte(r.key()))
	return hex.EncodeToString(sum[:4])
}

// Validate checks runner entries before the loop uses them, with an error
// naming each broken runner and what to do about it. The command calls it
// on start and on reload; New and SetRunners call it too.
func Validate(runners []Runner) error {
	var errs []error
	seen := make(map[string]string)
	for i, r := range runners {
		name := fmt.Sprintf("runner %q", r.Name)
		if r.Name == "" {
			name = fmt.Sprintf("runner #%d", i+1)
		}
		if r.Executor != "shell" {
			errs = append(errs, fmt.Errorf("%s: executor %q is not supported: this runner has only the shell executor; set executor = \"shell\"", name, r.Executor))
		}
		if r.Shell != "" && r.Shell != "bash" {
			errs = append(errs, fmt.Errorf("%s: shell %q is not supported: set shell = \"bash\"", name, r.Shell))
		}
		if u, err := url.Parse(r.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s: url is not an http(s) URL of the coordinator, e.g. https://alloy.example.com/", name))
		}
		if r.Token == "" {
			errs = append(errs, fmt.Errorf("%s: token is missing: register the runner", name))
		}
		if r.Limit < 0 {
			errs = append(errs, fmt.Errorf("%s: limit %d is negative: use 0 for no limit", name, r.Limit))
		}
		if other, dup := seen[r.key()]; dup {
			errs = append(errs, fmt.Errorf("%s: same url and token as %s: poll each registration once", name, other))
		}
		seen[r.key()] = name
	}
	return errors.Join(errs...)
}
