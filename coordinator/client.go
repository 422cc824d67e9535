// Package coordinator is the runner's client for the AlloyCI coordinator API
// (GitLab runner API v4, as docs/DESIGN.md summarises it):
// registering runners, requesting jobs, reporting their trace and state, and
// moving their artifacts.
//
// Every call retries transport errors and 5xx answers with exponential
// back-off, except the registration, which is not idempotent: it is retried
// only when the request cannot have reached the coordinator (see call.once). Errors name the call and what the coordinator answered, and never
// contain a token: tokens travel only in request bodies and headers, and URLs
// are shown without user information or query.
package coordinator

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/version"
)

// Errors a call can match with errors.Is.
var (
	// ErrForbidden: the coordinator refused the token (403). For a job call it
	// means the job token is no longer valid and the job must stop.
	ErrForbidden = errors.New("token refused by the coordinator (403)")
	// ErrUnauthorized: the runner token is not known (401 on a job request).
	ErrUnauthorized = errors.New("runner token not known to the coordinator (401)")
	// ErrConflict: the coordinator asks to try again later (409).
	ErrConflict = errors.New("conflict, try again later (409)")
)

// StatusError is an answer the call did not expect.
type StatusError struct {
	Method string
	URL    string // without user information or query
	Code   int
}

func (e *StatusError) Error() string {
	hint := ""
	switch {
	case e.Code >= 300 && e.Code < 400:
		hint = ": redirects are not followed; check the runner's url (scheme, host and path)"
	case e.Code == http.StatusNotFound:
		hint = ": check that the runner's url points at the coordinator"
	}
	return fmt.Sprintf("%s %s: coordinator answered %d %s%s", e.Method, e.URL, e.Code, http.StatusText(e.Code), hint)
}

// Is lets errors.Is match the sentinel errors by status code.
func (e *StatusError) Is(target error) bool {
	switch target {
	case ErrForbidden:
		return e.Code == http.StatusForbidden
	case ErrUnauthorized:
		return e.Code == http.StatusUnauthorized
	case ErrConflict:
		return e.Code == http.StatusConflict
	}
	return false
}

// Retry says how hard a call tries when the coordinator cannot be reached or
// answers 5xx.
type Retry int

const (
	// RetryBriefly makes Options.Attempts attempts: for calls the caller
	// repeats anyway (polling, trace while the job runs).
	RetryBriefly Retry = iota
	// RetryPersistently keeps trying until Options.PersistWindow of back-off
	// has passed: for a finished job's trace and state, which must survive a
	// short outage of the coordinator.
	RetryPersistently
)

// Info describes the runner to the coordinator on every job request.
type Info struct {
	Name         string          `json:"name"`
	Version      string          `json:"version"`
	Revision     string          `json:"revision"`
	Platform     string          `json:"platform"`
	Architecture string          `json:"architecture"`
	Executor     string          `json:"executor"`
	Shell        string          `json:"shell"`
	Features     map[string]bool `json:"features"`
}

// DefaultInfo is this build's Info: version and revision from the
// -ldflags of the Makefile, the shell executor with bash.
func DefaultInfo() Info {
	v := version.Version
	if v == "" {
		v = "0.0.0-dev" // a build without the Makefile's -ldflags
	}
	return Info{
		Name:         "alloy-runner",
		Version:      v,
		Revision:     version.GetRevision(),
		Platform:     runtime.GOOS,
		Architecture: runtime.GOARCH,
		Executor:     "shell",
		Shell:        "bash",
		Features: map[string]bool{
			"variables":         true,
			"masking":           true,
			"multi_build_steps": true,
			"cancelable":        true,
			"trace_reset":       true,
		},
	}
}

// Options configures a Client. Zero values take the defaults.
type Options struct {
	// HTTPClient makes the requests. Default: NewHTTPClient().
	HTTPClient *http.Client
	// Info is sent with every job request. Default: DefaultInfo().
	Info *Info
	// Attempts is how many times a RetryBriefly call is tried. Default 3.
	Attempts int
	// PersistWindow is the total back-off a RetryPersistently call waits
	// before it gives up. Default 10 minutes.
	PersistWindow time.Duration
	// MinBackoff and MaxBackoff bound the wait between two attempts, which
	// doubles from MinBackoff. Defaults 1 s and 30 s.
	MinBackoff, MaxBackoff time.Duration
	// Sleep waits d or until ctx is done. Tests inject one that does not
	// wait. Default: a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// MaxArtifactsUpload bounds the body of an artifacts upload, archive
	// and form together: UploadArtifacts stops instead of sending more.
	// Default DefaultMaxArtifactsUpload, AlloyCI's limit.
	MaxArtifactsUpload int64
}

