package coordinator_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alloyci/hardened-runner/coordinator"
	"github.com/alloyci/hardened-runner/coordinator/coordinatortest"
)

// sleeps records the back-off a client asked for without waiting.
type sleeps struct {
	mu    sync.Mutex
	count int
	total time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.count++
	s.total += d
	s.mu.Unlock()
	return ctx.Err()
}

func newClient(s *sleeps) *coordinator.Client {
	return coordinator.New(coordinator.Options{Sleep: s.sleep})
}

// server127 starts h on 127.0.0.1 only.
func server127(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h) // httptest listens on loopback only
	t.Cleanup(srv.Close)
	return srv.URL + "/"
}

func TestRegisterVerifyUnregister(t *testing.T) {
	d := coordinatortest.New(t)
	c := newClient(&sleeps{})
	ctx := context.Background()

	_, err := c.Register(ctx, d.URL, coordinator.Registration{Token: "wrong", Description: "x"})
	if !errors.Is(err, coordinator.ErrForbidden) {
		t.Fatalf("register with a wrong token: err = %v, want ErrForbidden", err)
	}
	reg, err := c.Register(ctx, d.URL, coordinator.Registration{Token: coordinatortest.RegistrationToken, Description: "x", TagList: "a,b"})
	if err != nil {
		t.Fatal(err)
	}
	if reg.Token == "" || reg.ID == 0 {
		t.Fatalf("registered = %+v, want an id and a token", reg)
	}
	if strings.Contains(fmt.Sprint(reg), reg.Token) {
		t.Fatalf("Registered prints its token: %v", reg)
	}
	if err := c.Verify(ctx, d.URL, reg.Token); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if err := c.Unregister(ctx, d.URL, reg.Token); err != nil {
		t.Fatalf("unregister: %v", err)
	}
	err = c.Verify(ctx, d.URL, reg.Token)
	if !errors.Is(err, coordinator.ErrForbidden) {
		t.Fatalf("verify after unregister: err = %v, want ErrForbidden", err)
	}
	if strings.Contains(err.Error(), reg.Token) {
		t.Fatalf("error contains the token: %v", err)
	}
}

func TestRequestJob(t *testing.T) {
	d := coordinatortest.New(t)
	d.AddRunner("runner-token")
	c := newClient(&sleeps{})
	ctx := context.Background()

	job, lu, err := c.RequestJob(ctx, d.URL, "runner-token", "")
	if err != nil || job != nil || lu == "" {
		t.Fatalf("empty queue: job=%v last_update=%q err=%v, want no job and a last_update", job, lu, err)
	}
	id := d.Enqueue("runner-token", coordinator.Job{
		GitInfo:   coordinator.GitInfo{RepoURL: "https://example.invalid/a.git", Sha: "abc"},
		Variables: []coordinator.Variable{{Key: "S", Value: "v", Public: false}},
		Steps:     []coordinator.Step{{Name: "script", Script: []string{"true"}}},
		Image:     json.RawMessage(`{"name":"ruby"}`),
		Artifacts: json.RawMessage(`[null]`),
	})
	// The double checks that last_update is sent back.
	job, lu2, err := c.RequestJob(ctx, d.URL, "runner-token", lu)
	if err != nil || job == nil {
		t.Fatalf("queued job: job=%v err=%v", job, err)
	}
	if lu2 != lu {
		t.Fatalf("last_update after a 201 = %q, want the previous %q kept", lu2, lu)
	}
	if job.ID != id || job.GitInfo.Sha != "abc" || len(job.Steps) != 1 || job.Variables[0].Value != "v" {
		t.Fatalf("job decoded wrong: %+v", *job)
	}
	if got := job.Unsupported(); strings.Join(got, ",") != "image" {
		t.Fatalf("Unsupported = %v, want [image]", got)
	}

	_, _, err = c.RequestJob(ctx, d.URL, "unknown-token", "")
	if !errors.Is(err, coordinator.ErrUnauthorized) {
		t.Fatalf("unknown runner token: err = %v, want ErrUnauthorized", err)
	}
	if strings.Contains(err.Error(), "unknown-token") {
		t.Fatalf("error contains the token: %v", err)
	}
}

func TestRequestJobConflict(t *testing.T) {
	url := server127(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusConflict) })
	_, _, err := newClient(&sleeps{}).RequestJob(context.Background(), url, "t", "")
	if !errors.Is(err, coordinator.ErrConflict) {
		t.Fatalf("err = %v, want ErrConflict", err)
	}
}

