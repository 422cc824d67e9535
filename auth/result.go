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
	// OutcomeOK: bcrypt accepted the credential.
	OutcomeOK = "ok"
	// OutcomeUnauthorized: no, malformed or wrong credentials (401).
	OutcomeUnauthorized = "unauthorized"
	// OutcomeThrottled: the client address is in failed-auth back-off and the
	// credential is not known to be good (429 with the seconds left in Retry-After).
	OutcomeThrottled = "throttled"
	// OutcomeBusy: every bcrypt worker was busy, so the request was refused at once
	// rather than queued behind a flood (429, Retry-After: 1).
	OutcomeBusy = "busy"
	// OutcomeNotRequired: no basic-auth users are configured, so the request is
	// allowed and authentication rests on verified client certificates. Not counted
	// in metrics_proxy_auth_attempts_total.
	OutcomeNotRequired = "not_required"
)

// Result is the verdict of Verifier.Authorize. The zero Result is not meaningful;
// use only Results that Authorize returns.
type Result struct {
	outcome    string
	user       string
	retryAfter int // seconds, for throttled and busy
	realm      string
	hold       *holder // holds a throttled answer back; nil for others
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

// RetryAfter returns the Retry-After value, in seconds, that WriteError sends for a
// throttled or busy result, and 0 for other results.
func (r Result) RetryAfter() int { return r.retryAfter }

// WriteError writes the standard response for a denied request: 401 with
// WWW-Authenticate: Basic realm="<realm>", charset="UTF-8" for OutcomeUnauthorized,
// 429 with Retry-After for OutcomeThrottled and OutcomeBusy, each with the fixed
// body of package refusal: why a request failed is for the operator's logs, not
// for the client. A throttled answer is first held back for
// Options.ThrottleDelay (or until req's context ends). On an allowed result it
// writes nothing; the caller serves the request instead.
func (r Result) WriteError(w http.ResponseWriter, req *http.Request) {
	switch r.outcome {
	case OutcomeUnauthorized:
		w.Header().Set("WWW-Authenticate", `Basic realm="`+r.realm+`", charset="UTF-8"`)
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
