package webconfig

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/alloyci/hardened-runner/access"
)

// Token hashes for routes files: the sha256 of "node-scraper-test-token" and
// of "other-scraper-test-token", test-only tokens.
const (
	nodeScraperSHA256  = "e86ed4b26b34a2cf56351347d2269f10713fec0fd8f6511c2f5c49123d235f27"
	otherScraperSHA256 = "8ad6e91b20bb3999f05f7d969583cce33bc34112902eab96338cef7613dff5d3"
)

// hostRoutes grants the runner to every client, node to the token
// node-scraper and to a client certificate, and pprof to oncall only.
const hostRoutes = `routes:
  - name: runner
    path: /metrics
    upstream: http://127.0.0.1:9252/metrics
  - name: node
    path: /node/metrics
    upstream: http://127.0.0.1:9100/metrics
    allow:
      tokens: [node-scraper]
      client_sans: [scraper.test]
  - name: pprof
    path: /debug/pprof/
    upstream: http://127.0.0.1:9252/debug/pprof/
    allow:
      users: [oncall]
tokens:
  node-scraper: ` + nodeScraperSHA256 + `
`

// runnerOnlyRoutes is a routes file with one route and no tokens.
const runnerOnlyRoutes = `routes:
  - name: runner
    path: /metrics
    upstream: http://127.0.0.1:9252/metrics
`

// writeRoutes writes content to routes.yml in a directory of its own (not
// the web config's, so a watch must follow it there) and returns its path.
func writeRoutes(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "routes.yml")
	writeFile(t, path, []byte(content))
	return path
}

// withRoutes makes newStoreEnv load the routes file at path too.
func withRoutes(path string) func(*StoreOptions) {
	return func(o *StoreOptions) { o.RoutesFile = path }
}

// routesOnlyEnv starts a Store on a routes file alone, without a web config.
func routesOnlyEnv(t *testing.T, content string) *storeEnv {
	t.Helper()
	e := &storeEnv{
		path:    writeRoutes(t, content),
		reg:     prometheus.NewRegistry(),
		clock:   newFakeClock(),
		logs:    &syncBuffer{},
		changed: make(chan *Config, 16),
	}
	s, err := NewStore("", StoreOptions{
		RoutesFile: e.path,
		Logger:     log.NewLogfmtLogger(e.logs),
		Registerer: e.reg,
		Now:        e.clock.Now,
		Debounce:   20 * time.Millisecond, // as fastWatch
		OnChange:   func(c *Config) { e.changed <- c },
	})
	if err != nil {
		t.Fatal(err)
	}
	e.store = s
	return e
}

// problemsOf returns the problems a LoadFiles error lists.
func problemsOf(t *testing.T, err error) []error {
	t.Helper()
	if err == nil {
		t.Fatal("LoadFiles accepted the files")
	}
	if pl, ok := err.(interface{ Unwrap() []error }); ok {
		return pl.Unwrap()
	}
	return []error{err}
}

// Every problem of a refused routes file starts with the routes file's
// path, not the web config's, whether or not a web config is given, and
// LoadFiles, CheckFiles and NewStore say the same.
func TestRoutesFileProblemsNameTheRoutesFile(t *testing.T) {
	broken := `routes:
  - path: /metrics
    upstream: 127.0.0.1:9252
  - name: node
    path: /node/metrics
    upstream: http://10.0.0.5:9100/metrics
    timeout: 10
tokens:
  node-scraper: mpt_the-token-itself
`
	want := []string{
		"route #1: name is missing; give each route a name such as runner",
		"route #1: upstream has no scheme; write http://127.0.0.1:PORT/path",
		`route node: upstream host "10.0.0.5" is not on this host`,
		"route node: timeout is not a duration (not shown); write it with a unit",
		"token node-scraper: the value (not shown) looks like the token itself, not its sha256",
	}
	for _, web := range []string{"", "tls_users.good.yml"} {
		t.Run("web config "+web, func(t *testing.T) {
			files := Files{Routes: writeRoutes(t, broken)}
			if web != "" {
				files.Web, _ = fixture(t, web)
			}
			cfg, err := LoadFiles(files)
			if cfg != nil {
				t.Errorf("LoadFiles returned a config along with the error")
			}
			assertProblems(t, files.Routes, problemsOf(t, err), want)
			assertProblems(t, files.Routes, CheckFiles(files), want)
			if s, err := NewStore(files.Web, StoreOptions{RoutesFile: files.Routes}); s != nil || err == nil || !strings.HasPrefix(err.Error(), files.Routes+": route #1: name is missing") {
				t.Errorf("NewStore = %v, %v; want the routes file's problems", s, err)
			}
			if strings.Contains(err.Error(), "mpt_") {
				t.Errorf("a problem quotes the token: %v", err)
			}
		})
	}
}

