package proxy

import (
	"context"

	"errors"
	"fmt"
	"github.com/alloyci/hardened-runner/access"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/alloyci/hardened-runner/refusal"
)

// health answers /-/healthy (the process serves) and /-/ready (the probed
// routes' upstreams answered recently: see package readiness and
// routes.Route.Probed). id is the authenticated identity, nil for a load
// balancer asking without credentials: that one gets the status of every
// route alone; an identity learns about the routes it may use (an admin
// about all of them), by name.
func (h *Handler) health(w http.ResponseWriter, r *http.Request, p string, id *access.Identity) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if p == healthyPath {
		w.WriteHeader(http.StatusOK)
		if id != nil {
			_, _ = io.WriteString(w, "metrics-proxy is healthy.\n")
		} else {
			_, _ = io.WriteString(w, http.StatusText(http.StatusOK)+"\n")
		}
		return
	}
	rt := h.router.current()
	// One check per upstream server, in the name of the routes to it this
	// client may know of: routes to one server are up or down together.
	var (
		keys    []string
		byKey   = map[string]*served{}
		visible = map[string][]string{}
	)
	all := id == nil || rt.table.IsAdmin(*id)
	for i := range rt.table.Routes {
		route := &rt.table.Routes[i]
		if !all && !route.Allow.Permits(*id) {
			continue
		}
		s := rt.served[route]
		key := s.pool.key
		if route.Probed() && byKey[key] == nil {
			byKey[key] = s
			keys = append(keys, key)
		}
		visible[key] = append(visible[key], route.Name)
	}
	failures := h.ready.Check(r.Context(), keys, func(ctx context.Context, key string) error {
		return h.probe(ctx, byKey[key])
	})
	if len(failures) == 0 {
		w.WriteHeader(http.StatusOK)
		if id != nil {
			_, _ = io.WriteString(w, "metrics-proxy is ready.\n")
		} else {
			_, _ = io.WriteString(w, http.StatusText(http.StatusOK)+"\n")
		}
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	if id == nil {
		_, _ = io.WriteString(w, http.StatusText(http.StatusServiceUnavailable)+"\n")
		return
	}
	var b strings.Builder
	b.WriteString("metrics-proxy is not ready:\n")
	for _, f := range failures {
		names := visible[f.Name]
		what := "route " + names[0]
		if len(names) > 1 {
			what = "routes " + strings.Join(names, ", ")
		}
		fmt.Fprintf(&b, "%s: %v\n", what, f.Err)
	}
	_, _ = io.WriteString(w, b.String())
}

// errStatus is a probe's answer of 5xx.
type errStatus int

func (e errStatus) Error() string {
	return fmt.Sprintf("upstream answered %d %s", int(e), http.StatusText(int(e)))
}

// probe asks route s's upstream whether it answers: a GET of its upstream
// path, within the route's timeout, outside the fair queue (the readiness
// tracker already allows at most one probe per route at a time). Any
// answer below 500 counts: the upstream serves. The body is not read.
func (h *Handler) probe(ctx context.Context, s *served) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	u := *s.base
	u.Path = s.route.Upstream.Path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Host = s.route.Upstream.Host
	req.Header.Set("User-Agent", "metrics-proxy-readiness")
	req.Header.Set("Accept", "text/plain")
	resp, err := s.pool.transport.RoundTrip(req)
	if err != nil {
		return describeFailure(err, s.timeout)
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return errStatus(resp.StatusCode)
	}
	return nil
}

// describeFailure says why the upstream did not answer without the Go
// error's request line: "connection refused", "no answer within 10s".
func describeFailure(err error, timeout time.Duration) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return fmt.Errorf("no answer within %s", timeout)
	case strings.Contains(err.Error(), "connection refused"):
		return errors.New("connection refused (is it running?)")
	case strings.Contains(err.Error(), "no such file or directory"):
		return errors.New("socket does not exist (is it running?)")
	}
	return errors.New("upstream unreachable")
}

// recordReadiness counts a forwarded request as evidence about its route's
// upstream, when the outcome is the upstream's doing: an answer below 500
// (or an oversized one) shows it serves; a 5xx, an error, or a timeout the
// client did not shorten shows it does not. Cancels, the proxy's own busy
// answer and timeouts of the client's choosing say nothing.
func (h *Handler) recordReadiness(s *served, outcome string, failure error, shortened bool) {
	route := s.pool.key
	switch outcome {
	case outcomeOK, refusal.ResponseTooLarge.Outcome():
		h.ready.Record(route, nil)
	case outcomeUpstream5xx:
		h.ready.Record(route, errors.New("upstream answered 5xx"))
	case refusal.UpstreamError.Outcome():
		if failure == nil {
			h.ready.Record(route, errors.New("the upstream's response broke off"))
			return
		}
		h.ready.Record(route, describeFailure(failure, s.timeout))
	case refusal.UpstreamTimeout.Outcome():
		if !shortened {
			h.ready.Record(route, errors.New("no answer within the route's timeout"))
		}
	}
}
