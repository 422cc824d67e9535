// Package config reads and writes the runner's config.toml: the global
// settings (concurrent, check_interval, metrics_server) and its [[runners]].
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// DefaultMetricsServer is where the metrics server listens when config.toml
// does not say: loopback, on the port metrics-proxy expects by default.
const DefaultMetricsServer = "127.0.0.1:9252"

// Defaults for settings config.toml may leave out.
const (
	DefaultConcurrent    = 1
	DefaultCheckInterval = 3
	DefaultExecutor      = "shell"
	DefaultShell         = "bash"
	DefaultBuildsDir     = "builds"
)

// Config is the content of config.toml.
type Config struct {
	// Concurrent bounds the jobs running at once across all runners.
	Concurrent int `toml:"concurrent"`
	// CheckInterval is the seconds between two requests for jobs.
	CheckInterval int `toml:"check_interval"`
	// MetricsServer is the metrics server address; "" disables the server.
	// Use MetricsServerSet to tell an empty value from an absent one.
	MetricsServer string `toml:"metrics_server"`
	// Runners are the coordinator registrations this runner polls.
	Runners []Runner `toml:"runners"`

	// MetricsServerSet reports whether metrics_server was in the file.
	MetricsServerSet bool `toml:"-"`
	// Unknown lists keys in the file this runner does not use (such as the
	// docker executor's sections), so the caller can warn about them.
	Unknown []string `toml:"-"`
}

// Load reads the file at path, fills in defaults and validates it. Errors name
// the file, and the line where the TOML is malformed.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("config file %s does not exist: create it (see examples/config.toml) or pass --config", path)
	}
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return Parse(path, b)
}

// Parse is Load for content already read; name is used in errors.
func Parse(name string, b []byte) (*Config, error) {
	var c Config
	md, err := toml.Decode(string(b), &c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("config file %s:%d: %s", name, errorLine(b, pe), hideValues(pe.Message))
		}
		// Type mismatches carry no position; the key name says where to look.
		return nil, fmt.Errorf("config file %s: %v", name, err)
	}
	c.MetricsServerSet = md.IsDefined("metrics_server")
	if !c.MetricsServerSet {
		c.MetricsServer = DefaultMetricsServer
	}
	for _, k := range md.Undecoded() {
		c.Unknown = append(c.Unknown, k.String())
	}
	sort.Strings(c.Unknown)
	if c.Concurrent == 0 {
		c.Concurrent = DefaultConcurrent
	}
	if c.CheckInterval == 0 {
		c.CheckInterval = DefaultCheckInterval
	}
	for i := range c.Runners {
		r := &c.Runners[i]
		if r.Executor == "" {
			r.Executor = DefaultExecutor
		}
		if r.Shell == "" {
			r.Shell = DefaultShell
		}
		if r.BuildsDir == "" {
			r.BuildsDir = DefaultBuildsDir
		}
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("config file %s: %w", name, err)
	}
	return &c, nil
}

// errorLine is the line of a TOML syntax error. The parser counts a line too
// many when the offending character is the newline ending a line, so the line
// is taken from the error's byte offset instead where it has one.
func errorLine(b []byte, pe toml.ParseError) int {
	if pe.Position.Start > 0 && pe.Position.Start <= len(b) {
		return bytes.Count(b[:pe.Position.Start], []byte("\n")) + 1
	}
	return pe.Position.Line
}

// hideValues blanks the text the TOML parser quotes from the file ("found
// \"xSECRET\" instead"): on a token line, that is the token.
func hideValues(msg string) string {
	return quotedRE.ReplaceAllString(msg, "(value not shown)")
}

// quotedRE matches a double-quoted fragment of a parser message.
var quotedRE = regexp.MustCompile(`"[^"]*"`)

func (c *Config) validate() error {
	var errs []error
	if c.Concurrent < 0 {
		errs = append(errs, fmt.Errorf("concurrent = %d: must be 1 or more", c.Concurrent))
	}
	if c.CheckInterval < 0 {
		errs = append(errs, fmt.Errorf("check_interval = %d: must be 1 or more seconds", c.CheckInterval))
	}
	if err := ValidateRunners(c.Runners); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Summary is a one-line description for logs: no tokens.
func (c *Config) Summary() string {
	names := make([]string, len(c.Runners))
	for i, r := range c.Runners {
		names[i] = r.Name
	}
	return fmt.Sprintf("concurrent=%d check_interval=%ds runners=[%s]", c.Concurrent, c.CheckInterval, strings.Join(names, ","))
}
