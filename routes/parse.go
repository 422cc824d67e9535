package routes

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/alloyci/hardened-runner/safepath"
	"go.yaml.in/yaml/v2"
)

// Bounds on one file. A real one has a handful of routes and one token per
// scraper; the bounds keep what a wrong file costs to check small.
const (
	maxFileBytes = 1 << 20
	maxRoutes    = 64
	maxTokens    = 1024
)

// ExampleTokenSHA256 is the hex SHA-256 in examples/routes.yml: a placeholder
// Parse refuses. It is the SHA-256 of "example-token-replace-me", so a copied
// example can never let anyone in.
const ExampleTokenSHA256 = "875ca15102495ea430c9af8e6eeb9a455e58e74d842b8bf852eed00b0482e739"

// Paths the proxy answers itself, which no route may take over.
const (
	selfMetricsPath = "/proxy/metrics"
	healthPrefix    = "/-/"
	profilingPrefix = "/debug/"
)

// nameRE is the form of route and token names: route names become the
// metric label route, so they are short and need no escaping anywhere.
var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// nameForm says what nameRE accepts, for messages.
const nameForm = "use at most 32 lowercase letters, digits, _ and -, starting with a letter or digit"

// hashHint ends the messages about a token's sha256.
const hashHint = "give the sha256 line printed by metrics-proxy hash-token"

// fileYAML is the file as written.
type fileYAML struct {
	Routes []route           `yaml:"routes"`
	Admin  *allowFields      `yaml:"admin"`
	Tokens map[string]string `yaml:"tokens"`
}

// routeFields are one route's keys. Timeout is a string so that a bare
// number, which yaml.v2 would read as nanoseconds, is refused instead.
type routeFields struct {
	Name             string      `yaml:"name"`
	Path             string      `yaml:"path"`
	Upstream         string      `yaml:"upstream"`
	Timeout          string      `yaml:"timeout"`
	MaxResponseBytes int64       `yaml:"max_response_bytes"`
	Allow            allowFields `yaml:"allow"`
}

type allowFields struct {
	Users      []string `yaml:"users"`
	ClientSANs []string `yaml:"client_sans"`
	Tokens     []string `yaml:"tokens"`
}

// route is a routeFields that knows whether allow: was written at all: an
// "allow:" with nothing under it decodes like no allow:, but it must mean
// nobody, not everyone.
type route struct {
	routeFields
	allowGiven bool
}

// UnmarshalYAML decodes the route's keys, then looks again for allow:.
func (r *route) UnmarshalYAML(unmarshal func(any) error) error {
	if err := unmarshal(&r.routeFields); err != nil {
		return err
	}
	var keys map[string]any
	if unmarshal(&keys) == nil {
		_, r.allowGiven = keys["allow"]
	}
	return nil
}

// parser collects every problem in one pass, so that an operator fixes them
// all in one edit instead of one reload at a time.
type parser struct {
	problems []string
	warnings []string
}

func (p *parser) problem(format string, args ...any) {
	p.problems = append(p.problems, redact(fmt.Sprintf(format, args...)))
}

func (p *parser) warn(format string, args ...any) {
	p.warnings = append(p.warnings, redact(fmt.Sprintf(format, args...)))
}

// Parse validates content. problems are reasons to refuse the file (each
// says what to change); warnings do not stop it. Messages have no file-name
// prefix (the caller adds it) and never contain a token hash or any value
// that failed to parse. t is nil whenever there are problems.
func Parse(content []byte) (t *Table, problems, warnings []string) {
	var p parser
	t = p.parse(content)
	if len(p.problems) > 0 {
		t = nil
	}
	return t, p.problems, p.warnings
}

func (p *parser) parse(content []byte) *Table {
	if len(content) > maxFileBytes {
		p.problem("the file is larger than %d bytes; is this the right file? (a routes file is a few KiB)", maxFileBytes)
		return nil
	}
	var probe any
	if err := yaml.Unmarshal(content, &probe); err == nil && probe == nil {
		p.problem("the file is empty, which is also what a truncated write looks like, so it is refused; list at least one route under routes: (see examples/routes.yml)")
		return nil
	}
	var f fileYAML
	if err := yaml.UnmarshalStrict(content, &f); err != nil {
		for _, m := range describeDecodeError(err) {
			p.problem("%s", m)
		}
		return nil
	}
	// Routes first, then tokens: the messages come in file order.
	t := &Table{}
	switch {
	case len(f.Routes) == 0:
		p.problem("routes: lists no route; add at least one, e.g. routes: [{name: runner, path: /metrics, upstream: http://127.0.0.1:9252/metrics}]")
	case len(f.Routes) > maxRoutes:
		p.problem("routes: lists %d routes, more than the %d allowed; merge routes with a prefix path (one ending in /)", len(f.Routes), maxRoutes)
	default:
		t.Routes = p.routes(f.Routes, f.Tokens)
	}
	if f.Admin != nil {
		a := p.allow("", *f.Admin, f.Tokens)
		t.Admin = &a
	}
	t.Tokens = p.tokens(f.Tokens)
	return t
}

