package routes

import (
	"reflect"
	"strings"
	"testing"
)

func TestDefault(t *testing.T) {
	runner := Upstream{Raw: "http://127.0.0.1:9252", Network: "tcp", Address: "127.0.0.1:9252", Host: "127.0.0.1:9252"}
	with := func(u Upstream, p string) Upstream { u.Path = p; return u }
	sock := Upstream{Raw: "unix:/run/alloy-runner/metrics.sock", Network: "unix", Address: "/run/alloy-runner/metrics.sock", Host: "localhost"}
	prefixed := Upstream{Raw: "http://[::1]:9252/runner/", Network: "tcp", Address: "[::1]:9252", Host: "[::1]:9252"}
	everyone := Allow{Everyone: true}
	for _, c := range []struct {
		name     string
		upstream string
		paths    []string
		want     []Route
	}{
		{"the defaults", "http://127.0.0.1:9252", []string{"/metrics"}, []Route{
			{Name: "runner", Path: "/metrics", Upstream: with(runner, "/metrics"), Allow: everyone},
		}},
		{"pprof too", "http://127.0.0.1:9252", []string{"/metrics", "/debug/pprof/"}, []Route{
			{Name: "runner", Path: "/metrics", Upstream: with(runner, "/metrics"), Allow: everyone},
			{Name: "runner_debug_pprof", Path: "/debug/pprof/", Upstream: with(runner, "/debug/pprof/"), Allow: everyone},
		}},
		{"first is runner whatever it is", "http://127.0.0.1:9252", []string{"/debug/pprof/", "/metrics"}, []Route{
			{Name: "runner", Path: "/debug/pprof/", Upstream: with(runner, "/debug/pprof/"), Allow: everyone},
			{Name: "runner_metrics", Path: "/metrics", Upstream: with(runner, "/metrics"), Allow: everyone},
		}},
		{"unix socket", "unix:/run/alloy-runner/metrics.sock", []string{"/metrics"}, []Route{
			{Name: "runner", Path: "/metrics", Upstream: with(sock, "/metrics"), Allow: everyone},
		}},
		{"upstream prefix", "http://[::1]:9252/runner/", []string{"/metrics", "/debug/pprof/"}, []Route{
			{Name: "runner", Path: "/metrics", Upstream: with(prefixed, "/runner/metrics"), Allow: everyone},
			{Name: "runner_debug_pprof", Path: "/debug/pprof/", Upstream: with(prefixed, "/runner/debug/pprof/"), Allow: everyone},
		}},
		{"a path twice is one route", "http://127.0.0.1:9252", []string{"/metrics", "/metrics"}, []Route{
			{Name: "runner", Path: "/metrics", Upstream: with(runner, "/metrics"), Allow: everyone},
		}},
		{"names that would collide", "http://127.0.0.1:9252", []string{"/metrics", "/a/b", "/a_b", "/a/b/", "/a/b_2"}, []Route{
			{Name: "runner", Path: "/metrics", Upstream: with(runner, "/metrics"), Allow: everyone},
			{Name: "runner_a_b", Path: "/a/b", Upstream: with(runner, "/a/b"), Allow: everyone},
			{Name: "runner_a_b_2", Path: "/a_b", Upstream: with(runner, "/a_b"), Allow: everyone},
			{Name: "runner_a_b_3", Path: "/a/b/", Upstream: with(runner, "/a/b/"), Allow: everyone},
			{Name: "runner_a_b_2_2", Path: "/a/b_2", Upstream: with(runner, "/a/b_2"), Allow: everyone},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tab, err := Default(c.upstream, c.paths)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(tab.Routes, c.want) {
				t.Errorf("routes:\n got %+v\nwant %+v", tab.Routes, c.want)
			}
			if len(tab.Tokens) != 0 {
				t.Errorf("tokens %v, want none", tab.Tokens)
			}
		})
	}
}

func TestDefaultRefuses(t *testing.T) {
	form := "write http://127.0.0.1:PORT/path, http://[::1]:PORT/path, http://localhost:PORT/path or unix:/path/to.sock[:/path]"
	for _, c := range []struct {
		name     string
		upstream string
		paths    []string
		want     string
	}{
		{"no upstream", "", []string{"/metrics"}, "--upstream.url is missing; " + form},
		{"https", "https://127.0.0.1:9252", []string{"/metrics"}, "--upstream.url uses https; the exporters behind the proxy speak plain http on loopback, so write http:// (or use a unix: socket)"},
		{"bare host:port", "127.0.0.1:9252", []string{"/metrics"}, "--upstream.url has no scheme; " + form},
		{"password", "http://u:s3cret@127.0.0.1:9252", []string{"/metrics"}, `--upstream.url "http://(credentials not shown)@127.0.0.1:9252" contains credentials; remove them: the exporters behind the proxy take none, and the proxy never sends any`},
		{"other host", "http://runner.example.com:9252", []string{"/metrics"}, `--upstream.url host "runner.example.com" is not on this host; upstreams must be loopback (localhost, 127.0.0.1, [::1]) or a unix socket: the exporters there have no authentication, and the proxy must be the only door to them`},
		{"dirty prefix", "http://127.0.0.1:9252/a/../b", []string{"/metrics"}, `--upstream.url path is not clean: path contains ".."; write a clean absolute path such as /metrics`},
		{"no paths", "http://127.0.0.1:9252", nil, "no --web.allowed-path given; list the paths to forward, e.g. --web.allowed-path=/metrics"},
		{"root", "http://127.0.0.1:9252", []string{"/metrics", "/"}, "--web.allowed-path / would forward every request path; give the paths this route serves, such as /metrics"},
		{"relative", "http://127.0.0.1:9252", []string{"/metrics", "metrics"}, "--web.allowed-path #2 is not clean: path does not start with /; write a clean absolute path such as /metrics, or /debug/pprof/ for everything below it"},
		{"self metrics", "http://127.0.0.1:9252", []string{"/proxy/"}, "--web.allowed-path /proxy/ covers /proxy/metrics, where the proxy serves its own metrics; choose another path"},
		{"health", "http://127.0.0.1:9252", []string{"/-/ready"}, "--web.allowed-path /-/ready is under /-/, where the proxy serves its health endpoints (/-/healthy, /-/ready); choose another path"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tab, err := Default(c.upstream, c.paths)
			if err == nil {
				t.Fatalf("Default(%q, %q) = %+v, want error %q", c.upstream, c.paths, tab, c.want)
			}
			if err.Error() != c.want {
				t.Errorf("error:\n got %s\nwant %s", err, c.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error leaks the password: %s", err)
			}
		})
	}
}
