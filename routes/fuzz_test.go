package routes

import (
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/alloyci/hardened-runner/listener"
	"github.com/alloyci/hardened-runner/safepath"
)

// hashRE finds what could be a token hash in the input.
var hashRE = regexp.MustCompile(`[0-9A-Fa-f]{64,}`)

// FuzzParse checks that no file makes Parse panic or quote a token hash in
// a message, and that a table it accepts keeps the package's promises.
func FuzzParse(f *testing.F) {
	for _, c := range parseCases() {
		// The size-limit cases stay in TestParseRefuses: the fuzzer spends
		// its time minimizing a seed of a megabyte instead of mutating.
		if len(c.file) <= 4<<10 {
			f.Add([]byte(c.file))
		}
	}
	if b, err := os.ReadFile(examplePath); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		tab, problems, warnings := Parse(content)
		messages := strings.ToLower(strings.Join(append(problems, warnings...), "\n"))
		for _, h := range hashRE.FindAllString(string(content), -1) {
			for i := 0; i+64 <= len(h); i++ {
				if strings.Contains(messages, strings.ToLower(h[i:i+64])) {
					t.Fatalf("a message quotes the hash %s: %q", h[i:i+64], messages)
				}
			}
		}
		if tab == nil {
			if len(problems) == 0 {
				t.Fatalf("no table and no problem")
			}
			return
		}
		if len(problems) > 0 {
			t.Fatalf("a table despite problems %q", problems)
		}
		if len(tab.Routes) == 0 || len(tab.Routes) > maxRoutes || len(tab.Tokens) > maxTokens {
			t.Fatalf("%d routes, %d tokens", len(tab.Routes), len(tab.Tokens))
		}
		for i := range tab.Routes {
			r := &tab.Routes[i]
			if !nameRE.MatchString(r.Name) {
				t.Fatalf("route name %q", r.Name)
			}
			if err := safepath.Judge(r.Path); err != nil || r.Path == "/" || pathReason(r.Path) != "" {
				t.Fatalf("route %s: path %q accepted (%v)", r.Name, r.Path, err)
			}
			if err := safepath.Judge(r.Upstream.Path); err != nil {
				t.Fatalf("route %s: upstream path %q accepted (%v)", r.Name, r.Upstream.Path, err)
			}
			if r.Prefix() && !strings.HasSuffix(r.Upstream.Path, "/") {
				t.Fatalf("route %s: prefix route to %q", r.Name, r.Upstream.Path)
			}
			switch r.Upstream.Network {
			case "tcp":
				host := r.Upstream.Address[:strings.LastIndex(r.Upstream.Address, ":")]
				if !listener.IsLoopbackHost(host) || r.Upstream.Host != r.Upstream.Address {
					t.Fatalf("route %s: upstream %+v", r.Name, r.Upstream)
				}
			case "unix":
				if !strings.HasPrefix(r.Upstream.Address, "/") || r.Upstream.Host != "localhost" {
					t.Fatalf("route %s: upstream %+v", r.Name, r.Upstream)
				}
			default:
				t.Fatalf("route %s: network %q", r.Name, r.Upstream.Network)
			}
			if u, err := url.Parse(r.Upstream.Raw); r.Upstream.Network == "tcp" && (err != nil || u.User != nil || u.RawQuery != "" || u.Scheme != "http") {
				t.Fatalf("route %s: upstream %q accepted", r.Name, r.Upstream.Raw)
			}
			if r.Timeout < 0 || r.MaxResponseBytes < 0 {
				t.Fatalf("route %s: negative limits", r.Name)
			}
			for _, tok := range r.Allow.Tokens {
				if _, ok := tab.Tokens[tok]; !ok {
					t.Fatalf("route %s: allows unknown token %q", r.Name, tok)
				}
			}
			if m, ok := tab.Match(r.Path); !ok || m != r {
				t.Fatalf("Match(%q) = %v, want route %s", r.Path, m, r.Name)
			}
			if r.Allow.Everyone && strings.HasPrefix(r.Upstream.Path, profilingPrefix) {
				t.Fatalf("route %s: profiling open to everyone", r.Name)
			}
		}
		if _, ok := tab.Match("/proxy/metrics"); ok {
			t.Fatalf("a route takes /proxy/metrics")
		}
		if _, ok := tab.Match("/-/healthy"); ok {
			t.Fatalf("a route takes /-/healthy")
		}
	})
}