// Client talks to coordinators. One Client serves every runner entry: the
// coordinator's URL is an argument of each call. It is safe for concurrent use.
type Client struct {
	http *http.Client
	// transfer is http without its overall time bound, for artifacts: a
	// 100 MB archive over a slow link takes longer than any API call may,
	// and the job's own deadline (the caller's context) bounds it instead.
	transfer      *http.Client
	info          Info
	attempts      int
	persistWindow time.Duration
	minBackoff    time.Duration
	maxBackoff    time.Duration
	sleep         func(ctx context.Context, d time.Duration) error
	userAgent     string
	maxUpload     int64
}

// New returns a Client with opts.
func New(opts Options) *Client {
	c := &Client{
		http:          opts.HTTPClient,
		attempts:      opts.Attempts,
		persistWindow: opts.PersistWindow,
		minBackoff:    opts.MinBackoff,
		maxBackoff:    opts.MaxBackoff,
		sleep:         opts.Sleep,
		maxUpload:     opts.MaxArtifactsUpload,
	}
	if c.maxUpload <= 0 {
		c.maxUpload = DefaultMaxArtifactsUpload
	}
	if c.http == nil {
		c.http = NewHTTPClient()
	}
	transfer := *c.http
	transfer.Timeout = 0
	c.transfer = &transfer
	if opts.Info != nil {
		c.info = *opts.Info
	} else {
		c.info = DefaultInfo()
	}
	if c.attempts <= 0 {
		c.attempts = 3
	}
	if c.persistWindow <= 0 {
		c.persistWindow = 10 * time.Minute
	}
	if c.minBackoff <= 0 {
		c.minBackoff = time.Second
	}
	if c.maxBackoff < c.minBackoff {
		c.maxBackoff = max(30*time.Second, c.minBackoff)
	}
	if c.sleep == nil {
		c.sleep = sleepCtx
	}
	c.userAgent = fmt.Sprintf("%s %s (%s; %s/%s)", c.info.Name, c.info.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return c
}

// NewHTTPClient returns the client New uses by default: bounded connect, TLS
// and overall times (a job request may be held by the coordinator for long
// polling, hence the generous overall bound), TLS 1.2 or later, the
// environment's proxy, and no redirects, because a redirect would carry the
// JOB-TOKEN header to wherever it points.
func NewHTTPClient() *http.Client {
	return &http.Client{
		Timeout: 2 * time.Minute,
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 90 * time.Second,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   4,
			ForceAttemptHTTP2:     true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// call is one API request, built again for every attempt.
type call struct {
	method string
	base   string // the runner's url from config.toml
	path   string // below base, e.g. "api/v4/jobs/request"
	body   []byte
	// open, when set instead of body, makes a fresh body for each attempt,
	// streamed (its length unknown, so sent chunked). A failure of its own
	// (see localError) is not retried.
	open    func() (io.ReadCloser, error)
	ctype   string
	headers map[string]string
	retry   Retry
	// once: the call is not idempotent (a registration creates a runner
	// each time it is stored), so it is retried only after an error that
	// happened before any byte of it was sent: a failed dial. An answer, or
	// an error once a connection was had, is final and matches
	// errMayHaveArrived.
	once bool
	// transfer: an artifacts upload or download, bounded by the caller's
	// context rather than the client's overall timeout.
	transfer bool
}

// errMayHaveArrived marks the failure of a call.once call that may have
// reached the coordinator, and may have been acted on there.
var errMayHaveArrived = errors.New("not retried: the request may have reached the coordinator")

// redactURL shows u without user information, query or fragment, so an error
// never carries credentials someone put in the runner's url.
func redactURL(u *url.URL) string {
	r := *u
	r.User = nil
	r.RawQuery = ""
	r.ForceQuery = false
	r.Fragment = ""
	r.RawFragment = ""
	return r.String()
}

// endpoint joins the runner's url and an API path.
func endpoint(base, path string) (*url.URL, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		// The url may hold credentials: do not repeat it.
		return nil, errors.New("the runner's url is not an http(s) URL of the coordinator, e.g. https://alloy.example.com/")
	}
	u.RawQuery, u.Fragment = "", ""
	return u.JoinPath(path), nil
}

// do runs c with retries and returns the final answer, whose body the caller
// must close. 5xx answers and transport errors are retried; other answers are
// returned as they are.
func (cl *Client) do(ctx context.Context, c call) (*http.Response, error) {
	u, err := endpoint(c.base, c.path)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", c.method, c.path, err)
	}
	shown := redactURL(u)
	r := cl.retrier(c.retry)
	for {
		resp, connected, err := cl.once(ctx, c, u)
		var lastErr error
		var local *localError
		switch {
		case errors.As(err, &local):
			// The request body failed here, not on the way: final.
			return nil, fmt.Errorf("%s %s: %w", c.method, shown, local.err)
		case err != nil:
			lastErr = fmt.Errorf("%s %s: %w", c.method, shown, transportError(err))
			if c.once && (connected || !beforeSending(err)) {
				return nil, fmt.Errorf("%w (%w)", lastErr, errMayHaveArrived)
			}
		case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
			drain(resp)
			lastErr = &StatusError{Method: c.method, URL: shown, Code: resp.StatusCode}
			if c.once {
				return nil, fmt.Errorf("%w (%w)", lastErr, errMayHaveArrived)
			}
		default:
			return resp, nil
		}
		if err := r.next(ctx, lastErr); err != nil {
			return nil, err
		}
	}
}

// retrier counts the attempts of one call and waits between them.
type retrier struct {
	cl       *Client
	retry    Retry
	attempts int
	backoff  time.Duration
	slept    time.Duration
}

func (cl *Client) retrier(retry Retry) *retrier {
	return &retrier{cl: cl, retry: retry, backoff: cl.minBackoff}
}

// next is called after a failed attempt, whose error is lastErr. It waits
// and returns nil when the call should be tried again, or returns the error
// to give up with: lastErr itself once ctx is done, or lastErr saying how
// often it was tried.
func (r *retrier) next(ctx context.Context, lastErr error) error {
	r.attempts++
	if ctx.Err() != nil {
		return lastErr
	}
	switch r.retry {
	case RetryPersistently:
		if r.slept >= r.cl.persistWindow {
			return fmt.Errorf("%w (gave up after %d attempts over %s of back-off)", lastErr, r.attempts, r.slept)
		}
	default:
		if r.attempts >= r.cl.attempts {
			return fmt.Errorf("%w (gave up after %d attempts)", lastErr, r.attempts)
		}
	}
	// Jitter spreads the retries of many runners after an outage.
	d := r.backoff/2 + rand.N(r.backoff/2+1)
	if err := r.cl.sleep(ctx, d); err != nil {
		return lastErr
	}
	r.slept += d
	r.backoff = min(2*r.backoff, r.cl.maxBackoff)
	return nil
}

// localError is a request body that failed on this side (the file could not
// be read, or grew past a limit): trying again would not help.
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

// once makes one attempt. connected reports whether the transport got a
// connection for it, after which some of the request may have been sent.
func (cl *Client) once(ctx context.Context, c call, u *url.URL) (resp *http.Response, connected bool, err error) {
	var body io.Reader
	var stream io.ReadCloser
	switch {
	case c.open != nil:
		var err error
		if stream, err = c.open(); err != nil {
			return nil, false, &localError{err}
		}
		body = stream
	case c.body != nil:
		body = bytes.NewReader(c.body)
	}
	var got atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { got.Store(true) },
	})
	req, err := http.NewRequestWithContext(ctx, c.method, u.String(), body)
	if err != nil {
		if stream != nil {
			_ = stream.Close()
		}
		return nil, false, err
	}
	if c.body != nil || c.open != nil {
		req.Header.Set("Content-Type", c.ctype)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", cl.userAgent)
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	hc := cl.http
	if c.transfer {
		hc = cl.transfer
	}
	resp, err = hc.Do(req)
	if stream != nil {
		// The transport closes the body too; closing it here as well makes
		// sure whatever feeds it has stopped before the next attempt.
		_ = stream.Close()
		if f, ok := stream.(interface{ failure() error }); ok && f.failure() != nil {
			if resp != nil {
				drain(resp)
			}
			return nil, got.Load(), &localError{f.failure()}
		}
	}
	return resp, got.Load(), err
}

