package shell

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
)

// GitStrategy is how get_sources brings the project's tree up to date: the
// job variable GIT_STRATEGY.
type GitStrategy string

const (
	// GitFetch reuses the tree the previous job of the project left, when
	// Sources.AllowFetch and the tree is a git repository, and clones
	// otherwise. It is the default.
	GitFetch GitStrategy = "fetch"
	// GitClone always clones afresh into an emptied directory.
	GitClone GitStrategy = "clone"
	// GitNone runs no git at all: the directory is used as it is, and
	// created when missing.
	GitNone GitStrategy = "none"
)

// SubmoduleStrategy is what get_sources does with the project's submodules:
// the job variable GIT_SUBMODULE_STRATEGY.
type SubmoduleStrategy string

const (
	// SubmodulesNone leaves submodules alone. It is the default.
	SubmodulesNone SubmoduleStrategy = "none"
	// SubmodulesNormal checks out the project's own submodules, one level.
	SubmodulesNormal SubmoduleStrategy = "normal"
	// SubmodulesRecursive checks out submodules and theirs, at any depth.
	SubmodulesRecursive SubmoduleStrategy = "recursive"
)

// MaxGetSourcesAttempts is the most GET_SOURCES_ATTEMPTS may ask for.
const MaxGetSourcesAttempts = 10

// GitOptions are the job's Git variables. The zero value means the defaults
// (fetch, checkout, no submodules, full history, one attempt), so a Sources
// built without them behaves as before they existed.
type GitOptions struct {
	// Strategy is GIT_STRATEGY; "" is GitFetch.
	Strategy GitStrategy
	// SkipCheckout is GIT_CHECKOUT=false: the commit is fetched but neither
	// checked out nor cleaned, and submodules are left alone. It is negated
	// so that the zero value checks out.
	SkipCheckout bool
	// Submodules is GIT_SUBMODULE_STRATEGY; "" is SubmodulesNone.
	Submodules SubmoduleStrategy
	// Depth is GIT_DEPTH: when above 0, the project and its submodules are
	// fetched with that many commits of history; 0 is the whole history.
	Depth int
	// Attempts is GET_SOURCES_ATTEMPTS: how many times get_sources is tried
	// before the job fails, 1 to MaxGetSourcesAttempts; 0 is 1.
	Attempts int
}

var digits = regexp.MustCompile(`^[0-9]+$`)

// ParseGitVariables reads GIT_STRATEGY, GIT_CHECKOUT,
// GIT_SUBMODULE_STRATEGY, GIT_DEPTH and GET_SOURCES_ATTEMPTS through get
// (the job's variables, already rendered to text). An unset or empty
// variable takes its default. A value the variable does not accept is an
// error naming the variable, the value and what to set instead: guessing
// what a job meant could check out the wrong tree. All invalid
// variables are reported at once, so that one run shows every fix.
func ParseGitVariables(get func(key string) (string, bool)) (GitOptions, error) {
	value := func(key string) string {
		v, _ := get(key)
		return v
	}
	o := GitOptions{Strategy: GitFetch, Submodules: SubmodulesNone, Attempts: 1}
	var errs []error

	switch v := value("GIT_STRATEGY"); v {
	case "":
	case string(GitFetch), string(GitClone), string(GitNone):
		o.Strategy = GitStrategy(v)
	default:
		errs = append(errs, fmt.Errorf("GIT_STRATEGY is %q: set it to clone, fetch or none, or leave it empty for fetch", v))
	}

	if v := value("GIT_CHECKOUT"); v != "" {
		// ParseBool's spellings (true, false, 1, 0, t, f, TRUE, ...) are
		// the ones the GitLab runner accepts.
		checkout, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("GIT_CHECKOUT is %q: set it to true or false, or leave it empty for true", v))
		}
		o.SkipCheckout = err == nil && !checkout
	}

	switch v := value("GIT_SUBMODULE_STRATEGY"); v {
	case "":
	case string(SubmodulesNone), string(SubmodulesNormal), string(SubmodulesRecursive):
		o.Submodules = SubmoduleStrategy(v)
	default:
		errs = append(errs, fmt.Errorf("GIT_SUBMODULE_STRATEGY is %q: set it to none, normal or recursive, or leave it empty for none", v))
	}

	if v := value("GIT_DEPTH"); v != "" {
		// Digits only: strconv alone would take "+3", and git takes no
		// depth above a 32-bit int.
		n, err := strconv.ParseInt(v, 10, 32)
		if !digits.MatchString(v) || err != nil {
			errs = append(errs, fmt.Errorf("GIT_DEPTH is %q: set it to the number of commits to fetch, or to 0 or empty for the whole history", v))
		} else {
			o.Depth = int(n)
		}
	}

	if v := value("GET_SOURCES_ATTEMPTS"); v != "" {
		n, err := strconv.Atoi(v)
		if !digits.MatchString(v) || err != nil || n < 1 || n > MaxGetSourcesAttempts {
			errs = append(errs, fmt.Errorf("GET_SOURCES_ATTEMPTS is %q: set it to a whole number from 1 to %d, or leave it empty for 1", v, MaxGetSourcesAttempts))
		} else {
			o.Attempts = n
		}
	}

	if len(errs) > 0 {
		return GitOptions{}, errors.Join(errs...)
	}
	return o, nil
}

// check refuses options that ParseGitVariables would not have produced, for
// a caller that fills GitOptions in by hand.
func (o GitOptions) check() error {
	switch o.Strategy {
	case "", GitFetch, GitClone, GitNone:
	default:
		return fmt.Errorf("unknown git strategy %q: use GitFetch, GitClone or GitNone", o.Strategy)
	}
	switch o.Submodules {
	case "", SubmodulesNone, SubmodulesNormal, SubmodulesRecursive:
	default:
		return fmt.Errorf("unknown submodule strategy %q: use SubmodulesNone, SubmodulesNormal or SubmodulesRecursive", o.Submodules)
	}
	if o.Depth < 0 {
		return fmt.Errorf("git depth %d is negative: use 0 for the whole history", o.Depth)
	}
	if o.Attempts < 0 || o.Attempts > MaxGetSourcesAttempts {
		return fmt.Errorf("%d get_sources attempts: use 1 to %d", o.Attempts, MaxGetSourcesAttempts)
	}
	return nil
}
