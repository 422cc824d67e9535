package webconfig

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Check returns every reason the web config at path would be refused, for
// `metrics-proxy check-config`, so an operator fixes them all in one edit
// instead of one restart at a time. It is stricter than Load about what makes
// a config unfit for production: a bcrypt cost below auth.RecommendedMinCost (10) and a
// certificate outside its validity period are errors here, warnings there.
// A file that is not valid YAML yields that one error, since nothing after it
// can be checked. An empty result means the file is fine.
func Check(path string) []error {
	l := newLoader(path, time.Now(), true)
	l.run()
	return l.problems
}

// problemList is the error Load returns: every problem found, each already
// naming the file. errors.Is and errors.As see each one.
type problemList []error

func (p problemList) Error() string {
	msgs := make([]string, len(p))
	for i, e := range p {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

func (p problemList) Unwrap() []error { return p }

var (
	// bcryptLikeRE matches anything that starts like a bcrypt hash ($2, $2a,
	// $2b, $2x, $2y), however malformed: a malformed hash is still a
	// near-secret, and yaml.v2 or a dependency may quote one (a hash pasted
	// as a key, under the wrong section, in a truncated line).
	bcryptLikeRE = regexp.MustCompile(`\$2[A-Za-z0-9./$]*`)
	// pemRE matches a PEM block, complete or cut off, raw or %q-escaped.
	pemRE = regexp.MustCompile(`-----BEGIN[\s\S]*?(?:-----END[^-]*-----|$)`)
)

// redact is the last line of defence for "errors never contain a secret":
// every message this package produces passes through it, whatever a
// dependency chose to quote.
func redact(s string) string {
	s = pemRE.ReplaceAllString(s, "[PEM redacted]")
	s = bcryptLikeRE.ReplaceAllString(s, "[hash redacted]")
	// yaml.v2 quotes the offending value of a type error in backticks
	// ("cannot unmarshal !!str `hunter2...`"): a password in the wrong place.
	return yamlValueRE.ReplaceAllString(s, "(value not shown)")
}

// yamlValueRE matches a value yaml.v2 quotes in a type error.
var yamlValueRE = regexp.MustCompile("`[^`]*`")

// problem records a reason to refuse the file, prefixed with the file's name
// and scrubbed of anything that looks like a secret.
func (l *loader) problem(format string, args ...any) {
	l.problems = append(l.problems, errors.New(redact(l.path+": "+fmt.Sprintf(format, args...))))
}

// warn records a weakness that does not stop the config from being served, or
// a problem in strict mode.
func (l *loader) warn(format string, args ...any) {
	if l.strict {
		l.problem(format, args...)
		return
	}
	l.warnings = append(l.warnings, redact(l.path+": "+fmt.Sprintf(format, args...)))
}

// note records a warning that stays a warning in strict mode too: a setting
// that protects less than it seems to but is a legitimate choice, which
// check-config must not refuse.
func (l *loader) note(format string, args ...any) {
	l.warnings = append(l.warnings, redact(l.path+": "+fmt.Sprintf(format, args...)))
}
