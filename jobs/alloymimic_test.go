package jobs_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alloyci/hardened-runner/config"
	"github.com/alloyci/hardened-runner/coordinator"
	"github.com/alloyci/hardened-runner/jobs"
)

// alloyMimic answers as AlloyCI's builds_event_controller.ex does, for one
// job given as raw JSON: PATCH appends "\n" and a non-empty chunk to the
// live trace whatever Content-Range says, and answers 202 with the job's
// status and a hard-coded Range 0-100; PUT stores its trace (the only one
// kept), answers 200 without Job-Status, and a PUT running resets the start.
type alloyMimic struct {
	url string

	mu          sync.Mutex
	payload     string
	handed      bool
	status      string
	live        []byte
	patched     int
	emptyPatch  int
	stored      *string
	finalState  string
	startResets int
	finished    chan struct{}
}

func newAlloyMimic(t *testing.T, payload string) *alloyMimic {
	m := &alloyMimic{payload: payload, status: "pending", finished: make(chan struct{})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(m.serve))
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	m.url = srv.URL + "/"
	return m
}

func (m *alloyMimic) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case r.URL.Path == "/api/v4/jobs/request":
		if m.handed {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		m.handed, m.status = true, "running"
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, m.payload)
	case r.Method == http.MethodPatch:
		if r.Header.Get("JOB-TOKEN") != "alloy-job-token" {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		m.patched += len(body)
		if len(body) == 0 {
			m.emptyPatch++
		} else {
			m.live = append(append(m.live, '\n'), body...)
		}
		w.Header().Set("Job-Status", m.status)
		w.Header().Set("Range", "0-100")
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodPut:
		var u struct {
			Token string  `json:"token"`
			State string  `json:"state"`
			Trace *string `json:"trace"`
		}
		_ = json.Unmarshal(body, &u)
		switch u.State {
		case "running":
			m.startResets++
		case "success", "failed":
			if m.status == "running" {
				m.status = u.State
			}
			if m.finalState == "" {
				defer close(m.finished)
			}
			m.finalState = u.State
		default:
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		if u.Trace != nil {
			m.stored = u.Trace
		}
		w.WriteHeader(http.StatusOK)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func (m *alloyMimic) cancel() {
	m.mu.Lock()
	m.status = "cancelled"
	m.mu.Unlock()
}

// runMimic runs a loop against m with the default trace interval (3 s)
// and waits for the job's final PUT.
func runMimic(t *testing.T, m *alloyMimic, during func()) {
	t.Helper()
	loop, err := jobs.New(jobs.Options{
		Client: coordinator.New(coordinator.Options{}), CheckInterval: 50 * time.Millisecond,
	}, []config.Runner{{Name: "a", URL: m.url, Token: "rt", Executor: "shell", Shell: "bash", BuildsDir: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- loop.Run(context.Background()) }()
	defer func() { loop.Abort(); <-done }()
	if during != nil {
		during()
	}
	select {
	case <-m.finished:
	case <-time.After(60 * time.Second):
		t.Fatal("no final PUT")
	}
}

func alloyPayload(r *repo, sha string, script []string, extraVars string) string {
	s, _ := json.Marshal(script)
	return `{"id":77,"token":"alloy-job-token","allow_git_fetch":true,
 "job_info":{"name":"test","stage":"test","project_id":9,"project_name":"app"},
 "git_info":{"repo_url":"` + r.url + `","ref":"main","sha":"` + sha + `","before_sha":"","ref_type":"branch"},
 "runner_info":{"timeout":3600},
 "variables":[{"key":"CI","value":"true","public":true},{"key":"CI_JOB_TOKEN","value":"alloy-job-token","public":false},
  {"key":"CI_COMMIT_PUSHER","value":null,"public":true},{"key":"GIT_DEPTH","value":3,"public":true}` + extraVars + `],
 "steps":[{"name":"script","script":` + string(s) + `,"timeout":3600,"when":"on_success","allow_failure":false}],
 "image":{"name":null},"services":[],"artifacts":[null],"cache":[null],"dependencies":[]}`
}

// Against AlloyCI's trace endpoint: the runner counts what it sent itself
// (the Range 0-100 does not make it resend), keeps the job alive with empty
// PATCHes, never PUTs running, and the final PUT carries the whole masked
// trace, the only one AlloyCI stores.
func TestAlloyCITraceOfAJobPrintingFor10s(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 10 s job")
	}
	r := newRepo(t)
	sha := r.commit("file.txt", "x")
	m := newAlloyMimic(t, alloyPayload(r, sha, []string{
		`for i in $(seq 1 50); do echo "line $i of output with the secret $SECRET"; sleep 0.2; done`,
		`sleep 7`,
		`echo depth=$GIT_DEPTH ratio=$RATIO flag=$FLAG pusher=[$CI_COMMIT_PUSHER]`,
	}, `,{"key":"SECRET","value":"mimic-s3cret","public":false},{"key":"RATIO","value":1.5,"public":true},{"key":"FLAG","value":true,"public":true}`))
	runMimic(t, m, nil)

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.finalState != "success" || m.stored == nil {
		t.Fatalf("final %q, stored trace %v", m.finalState, m.stored != nil)
	}
	stored := *m.stored
	for _, want := range []string{"Running with alloy-runner", "line 1 of output", "line 50 of output with the secret [MASKED]\n",
		"depth=3 ratio=1.5 flag=true pusher=[]\n", "Job succeeded\n"} {
		if !strings.Contains(stored, want) {
			t.Errorf("stored trace lacks %q:\n%s", want, stored)
		}
	}
	if strings.Contains(stored, "mimic-s3cret") || strings.Contains(string(m.live), "mimic-s3cret") || strings.Contains(stored, "alloy-job-token") {
		t.Error("a secret reached the trace")
	}
	if limit := len(stored) * 11 / 10; m.patched > limit {
		t.Errorf("patched %d bytes for a trace of %d: more than 10%% resent", m.patched, len(stored))
	}
	if m.emptyPatch == 0 {
		t.Error("no empty PATCH kept the job alive during the 7 s without output")
	}
	if m.startResets != 0 {
		t.Errorf("%d PUT running: each resets the job's start on AlloyCI", m.startResets)
	}
}

// A cancel on AlloyCI ("cancelled", two l's) is seen in the keep-alive's
// Job-Status and stops the job within 5 s; the final PUT still carries the
// whole trace.
func TestAlloyCICancelStopsTheJobWithin5s(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the trace interval")
	}
	r := newRepo(t)
	sha := r.commit("file.txt", "x")
	m := newAlloyMimic(t, alloyPayload(r, sha, []string{"echo started", "sleep 300"}, ""))
	var canceled time.Time
	runMimic(t, m, func() {
		deadline := time.Now().Add(30 * time.Second)
		for {
			m.mu.Lock()
			started := strings.Contains(string(m.live), "started")
			m.mu.Unlock()
			if started || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		m.cancel()
		canceled = time.Now()
	})
	if took := time.Since(canceled); took > 5*time.Second {
		t.Errorf("the job ended %s after the cancel, want within 5 s", took)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stored == nil || !strings.Contains(*m.stored, "started\n") || !strings.Contains(*m.stored, "ERROR: Job failed: canceled\n") {
		t.Errorf("stored trace of the canceled job: %v", m.stored)
	}
}

// A payload AlloyCI could send but the runner cannot use (here a variable
// whose value is a map) is reported failed with the reason stored.
func TestAlloyCIUnusablePayloadIsReported(t *testing.T) {
	r := newRepo(t)
	sha := r.commit("file.txt", "x")
	m := newAlloyMimic(t, alloyPayload(r, sha, []string{"echo must-not-run"}, `,{"key":"MAP","value":{"a":1},"public":true}`))
	runMimic(t, m, nil)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.finalState != "failed" || m.stored == nil || !strings.Contains(*m.stored, `variable "MAP": the value is an object`) {
		t.Fatalf("final %q, stored %v", m.finalState, m.stored)
	}
}
