package auth

import (
	"net/http"
	"strconv"

	"github.com/alloyci/hardened-runner/refusal"
)

// Outcomes of Authorize, as returned by Result.Outcome and used as the outcome
// label of metrics_proxy_auth_attempts_total.
const (
	// OutcomeOKCached: the credential had been verified before and was accepted
	// from memory, without bcrypt.
	OutcomeOKCached = "ok_cached"
	// OutcomeOK: bcrypt accepted the credential, or a bearer token matched a
	// configured one (tokens are checked without bcrypt or cache, so they are
	// never ok_cached).
	OutcomeOK = "ok"
	// OutcomeUnauthorized: no, malformed or wrong credentials (401).
	OutcomeUnauthorized = "unauthorized"
	// OutcomeThrottled: the client address is in failed-auth back-off and the
	// credential is not known to be good (429 with the seconds left in Retry-After).
	OutcomeThrottled = "throttled"
	// OutcomeBusy: every bcrypt worker was busy, so the request was refused at once
	// rather than queued behind a flood (429, Retry-After: 1).
	OutcomeBusy = "busy"
	// OutcomeNotRequired: neither basic-auth users nor bearer tokens are
	// configured, so the request is allowed and authentication rests on verified
	// client certificates. Not counted in metrics_proxy_auth_attempts_total.
	OutcomeNotRequired = "not_required"
)

// Result is the verdict of Verifier.Authorize. The zero Result is not meaningful;
// use only Results that Authorize returns.
type Result struct {
	outcome    string
	user       string
	token      string // the verified token's name
	retryAfter int    // seconds, for throttled and busy
	realm      string
	hold       *holder // holds a throttled answer back; nil for others
	// basic and bearer say which challenges a 401 sends: those the
	// configuration can accept.
	basic, bearer bool
}

// Allowed reports whether the request may proceed.
func (r Result) Allowed() bool {
	switch r.outcome {
	case OutcomeOKCached, OutcomeOK, OutcomeNotRequired:
		return true
	}
	return false
}

// Outcome returns one of the Outcome* constants, suitable as a metric label (it
// never contains a user name or address).
func (r Result) Outcome() string { return r.outcome }

// User returns the authenticated user name when the request was allowed by basic
// auth, and "" otherwise. A rejected user name is attacker-controlled text and is
// deliberately not exposed.
func (r Result) User() string { return r.user }

// Token returns the configured name of the bearer token that authenticated the
// request, and "" otherwise (never the token itself).
func (r Result) Token() string { return r.token }

// RetryAfter returns the Retry-After value, in seconds, that WriteError sends for a
// throttled or busy result, and 0 for other results.
func (r Result) RetryAfter() int { return r.retryAfter }

// WriteError writes the standard response for a denied request: 401 for
// OutcomeUnauthorized with WWW-Authenticate: Basic realm="<realm>",
// charset="UTF-8" when users are configured and WWW-Authenticate: Bearer
// realm="<realm>" when tokens are (both headers when both are), 429 with
// Retry-After for OutcomeThrottled and OutcomeBusy, each with the fixed body of
// package refusal: why a request failed is for the operator's logs, not for
// the client. A throttled answer is first held back for
// Options.ThrottleDelay (or until req's context ends). On an allowed result it
// writes nothing; the caller serves the request instead.
func (r Result) WriteError(w http.ResponseWriter, req *http.Request) {
	switch r.outcome {
	case OutcomeUnauthorized:
		if r.basic {
			w.Header().Add("WWW-Authenticate", `Basic realm="`+r.realm+`", charset="UTF-8"`)
		}
		if r.bearer {
			w.Header().Add("WWW-Authenticate", `Bearer realm="`+r.realm+`"`)
		}
		refusal.Write(w, refusal.Unauthorized)
	case OutcomeThrottled:
		r.hold.hold(req.Context())
		w.Header().Set("Retry-After", strconv.Itoa(r.retryAfter))
		refusal.Write(w, refusal.Throttled)
	case OutcomeBusy:
		w.Header().Set("Retry-After", strconv.Itoa(r.retryAfter))
		refusal.Write(w, refusal.Busy)
	}
}
