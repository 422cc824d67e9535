// Package refusal is the one table of the answers metrics-proxy writes itself
// instead of the upstream's: for each kind of refusal, its status, its body
// and the outcome label it is counted under. Authentication (package auth)
// and the proxy's own checks (package proxy) both write through it, so every
// refusal looks alike: a plain-text body that is the status text and nothing
// else (why a request failed is for the operator's log, never the client),
// and the proxy's own headers.
package refusal

import (
	"io"
	"net/http"
)

// Kind is one kind of refusal.
type Kind int

// The kinds, in the order the proxy judges a request.
const (
	MethodNotAllowed Kind = iota + 1
	BadRequest
	Misdirected
	Unauthorized
	Throttled
	Busy
	RateLimited
	ForbiddenPath
	ForbiddenRoute
	UpstreamBusy
	UpstreamError
	UpstreamTimeout
	ResponseTooLarge
)

// entry is one row of the table.
type entry struct {
	status int
	label  string
}

// row returns the table's row for k. A switch rather than a map: the table
// is code, not state.
func row(k Kind) entry {
	switch k {
	case MethodNotAllowed:
		return entry{http.StatusMethodNotAllowed, "method_not_allowed"}
	case BadRequest:
		return entry{http.StatusBadRequest, "bad_request"}
	case Misdirected:
		// Counted with the other malformed requests: a Host that is not
		// loopback while nothing authenticates is a request for elsewhere.
		return entry{http.StatusMisdirectedRequest, "bad_request"}
	case Unauthorized:
		return entry{http.StatusUnauthorized, "unauthorized"}
	case Throttled:
		return entry{http.StatusTooManyRequests, "throttled"}
	case Busy:
		return entry{http.StatusTooManyRequests, "busy"}
	case RateLimited:
		return entry{http.StatusTooManyRequests, "rate_limited"}
	case ForbiddenPath:
		return entry{http.StatusNotFound, "forbidden_path"}
	case ForbiddenRoute:
		// The same answer as a path no route serves: an authenticated client
		// must not learn which routes exist for others.
		return entry{http.StatusNotFound, "forbidden_route"}
	case UpstreamBusy:
		return entry{http.StatusServiceUnavailable, "upstream_busy"}
	case UpstreamError:
		return entry{http.StatusBadGateway, "upstream_error"}
	case UpstreamTimeout:
		return entry{http.StatusGatewayTimeout, "upstream_timeout"}
	case ResponseTooLarge:
		return entry{http.StatusBadGateway, "response_too_large"}
	}
	return entry{http.StatusInternalServerError, "unauthorized"}
}

// Status is the HTTP status of k.
func (k Kind) Status() int { return row(k).status }

// Outcome is the metrics_proxy_requests_total outcome label k is counted
// under.
func (k Kind) Outcome() string { return row(k).label }

// Body is the fixed body of k: its status text and a newline.
func (k Kind) Body() string { return http.StatusText(k.Status()) + "\n" }

// Write answers with k: the proxy's own headers, any headers the caller set
// before (Allow, WWW-Authenticate, Retry-After), and the fixed body.
func Write(w http.ResponseWriter, k Kind) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(k.Status())
	_, _ = io.WriteString(w, k.Body())
}