// beforeSending reports whether err certainly happened before any byte of
// the request was sent: the name lookup or the dial (to the coordinator or
// to the proxy) failed. Any other error may have come after.
func beforeSending(err error) bool {
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && (op.Op == "dial" || op.Op == "proxyconnect")
}

// transportError unwraps *url.Error, whose text repeats the full URL, so the
// caller can prefix the redacted one.
func transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// drain reads a little of an unwanted body so the connection can be reused,
// and closes it.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}

func jsonCall(method, base, path string, v any, retry Retry) (call, error) {
	b, err := encodeJSON(v)
	if err != nil {
		return call{}, fmt.Errorf("%s %s: encoding the request: %w", method, path, err)
	}
	return call{method: method, base: base, path: path, body: b, ctype: "application/json", retry: retry}, nil
}

// encodeJSON is json.Marshal without HTML escaping: json.Marshal writes every
// <, > and & of a trace as a 6-byte \u escape, which can push the final PUT
// over the coordinator's request size limit. Nothing reads these bodies as
// HTML. The encoder's trailing newline is dropped.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// readAll reads a body of at most limit bytes and closes it.
func readAll(resp *http.Response, limit int64) ([]byte, error) {
	defer drain(resp)
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading the answer: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("the answer is larger than %d bytes", limit)
	}
	return b, nil
}

// decode reads a JSON body of at most limit bytes into v and closes it.
func decode(resp *http.Response, limit int64, v any) error {
	b, err := readAll(resp, limit)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decoding the answer: %w", err)
	}
	return nil
}

func unexpected(method string, resp *http.Response) error {
	drain(resp)
	return &StatusError{Method: method, URL: redactURL(resp.Request.URL), Code: resp.StatusCode}
}
