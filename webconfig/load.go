// Package webconfig loads the exporter-toolkit web configuration
// (--web.config.file) that metrics-proxy serves with: TLS settings, basic-auth
// users and HTTP headers.
//
// exporter-toolkit itself re-reads and re-parses the file on every request and
// every TLS handshake, so a half-written or broken edit turns every request into
// a 500 and every handshake into disk I/O. This package reads the file and the
// files it names once, validates everything the toolkit would refuse (and a few
// traps it would silently accept), builds the *tls.Config and the user table
// once, and hands out that immutable snapshot. A Store keeps the last good
// snapshot across reloads, so a broken edit is logged and counted but never
// served.
package webconfig

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
	"go.yaml.in/yaml/v2"
	"golang.org/x/time/rate"
)

// loader collects every problem in one pass, so that Check can list them all
// instead of making the operator fix them one reload at a time.
type loader struct {
	path string // the web config; "" for none (plain HTTP, no authentication)
	// routesPath is the routes file, "" for none.
	routesPath string
	now        time.Time
	// strict turns the warnings that make a config unfit for production
	// (cheap bcrypt cost, certificate outside its validity) into problems.
	strict bool

	problems []error
	warnings []string
	reads    []fileRead
}

func newLoader(path string, now time.Time, strict bool) *loader {
	return &loader{path: path, now: now, strict: strict}
}

func newFilesLoader(f Files, now time.Time, strict bool) *loader {
	return &loader{path: f.Web, routesPath: f.Routes, now: now, strict: strict}
}

// timeNow is the clock of the package's exported loads.
func timeNow() time.Time { return time.Now() }

// readFile reads one file the config depends on, records what it read for
// change detection, and reports a problem naming the role of the file (the
// YAML key that names it) when it cannot be read.
func (l *loader) readFile(role, path string) ([]byte, bool) {
	b, err := l.read(path)
	if err == nil {
		return b, true
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if role == "" {
			l.problem("the file does not exist; check --web.config.file")
		} else {
			l.problem("%s %q does not exist; fix the path (a relative path is resolved against the config file's directory)", role, path)
		}
	case errors.Is(err, fs.ErrPermission):
		l.problem("%s%q cannot be read: permission denied; make it readable by the user metrics-proxy runs as", rolePrefix(role), path)
	default:
		l.problem("%s%q cannot be read: %v", rolePrefix(role), path, unwrapPathError(err))
	}
	return nil, false
}

// read reads one file the config depends on and records what it read, for
// change detection; the caller reports a failure.
func (l *loader) read(path string) ([]byte, error) {
	b, err := readLimited(path)
	l.reads = append(l.reads, newFileRead(path, b, err))
	return b, err
}

func rolePrefix(role string) string {
	if role == "" {
		return "file "
	}
	return role + " "
}

// unwrapPathError drops the operation and path from an *fs.PathError, which
// the caller already names.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// readLimited reads at most maxFileSize bytes and refuses anything larger.
func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("larger than %d bytes; is this the right file?", maxFileSize)
	}
	return b, nil
}

// run performs every check and returns the snapshot, which is only meaningful
// when no problem was recorded.
func (l *loader) run() *Config {
	if l.path == "" {
		// A routes file alone: the door is plain HTTP without passwords,
		// which only loopback allows (the door rule decides), and its
		// tokens may still authenticate.
		cfg := &Config{Web: &web.Config{}, Users: l.buildUsers(nil)}
		l.loadRoutes(cfg)
		cfg.Files, cfg.Warnings, cfg.reads = l.files(), l.warnings, l.reads
		return cfg
	}
	content, ok := l.readFile("", l.path)
	if !ok {
		return nil
	}
	wc, ok := l.decode(content)
	if !ok {
		return nil
	}
	l.checkHeaders(wc.HTTPConfig.Header)
	l.checkRateLimit(wc.RateLimiterConfig)
	tlsCfg, notAfter := l.buildTLS(&wc.TLSConfig, wc.HTTPConfig.HTTP2)
	users := l.buildUsers(wc.Users)
	if len(wc.Users) > 0 && !wc.TLSConfig.IsEnabled() {
		l.note("basic_auth_users without tls_server_config: passwords cross the network in clear text; configure tls_server_config")
	}
	cfg := &Config{
		Path:     l.path,
		Web:      wc,
		TLS:      tlsCfg,
		Users:    users,
		NotAfter: notAfter,
		Limiter:  newLimiter(wc.RateLimiterConfig),
	}
	if l.routesPath != "" {
		l.loadRoutes(cfg)
	}
	cfg.Files, cfg.Warnings, cfg.reads = l.files(), l.warnings, l.reads
	return cfg
}

// files lists what the loader read, for the watch.
func (l *loader) files() []string {
	files := make([]string, 0, len(l.reads))
	for _, r := range l.reads {
		files = append(files, r.path)
	}
	return files
}

// newLimiter is exporter-toolkit's rate_limit: a token bucket over all
// requests, refilled one token per interval up to burst. None without an
// interval.
func newLimiter(r web.RateLimiterConfig) *rate.Limiter {
	if r.Interval <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Every(r.Interval), r.Burst)
}

