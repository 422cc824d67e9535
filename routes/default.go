package routes

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/alloyci/hardened-runner/safepath"
)

// Default is the table used without a routes file, from the legacy flags
// --upstream.url and --web.allowed-path: one route per path, Allow.Everyone,
// forwarding the path unchanged (after the upstream URL's own path prefix,
// if any). The first route is named "runner", the others "runner_" + the
// path with "/" turned into "_" and trimmed (e.g. "runner_debug_pprof").
//
// The upstream and the paths obey the routes file's rules: a loopback or
// unix-socket upstream, and no path that is "/", covers /proxy/metrics or is
// under /-/. A path listed twice is one route. Two paths that would get the
// same name (/a/b and /a_b) get "_2", "_3", ... appended, in order.
func Default(upstream string, paths []string) (*Table, error) {
	up, reason := parseUpstream(upstream)
	if reason != "" {
		return nil, errors.New("--upstream.url " + reason)
	}
	if len(paths) == 0 {
		return nil, errors.New("no --web.allowed-path given; list the paths to forward, e.g. --web.allowed-path=/metrics")
	}
	prefix := strings.TrimSuffix(up.Path, "/")
	t := &Table{Tokens: map[string][32]byte{}}
	seen := map[string]bool{}
	names := map[string]bool{}
	for i, p := range paths {
		if seen[p] {
			continue
		}
		if reason := pathReason(p); reason != "" {
			if safepath.Judge(p) != nil {
				// pathReason quotes no path it refuses; say which one by place.
				return nil, fmt.Errorf("--web.allowed-path #%d %s", i+1, reason)
			}
			return nil, fmt.Errorf("--web.allowed-path %s", reason)
		}
		seen[p] = true
		name := "runner"
		if len(t.Routes) > 0 {
			name = "runner_" + strings.Trim(strings.ReplaceAll(p, "/", "_"), "_")
		}
		for n, base := 2, name; names[name]; n++ {
			name = base + "_" + strconv.Itoa(n)
		}
		names[name] = true
		u := up
		u.Path = prefix + p
		t.Routes = append(t.Routes, Route{Name: name, Path: p, Upstream: u, Allow: Allow{Everyone: true}})
	}
	return t, nil
}