// A routes file that cannot be read is the routes file's problem too, with
// the flag that names it: it is not resolved against the web config's
// directory.
func TestMissingRoutesFileNamesItself(t *testing.T) {
	web, _ := fixture(t, "tls_users.good.yml")
	missing := filepath.Join(t.TempDir(), "routes.yml")
	for _, files := range []Files{{Routes: missing}, {Web: web, Routes: missing}} {
		_, err := LoadFiles(files)
		want := missing + ": the file does not exist; check --web.routes.file"
		if err == nil || err.Error() != want {
			t.Errorf("LoadFiles(%v) = %v, want %s", files, err, want)
		}
		if errs := CheckFiles(files); len(errs) != 1 || errs[0].Error() != want {
			t.Errorf("CheckFiles(%v) = %v, want [%s]", files, errs, want)
		}
	}
	// A mistaken path to something huge (a log file) is not read whole.
	huge := writeRoutes(t, runnerOnlyRoutes+strings.Repeat("#", maxFileSize))
	_, err := LoadFiles(Files{Web: web, Routes: huge})
	want := huge + ": the file cannot be read: larger than 1048576 bytes; is this the right file?"
	if err == nil || err.Error() != want {
		t.Errorf("LoadFiles with a huge routes file = %v, want %s", err, want)
	}
}

// The routes file is checked against the web config: a grant that matches
// nobody is a warning with the exact words, never a refusal, in check-config
// too.
func TestRoutesCrossFileWarnings(t *testing.T) {
	for _, tc := range []struct {
		web  string
		want func(web, routes string) []string
	}{
		{"users_plain_http.good.yml", func(web, routes string) []string {
			return []string{
				web + ": basic_auth_users without tls_server_config: passwords cross the network in clear text; configure tls_server_config",
				routes + `: route "node" allows client certificate names, but ` + web + ` does not verify client certificates (client_auth_type: RequireAndVerifyClientCert); they match nobody`,
				routes + `: route "pprof" allows user "oncall", who is not in basic_auth_users of ` + web + `; add the user there, or fix the name`,
				routes + ": tokens without tls_server_config: bearer tokens cross the network in clear text; configure tls_server_config",
			}
		}},
		// Client certificates verified, over TLS: only oncall is missing.
		{"mtls.good.yml", func(web, routes string) []string {
			return []string{
				routes + `: route "pprof" allows user "oncall", who is not in basic_auth_users of ` + web + `; add the user there, or fix the name`,
			}
		}},
		// No web config at all: plain HTTP, nobody's password, no
		// certificates.
		{"", func(_, routes string) []string {
			return []string{
				routes + `: route "node" allows client certificate names, but the web config (none given) does not verify client certificates (client_auth_type: RequireAndVerifyClientCert); they match nobody`,
				routes + `: route "pprof" allows user "oncall", who is not in basic_auth_users of the web config (none given); add the user there, or fix the name`,
				routes + ": tokens without tls_server_config: bearer tokens cross the network in clear text; configure tls_server_config",
			}
		}},
	} {
		t.Run("web config "+tc.web, func(t *testing.T) {
			files := Files{Routes: writeRoutes(t, hostRoutes)}
			if tc.web != "" {
				files.Web, _ = fixture(t, tc.web)
			}
			cfg, err := LoadFiles(files)
			if err != nil {
				t.Fatal(err)
			}
			if want := tc.want(files.Web, files.Routes); !slices.Equal(cfg.Warnings, want) {
				t.Errorf("warnings:\n%s\nwant exactly:\n%s", strings.Join(cfg.Warnings, "\n"), strings.Join(want, "\n"))
			}
			if errs := CheckFiles(files); len(errs) != 0 {
				t.Errorf("CheckFiles refused the files: %v", errs)
			}
		})
	}
}

// A user the web config has, over TLS with client certificates verified
// and no token: nothing to warn about.
func TestRoutesCrossFileNoWarnings(t *testing.T) {
	web, _ := fixture(t, "mtls.good.yml")
	b, err := os.ReadFile(web)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, web, append(b, "basic_auth_users:\n  oncall: $2a$10$J0AAoS4pLbKEdU8oFofmAOvPyvUnm6ImSP9YOPfwNdXLmGLZlBfMy\n"...))
	cfg, err := LoadFiles(Files{Web: web, Routes: writeRoutes(t, hostRoutes)})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings %q, want none", cfg.Warnings)
	}
	if got, want := cfg.Access(), (access.Policy{Users: true, Tokens: true, ClientCerts: true}); got != want {
		t.Errorf("Access() = %+v, want %+v", got, want)
	}
}

