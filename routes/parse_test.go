package routes

import (
	"crypto/sha256"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// hashOf is the sha256 line metrics-proxy hash-token prints for token.
func hashOf(token string) string { return fmt.Sprintf("%x", sha256.Sum256([]byte(token))) }

// runner is a valid route, to combine with the one under test.
const runner = `{name: runner, path: /metrics, upstream: "http://127.0.0.1:9252/metrics"}`

// withRoute is a file with the runner route and r.
func withRoute(r string) string { return "routes: [" + runner + ", " + r + "]\n" }

// withUpstream is a file with one route to upstream.
func withUpstream(upstream string) string {
	return `routes: [{name: runner, path: /metrics, upstream: "` + upstream + `"}]` + "\n"
}

type parseCase struct {
	name     string
	file     string
	problems []string
	warnings []string
}

// parseCases are the mistakes an operator or an attacker would make, each
// with the exact messages it must produce. FuzzParse seeds from them too.
func parseCases() []parseCase {
	hashA, hashB := hashOf("token-a"), hashOf("token-b")
	nobody := "route #2: allow: names no user, client SAN or token, so it allows nobody; list who may, e.g. allow: {users: [oncall]}, or remove allow: to admit every authenticated client"
	nobodyNamed := strings.Replace(nobody, "route #2", "route x", 1)
	return []parseCase{
		// The file as a whole.
		{"empty file", "", []string{"the file is empty, which is also what a truncated write looks like, so it is refused; list at least one route under routes: (see examples/routes.yml)"}, nil},
		{"only comments", "# routes: will go here\n\n", []string{"the file is empty, which is also what a truncated write looks like, so it is refused; list at least one route under routes: (see examples/routes.yml)"}, nil},
		{"no routes", "routes: []\n", []string{"routes: lists no route; add at least one, e.g. routes: [{name: runner, path: /metrics, upstream: http://127.0.0.1:9252/metrics}]"}, nil},
		{"only tokens", "tokens: {a: " + hashA + "}\n", []string{"routes: lists no route; add at least one, e.g. routes: [{name: runner, path: /metrics, upstream: http://127.0.0.1:9252/metrics}]"}, nil},
		{"too many routes", "routes: [" + strings.Repeat(runner+",", maxRoutes) + runner + "]\n", []string{"routes: lists 65 routes, more than the 64 allowed; merge routes with a prefix path (one ending in /)"}, nil},
		{"not YAML", "routes: [\n", []string{"invalid YAML: line 1: did not find expected node content"}, nil},
		{"a list at the top", "- " + runner + "\n", []string{"line 1: found a list where the top level (a mapping with routes: and tokens:) belongs"}, nil},
		{"routes as a string", "routes: /metrics\n", []string{"line 1: found a string (value not shown) where routes: (a list of routes, each starting with - name:) belongs"}, nil},
		{"a route as a string", "routes: [http://127.0.0.1:9252/metrics]\n", []string{"line 1: found a string (value not shown) where a route (a mapping with name, path, upstream and optionally timeout, max_response_bytes, allow) belongs"}, nil},
		{"misspelt top-level key", "route: [" + runner + "]\n", []string{`line 1: unknown key "route" in the top level; fix its spelling or remove it (the keys are routes and tokens)`}, nil},
		{"misspelt route key", withRoute(`{name: x, path: /x, upstream: "http://127.0.0.1:1/x", timout: 10s}`), []string{`line 1: unknown key "timout" in a route; fix its spelling or remove it (the keys are name, path, upstream, timeout, max_response_bytes and allow)`}, nil},
		{"misspelt allow key", withRoute(`{name: x, path: /x, upstream: "http://127.0.0.1:1/x", allow: {user: [oncall]}}`), []string{`line 1: unknown key "user" in allow:; fix its spelling or remove it (the keys are users, client_sans and tokens)`}, nil},
		{"secret pasted as a key", "routes: [" + runner + "]\nHunter2-s3cret: x\n", []string{"line 2: unknown key in the top level (not shown: it does not look like a setting name); fix or remove it (the keys are routes and tokens)"}, nil},
		{"hash pasted as a key", "routes: [" + runner + "]\n" + hashA + ": x\n", []string{"line 2: unknown key in the top level (not shown: it does not look like a setting name); fix or remove it (the keys are routes and tokens)"}, nil},
		{"key given twice", "routes: [{name: runner, name: node, path: /metrics, upstream: \"http://127.0.0.1:9252/metrics\"}]\n", []string{`line 1: key "name" is given twice in a route; keep one`}, nil},
		{"allow as a list", withRoute(`{name: x, path: /x, upstream: "http://127.0.0.1:1/x", allow: [oncall]}`), []string{"line 1: found a list where allow: (a mapping with users, client_sans and tokens lists) belongs"}, nil},
		{"users as a string", withRoute(`{name: x, path: /x, upstream: "http://127.0.0.1:1/x", allow: {users: oncall}}`), []string{"line 1: found a string (value not shown) where a list such as [oncall] belongs"}, nil},
		{"size with a unit", withRoute(`{name: x, path: /x, upstream: "http://127.0.0.1:1/x", max_response_bytes: 64MiB}`), []string{"line 1: found a string (value not shown) where a whole number of bytes belongs"}, nil},
		{"file too large", "# " + strings.Repeat("x", maxFileBytes) + "\n", []string{"the file is larger than 1048576 bytes; is this the right file? (a routes file is a few KiB)"}, nil},

		// Names.
		{"no name", withRoute(`{path: /x, upstream: "http://127.0.0.1:1/x"}`), []string{"route #2: name is missing; give each route a name such as runner (use at most 32 lowercase letters, digits, _ and -, starting with a letter or digit): it becomes the metric label route"}, nil},
		{"name with capitals", withRoute(`{name: Node, path: /x, upstream: "http://127.0.0.1:1/x"}`), []string{"route #2: name (not shown) is not [a-z0-9][a-z0-9_-]{0,31}; use at most 32 lowercase letters, digits, _ and -, starting with a letter or digit: it becomes the metric label route"}, nil},
		{"name too long", withRoute(`{name: ` + strings.Repeat("a", 33) + `, path: /x, upstream: "http://127.0.0.1:1/x"}`), []string{"route #2: name (not shown) is not [a-z0-9][a-z0-9_-]{0,31}; use at most 32 lowercase letters, digits, _ and -, starting with a letter or digit: it becomes the metric label route"}, nil},
		{"name twice", withRoute(`{name: runner, path: /x, upstream: "http://127.0.0.1:1/x"}`), []string{"route #2: name runner is already route #1's; give each route its own name: it labels the route's metrics"}, nil},

		// Paths.
		{"no path", withRoute(`{name: x, upstream: "http://127.0.0.1:1/x"}`), []string{"route x: path is missing; give the request path it serves, e.g. /metrics, or /debug/pprof/ for everything below it"}, nil},
		{"relative path", withRoute(`{name: x, path: metrics, upstream: "http://127.0.0.1:1/x"}`), []string{"route x: path is not clean: path does not start with /; write a clean absolute path such as /metrics, or /debug/pprof/ for everything below it"}, nil},
		{"dot-dot path", withRoute(`{name: x, path: /metrics/../debug/pprof/, upstream: "http://127.0.0.1:1/x/"}`), []string{`route x: path is not clean: path contains ".."; write a clean absolute path such as /metrics, or /debug/pprof/ for everything below it`}, nil},
		{"encoded path", withRoute(`{name: x, path: /%2e%2e/x, upstream: "http://127.0.0.1:1/x"}`), []string{"route x: path is not clean: path contains percent-encoding; write a clean absolute path such as /metrics, or /debug/pprof/ for everything below it"}, nil},
		{"root", withRoute(`{name: x, path: /, upstream: "http://127.0.0.1:1/"}`), []string{"route x: path / would forward every request path; give the paths this route serves, such as /metrics"}, nil},
		{"self metrics", withRoute(`{name: x, path: /proxy/metrics, upstream: "http://127.0.0.1:1/metrics"}`), []string{"route x: path /proxy/metrics covers /proxy/metrics, where the proxy serves its own metrics; choose another path"}, nil},
		{"prefix over self metrics", withRoute(`{name: x, path: /proxy/, upstream: "http://127.0.0.1:1/"}`), []string{"route x: path /proxy/ covers /proxy/metrics, where the proxy serves its own metrics; choose another path"}, nil},
		{"health endpoint", withRoute(`{name: x, path: /-/healthy, upstream: "http://127.0.0.1:1/healthy"}`), []string{"route x: path /-/healthy is under /-/, where the proxy serves its health endpoints (/-/healthy, /-/ready); choose another path"}, nil},
		{"health prefix", withRoute(`{name: x, path: /-/, upstream: "http://127.0.0.1:1/"}`), []string{"route x: path /-/ is under /-/, where the proxy serves its health endpoints (/-/healthy, /-/ready); choose another path"}, nil},
		{"path twice", withRoute(`{name: x, path: /metrics, upstream: "http://127.0.0.1:1/metrics"}`), []string{"route x: path /metrics is already route runner's; a request path must pick one route, so remove one of them or change its path"}, nil},

		// Upstreams.
		{"no upstream", withRoute(`{name: x, path: /x}`), []string{"route x: upstream is missing; write http://127.0.0.1:PORT/path, http://[::1]:PORT/path, http://localhost:PORT/path or unix:/path/to.sock[:/path]"}, nil},
		{"bare host:port", withUpstream("127.0.0.1:9252"), []string{"route runner: upstream has no scheme; write http://127.0.0.1:PORT/path, http://[::1]:PORT/path, http://localhost:PORT/path or unix:/path/to.sock[:/path]"}, nil},
		{"https", withUpstream("https://127.0.0.1:9252/metrics"), []string{"route runner: upstream uses https; the exporters behind the proxy speak plain http on loopback, so write http:// (or use a unix: socket)"}, nil},
		{"other scheme", withUpstream("ftp://127.0.0.1:9252/metrics"), []string{"route runner: upstream has a scheme other than http; write http://127.0.0.1:PORT/path, http://[::1]:PORT/path, http://localhost:PORT/path or unix:/path/to.sock[:/path]"}, nil},
		{"credentials", withUpstream("http://prom:s3cret@127.0.0.1:9252/metrics?k=s3cret"), []string{`route runner: upstream "http://(credentials not shown)@127.0.0.1:9252/metrics" contains credentials; remove them: the exporters behind the proxy take none, and the proxy never sends any`}, nil},
		{"credentials, unparsable", withUpstream("http://u:s3cret@[::1"), []string{`route runner: upstream is not a valid URL and contains "@" (not shown: it may hold credentials); the exporters behind the proxy take no credentials, so remove them; write http://127.0.0.1:PORT/path, http://[::1]:PORT/path, http://localhost:PORT/path or unix:/path/to.sock[:/path]`}, nil},
		{"unparsable", withUpstream("http://127.0.0.1:s3cret/metrics"), []string{"route runner: upstream is not a valid URL (not shown); write http://127.0.0.1:PORT/path, http://[::1]:PORT/path, http://localhost:PORT/path or unix:/path/to.sock[:/path]"}, nil},
		{"query", withUpstream("http://127.0.0.1:9252/metrics?token=s3cret"), []string{"route runner: upstream has a query or fragment (not shown); remove it: the client's query string is forwarded as is"}, nil},
		{"empty query", withUpstream("http://127.0.0.1:9252/metrics?"), []string{"route runner: upstream has a query or fragment (not shown); remove it: the client's query string is forwarded as is"}, nil},
		{"fragment", withUpstream("http://127.0.0.1:9252/metrics#s3cret"), []string{"route runner: upstream has a query or fragment (not shown); remove it: the client's query string is forwarded as is"}, nil},
		{"other host", withUpstream("http://10.0.0.5:9100/metrics"), []string{`route runner: upstream host "10.0.0.5" is not on this host; upstreams must be loopback (localhost, 127.0.0.1, [::1]) or a unix socket: the exporters there have no authentication, and the proxy must be the only door to them`}, nil},
		{"host name", withUpstream("http://exporter.example.com:9100/metrics"), []string{`route runner: upstream host "exporter.example.com" is not on this host; upstreams must be loopback (localhost, 127.0.0.1, [::1]) or a unix socket: the exporters there have no authentication, and the proxy must be the only door to them`}, nil},
		{"every interface", withUpstream("http://0.0.0.0:9100/metrics"), []string{`route runner: upstream host "0.0.0.0" is not on this host; upstreams must be loopback (localhost, 127.0.0.1, [::1]) or a unix socket: the exporters there have no authentication, and the proxy must be the only door to them`}, nil},
		{"IPv6 without brackets", withUpstream("http://::1:9252/metrics"), []string{"route runner: upstream has an IPv6 host without brackets; write it as http://[::1]:PORT/path"}, nil},
		{"IPv6 zone", withUpstream("http://[::1%25lo]:9252/metrics"), []string{"route runner: upstream has an IPv6 zone; loopback needs none, write http://[::1]:PORT/path"}, nil},
		{"no host", withUpstream("http:///metrics"), []string{"route runner: upstream has no host; write http://127.0.0.1:PORT/path, http://[::1]:PORT/path, http://localhost:PORT/path or unix:/path/to.sock[:/path]"}, nil},
		{"no port", withUpstream("http://127.0.0.1/metrics"), []string{"route runner: upstream needs a port from 1 to 65535 after the host, e.g. http://127.0.0.1:9252/metrics"}, nil},
		{"empty port", withUpstream("http://127.0.0.1:/metrics"), []string{"route runner: upstream needs a port from 1 to 65535 after the host, e.g. http://127.0.0.1:9252/metrics"}, nil},
		{"port 0", withUpstream("http://127.0.0.1:0/metrics"), []string{"route runner: upstream needs a port from 1 to 65535 after the host, e.g. http://127.0.0.1:9252/metrics"}, nil},
		{"port too large", withUpstream("http://127.0.0.1:65536/metrics"), []string{"route runner: upstream needs a port from 1 to 65535 after the host, e.g. http://127.0.0.1:9252/metrics"}, nil},
		{"control character", withUpstream(`http://127.0.0.1:9252/metrics\n`), []string{"route runner: upstream contains a control character; write http://127.0.0.1:PORT/path, http://[::1]:PORT/path, http://localhost:PORT/path or unix:/path/to.sock[:/path]"}, nil},
		{"dot-dot upstream path", withUpstream("http://127.0.0.1:9252/metrics/../debug/pprof/"), []string{`route runner: upstream path is not clean: path contains ".."; write a clean absolute path such as /metrics`}, nil},
		{"encoded upstream path", withUpstream("http://127.0.0.1:9252/%2e%2e/debug/pprof/"), []string{"route runner: upstream path is not clean: path contains percent-encoding; write a clean absolute path such as /metrics"}, nil},
		{"prefix to a non-prefix", withRoute(`{name: pprof, path: /debug/pprof/, upstream: "http://127.0.0.1:9252/debug/pprof", allow: {users: [oncall]}}`), []string{"route pprof: path /debug/pprof/ ends in /, so the upstream path must too: write /debug/pprof/ instead of /debug/pprof, or /debug/pprof/x would be sent as /debug/pprofx"}, nil},
		{"relative socket", withUpstream("unix:run/m.sock"), []string{"route runner: upstream needs an absolute socket path: write unix:/path/to.sock, or unix:/path/to.sock:/path for an upstream path"}, nil},
		{"socket as a URL", withUpstream("unix:///run/m.sock"), []string{"route runner: upstream socket path is not clean; write it without //, . or .. segments and without a trailing /, e.g. unix:/run/alloy-runner/metrics.sock"}, nil},
		{"dot-dot socket", withUpstream("unix:/run/../m.sock"), []string{"route runner: upstream socket path is not clean; write it without //, . or .. segments and without a trailing /, e.g. unix:/run/alloy-runner/metrics.sock"}, nil},
		{"socket then no path", withUpstream("unix:/run/m.sock:metrics"), []string{`route runner: upstream has something other than ":/path" after the socket path; write unix:/path/to.sock:/metrics, or leave the upstream path out`}, nil},
		{"socket then dirty path", withUpstream("unix:/run/m.sock:/a//b"), []string{"route runner: upstream path is not clean: path contains an empty segment (//); write a clean absolute path such as /metrics"}, nil},

		// Limits.
		{"bare-number timeout", withRoute(`{name: x, path: /x, upstream: "http://127.0.0.1:1/x", timeout: 10}`), []string{"route x: timeout is not a duration (not shown); write it with a unit, e.g. 10s or 1m30s (a bare number has none), or leave it out for the default"}, nil},
		{"garbage timeout", withRoute(`{name: x, path: /x, upstream: "http://127.0.0.1:1/x", timeout: s3cret}`), []string{"route x: timeout is not a duration (not shown); write it with a unit, e.g. 10s or 1m30s (a bare number has none), or leave it out for the default"}, nil},
		{"negative timeout", withRoute(`{name: x, path: /x, upstream: "http://127.0.0.1:1/x", timeout: -1s}`), []string{"route x: timeout is negative; give a positive duration such as 10s, or leave it out for the default"}, nil},
		{"negative size", withRoute(`{name: x, path: /x, upstream: "http://127.0.0.1:1/x", max_response_bytes: -1}`), []string{"route x: max_response_bytes is negative; give a number of bytes such as 67108864 (64 MiB), or leave it out for the default"}, nil},

		// allow:.
		{"empty user", withRoute(`{name: x, path: /x, upstream: "http://127.0.0.1:1/x", allow: {users: [oncall, ""]}}`), []string{"route x: allow.users has an empty entry; remove it"}, nil},
		{"empty SAN", withRoute(`{name: x, path: /x, upstream: "http://127.0.0.1:1/x", allow: {client_sans: [""]}}`), []string{"route x: allow.client_sans has an empty entry; remove it"}, nil},
		{"empty token name", withRoute(`{name: x, path: /x, upstream: "http://127.0.0.1:1/x", allow: {tokens: [""]}}`), []string{"route x: allow.tokens has an empty entry; remove it"}, nil},
		{"unknown token", withRoute(`{name: x, path: /x, upstream: "http://127.0.0.1:1/x", allow: {tokens: [node-scrapr]}}`) + "tokens: {node-scraper: " + hashA + "}\n", []string{"route x: allow.tokens names node-scrapr, which is not under tokens:; add it there (metrics-proxy hash-token makes one) or fix the name"}, nil},
		{"unknown odd token", withRoute(`{name: x, path: /x, upstream: "http://127.0.0.1:1/x", allow: {tokens: [S3cret!]}}`), []string{"route x: allow.tokens names a token (not shown) that is not under tokens:; list names from tokens:, e.g. node-scraper"}, nil},
		{"hash instead of token name", withRoute(`{name: x, path: /x, upstream: "http://127.0.0.1:1/x", allow: {tokens: [`+hashA+`]}}`) + "tokens: {node-scraper: " + hashA + "}\n", []string{"route x: allow.tokens lists a sha256 (not shown) where a token name belongs; list the token's name from tokens:, e.g. node-scraper"}, nil},
		{"empty allow", withRoute(`{name: x, path: /x, upstream: "http://127.0.0.1:1/x", allow: {}}`), nil, []string{nobodyNamed}},
		{"allow with nothing under it", "routes:\n  - " + runner + "\n  - name: x\n    path: /x\n    upstream: http://127.0.0.1:1/x\n    allow:\n", nil, []string{nobodyNamed}},
		{"allow with empty lists", withRoute(`{name: x, path: /x, upstream: "http://127.0.0.1:1/x", allow: {users: [], client_sans: [], tokens: []}}`), nil, []string{nobodyNamed}},
		{"nameless empty allow", withRoute(`{path: /x, upstream: "http://127.0.0.1:1/x", allow: {}}`), []string{"route #2: name is missing; give each route a name such as runner (use at most 32 lowercase letters, digits, _ and -, starting with a letter or digit): it becomes the metric label route"}, []string{nobody}},
		{"pprof without allow", withRoute(`{name: pprof, path: /debug/pprof/, upstream: "http://127.0.0.1:9252/debug/pprof/"}`), nil, []string{"route pprof forwards /debug/pprof/ (profiling) and names nobody under allow:, so nobody can use it; list who may, e.g. allow: {users: [oncall]}"}},
		{"pprof under another path", withRoute(`{name: prof, path: /prof/, upstream: "http://127.0.0.1:9252/debug/pprof/"}`), nil, []string{"route prof forwards /debug/pprof/ (profiling) and names nobody under allow:, so nobody can use it; list who may, e.g. allow: {users: [oncall]}"}},
		{"expvar without allow", withRoute(`{name: vars, path: /vars, upstream: "http://127.0.0.1:9252/debug/vars"}`), nil, []string{"route vars forwards /debug/vars (profiling) and names nobody under allow:, so nobody can use it; list who may, e.g. allow: {users: [oncall]}"}},
		{"whole upstream without allow", withRoute(`{name: all, path: /runner/, upstream: "http://127.0.0.1:9252/"}`), nil, []string{"route all forwards / and everything below it, /debug/ (profiling) included, and names nobody under allow:, so nobody can use it; list who may, e.g. allow: {users: [oncall]}"}},

		// tokens:.
		{"token name with capitals", "routes: [" + runner + "]\ntokens: {Node: " + hashA + "}\n", []string{"tokens: a token name (not shown) is not [a-z0-9][a-z0-9_-]{0,31}; use at most 32 lowercase letters, digits, _ and -, starting with a letter or digit"}, nil},
		{"hash as token name", "routes: [" + runner + "]\ntokens: {" + hashA + ": node}\n", []string{"tokens: a name (not shown) looks like a sha256; write each token as name: sha256, e.g. node-scraper: followed by the sha256 line printed by metrics-proxy hash-token"}, nil},
		{"no sha256", "routes: [" + runner + "]\ntokens: {node-scraper: }\n", []string{"token node-scraper: sha256 is missing; give the sha256 line printed by metrics-proxy hash-token"}, nil},
		{"short sha256", "routes: [" + runner + "]\ntokens: {node-scraper: " + hashA[:63] + "}\n", []string{"token node-scraper: sha256 is not 64 hex characters (not shown); give the sha256 line printed by metrics-proxy hash-token"}, nil},
		{"long sha256", "routes: [" + runner + "]\ntokens: {node-scraper: " + hashA + "0}\n", []string{"token node-scraper: sha256 is not 64 hex characters (not shown); give the sha256 line printed by metrics-proxy hash-token"}, nil},
		{"non-hex sha256", "routes: [" + runner + "]\ntokens: {node-scraper: " + hashA[:63] + "g}\n", []string{"token node-scraper: sha256 is not 64 hex characters (not shown); give the sha256 line printed by metrics-proxy hash-token"}, nil},
		{"token instead of sha256", "routes: [" + runner + "]\ntokens: {node-scraper: mpt_s3cretS3cretS3cretS3cretS3cretS3cretS3c}\n", []string{"token node-scraper: the value (not shown) looks like the token itself, not its sha256; never put a token in this file, which holds only hashes so that a leaked copy lets nobody in; give the sha256 line printed by metrics-proxy hash-token"}, nil},
		{"example sha256", "routes: [" + runner + "]\ntokens: {node-scraper: " + ExampleTokenSHA256 + "}\n", []string{"token node-scraper: sha256 is the documented example; replace it with the sha256 line printed by metrics-proxy hash-token"}, nil},
		{"example sha256, upper case", "routes: [" + runner + "]\ntokens: {node-scraper: " + strings.ToUpper(ExampleTokenSHA256) + "}\n", []string{"token node-scraper: sha256 is the documented example; replace it with the sha256 line printed by metrics-proxy hash-token"}, nil},
		{"one sha256, two names", "routes: [" + runner + "]\ntokens: {alpha: " + hashA + ", beta: " + strings.ToUpper(hashA) + ", gamma: " + hashB + "}\n", []string{"tokens alpha and beta have the same sha256; a token must identify one name, so give each client its own token (metrics-proxy hash-token)"}, nil},
		{"token name twice", "routes: [" + runner + "]\ntokens:\n  alpha: " + hashA + "\n  alpha: " + hashB + "\n", []string{`line 4: key "alpha" is given twice; keep one`}, nil},
		{"tokens as a list", "routes: [" + runner + "]\ntokens: [" + hashA + "]\n", []string{"line 2: found a list where tokens: (a mapping of token names to sha256 values) belongs"}, nil},
		{"too many tokens", "routes: [" + runner + "]\ntokens:\n" + manyTokens(maxTokens+1), []string{"tokens: lists 1025 tokens, more than the 1024 allowed"}, nil},

		// Several mistakes at once are all reported, in file order.
		{"every mistake at once", "routes: [{name: Bad, path: /, upstream: \"https://10.0.0.1:1/\", timeout: -1s}]\n", []string{
			"route #1: name (not shown) is not [a-z0-9][a-z0-9_-]{0,31}; use at most 32 lowercase letters, digits, _ and -, starting with a letter or digit: it becomes the metric label route",
			"route #1: path / would forward every request path; give the paths this route serves, such as /metrics",
			"route #1: upstream uses https; the exporters behind the proxy speak plain http on loopback, so write http:// (or use a unix: socket)",
			"route #1: timeout is negative; give a positive duration such as 10s, or leave it out for the default",
		}, nil},
	}
}

// manyTokens is a tokens: body with n valid, distinct entries.
func manyTokens(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "  t%d: %s\n", i, hashOf(fmt.Sprint(i)))
	}
	return b.String()
}

