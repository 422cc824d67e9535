package proxy

import (
	"context"
	"errors"
	"github.com/alloyci/hardened-runner/refusal"
	"io"
	"net/http"
)

// errResponseTooLarge stops a response body at Options.MaxResponseBytes. It is
// returned by ModifyResponse (declared Content-Length over the limit, answered
// 502) or by the body reader (streamed past the limit, connection aborted).
var errResponseTooLarge = errors.New("upstream response exceeds the configured maximum size")

// limitedBody passes at most limit bytes of the upstream body and then fails.
//
// Failing, not truncating, is the point: io.LimitReader would end the copy with
// a clean EOF and the scraper would store a silently partial scrape. An error
// makes httputil.ReverseProxy abort the response (panic(http.ErrAbortHandler)
// after the headers are out), so the client sees a broken chunked stream or a
// reset and counts the scrape as failed.
//
// It also records how a body failure should be counted, because once the
// headers are sent the ErrorHandler is no longer called.
type limitedBody struct {
	rc        io.ReadCloser
	resp      *http.Response // whose trailers Close discards
	remaining int64
	ctx       context.Context // the outbound request's, to tell a deadline from a broken upstream
	ex        *exchange
}

// Read returns at most the bytes still allowed. When the upstream has more,
// it returns only the allowed part with errResponseTooLarge, so no byte over
// the limit is ever written to the client.
func (l *limitedBody) Read(p []byte) (int, error) {
	if l.remaining < 0 {
		return 0, errResponseTooLarge
	}
	// Ask for one byte more than allowed: seeing it is how we know the body
	// is over the limit rather than exactly at it.
	if int64(len(p)) > l.remaining+1 {
		p = p[:l.remaining+1]
	}
	n, err := l.rc.Read(p)
	if int64(n) > l.remaining {
		n = int(l.remaining)
		l.remaining = -1
		l.ex.bodyFailed(refusal.ResponseTooLarge.Outcome())
		return n, errResponseTooLarge
	}
	l.remaining -= int64(n)
	if err != nil && err != io.EOF {
		if errors.Is(l.ctx.Err(), context.DeadlineExceeded) {
			l.ex.bodyFailed(refusal.UpstreamTimeout.Outcome())
		} else {
			l.ex.bodyFailed(refusal.UpstreamError.Outcome())
		}
	}
	return n, err
}

// Close closes the upstream body and drops any trailers it carried:
// ReverseProxy reads resp.Trailer right after Close, and upstream trailers
// are response headers that did not pass the allowlist.
func (l *limitedBody) Close() error {
	err := l.rc.Close()
	l.resp.Trailer = nil
	return err
}