// Without a web config the routes file alone makes the config: plain HTTP
// (loopback only, the door rule decides), and its tokens authenticate.
func TestRoutesFileAlone(t *testing.T) {
	path := writeRoutes(t, hostRoutes)
	cfg, err := LoadFiles(Files{Routes: path})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Access(), (access.Policy{Tokens: true}); got != want {
		t.Errorf("Access() = %+v, want %+v", got, want)
	}
	if cfg.TLSEnabled() || cfg.Limiter != nil || cfg.Path != "" {
		t.Errorf("TLS %v, Limiter %v, Path %q; want plain HTTP, no rate_limit, no web config", cfg.TLSEnabled(), cfg.Limiter, cfg.Path)
	}
	if !slices.Equal(cfg.Files, []string{path}) {
		t.Errorf("Files = %q, want only the routes file", cfg.Files)
	}
	var names []string
	for _, r := range cfg.Routes.Routes {
		names = append(names, r.Name)
	}
	if !slices.Equal(names, []string{"runner", "node", "pprof"}) {
		t.Errorf("routes %q, want runner, node, pprof", names)
	}
	if _, ok := cfg.Routes.Tokens["node-scraper"]; !ok || len(cfg.Routes.Tokens) != 1 {
		t.Errorf("tokens %v, want node-scraper", cfg.Routes.Tokens)
	}

	e := routesOnlyEnv(t, runnerOnlyRoutes)
	if got := e.store.Current().Access(); got != (access.Policy{}) {
		t.Errorf("routes file without tokens: Access() = %+v, want nothing", got)
	}
	if e.store.Path() != e.path {
		t.Errorf("Path() = %q, want the routes file %q", e.store.Path(), e.path)
	}
}

// A reload that removes every token from a door whose only factor is
// tokens is refused: a half-written routes file must not open the door.
// Removing one token of two is an ordinary reload.
func TestReloadNeverDropsTokens(t *testing.T) {
	twoTokens := hostRoutes + "  other-scraper: " + otherScraperSHA256 + "\n"
	for _, tc := range []struct {
		name string
		env  func(t *testing.T) *storeEnv
		what func(e *storeEnv) string // the files named in the refusal
	}{
		{"routes file alone", func(t *testing.T) *storeEnv { return routesOnlyEnv(t, twoTokens) },
			func(e *storeEnv) string { return e.path }},
		{"TLS without users", func(t *testing.T) *storeEnv {
			return newStoreEnv(t, "tls.good.yml", withRoutes(writeRoutes(t, twoTokens)))
		}, func(e *storeEnv) string { return e.path + " and " + e.store.files.Routes }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.env(t)
			routesPath := e.store.files.Routes
			if got := e.store.Current().Access(); got != (access.Policy{Tokens: true}) {
				t.Fatalf("Access() = %+v, want tokens alone", got)
			}
			writeAtomic(t, routesPath, []byte(hostRoutes)) // other-scraper removed
			if err := e.store.Reload(); err != nil {
				t.Fatalf("removing one token of two: %v", err)
			}
			good := e.store.Current()
			if _, ok := good.Routes.Tokens["other-scraper"]; ok {
				t.Fatal("other-scraper still served")
			}

			writeAtomic(t, routesPath, []byte(runnerOnlyRoutes))
			err := e.store.Reload()
			want := tc.what(e) + ": removing tokens (the routes file's tokens:) needs a restart of metrics-proxy; the running config requires a bearer token"
			if err == nil || err.Error() != want {
				t.Fatalf("Reload = %v, want %s", err, want)
			}
			if e.store.Current() != good || !e.store.Current().Access().Tokens {
				t.Fatal("a reload removed the last token")
			}
			e.wantReloads(t, 1, 1, 0)
			if len(e.changed) != 1 {
				t.Errorf("OnChange called %d times, want once (for the good reload)", len(e.changed))
			}
		})
	}
}

