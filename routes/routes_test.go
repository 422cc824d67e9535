package routes

import (
	"reflect"
	"testing"

	"github.com/alloyci/hardened-runner/access"
)

// matchTable has exact and prefix routes that overlap on purpose.
func matchTable(t *testing.T) *Table {
	t.Helper()
	tab, problems, warnings := Parse([]byte(`
routes:
  - {name: debug, path: /debug/, upstream: "http://127.0.0.1:9252/debug/", allow: {users: [oncall]}}
  - {name: pprof, path: /debug/pprof/, upstream: "http://127.0.0.1:9252/debug/pprof/", allow: {users: [oncall, dev]}}
  - {name: heap, path: /debug/pprof/heap, upstream: "http://127.0.0.1:9252/debug/pprof/heap", allow: {tokens: [ci]}}
  - {name: runner, path: /metrics, upstream: "http://127.0.0.1:9252/metrics"}
  - {name: node, path: /node/, upstream: "http://127.0.0.1:9100/", allow: {client_sans: [prometheus.example.com]}}
  - {name: moved, path: /old/metrics, upstream: "unix:/run/e.sock:/new/metrics"}
tokens:
  ci: 2f1ea3b4d1d8b8e1c3e8c62a1cfa5d5b5a1e54c0d4b5cf0d2b44e6a5d1a1f7c0
`))
	if len(problems) > 0 || len(warnings) > 0 {
		t.Fatalf("problems %q, warnings %q", problems, warnings)
	}
	return tab
}

func TestMatch(t *testing.T) {
	tab := matchTable(t)
	for p, want := range map[string]string{
		"/metrics":             "runner",
		"/debug/pprof/heap":    "heap",  // exact wins over both prefixes
		"/debug/pprof/heap/x":  "pprof", // not the exact route: the longest prefix
		"/debug/pprof/":        "pprof", // a prefix matches itself
		"/debug/pprof/profile": "pprof", // the longest prefix wins over /debug/
		"/debug/vars":          "debug",
		"/debug/":              "debug",
		"/node/":               "node",
		"/node/metrics":        "node",
		"/old/metrics":         "moved",
		"/metrics/":            "", // an exact route matches nothing below it
		"/metricsx":            "",
		"/Metrics":             "",
		"/debug":               "", // a prefix does not match itself without the /
		"/debug/pprof":         "debug",
		"/":                    "",
		"/old/metrics/x":       "",
	} {
		r, ok := tab.Match(p)
		got := ""
		if ok {
			got = r.Name
		}
		if got != want {
			t.Errorf("Match(%q) = %q, want %q", p, got, want)
		}
	}
}

func TestMatchIndependentOfOrder(t *testing.T) {
	// The prefix routes before and after the exact one, the longer prefix
	// first and last: the answer must not depend on file order.
	for _, order := range [][]int{{0, 1, 2}, {2, 1, 0}, {1, 0, 2}, {2, 0, 1}} {
		all := []Route{
			{Name: "short", Path: "/a/"},
			{Name: "long", Path: "/a/b/"},
			{Name: "exact", Path: "/a/b/c"},
		}
		tab := &Table{}
		for _, i := range order {
			tab.Routes = append(tab.Routes, all[i])
		}
		for p, want := range map[string]string{"/a/b/c": "exact", "/a/b/d": "long", "/a/x": "short"} {
			if r, ok := tab.Match(p); !ok || r.Name != want {
				t.Errorf("order %v: Match(%q) = %v, want %s", order, p, r, want)
			}
		}
	}
}

func TestMatchReturnsTheTablesRoute(t *testing.T) {
	tab := matchTable(t)
	r, _ := tab.Match("/metrics")
	if r != &tab.Routes[3] {
		t.Errorf("Match returned a copy, not &Routes[3]; callers key maps by it")
	}
}