func TestParseRefuses(t *testing.T) {
	for _, c := range parseCases() {
		t.Run(c.name, func(t *testing.T) {
			tab, problems, warnings := Parse([]byte(c.file))
			if !reflect.DeepEqual(problems, c.problems) {
				t.Errorf("problems:\n got %q\nwant %q", problems, c.problems)
			}
			if !reflect.DeepEqual(warnings, c.warnings) {
				t.Errorf("warnings:\n got %q\nwant %q", warnings, c.warnings)
			}
			if (tab != nil) != (len(c.problems) == 0) {
				t.Errorf("table %v with %d problems", tab, len(problems))
			}
			for _, m := range append(problems, warnings...) {
				if strings.Contains(m, "s3cret") || strings.Contains(m, "S3cret") || strings.Contains(m, "prom:") {
					t.Errorf("message quotes a secret: %s", m)
				}
			}
		})
	}
}

func TestParseTable(t *testing.T) {
	hashA, hashB := hashOf("token-a"), hashOf("token-b")
	file := `
routes:
  - name: runner
    path: /metrics
    upstream: http://127.0.0.1:9252/metrics
  - name: node
    path: /node/metrics
    upstream: http://LOCALHOST:09100/metrics
    timeout: 1m30s
    max_response_bytes: 1048576
  - name: v6
    path: /v6/
    upstream: http://[0:0:0:0:0:0:0:1]:9252
    allow: {client_sans: [prometheus.example.com]}
  - name: sock
    path: /sock/metrics
    upstream: unix:/run/alloy-runner/metrics.sock
  - name: sock-pprof
    path: /runner/pprof/
    upstream: unix:/run/alloy-runner/metrics.sock:/debug/pprof/
    allow:
      users: [oncall]
      tokens: [ci]
tokens:
  ci: ` + strings.ToUpper(hashA) + `
  node-scraper: ` + hashB + `
`
	tab, problems, warnings := Parse([]byte(file))
	if len(problems) > 0 || len(warnings) > 0 {
		t.Fatalf("problems %q, warnings %q", problems, warnings)
	}
	sock := "unix:/run/alloy-runner/metrics.sock"
	want := &Table{
		Routes: []Route{
			{Name: "runner", Path: "/metrics", Allow: Allow{Everyone: true},
				Upstream: Upstream{Raw: "http://127.0.0.1:9252/metrics", Network: "tcp", Address: "127.0.0.1:9252", Host: "127.0.0.1:9252", Path: "/metrics"}},
			{Name: "node", Path: "/node/metrics", Timeout: 90 * time.Second, MaxResponseBytes: 1 << 20, Allow: Allow{Everyone: true},
				Upstream: Upstream{Raw: "http://LOCALHOST:09100/metrics", Network: "tcp", Address: "127.0.0.1:9100", Host: "localhost:9100", Path: "/metrics"}},
			{Name: "v6", Path: "/v6/", Allow: Allow{ClientSANs: []string{"prometheus.example.com"}},
				Upstream: Upstream{Raw: "http://[0:0:0:0:0:0:0:1]:9252", Network: "tcp", Address: "[::1]:9252", Host: "[::1]:9252", Path: "/v6/"}},
			{Name: "sock", Path: "/sock/metrics", Allow: Allow{Everyone: true},
				Upstream: Upstream{Raw: sock, Network: "unix", Address: "/run/alloy-runner/metrics.sock", Host: "localhost", Path: "/sock/metrics"}},
			{Name: "sock-pprof", Path: "/runner/pprof/", Allow: Allow{Users: []string{"oncall"}, Tokens: []string{"ci"}},
				Upstream: Upstream{Raw: sock + ":/debug/pprof/", Network: "unix", Address: "/run/alloy-runner/metrics.sock", Host: "localhost", Path: "/debug/pprof/"}},
		},
		Tokens: map[string][sha256.Size]byte{
			"ci":           sha256.Sum256([]byte("token-a")),
			"node-scraper": sha256.Sum256([]byte("token-b")),
		},
	}
	if !reflect.DeepEqual(tab, want) {
		t.Errorf("table:\n got %+v\nwant %+v", tab, want)
	}
	if got, want := tab.Routes[3].Upstream.Key(), "unix:/run/alloy-runner/metrics.sock"; got != want {
		t.Errorf("Key() = %q, want %q", got, want)
	}
	if got, want := tab.Routes[0].Upstream.Key(), "tcp:127.0.0.1:9252"; got != want {
		t.Errorf("Key() = %q, want %q", got, want)
	}
	if tab.Routes[3].Upstream.Key() != tab.Routes[4].Upstream.Key() {
		t.Errorf("two routes to one socket have different keys")
	}
}

func TestParseReportsInFileOrder(t *testing.T) {
	file := "routes: [{name: runner, path: /, upstream: \"http://127.0.0.1:9252/\"}]\ntokens: {b: x, a: y}\n"
	_, problems, _ := Parse([]byte(file))
	want := []string{
		"route runner: path / would forward every request path; give the paths this route serves, such as /metrics",
		"token a: sha256 is not 64 hex characters (not shown); give the sha256 line printed by metrics-proxy hash-token",
		"token b: sha256 is not 64 hex characters (not shown); give the sha256 line printed by metrics-proxy hash-token",
	}
	if !reflect.DeepEqual(problems, want) {
		t.Errorf("problems:\n got %q\nwant %q", problems, want)
	}
}