// routes validates each route, and the rules between them.
func (p *parser) routes(in []route, tokens map[string]string) []Route {
	out := make([]Route, 0, len(in))
	names := map[string]int{} // name -> index
	paths := map[string]string{}
	for i, r := range in {
		label := fmt.Sprintf("route #%d", i+1)
		switch j, dup := names[r.Name]; {
		case r.Name == "":
			p.problem("%s: name is missing; give each route a name such as runner (%s): it becomes the metric label route", label, nameForm)
		case !nameRE.MatchString(r.Name):
			p.problem("%s: name (not shown) is not [a-z0-9][a-z0-9_-]{0,31}; %s: it becomes the metric label route", label, nameForm)
		case dup:
			p.problem("%s: name %s is already route #%d's; give each route its own name: it labels the route's metrics", label, r.Name, j+1)
		default:
			names[r.Name] = i
			label = "route " + r.Name
		}

		pathOK := false
		if r.Path == "" {
			p.problem("%s: path is missing; give the request path it serves, e.g. /metrics, or /debug/pprof/ for everything below it", label)
		} else if reason := pathReason(r.Path); reason != "" {
			p.problem("%s: path %s", label, reason)
		} else if other, dup := paths[r.Path]; dup {
			p.problem("%s: path %s is already %s's; a request path must pick one route, so remove one of them or change its path", label, r.Path, other)
		} else {
			paths[r.Path] = label
			pathOK = true
		}

		rt := Route{Name: r.Name, Path: r.Path, MaxResponseBytes: r.MaxResponseBytes}
		up, reason := parseUpstream(r.Upstream)
		upOK := reason == ""
		if !upOK {
			p.problem("%s: upstream %s", label, reason)
		} else if pathOK {
			if up.Path == "" {
				up.Path = r.Path
			}
			if rt.Prefix() && !strings.HasSuffix(up.Path, "/") {
				p.problem("%s: path %s ends in /, so the upstream path must too: write %s/ instead of %s, or %sx would be sent as %sx", label, r.Path, up.Path, up.Path, r.Path, up.Path)
				upOK = false
			}
		}
		rt.Upstream = up

		if r.Timeout != "" {
			d, err := time.ParseDuration(r.Timeout)
			switch {
			case err != nil:
				p.problem("%s: timeout is not a duration (not shown); write it with a unit, e.g. 10s or 1m30s (a bare number has none), or leave it out for the default", label)
			case d < 0:
				p.problem("%s: timeout is negative; give a positive duration such as 10s, or leave it out for the default", label)
			}
			rt.Timeout = d
		}
		if r.MaxResponseBytes < 0 {
			p.problem("%s: max_response_bytes is negative; give a number of bytes such as 67108864 (64 MiB), or leave it out for the default", label)
		}

		if r.allowGiven {
			rt.Allow = p.allow(label, r.Allow, tokens)
		} else {
			rt.Allow = Allow{Everyone: true}
			if pathOK && upOK {
				if what, ok := profiling(up.Path, rt.Prefix()); ok {
					rt.Allow = Allow{}
					p.warn("%s forwards %s and names nobody under allow:, so nobody can use it; list who may, e.g. allow: {users: [oncall]}", label, what)
				}
			}
		}
		out = append(out, rt)
	}
	return out
}

// pathReason is why p may not be a route's path, phrased to follow "path ",
// or "". It quotes p only once safepath.Judge has accepted it.
func pathReason(p string) string {
	if err := safepath.Judge(p); err != nil {
		return fmt.Sprintf("is not clean: %v; write a clean absolute path such as /metrics, or /debug/pprof/ for everything below it", err)
	}
	switch {
	case p == "/":
		return "/ would forward every request path; give the paths this route serves, such as /metrics"
	case p == selfMetricsPath || strings.HasSuffix(p, "/") && strings.HasPrefix(selfMetricsPath, p):
		return p + " covers " + selfMetricsPath + ", where the proxy serves its own metrics; choose another path"
	case strings.HasPrefix(p, healthPrefix):
		return p + " is under " + healthPrefix + ", where the proxy serves its health endpoints (/-/healthy, /-/ready); choose another path"
	}
	return ""
}