func TestOutboundPath(t *testing.T) {
	tab := matchTable(t)
	for p, want := range map[string]string{
		"/metrics":             "/metrics",
		"/old/metrics":         "/new/metrics",
		"/debug/pprof/":        "/debug/pprof/",
		"/debug/pprof/profile": "/debug/pprof/profile",
		"/debug/pprof/heap":    "/debug/pprof/heap",
		"/node/":               "/",
		"/node/metrics":        "/metrics",
		"/node/a/b":            "/a/b",
	} {
		r, ok := tab.Match(p)
		if !ok {
			t.Fatalf("Match(%q) found nothing", p)
		}
		if got := r.OutboundPath(p); got != want {
			t.Errorf("route %s: OutboundPath(%q) = %q, want %q", r.Name, p, got, want)
		}
	}
	// A path the route did not match never becomes part of the upstream path.
	node := &tab.Routes[4]
	if got := node.OutboundPath("/elsewhere/x"); got != "/" {
		t.Errorf("OutboundPath of an unmatched path = %q, want the upstream path /", got)
	}
}

func TestPrefix(t *testing.T) {
	for p, want := range map[string]bool{"/metrics": false, "/debug/pprof/": true, "/a/b": false, "/a/": true} {
		r := Route{Path: p}
		if r.Prefix() != want {
			t.Errorf("Route{Path: %q}.Prefix() = %v, want %v", p, !want, want)
		}
	}
}

func TestPermits(t *testing.T) {
	a := Allow{Users: []string{"oncall"}, ClientSANs: []string{"prometheus.example.com", "10.0.0.1"}, Tokens: []string{"ci"}}
	for _, c := range []struct {
		name  string
		allow Allow
		id    access.Identity
		want  bool
	}{
		{"everyone, nobody authenticated", Allow{Everyone: true}, access.Identity{}, true},
		{"everyone, a user", Allow{Everyone: true}, access.Identity{User: "dev"}, true},
		{"listed user", a, access.Identity{User: "oncall"}, true},
		{"other user", a, access.Identity{User: "dev"}, false},
		{"user case differs", a, access.Identity{User: "Oncall"}, false},
		{"listed token", a, access.Identity{Token: "ci"}, true},
		{"other token", a, access.Identity{Token: "node-scraper"}, false},
		{"a user named like the token", a, access.Identity{User: "ci"}, false},
		{"a token named like the user", a, access.Identity{Token: "oncall"}, false},
		{"listed SAN", a, access.Identity{SANs: []string{"other.example.com", "prometheus.example.com"}}, true},
		{"listed IP SAN", a, access.Identity{SANs: []string{"10.0.0.1"}}, true},
		{"SAN suffix", a, access.Identity{SANs: []string{"evil-prometheus.example.com", "prometheus.example.com.evil"}}, false},
		{"SAN named like the user", a, access.Identity{SANs: []string{"oncall"}}, false},
		{"other user with a listed SAN", a, access.Identity{User: "dev", SANs: []string{"prometheus.example.com"}}, true},
		{"nobody authenticated", a, access.Identity{}, false},
		{"explicitly nobody", Allow{}, access.Identity{User: "oncall", Token: "ci", SANs: []string{"prometheus.example.com"}}, false},
		{"empty user against an empty entry", Allow{Users: []string{""}, Tokens: []string{""}, ClientSANs: []string{""}}, access.Identity{SANs: []string{""}}, false},
	} {
		if got := c.allow.Permits(c.id); got != c.want {
			t.Errorf("%s: Permits(%+v) = %v, want %v", c.name, c.id, got, c.want)
		}
	}
}

func TestPermitted(t *testing.T) {
	tab := matchTable(t)
	names := func(rs []*Route) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Name)
		}
		return out
	}
	for _, c := range []struct {
		id   access.Identity
		want []string
	}{
		{access.Identity{User: "oncall"}, []string{"debug", "pprof", "runner", "moved"}},
		{access.Identity{User: "dev"}, []string{"pprof", "runner", "moved"}},
		{access.Identity{Token: "ci"}, []string{"heap", "runner", "moved"}},
		{access.Identity{SANs: []string{"prometheus.example.com"}}, []string{"runner", "node", "moved"}},
		{access.Identity{}, []string{"runner", "moved"}},
	} {
		if got := names(tab.Permitted(c.id)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Permitted(%+v) = %q, want %q", c.id, got, c.want)
		}
	}
	if tab.Permitted(access.Identity{})[0] != &tab.Routes[3] {
		t.Errorf("Permitted returned copies, not the table's routes")
	}
}

