package webconfig

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"

	"github.com/alloyci/hardened-runner/routes"
)

// Files names the files one snapshot is built from: the web config
// (exporter-toolkit's format, unchanged) and the routes file
// (--web.routes.file). Either may be empty, not both. They are loaded,
// checked against each other, and replaced together, so a reload never
// serves a routes file that names tokens or users the door no longer
// knows.
type Files struct {
	Web    string
	Routes string
}

// String names the files for log lines.
func (f Files) String() string {
	switch {
	case f.Web == "":
		return f.Routes
	case f.Routes == "":
		return f.Web
	}
	return f.Web + " and " + f.Routes
}

// LoadFiles is Load for a web config and a routes file together.
func LoadFiles(f Files) (*Config, error) {
	l := newFilesLoader(f, timeNow(), false)
	cfg := l.run()
	if len(l.problems) > 0 {
		return nil, problemList(l.problems)
	}
	return cfg, nil
}

// CheckFiles is Check for a web config and a routes file together.
func CheckFiles(f Files) []error {
	l := newFilesLoader(f, timeNow(), true)
	l.run()
	return l.problems
}

// loadRoutes reads and validates the routes file, then checks it against
// the web config: the identities it grants routes to should exist.
func (l *loader) loadRoutes(cfg *Config) {
	// Reported as the routes file's own problem: it comes from a flag, not
	// from the web config, so it is neither named by the web config nor
	// resolved against its directory.
	content, err := l.read(l.routesPath)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			l.routesProblem("the file does not exist; check --web.routes.file")
		case errors.Is(err, fs.ErrPermission):
			l.routesProblem("the file cannot be read: permission denied; make it readable by the user metrics-proxy runs as")
		default:
			l.routesProblem("the file cannot be read: %v", unwrapPathError(err))
		}
		return
	}
	t, problems, warnings := routes.Parse(content)
	for _, p := range problems {
		l.routesProblem("%s", p)
	}
	for _, w := range warnings {
		l.routesNote("%s", w)
	}
	if len(problems) > 0 {
		return
	}
	cfg.Routes = t
	users := map[string]bool{}
	if cfg.Web != nil {
		for u := range cfg.Web.Users {
			users[u] = true
		}
	}
	certs := cfg.TLSEnabled() && cfg.TLS.ClientAuth == tls.RequireAndVerifyClientCert
	for _, r := range t.Routes {
		for _, u := range r.Allow.Users {
			if !users[u] {
				l.routesNote("route %q allows user %q, who is not in basic_auth_users of %s; add the user there, or fix the name", r.Name, u, l.webName())
			}
		}
		if len(r.Allow.ClientSANs) > 0 && !certs {
			l.routesNote("route %q allows client certificate names, but %s does not verify client certificates (client_auth_type: RequireAndVerifyClientCert); they match nobody", r.Name, l.webName())
		}
	}
	if len(t.Tokens) > 0 && !cfg.TLSEnabled() {
		l.routesNote("tokens without tls_server_config: bearer tokens cross the network in clear text; configure tls_server_config")
	}
}

// webName names the web config in messages about the routes file.
func (l *loader) webName() string {
	if l.path == "" {
		return "the web config (none given)"
	}
	return l.path
}

// routesProblem records a reason to refuse the routes file.
func (l *loader) routesProblem(format string, args ...any) {
	l.problems = append(l.problems, errors.New(redact(l.routesPath+": "+fmt.Sprintf(format, args...))))
}

// routesNote records a warning about the routes file, in strict mode too:
// a grant that matches nobody is a mistake to read about, not a reason to
// refuse the file.
func (l *loader) routesNote(format string, args ...any) {
	l.warnings = append(l.warnings, redact(l.routesPath+": "+fmt.Sprintf(format, args...)))
}