func TestPatchTraceSendsRangeAndToken(t *testing.T) {
	type seen struct{ method, path, rng, token, ctype, body string }
	var got seen
	url := server127(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = seen{r.Method, r.URL.Path, r.Header.Get("Content-Range"), r.Header.Get("JOB-TOKEN"), r.Header.Get("Content-Type"), string(b)}
		w.Header().Set("Job-Status", "canceled")
		w.Header().Set("Range", "0-10")
		w.WriteHeader(http.StatusAccepted)
	})
	ans, err := newClient(&sleeps{}).PatchTrace(context.Background(), url, 42, "jt", 5, []byte("hello"), coordinator.RetryBriefly)
	if err != nil {
		t.Fatal(err)
	}
	want := seen{"PATCH", "/api/v4/jobs/42/trace", "5-9", "jt", "text/plain", "hello"}
	if got != want {
		t.Fatalf("request = %+v, want %+v", got, want)
	}
	if ans.Status != "canceled" || ans.Held != 10 {
		t.Fatalf("answer = %+v, want status canceled, held 10", ans)
	}
	if coordinator.JobRunning(ans.Status) {
		t.Fatal("JobRunning(canceled) = true")
	}
}

func TestPatchTraceRangeNotSatisfiable(t *testing.T) {
	url := server127(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Range", "0-3")
		w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
	})
	_, err := newClient(&sleeps{}).PatchTrace(context.Background(), url, 1, "jt", 7, []byte("x"), coordinator.RetryBriefly)
	var re *coordinator.RangeError
	if !errors.As(err, &re) || re.Held != 3 {
		t.Fatalf("err = %v, want RangeError holding 3", err)
	}
}

func TestJobTokenRefused(t *testing.T) {
	url := server127(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusForbidden) })
	c := newClient(&sleeps{})
	_, err := c.PatchTrace(context.Background(), url, 1, "secret-job-token", 0, []byte("x"), coordinator.RetryBriefly)
	if !errors.Is(err, coordinator.ErrForbidden) || strings.Contains(err.Error(), "secret-job-token") {
		t.Fatalf("patch: err = %v, want ErrForbidden without the token", err)
	}
	_, err = c.UpdateJob(context.Background(), url, 1, "secret-job-token", coordinator.Update{State: "running"}, coordinator.RetryBriefly)
	if !errors.Is(err, coordinator.ErrForbidden) || strings.Contains(err.Error(), "secret-job-token") {
		t.Fatalf("update: err = %v, want ErrForbidden without the token", err)
	}
}

func TestUpdateJobBody(t *testing.T) {
	var body map[string]any
	url := server127(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut || r.URL.Path != "/api/v4/jobs/9" {
			t.Errorf("got %s %s", r.Method, r.URL.Path)
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		w.Header().Set("Job-Status", "running")
	})
	trace := "all of it"
	ans, err := newClient(&sleeps{}).UpdateJob(context.Background(), url, 9, "jt",
		coordinator.Update{State: "failed", FailureReason: "script_failure", Trace: &trace}, coordinator.RetryBriefly)
	if err != nil || ans.Status != "running" {
		t.Fatalf("ans=%+v err=%v", ans, err)
	}
	want := map[string]any{"token": "jt", "state": "failed", "failure_reason": "script_failure", "trace": "all of it"}
	if fmt.Sprint(body) != fmt.Sprint(want) {
		t.Fatalf("body = %v, want %v", body, want)
	}
}

// statusServer answers every request with code and counts them.
func statusServer(t *testing.T, code int) (url string, calls *atomic.Int32) {
	t.Helper()
	calls = new(atomic.Int32)
	url = server127(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(code)
	})
	return url, calls
}

func TestRetryBrieflyIsBounded(t *testing.T) {
	url, calls := statusServer(t, http.StatusServiceUnavailable)
	s := &sleeps{}
	_, _, err := newClient(s).RequestJob(context.Background(), url, "runner-secret", "")
	var se *coordinator.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusServiceUnavailable {
		t.Fatalf("err = %v, want a 503 StatusError", err)
	}
	if calls.Load() != 3 || s.count != 2 {
		t.Fatalf("calls = %d, sleeps = %d; want 3 and 2", calls.Load(), s.count)
	}
	if strings.Contains(err.Error(), "runner-secret") {
		t.Fatalf("error contains the token: %v", err)
	}
}

