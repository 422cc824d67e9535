package proxy

import (
	"net/url"
	"path"
	"strings"
	"testing"
)

func TestJudgePath(t *testing.T) {
	for _, p := range []string{"/", "/metrics", "/debug/pprof/", "/debug/pprof/heap", "/Metrics", "/a-b_c~d.e", "/debug/pprof/goroutine"} {
		if err := judgePath(p); err != nil {
			t.Errorf("judgePath(%q) = %v, want accepted", p, err)
		}
	}
	for p, want := range map[string]error{
		"":                                    errPathNotOrigin,
		"metrics":                             errPathNotOrigin,
		"*":                                   errPathNotOrigin,
		"http://x/metrics":                    errPathNotOrigin,
		"/" + strings.Repeat("a", maxPathLen): errPathTooLong,
		"/%2e%2e/debug/pprof/":                errPathEscaped,
		"/metrics%2f..%2fdebug":               errPathEscaped,
		"/metrics%00":                         errPathEscaped,
		"/debug%5cpprof":                      errPathEscaped,
		"/debug\\pprof":                       errPathChar,
		"/metrics\x00":                        errPathChar,
		"/metrics\t":                          errPathChar,
		"/métrics":                            errPathChar,
		"/metrics;x":                          errPathChar,
		"/metrics#x":                          errPathChar,
		"/metrics?x":                          errPathChar,
		"/metrics/../debug/pprof/":            errPathDotDot,
		"/..":                                 errPathDotDot,
		"/a..b":                               errPathDotDot,
		"/metrics/.":                          errPathDotSegment,
		"/./metrics":                          errPathDotSegment,
		"/.":                                  errPathDotSegment,
		"//debug/pprof/":                      errPathEmptySeg,
		"/debug//pprof/":                      errPathEmptySeg,
		"/metrics//":                          errPathEmptySeg,
	} {
		if err := judgePath(p); err != want {
			t.Errorf("judgePath(%q) = %v, want %v", p, err, want)
		}
	}
}

func TestAllowlist(t *testing.T) {
	a, err := newAllowlist([]string{"/metrics", "/debug/pprof/"})
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{
		"/metrics":           true,
		"/debug/pprof/":      true,
		"/debug/pprof/heap":  true,
		"/debug/pprof/x/y":   true,
		"/metrics/":          false,
		"/metricsx":          false,
		"/Metrics":           false,
		"/debug/pprof":       false,
		"/debug/pprofx/heap": false,
		"/proxy/metrics":     false,
		"/":                  false,
	} {
		if got := a.allows(p); got != want {
			t.Errorf("allows(%q) = %v, want %v", p, got, want)
		}
	}
}

// FuzzJudgePath checks the promises the rest of the handler relies on: no
// panic, and an accepted path is already canonical, so the allowlist check
// and the upstream cannot read it differently.
func FuzzJudgePath(f *testing.F) {
	for _, s := range append([]string{
		"/", "/metrics", "/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/x/", "/proxy/metrics",
		"/metrics/", "/debug/pprof", "/a/b/c", "/...", "/.a", "/a.", "/~user", "/@:!$&'()*+,=",
	}, pathAttackTargets...) {
		f.Add(s)
	}
	allow, err := newAllowlist([]string{"/metrics", "/debug/pprof/"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if judgePath(p) != nil {
			return
		}
		if !strings.HasPrefix(p, "/") {
			t.Fatalf("accepted %q: does not start with /", p)
		}
		if strings.Contains(p, "..") || strings.Contains(p, "//") {
			t.Fatalf("accepted %q: contains .. or //", p)
		}
		// Clean except for one trailing slash, which marks a subtree.
		clean := path.Clean(p)
		if p != "/" && strings.HasSuffix(p, "/") {
			clean += "/"
		}
		if clean != p {
			t.Fatalf("accepted %q: path.Clean gives %q", p, clean)
		}
		// Nothing to decode: the upstream sees the very bytes judged.
		if u, err := url.PathUnescape(p); err != nil || u != p {
			t.Fatalf("accepted %q: decodes to %q (%v)", p, u, err)
		}
		if strings.ContainsAny(p, "\\;#?") {
			t.Fatalf("accepted %q: contains a separator some server may honour", p)
		}
		for i := 0; i < len(p); i++ {
			if p[i] < 0x21 || p[i] > 0x7e {
				t.Fatalf("accepted %q: byte %#x", p, p[i])
			}
		}
		if allow.allows(p) && p != "/metrics" && !strings.HasPrefix(p, "/debug/pprof/") {
			t.Fatalf("allowlist lets %q through", p)
		}
	})
}