// profiling reports whether a route forwarding to upstream path up reaches
// profiling (net/http/pprof and expvar live under /debug/), which exposes
// memory contents and costs CPU, so it is for named people only. It also
// describes what the route forwards, for the warning.
func profiling(up string, prefix bool) (string, bool) {
	switch {
	case strings.HasPrefix(up, profilingPrefix):
		return up + " (profiling)", true
	case prefix && strings.HasPrefix(profilingPrefix, up):
		return up + " and everything below it, " + profilingPrefix + " (profiling) included,", true
	}
	return "", false
}

// allow validates an explicit allow:.
// label names the route ("route pprof"); key is "allow", or "admin" for
// the file's admin: (then label is "").
func (p *parser) allow(label string, a allowFields, tokens map[string]string) Allow {
	key, where := "allow", label+": "
	if label == "" {
		key, where = "admin", ""
	}
	for _, l := range []struct {
		key  string
		list []string
	}{{"users", a.Users}, {"client_sans", a.ClientSANs}, {"tokens", a.Tokens}} {
		for _, v := range l.list {
			if v == "" {
				p.problem("%s%s.%s has an empty entry; remove it", where, key, l.key)
				break
			}
		}
	}
	for _, name := range a.Tokens {
		if _, ok := tokens[name]; ok || name == "" {
			continue
		}
		switch {
		case isSHA256Hex(name):
			p.problem("%s%s.tokens lists a sha256 (not shown) where a token name belongs; list the token's name from tokens:, e.g. node-scraper", where, key)
		case nameRE.MatchString(name):
			p.problem("%s%s.tokens names %s, which is not under tokens:; add it there (metrics-proxy hash-token makes one) or fix the name", where, key, name)
		default:
			p.problem("%s%s.tokens names a token (not shown) that is not under tokens:; list names from tokens:, e.g. node-scraper", where, key)
		}
	}
	if len(a.Users) == 0 && len(a.ClientSANs) == 0 && len(a.Tokens) == 0 && label == "" {
		p.warn("admin: names no user, client SAN or token, so nobody may read /proxy/metrics; list who may, e.g. admin: {users: [prometheus]}, or remove admin: to let the identities granted every route read it")
	} else if len(a.Users) == 0 && len(a.ClientSANs) == 0 && len(a.Tokens) == 0 {
		p.warn("%s: allow: names no user, client SAN or token, so it allows nobody; list who may, e.g. allow: {users: [oncall]}, or remove allow: to admit every authenticated client", label)
	}
	return Allow{Users: a.Users, ClientSANs: a.ClientSANs, Tokens: a.Tokens}
}

// tokens validates tokens: and decodes each sha256.
func (p *parser) tokens(in map[string]string) map[string][sha256.Size]byte {
	out := make(map[string][sha256.Size]byte, len(in))
	if len(in) > maxTokens {
		p.problem("tokens: lists %d tokens, more than the %d allowed", len(in), maxTokens)
		return out
	}
	names := make([]string, 0, len(in))
	for name := range in {
		names = append(names, name)
	}
	// Sorted, so that the messages come in the same order every time.
	sort.Strings(names)
	example, _ := hex.DecodeString(ExampleTokenSHA256)
	owner := map[[sha256.Size]byte]string{}
	for _, name := range names {
		v := in[name]
		if !nameRE.MatchString(name) {
			if isSHA256Hex(name) {
				p.problem("tokens: a name (not shown) looks like a sha256; write each token as name: sha256, e.g. node-scraper: followed by the sha256 line printed by metrics-proxy hash-token")
			} else {
				p.problem("tokens: a token name (not shown) is not [a-z0-9][a-z0-9_-]{0,31}; %s", nameForm)
			}
			continue
		}
		label := "token " + name
		var sum [sha256.Size]byte
		switch {
		case v == "":
			p.problem("%s: sha256 is missing; %s", label, hashHint)
			continue
		case strings.HasPrefix(v, "mpt_"):
			p.problem("%s: the value (not shown) looks like the token itself, not its sha256; never put a token in this file, which holds only hashes so that a leaked copy lets nobody in; %s", label, hashHint)
			continue
		case !isSHA256Hex(v):
			p.problem("%s: sha256 is not 64 hex characters (not shown); %s", label, hashHint)
			continue
		}
		_, _ = hex.Decode(sum[:], []byte(v))
		if string(sum[:]) == string(example) {
			p.problem("%s: sha256 is the documented example; replace it with the sha256 line printed by metrics-proxy hash-token", label)
			continue
		}
		if first, dup := owner[sum]; dup {
			p.problem("tokens %s and %s have the same sha256; a token must identify one name, so give each client its own token (metrics-proxy hash-token)", first, name)
			continue
		}
		owner[sum] = name
		out[name] = sum
	}
	return out
}

// isSHA256Hex reports whether s is 64 hex digits, in either case.
func isSHA256Hex(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}
