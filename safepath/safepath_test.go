package safepath

import (
	"net/url"
	"path"
	"strings"
	"testing"
)

func TestJudge(t *testing.T) {
	for _, p := range []string{"/", "/metrics", "/debug/pprof/", "/debug/pprof/heap", "/Metrics", "/a-b_c~d.e", "/debug/pprof/goroutine", "/" + strings.Repeat("a", maxPathLen-1)} {
		if err := Judge(p); err != nil {
			t.Errorf("Judge(%q) = %v, want accepted", p, err)
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
		if err := Judge(p); err != want {
			t.Errorf("Judge(%q) = %v, want %v", p, err, want)
		}
	}
}

// TestErrorsDoNotQuoteThePath keeps the errors safe to show for a path that
// came from a file an operator may have pasted a secret into.
func TestErrorsDoNotQuoteThePath(t *testing.T) {
	for _, p := range []string{"/s3cret%", "/s3cret;", "/s3cret/..", "/s3cret/./x", "/s3cret//x", "s3cret", "/s3cret" + strings.Repeat("a", maxPathLen)} {
		err := Judge(p)
		if err == nil {
			t.Fatalf("Judge(%q) accepted", p)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Judge(%q) = %q: quotes the path", p, err)
		}
	}
}

// FuzzJudge checks the promises the rest of the proxy relies on: no panic,
// and an accepted path is already canonical, so the route match and the
// upstream cannot read it differently.
func FuzzJudge(f *testing.F) {
	for _, s := range []string{
		"/", "/metrics", "/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/x/", "/proxy/metrics",
		"/metrics/", "/debug/pprof", "/a/b/c", "/...", "/.a", "/a.", "/~user", "/@:!$&'()*+,=",
		// Request targets that try to reach something other than a routed
		// path, or that an upstream might read differently than the proxy.
		"/metrics/../debug/pprof/", "/metrics/../debug/pprof/heap", "//debug/pprof/",
		"/%2e%2e/debug/pprof/", "/%2E%2E/debug/pprof/", "/.%2e/debug/pprof/", "/%252e%252e/debug/pprof/",
		"/metrics%2f..%2fdebug", "/metrics%2F..%2Fdebug", "/metrics/.", "/metrics/..", "/./metrics",
		"/metrics%00", "/metrics%2f", "/debug\\pprof\\", "/debug%5cpprof%5c", "/debug/pprof//heap",
		"/debug/pprof/..;/heap", "/metrics;jsessionid=1", "/metrics...", "/m%65trics",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if Judge(p) != nil {
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
		if len(p) > maxPathLen {
			t.Fatalf("accepted %d bytes, more than maxPathLen", len(p))
		}
	})
}
