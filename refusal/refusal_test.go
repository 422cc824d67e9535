package refusal

import (
	"net/http/httptest"
	"testing"
)

// Every kind has its status, label and status-text body, and Write sends
// them with the proxy's headers.
func TestTable(t *testing.T) {
	for _, tc := range []struct {
		k      Kind
		status int
		label  string
		body   string
	}{
		{MethodNotAllowed, 405, "method_not_allowed", "Method Not Allowed\n"},
		{BadRequest, 400, "bad_request", "Bad Request\n"},
		{Misdirected, 421, "bad_request", "Misdirected Request\n"},
		{Unauthorized, 401, "unauthorized", "Unauthorized\n"},
		{Throttled, 429, "throttled", "Too Many Requests\n"},
		{Busy, 429, "busy", "Too Many Requests\n"},
		{RateLimited, 429, "rate_limited", "Too Many Requests\n"},
		{ForbiddenPath, 404, "forbidden_path", "Not Found\n"},
		{ForbiddenRoute, 404, "forbidden_route", "Not Found\n"},
		{UpstreamBusy, 503, "upstream_busy", "Service Unavailable\n"},
		{UpstreamError, 502, "upstream_error", "Bad Gateway\n"},
		{UpstreamTimeout, 504, "upstream_timeout", "Gateway Timeout\n"},
		{ResponseTooLarge, 502, "response_too_large", "Bad Gateway\n"},
	} {
		w := httptest.NewRecorder()
		w.Header().Set("Retry-After", "1")
		Write(w, tc.k)
		if w.Code != tc.status || tc.k.Outcome() != tc.label || w.Body.String() != tc.body {
			t.Errorf("kind %d: %d %q %q, want %d %q %q", tc.k, w.Code, tc.k.Outcome(), w.Body.String(), tc.status, tc.label, tc.body)
		}
		h := w.Header()
		if h.Get("Content-Type") != "text/plain; charset=utf-8" || h.Get("X-Content-Type-Options") != "nosniff" ||
			h.Get("Cache-Control") != "no-store" || h.Get("Retry-After") != "1" {
			t.Errorf("kind %d: headers %v", tc.k, h)
		}
	}
}