// /-/ready never probes into /debug/: a probe of /debug/pprof/profile would
// take a CPU profile each time.
func TestProbed(t *testing.T) {
	for up, want := range map[string]bool{
		"/metrics": true, "/": true, "/node/metrics": true,
		"/debug/pprof/": false, "/debug/pprof/profile": false, "/debug/vars": false,
	} {
		r := Route{Upstream: Upstream{Path: up}}
		if got := r.Probed(); got != want {
			t.Errorf("upstream path %s: Probed %v, want %v", up, got, want)
		}
	}
}

// localhost, with or without a final dot, is dialled as 127.0.0.1: no
// resolver decides where a scrape goes, and it shares 127.0.0.1's pool.
func TestLocalhostIsDialledAsLoopbackLiteral(t *testing.T) {
	for _, up := range []string{"http://localhost:9100/metrics", "http://localhost.:9100/metrics", "http://LocalHost:9100/metrics"} {
		tab, problems, _ := Parse([]byte("routes:\n  - {name: node, path: /node/metrics, upstream: '" + up + "'}\n"))
		if len(problems) != 0 {
			t.Fatalf("%s: %v", up, problems)
		}
		u := tab.Routes[0].Upstream
		if u.Address != "127.0.0.1:9100" || u.Host != "localhost:9100" || u.Key() != "tcp:127.0.0.1:9100" {
			t.Errorf("%s: address %q host %q key %q, want 127.0.0.1:9100, localhost:9100, tcp:127.0.0.1:9100", up, u.Address, u.Host, u.Key())
		}
	}
}

// Without admin:, the proxy's own pages are for the identities granted every
// route; admin: names them instead.
func TestAdmin(t *testing.T) {
	const routesYAML = `routes:
  - {name: runner, path: /metrics, upstream: 'http://127.0.0.1:9252/metrics'}
  - name: pprof
    path: /debug/pprof/
    upstream: 'http://127.0.0.1:9252/debug/pprof/'
    allow: {users: [oncall]}
`
	prometheus, oncall := access.Identity{User: "prometheus"}, access.Identity{User: "oncall"}
	tab, problems, _ := Parse([]byte(routesYAML))
	if len(problems) != 0 {
		t.Fatal(problems)
	}
	if tab.IsAdmin(prometheus) || !tab.IsAdmin(oncall) {
		t.Errorf("default admin: prometheus %v oncall %v, want false true", tab.IsAdmin(prometheus), tab.IsAdmin(oncall))
	}
	tab, problems, _ = Parse([]byte(routesYAML + "admin: {users: [prometheus]}\n"))
	if len(problems) != 0 {
		t.Fatal(problems)
	}
	if !tab.IsAdmin(prometheus) || tab.IsAdmin(oncall) {
		t.Errorf("admin: [prometheus]: prometheus %v oncall %v, want true false", tab.IsAdmin(prometheus), tab.IsAdmin(oncall))
	}
	_, problems, _ = Parse([]byte(routesYAML + "admin: {tokens: [nope]}\n"))
	if want := "admin.tokens names nope, which is not under tokens:; add it there (metrics-proxy hash-token makes one) or fix the name"; len(problems) != 1 || problems[0] != want {
		t.Errorf("unknown admin token: %q, want %q", problems, want)
	}
	_, _, warnings := Parse([]byte(routesYAML + "admin: {}\n"))
	if want := "admin: names no user, client SAN or token, so nobody may read /proxy/metrics; list who may, e.g. admin: {users: [prometheus]}, or remove admin: to let the identities granted every route read it"; len(warnings) != 1 || warnings[0] != want {
		t.Errorf("empty admin: %q", warnings)
	}
}