func TestRetryPersistentlyOutlastsAnOutage(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	url := server127(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls <= 12 { // about five minutes of back-off
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	s := &sleeps{}
	_, err := newClient(s).UpdateJob(context.Background(), url, 1, "jt", coordinator.Update{State: "success"}, coordinator.RetryPersistently)
	if err != nil {
		t.Fatalf("err = %v after %d calls, want success", err, calls)
	}
	if calls != 13 {
		t.Fatalf("calls = %d, want 13", calls)
	}
}

func TestRetryPersistentlyGivesUpAfterTheWindow(t *testing.T) {
	url := server127(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	s := &sleeps{}
	c := coordinator.New(coordinator.Options{Sleep: s.sleep, PersistWindow: 10 * time.Minute})
	_, err := c.UpdateJob(context.Background(), url, 1, "jt", coordinator.Update{State: "success"}, coordinator.RetryPersistently)
	if err == nil || !strings.Contains(err.Error(), "gave up") {
		t.Fatalf("err = %v, want giving up", err)
	}
	// Back-off grows to 30 s (15-30 s with jitter): 10 minutes take at most
	// 5 short waits and 40 long ones.
	if s.total < 10*time.Minute || s.count > 45 {
		t.Fatalf("slept %s in %d waits, want at least 10m in at most 45", s.total, s.count)
	}
}

func TestTransportErrorsAreRetriedAndRedacted(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	s := &sleeps{}
	_, _, err = newClient(s).RequestJob(context.Background(), "http://user:url-password@"+addr+"/?private=q", "runner-secret", "")
	if err == nil {
		t.Fatal("no error from a closed port")
	}
	for _, secret := range []string{"url-password", "runner-secret", "private"} {
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("error %q contains %q", err, secret)
		}
	}
	if !strings.Contains(err.Error(), "http://"+addr+"/api/v4/jobs/request") {
		t.Fatalf("error %q does not name the endpoint", err)
	}
	if s.count != 2 {
		t.Fatalf("sleeps = %d, want 2 (3 attempts)", s.count)
	}
}

func TestCanceledContextStopsRetrying(t *testing.T) {
	url := server127(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	ctx, cancel := context.WithCancel(context.Background())
	c := coordinator.New(coordinator.Options{Sleep: func(ctx context.Context, d time.Duration) error {
		cancel()
		return ctx.Err()
	}})
	_, err := c.UpdateJob(ctx, url, 1, "jt", coordinator.Update{State: "success"}, coordinator.RetryPersistently)
	var se *coordinator.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want the last StatusError", err)
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	other := server127(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("JOB-TOKEN") != "" {
			t.Error("the job token followed a redirect")
		}
	})
	url := server127(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other+"steal", http.StatusTemporaryRedirect)
	})
	_, err := newClient(&sleeps{}).PatchTrace(context.Background(), url, 1, "jt", 0, []byte("x"), coordinator.RetryBriefly)
	var se *coordinator.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusTemporaryRedirect {
		t.Fatalf("err = %v, want a 307 StatusError", err)
	}
}

func TestJobNeverPrintsSecrets(t *testing.T) {
	j := coordinator.Job{
		ID: 7, Token: "job-token-value",
		GitInfo:   coordinator.GitInfo{RepoURL: "https://gitlab-ci-token:repo-password@example.invalid/a.git"},
		Variables: []coordinator.Variable{{Key: "A", Value: "secret-value"}, {Key: "B", Value: "public-value", Public: true}},
	}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{j, &j} {
			out := fmt.Sprintf(f, v)
			for _, s := range []string{"job-token-value", "secret-value", "repo-password"} {
				if strings.Contains(out, s) {
					t.Errorf("fmt %s of a job shows %q: %s", f, s, out)
				}
			}
		}
	}
	if got := fmt.Sprint(j.Variables); got != "[A=[MASKED] B=public-value]" {
		t.Errorf("variables print as %s", got)
	}
	secrets := strings.Join(j.Secrets(), "|")
	for _, s := range []string{"job-token-value", "secret-value", "repo-password"} {
		if !strings.Contains(secrets, s) {
			t.Errorf("Secrets() = %q misses %q", secrets, s)
		}
	}
	if strings.Contains(secrets, "public-value") {
		t.Errorf("Secrets() = %q has the public value", secrets)
	}
}

func TestUnsupported(t *testing.T) {
	for _, tc := range []struct {
		json string
		want string
	}{
		{`{"image":null,"services":[],"artifacts":[null],"cache":[null],"dependencies":[]}`, ""},
		{`{}`, ""},
		{`{"image":{"name":"ruby:3"},"services":[{"name":"pg"}],"artifacts":[{"paths":["x"]}],"cache":[{"key":"k","paths":["v"]}],"dependencies":[{"id":1,"name":"build"}]}`,
			"image,services,artifacts,cache,dependencies"},
		{`{"image":"ruby","cache":[{}]}`, "image"},
	} {
		var j coordinator.Job
		if err := json.Unmarshal([]byte(tc.json), &j); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(j.Unsupported(), ","); got != tc.want {
			t.Errorf("%s: Unsupported = %q, want %q", tc.json, got, tc.want)
		}
	}
}