// A broken routes file on reload keeps the last good routes, and the web
// config with them: they are one snapshot.
func TestReloadBrokenRoutesKeepsLastGood(t *testing.T) {
	routesPath := writeRoutes(t, hostRoutes)
	e := newStoreEnv(t, "tls_users.good.yml", withRoutes(routesPath))
	good := e.store.Current()
	goodRoutes := good.Routes

	writeAtomic(t, routesPath, []byte("routes:\n  - name: node\n    path: [unclosed\n"))
	err := e.store.Reload()
	if err == nil || !strings.HasPrefix(err.Error(), routesPath+": ") {
		t.Fatalf("Reload = %v, want a problem of %s", err, routesPath)
	}
	if e.store.Current() != good || e.store.Current().Routes != goodRoutes {
		t.Fatal("a broken routes file replaced the routes in force")
	}
	e.wantReloads(t, 0, 1, 0)
	if len(e.changed) != 0 {
		t.Error("OnChange called for a failed reload")
	}

	// An empty file is what a truncated write looks like: refused too.
	writeAtomic(t, routesPath, nil)
	if err := e.store.Reload(); err == nil || !strings.HasPrefix(err.Error(), routesPath+": the file is empty") {
		t.Fatalf("Reload of an empty routes file = %v", err)
	}
	if e.store.Current().Routes != goodRoutes {
		t.Fatal("an empty routes file replaced the routes in force")
	}
	e.wantReloads(t, 0, 2, 0)

	writeAtomic(t, routesPath, []byte(strings.Replace(hostRoutes, "  - name: node\n", "  - name: node-renamed\n", 1)))
	if err := e.store.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := e.store.Current().Routes.Routes[1].Name; got != "node-renamed" {
		t.Errorf("route #2 is %q after the good reload, want node-renamed", got)
	}
	e.wantReloads(t, 1, 2, 1)
}

// Watch follows the routes file, in a directory of its own, as it follows
// the web config: a rename over it and an in-place write both apply.
func TestWatchRoutesFile(t *testing.T) {
	routesPath := writeRoutes(t, runnerOnlyRoutes)
	e := newStoreEnv(t, "tls_users.good.yml", fastWatch, withRoutes(routesPath))
	e.watch(t)

	writeAtomic(t, routesPath, []byte(hostRoutes))
	if c := e.nextChange(t); len(c.Routes.Routes) != 3 || c != e.store.Current() {
		t.Fatalf("renamed-in routes file not applied: %d routes", len(c.Routes.Routes))
	}
	writeFile(t, routesPath, []byte(strings.Replace(hostRoutes, "name: pprof", "name: profiles", 1)))
	if c := e.nextChange(t); c.Routes.Routes[2].Name != "profiles" {
		t.Fatalf("routes file written in place not applied: route #3 is %q", c.Routes.Routes[2].Name)
	}
}

// The same without a web config.
func TestWatchRoutesFileAlone(t *testing.T) {
	e := routesOnlyEnv(t, runnerOnlyRoutes)
	e.watch(t)
	writeAtomic(t, e.path, []byte(hostRoutes))
	if c := e.nextChange(t); !c.Access().Tokens || len(c.Routes.Routes) != 3 {
		t.Fatalf("routes file not applied: %+v", c.Access())
	}
}

// The attack: a write cut off just before a route's allow: (or before
// admin:) parses, and would open the route to everyone. The reload is
// refused and the last good routes stay; narrowing still reloads.
func TestReloadCannotDropAnAllow(t *testing.T) {
	dir := t.TempDir()
	routesFile := filepath.Join(dir, "routes.yml")
	const head = `routes:
  - name: runner
    path: /metrics
    upstream: http://127.0.0.1:9252/metrics
  - name: node
    path: /node/metrics
    upstream: http://127.0.0.1:9100/metrics
`
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(routesFile, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(head + "    allow:\n      users: [prometheus]\nadmin:\n  users: [prometheus]\n")
	s, err := NewStore("", StoreOptions{RoutesFile: routesFile})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, content, want string }{
		{"allow cut", head, routesFile + ": route node lost its allow:, which would open it to every authenticated client; a half-written file looks the same, so opening a route needs a restart of metrics-proxy (or write allow: with the identities instead)"},
		{"admin cut", head + "    allow:\n      users: [prometheus]\n", routesFile + ": admin: was removed, which would let every identity granted all routes read the proxy's own metrics; a half-written file looks the same, so that needs a restart of metrics-proxy"},
	} {
		write(c.content)
		if err := s.Reload(); err == nil || err.Error() != c.want {
			t.Errorf("%s: reload error %v\nwant %s", c.name, err, c.want)
		}
		if r := s.Current().Routes.Routes[1]; r.Allow.Everyone {
			t.Errorf("%s: node is open to everyone after a refused reload", c.name)
		}
	}
	write(head + "    allow:\n      users: [oncall]\nadmin:\n  users: [oncall]\n")
	if err := s.Reload(); err != nil {
		t.Fatalf("narrowing reload refused: %v", err)
	}
}
