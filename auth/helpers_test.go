package auth

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/crypto/bcrypt"

	"github.com/alloyci/hardened-runner/internal/clocktest"
	"github.com/alloyci/hardened-runner/internal/logtest"
)

// syncBuffer captures log output from concurrent goroutines.
type syncBuffer = logtest.Buffer

// fakeClock is the injected clock: tests move time, never wait for it.
type fakeClock = clocktest.Clock

func newFakeClock() *fakeClock {
	return clocktest.New(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
}

// fixture is a Verifier with a fake clock, a private registry and captured logs.
type fixture struct {
	t     testing.TB
	v     *Verifier
	reg   *prometheus.Registry
	clock *fakeClock
	logs  *syncBuffer
}

// newFixture returns a fixture with the given users (name to hash) installed.
func newFixture(t testing.TB, users map[string]string, tweak ...func(*Options)) *fixture {
	t.Helper()
	f := &fixture{t: t, reg: prometheus.NewRegistry(), clock: newFakeClock(), logs: &syncBuffer{}}
	o := Options{
		Logger:     log.NewLogfmtLogger(f.logs),
		Registerer: f.reg,
		Now:        f.clock.Now,
		Workers:    2,
		// Throttled answers are held back in the proxy's use; hold_test.go
		// tests that, and the rest need no wait.
		ThrottleDelay: -1,
	}
	for _, fn := range tweak {
		fn(&o)
	}
	v, err := NewVerifier(o)
	if err != nil {
		t.Fatal(err)
	}
	f.v = v
	if users != nil {
		u, err := ParseUsers(users)
		if err != nil {
			t.Fatal(err)
		}
		v.SetUsers(u)
	}
	return f
}

// hashOf hashes password at bcrypt's minimum cost, so that tests stay fast.
func hashOf(t testing.TB, password string) string {
	return hashAt(t, password, bcrypt.MinCost)
}

func hashAt(t testing.TB, password string, cost int) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// basic sends user:password from remote, the way an attacker's tool would.
func (f *fixture) basic(remote, user, password string) Result {
	r := httptest.NewRequest(http.MethodGet, "https://proxy.example/metrics", nil)
	r.RemoteAddr = remote
	r.SetBasicAuth(user, password)
	return f.v.Authorize(r)
}

// header sends the given raw Authorization header values from remote.
func (f *fixture) header(remote string, values ...string) Result {
	r := httptest.NewRequest(http.MethodGet, "https://proxy.example/metrics", nil)
	r.RemoteAddr = remote
	for _, v := range values {
		r.Header.Add("Authorization", v)
	}
	return f.v.Authorize(r)
}

// metric returns the value of the named counter or gauge; labels are name, value
// pairs selecting one series.
func (f *fixture) metric(name string, labels ...string) float64 {
	f.t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabels(m, labels) {
				switch {
				case m.Counter != nil:
					return m.Counter.GetValue()
				case m.Gauge != nil:
					return m.Gauge.GetValue()
				}
			}
		}
	}
	f.t.Fatalf("no metric %s%v", name, labels)
	return 0
}

func hasLabels(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func (f *fixture) bcryptChecks() float64 {
	return f.metric("metrics_proxy_auth_bcrypt_checks_total")
}

func (f *fixture) attempts(outcome string) float64 {
	return f.metric("metrics_proxy_auth_attempts_total", "outcome", outcome)
}

func (f *fixture) inBackoff() float64 {
	return f.metric("metrics_proxy_auth_clients_in_backoff")
}

// response is what the client of the proxy would receive for res.
type response struct {
	code    int
	headers map[string]string
	body    string
}

func respond(res Result) response {
	rec := httptest.NewRecorder()
	res.WriteError(rec, httptest.NewRequest("GET", "/metrics", nil))
	got := response{code: rec.Code, headers: map[string]string{}, body: rec.Body.String()}
	for _, h := range []string{"WWW-Authenticate", "Retry-After", "Content-Type"} {
		if v := rec.Header().Get(h); v != "" {
			got.headers[h] = v
		}
	}
	return got
}

// want401 asserts the exact answer promised to a client with wrong credentials.
func want401(t *testing.T, res Result) {
	t.Helper()
	if res.Allowed() || res.Outcome() != OutcomeUnauthorized {
		t.Fatalf("outcome %q allowed=%v, want unauthorized", res.Outcome(), res.Allowed())
	}
	got := respond(res)
	if got.code != http.StatusUnauthorized ||
		got.headers["WWW-Authenticate"] != `Basic realm="metrics-proxy", charset="UTF-8"` ||
		got.headers["Retry-After"] != "" || got.body != "Unauthorized\n" {
		t.Fatalf("got %+v, want 401 with the Basic challenge", got)
	}
}

// want429 asserts a throttled or busy answer with the exact Retry-After.
func want429(t *testing.T, res Result, outcome, retryAfter string) {
	t.Helper()
	if res.Allowed() || res.Outcome() != outcome {
		t.Fatalf("outcome %q allowed=%v, want %s", res.Outcome(), res.Allowed(), outcome)
	}
	got := respond(res)
	if got.code != http.StatusTooManyRequests || got.headers["Retry-After"] != retryAfter ||
		got.headers["WWW-Authenticate"] != "" || got.body != "Too Many Requests\n" {
		t.Fatalf("got %+v, want 429 with Retry-After: %s", got, retryAfter)
	}
}

// wantAllowed asserts an allowed result with the given outcome.
func wantAllowed(t *testing.T, res Result, outcome string) {
	t.Helper()
	if !res.Allowed() || res.Outcome() != outcome {
		t.Fatalf("outcome %q allowed=%v, want allowed %s", res.Outcome(), res.Allowed(), outcome)
	}
	rec := httptest.NewRecorder()
	res.WriteError(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Body.Len() != 0 || len(rec.Header()) != 0 {
		t.Fatalf("WriteError on an allowed result wrote %v %q", rec.Header(), rec.Body.String())
	}
}

// mismatchUnless is a compare hook that accepts exactly one password without
// running bcrypt, for tests that need thousands of comparisons.
func mismatchUnless(right string) func(hash, password []byte) error {
	return func(_, password []byte) error {
		if string(password) == right {
			return nil
		}
		return bcrypt.ErrMismatchedHashAndPassword
	}
}