// decode parses the YAML exactly as exporter-toolkit does: its defaults,
// strict decoding (an unknown key is an error, so a misspelt cert_file cannot
// silently turn TLS off), and paths relative to the config file's directory.
// A decode error is terminal: nothing after it would be meaningful.
func (l *loader) decode(content []byte) (*web.Config, bool) {
	var probe any
	if err := yaml.Unmarshal(content, &probe); err == nil && probe == nil {
		// exporter-toolkit serves an empty file as plain HTTP without
		// authentication. An empty file is what a truncated write looks
		// like, so refuse it rather than drop TLS and passwords.
		l.problem("the file is empty; configure tls_server_config and/or basic_auth_users")
		return nil, false
	}
	c := &web.Config{
		// The toolkit also defaults prefer_server_cipher_suites to true; the
		// field is deprecated and ignored, so its default does not matter.
		TLSConfig: web.TLSConfig{
			MinVersion: tls.VersionTLS12,
			MaxVersion: tls.VersionTLS13,
		},
		HTTPConfig: web.HTTPConfig{HTTP2: true},
	}
	if err := yaml.UnmarshalStrict(content, c); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, e := range te.Errors {
				l.problem("%s", describeYAMLTypeError(e))
			}
		} else {
			msg := strings.TrimPrefix(err.Error(), "yaml: ")
			if strings.HasPrefix(msg, "line ") {
				l.problem("invalid YAML: %s", msg)
			} else {
				l.problem("invalid value: %s; see exporter-toolkit's web configuration documentation for the accepted values", msg)
			}
		}
		return nil, false
	}
	c.TLSConfig.SetDirectory(filepath.Dir(l.path))
	return c, true
}

var unknownFieldRE = regexp.MustCompile(`^line (\d+): field (.*) not found in type (\S+)$`)

// describeYAMLTypeError rewrites yaml.v2's Go-centric messages in terms of the
// file's own keys, keeping the line number as yaml.v2 reports it.
func describeYAMLTypeError(e string) string {
	m := unknownFieldRE.FindStringSubmatch(e)
	if m == nil {
		return e
	}
	section := "the top level"
	switch m[3] {
	case "web.TLSConfig":
		section = "tls_server_config"
	case "web.HTTPConfig":
		section = "http_server_config"
	case "web.RateLimiterConfig":
		section = "rate_limit"
	}
	if !settingNameRE.MatchString(m[2]) {
		// Not shaped like a setting: a value pasted one line off (a password,
		// a token) would otherwise reach the log through this message.
		return fmt.Sprintf("line %s: unknown key in %s (not shown: it does not look like a setting name); fix or remove it", m[1], section)
	}
	return fmt.Sprintf("line %s: unknown key %q in %s; fix its spelling or remove it", m[1], m[2], section)
}

// settingNameRE matches keys shaped like the web config's own setting names.
var settingNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)

// allowedHeaderValues mirrors exporter-toolkit's extraHTTPHeaders (web/handler.go,
// validateHeaderConfig): the only response headers a web config may set, and
// for some of them the only values. It is a function, not a map variable, so
// that the package holds no mutable state.
func allowedHeaderValues(name string) ([]string, bool) {
	switch name {
	case "Strict-Transport-Security", "X-XSS-Protection", "Content-Security-Policy":
		return nil, true
	case "X-Content-Type-Options":
		return []string{"nosniff"}, true
	case "X-Frame-Options":
		return []string{"deny", "sameorigin"}, true
	}
	return nil, false
}

// checkHeaders replicates exporter-toolkit's validateHeaderConfig, reporting
// every bad header rather than the first one the map iteration happens to hit.
func (l *loader) checkHeaders(headers map[string]string) {
	names := make([]string, 0, len(headers))
	for k := range headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		values, ok := allowedHeaderValues(k)
		if !ok {
			l.problem("http_server_config.headers: HTTP header %q can not be configured; allowed are Content-Security-Policy, Strict-Transport-Security, X-Content-Type-Options, X-Frame-Options and X-XSS-Protection", k)
			continue
		}
		if len(values) == 0 {
			continue
		}
		v := headers[k]
		allowed := false
		for _, a := range values {
			allowed = allowed || v == a
		}
		if !allowed {
			l.problem("http_server_config.headers: invalid value %q for %s; use one of %q", v, k, values)
		}
	}
}

// checkRateLimit refuses rate_limit settings that exporter-toolkit accepts but
// that break the server: with an interval and no burst every request is 429.
func (l *loader) checkRateLimit(r web.RateLimiterConfig) {
	if r.Interval < 0 {
		l.problem("rate_limit.interval %s is negative; use a positive duration or remove rate_limit", r.Interval)
	}
	if r.Burst < 0 {
		l.problem("rate_limit.burst %d is negative; use at least 1", r.Burst)
	}
	if r.Interval > 0 && r.Burst == 0 {
		l.problem("rate_limit.burst is 0 with an interval set, which refuses every request; set burst to at least 1")
	}
}
