package webconfig

import (
	"crypto/tls"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/time/rate"

	"github.com/alloyci/hardened-runner/access"
	"github.com/alloyci/hardened-runner/auth"
	"github.com/alloyci/hardened-runner/routes"
)

// maxFileSize bounds every read. The files are a few KiB; the bound keeps a
// mistaken path (a log file, /dev/zero) from exhausting memory or hanging a
// reload.
const maxFileSize = 1 << 20

// Config is one validated, immutable snapshot of the web config and of every
// file it names, as read at one moment. Nothing in it touches the disk again,
// so it is safe to use on every request and handshake from many goroutines.
// Do not modify it; a reload produces a new Config.
type Config struct {
	// Path is the config file as given to Load.
	Path string
	// Web is the decoded file with exporter-toolkit's defaults applied and
	// relative paths resolved against the config file's directory. It holds
	// the password hashes and any inline key: never log it.
	Web *web.Config
	// TLS is the server TLS configuration, certificate already loaded; nil
	// when the file configures no TLS (plain HTTP).
	TLS *tls.Config
	// Users verifies basic-auth credentials; it is built even when no users
	// are configured, see Access.
	Users *auth.Users
	// NotAfter is the expiry of the served certificate; zero without TLS.
	NotAfter time.Time
	// Files lists the files this snapshot was built from: the config file,
	// then cert_file, key_file and client_ca_file when set. A change to any
	// of them is a reason to reload.
	Files []string
	// Limiter is rate_limit as a token bucket shared by all requests, or nil
	// when the file sets none. It is the one part of a Config that changes
	// (its tokens); a reload starts a fresh bucket.
	Limiter *rate.Limiter
	// Routes is the routes file's table, nil without --web.routes.file.
	Routes *routes.Table
	// Warnings are problems that do not stop the config from being served
	// (expired certificate, cheap bcrypt cost, basic auth over plain HTTP).
	// The Store logs them at level warn.
	Warnings []string

	// reads is what was read from disk, to tell later whether anything changed.
	reads []fileRead
}

// TLSEnabled reports whether the config serves HTTPS. The proxy refuses to
// listen on a non-loopback address without it.
func (c *Config) TLSEnabled() bool { return c != nil && c.TLS != nil }

// Access is what authenticates requests under this config: basic-auth users
// when basic_auth_users is set, bearer tokens when the routes file lists
// some, client certificates only when every
// connection must present one signed by the configured client CA
// (client_auth_type RequireAndVerifyClientCert; the weaker modes accept any
// or no certificate).
func (c *Config) Access() access.Policy {
	if c == nil {
		return access.Policy{}
	}
	return access.Policy{
		Users:       c.Web != nil && len(c.Web.Users) > 0,
		Tokens:      c.Routes != nil && len(c.Routes.Tokens) > 0,
		ClientCerts: c.TLSEnabled() && c.TLS.ClientAuth == tls.RequireAndVerifyClientCert,
	}
}

// Load reads the web config at path and every file it names, validates them
// and builds the TLS configuration and user table once. It returns an error
// listing every reason the file is refused; each reason names the file and
// what to change, and none contains a password hash or key material.
func Load(path string) (*Config, error) {
	return load(path, time.Now())
}

// load is Load with an explicit clock, which the Store passes in.
func load(path string, now time.Time) (*Config, error) {
	l := newLoader(path, now, false)
	cfg := l.run()
	if len(l.problems) > 0 {
		return nil, problemList(l.problems)
	}
	return cfg, nil
}
