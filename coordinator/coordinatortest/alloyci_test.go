package coordinatortest

import (
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

type answer struct {
	code   int
	header http.Header
	body   string
}

// call sends one request with plain net/http. A nil header means JSON.
func call(t *testing.T, method, url string, header map[string]string, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if header == nil {
		header = map[string]string{"Content-Type": "application/json"}
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func jsonBody(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var goodInfo = map[string]any{"name": "alloy-runner", "version": "1.0", "revision": "abc",
	"platform": "linux", "architecture": "amd64", "executor": "shell", "shell": "bash"}

// wantViolations takes the double's violations and checks there is one per
// substring, in order.
func wantViolations(t *testing.T, s *Server, subs ...string) {
	t.Helper()
	got := s.TakeViolations()
	if len(got) != len(subs) {
		t.Fatalf("violations %q, want %d like %q", got, len(subs), subs)
	}
	for i, sub := range subs {
		if !strings.Contains(got[i], sub) {
			t.Errorf("violation %d is %q, want it to say %q", i, got[i], sub)
		}
	}
}

func register(t *testing.T, s *Server, extra map[string]any) answer {
	t.Helper()
	body := map[string]any{"token": RegistrationToken, "description": "host", "info": goodInfo}
	for k, v := range extra {
		if v == Omit {
			delete(body, k)
			continue
		}
		body[k] = v
	}
	return call(t, http.MethodPost, s.URL+"api/v4/runners", nil, jsonBody(t, body))
}

func TestAlloyCIRegister(t *testing.T) {
	s := NewFlavor(t, AlloyCI)
	if s.Flavor() != AlloyCI || !reflect.DeepEqual(Flavors(), []Flavor{Strict, AlloyCI}) {
		t.Fatalf("Flavor %q, Flavors %q", s.Flavor(), Flavors())
	}

	// info is required: Runners.create/1 does not match, 500.
	if a := register(t, s, map[string]any{"info": Omit}); a.code != http.StatusInternalServerError {
		t.Errorf("without info: %d, want 500", a.code)
	}
	wantViolations(t, s, "without token or info")
	// info: null matches, but the runner has no name: 403.
	for name, extra := range map[string]map[string]any{
		"info null":          {"info": nil},
		"no info.name":       {"info": map[string]any{"version": "1"}},
		"no description":     {"description": Omit},
		"empty description":  {"description": ""},
		"blank description":  {"description": "  "},
		"wrong token":        {"token": "nope"},
		"description number": {"description": 5},
	} {
		if a := register(t, s, extra); a.code != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", name, a.code)
		}
	}
	wantViolations(t, s)
	// Not JSON: Plug.Parsers leaves no params, so create/1 does not match.
	if a := call(t, http.MethodPost, s.URL+"api/v4/runners", map[string]string{"Content-Type": "text/plain"},
		jsonBody(t, map[string]any{"token": RegistrationToken, "description": "d", "info": goodInfo})); a.code != http.StatusInternalServerError {
		t.Errorf("as text/plain: %d, want 500", a.code)
	}
	wantViolations(t, s, "without token or info")
	// Malformed JSON: Plug.Parsers answers 400 before the controller.
	if a := call(t, http.MethodPost, s.URL+"api/v4/runners", nil, `{"token":`); a.code != http.StatusBadRequest {
		t.Errorf("malformed JSON: %d, want 400", a.code)
	}
	wantViolations(t, s, "parser refuses")

	a := register(t, s, map[string]any{"run_untagged": false, "locked": true, "tag_list": "a,b"})
	var reg struct {
		ID    int64  `json:"id"`
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(a.body), &reg); a.code != http.StatusCreated || err != nil || reg.ID == 0 || reg.Token == "" {
		t.Fatalf("register: %d %q (%v), want 201 {id, token}", a.code, a.body, err)
	}
	regs := s.Registrations()
	if len(regs) != 11 {
		t.Fatalf("%d registrations, want 11", len(regs))
	}
	if r := regs[0]; r.Status != 500 || r.Info != nil || r.Token != RegistrationToken || r.RunUntagged != nil || r.Locked != nil {
		t.Errorf("first registration %+v, want status 500, no info, nil run_untagged and locked", r)
	}
	if regs[9].Status != http.StatusBadRequest {
		t.Errorf("malformed registration recorded as %+v", regs[9])
	}
	last := regs[10]
	if last.Status != 201 || last.RunUntagged == nil || *last.RunUntagged || last.Locked == nil || !*last.Locked ||
		!last.StoredRunUntagged || last.TagList != "a,b" || last.Description != "host" ||
		last.Info["name"] != "alloy-runner" || last.RunnerToken != reg.Token || last.ID != reg.ID {
		t.Errorf("registration %+v: want 201, run_untagged false sent and stored true (|| true), the info and token", last)
	}
	// verify 200/403, DELETE 204/403.
	tok := jsonBody(t, map[string]any{"token": reg.Token})
	if a := call(t, http.MethodPost, s.URL+"api/v4/runners/verify", nil, tok); a.code != http.StatusOK {
		t.Errorf("verify: %d, want 200", a.code)
	}
	if a := call(t, http.MethodDelete, s.URL+"api/v4/runners", nil, tok); a.code != http.StatusNoContent {
		t.Errorf("delete: %d, want 204", a.code)
	}
	if a := call(t, http.MethodPost, s.URL+"api/v4/runners/verify", nil, tok); a.code != http.StatusForbidden {
		t.Errorf("verify after delete: %d, want 403", a.code)
	}
	if a := call(t, http.MethodDelete, s.URL+"api/v4/runners", nil, tok); a.code != http.StatusForbidden {
		t.Errorf("delete again: %d, want 403", a.code)
	}
	// A missing token: Repo.get_by(token: nil) raises; delete/4 does not match.
	if a := call(t, http.MethodPost, s.URL+"api/v4/runners/verify", nil, `{}`); a.code != http.StatusInternalServerError {
		t.Errorf("verify without token: %d, want 500", a.code)
	}
	if a := call(t, http.MethodDelete, s.URL+"api/v4/runners", nil, `{}`); a.code != http.StatusBadRequest {
		t.Errorf("delete without token: %d, want 400", a.code)
	}
	wantViolations(t, s, "verify: no runner token", "unregister: no token")
}

func requestJob(t *testing.T, s *Server, token string) answer {
	t.Helper()
	return call(t, http.MethodPost, s.URL+"api/v4/jobs/request", nil,
		jsonBody(t, map[string]any{"token": token, "info": goodInfo, "last_update": ""}))
}

func TestAlloyCIJobRequest(t *testing.T) {
	s := NewFlavor(t, AlloyCI)
	s.AddRunner("rt")

	a := requestJob(t, s, "rt")
	if a.code != http.StatusNoContent || a.body != "" {
		t.Errorf("no job: %d %q, want 204 and no body", a.code, a.body)
	}
	if _, ok := a.header["X-Gitlab-Last-Update"]; ok {
		t.Errorf("204 carries X-GitLab-Last-Update; AlloyCI sets it on the request")
	}
	if a := requestJob(t, s, "unknown"); a.code != http.StatusUnauthorized {
		t.Errorf("unknown runner: %d, want 401", a.code)
	}
	if a := call(t, http.MethodPost, s.URL+"api/v4/jobs/request", nil, `{"token":"rt"}`); a.code != http.StatusBadRequest {
		t.Errorf("no info: %d, want 400 (Ecto.CastError)", a.code)
	}
	wantViolations(t, s, "info is not an object")

	id := s.EnqueueSpec("rt", Spec{
		RepoURL: "https://x-access-token:SECRET@github.com/owner/app.git", Ref: "refs/heads/main", SHA: "abc",
		Variables: []Variable{{"DEPTH", 3, true}, {"FLAG", true, true}, {"NOTHING", nil, true},
			{"RATIO", 0.5, true}, {"PASSWORD", "hunter2", false}},
		Script: []string{"make"}, AfterScript: []string{"echo done"}, Timeout: 5,
	})
	a = requestJob(t, s, "rt")
	if a.code != http.StatusCreated {
		t.Fatalf("job: %d, want 201", a.code)
	}
	// Assigned and running before the answer.
	if total, mine := s.InFlight("rt"); total != 1 || mine != 1 {
		t.Errorf("in flight %d/%d after the 201, want 1/1", total, mine)
	}
	var p map[string]any
	if err := json.Unmarshal([]byte(a.body), &p); err != nil {
		t.Fatal(err)
	}
	if p["id"] != float64(id) || p["token"] != jobToken(id) || p["allow_git_fetch"] != true {
		t.Errorf("id/token/allow_git_fetch: %v %v %v", p["id"], p["token"], p["allow_git_fetch"])
	}
	for key, want := range map[string]any{
		"image":        map[string]any{"name": nil},
		"services":     []any{},
		"artifacts":    []any{nil},
		"cache":        []any{nil},
		"dependencies": []any{},
		"runner_info":  map[string]any{"timeout": float64(3600)}, // Timeout 5 ignored
		"job_info":     map[string]any{"name": "test", "stage": "test", "project_id": float64(projectID), "project_name": projectName},
		"steps": []any{
			map[string]any{"name": "script", "script": []any{"make"}, "timeout": float64(3600), "when": "on_success", "allow_failure": false},
			map[string]any{"name": "after_script", "script": []any{"echo done"}, "timeout": float64(3600), "when": "always", "allow_failure": true},
		},
	} {
		if !reflect.DeepEqual(p[key], want) {
			t.Errorf("%s = %#v, want %#v", key, p[key], want)
		}
	}
	git, _ := p["git_info"].(map[string]any)
	if git["repo_url"] != "https://x-access-token:SECRET@github.com/owner/app.git" || git["ref"] != "refs/heads/main" || git["sha"] != "abc" || git["ref_type"] != "branch" {
		t.Errorf("git_info %v", git)
	}
	vars := map[string]map[string]any{}
	for _, v := range p["variables"].([]any) {
		m := v.(map[string]any)
		vars[m["key"].(string)] = m
	}
	for key, want := range map[string][2]any{
		"CI":                 {"true", true},
		"CI_JOB_ID":          {jsonNumberText(id), true},
		"CI_JOB_TOKEN":       {jobToken(id), false},
		"CI_REPOSITORY_URL":  {"https://x-access-token:SECRET@github.com/owner/app.git", false},
		"CI_COMMIT_PUSHER":   {nil, true},
		"CI_COMMIT_REF_SLUG": {"main", true},
		"CI_RUNNER_TAGS":     {nil, true},
		"DEPTH":              {float64(3), true},
		"FLAG":               {true, true},
		"NOTHING":            {nil, true},
		"RATIO":              {0.5, true},
		"PASSWORD":           {"hunter2", false},
	} {
		v, ok := vars[key]
		if !ok {
			t.Errorf("no variable %s", key)
			continue
		}
		if val, present := v["value"]; !present || val != want[0] || v["public"] != want[1] {
			t.Errorf("%s = %#v (public %v), want %#v (public %v)", key, v["value"], v["public"], want[0], want[1])
		}
	}

	// Raw is merged over the payload; Omit removes a key. A cancelled
	// pending job is never handed out.
	skipped := s.EnqueueSpec("rt", Spec{Script: []string{"x"}})
	s.Cancel(skipped)
	s.EnqueueSpec("rt", Spec{Script: []string{"x"}, Raw: map[string]any{"steps": 5, "image": Omit}})
	a = requestJob(t, s, "rt")
	var raw map[string]any
	_ = json.Unmarshal([]byte(a.body), &raw)
	if _, has := raw["image"]; a.code != http.StatusCreated || raw["steps"] != float64(5) || has || raw["id"] == float64(skipped) {
		t.Errorf("raw job: %d %v, want 201 with steps 5, no image, not the cancelled job", a.code, raw)
	}
	if a := requestJob(t, s, "rt"); a.code != http.StatusNoContent {
		t.Errorf("after the queue: %d, want 204", a.code)
	}
}

func jsonNumberText(id int64) string { return jsonText(id) }

func jsonText(v any) string { b, _ := json.Marshal(v); return string(b) }

// runningJob starts a job on an AlloyCI double and returns its id and token.
func runningJob(t *testing.T, s *Server) (int64, string) {
	t.Helper()
	s.AddRunner("rt")
	id := s.EnqueueSpec("rt", Spec{Script: []string{"true"}})
	if a := requestJob(t, s, "rt"); a.code != http.StatusCreated {
		t.Fatalf("request: %d", a.code)
	}
	return id, jobToken(id)
}

func patch(t *testing.T, s *Server, id string, h map[string]string, body string) answer {
	t.Helper()
	if h == nil {
		h = map[string]string{}
	}
	if _, ok := h["Content-Type"]; !ok {
		h["Content-Type"] = "text/plain"
	}
	return call(t, http.MethodPatch, s.URL+"api/v4/jobs/"+id+"/trace", h, body)
}

func TestAlloyCITrace(t *testing.T) {
	s := NewFlavor(t, AlloyCI)
	id, tok := runningJob(t, s)
	ids := jsonText(id)

	if a := patch(t, s, ids, nil, "x"); a.code != http.StatusInternalServerError {
		t.Errorf("no JOB-TOKEN: %d, want 500", a.code)
	}
	if a := patch(t, s, "999999", map[string]string{"JOB-TOKEN": tok}, "x"); a.code != http.StatusInternalServerError {
		t.Errorf("unknown job: %d, want 500", a.code)
	}
	if a := patch(t, s, ids, map[string]string{"JOB-TOKEN": "wrong"}, "x"); a.code != http.StatusForbidden {
		t.Errorf("wrong token: %d, want 403", a.code)
	}
	if a := patch(t, s, "abc", map[string]string{"JOB-TOKEN": tok}, "x"); a.code != http.StatusBadRequest {
		t.Errorf("id abc: %d, want 400 (Ecto.Query.CastError)", a.code)
	}
	// read_body reads at most 8_000_000 bytes: a longer chunk fails to match.
	if a := patch(t, s, ids, map[string]string{"JOB-TOKEN": tok}, strings.Repeat("y", readBodyLimit+1)); a.code != http.StatusInternalServerError {
		t.Errorf("a chunk of 8MB+1: %d, want 500", a.code)
	}
	wantViolations(t, s, "without a JOB-TOKEN header", "unknown job", "without the job's JOB-TOKEN", "unknown job", "reads at most")

	// Content-Range is ignored: overlapping, bogus and absent ranges all
	// append; the answer is always 202, Range 0-100.
	s.LoseTraceOnce(id, 4) // AlloyCI: the live trace is cut, silently
	for _, c := range []struct{ rng, body string }{
		{"0-4", "hello"}, {"0-4", "hello"}, {"", ""}, {"500-504", "world"}, {"bogus", "!"},
	} {
		h := map[string]string{"JOB-TOKEN": tok}
		if c.rng != "" {
			h["Content-Range"] = c.rng
		}
		a := patch(t, s, ids, h, c.body)
		if a.code != http.StatusAccepted || a.header.Get("Range") != "0-100" || a.header.Get("Job-Status") != "running" {
			t.Errorf("chunk %q at %q: %d Range %q Job-Status %q, want 202, 0-100, running",
				c.body, c.rng, a.code, a.header.Get("Range"), a.header.Get("Job-Status"))
		}
		if a.body != `{"message":"202 Trace was patched"}` {
			t.Errorf("chunk answer body %q", a.body)
		}
	}
	j := s.Job(id)
	if want := "\nhel\nhello\nworld\n!"; j.Live != want || j.Trace != want {
		t.Errorf("live %q, trace %q, want %q (an empty chunk appends nothing)", j.Live, j.Trace, want)
	}
	// Patched: the refused bodies of this job, and every chunk.
	if j.Patched != 2+readBodyLimit+1+5+5+0+5+1 || j.Patches != 5 || j.RangeErrors != 0 {
		t.Errorf("patched %d bytes, %d accepted, %d 416s; want 8000019, 5, 0", j.Patched, j.Patches, j.RangeErrors)
	}
	// A chunk sent as JSON is parsed as params: nothing appended.
	if a := patch(t, s, ids, map[string]string{"JOB-TOKEN": tok, "Content-Type": "application/json"}, `{"a":1}`); a.code != http.StatusAccepted {
		t.Errorf("JSON chunk: %d, want 202", a.code)
	}
	if s.Job(id).Live != j.Live {
		t.Errorf("a JSON chunk was appended")
	}
	wantViolations(t, s, "appends nothing")

	// Cancelled: two l's, in Job-Status of the next answer.
	s.Cancel(id)
	if a := patch(t, s, ids, map[string]string{"JOB-TOKEN": tok}, ""); a.code != http.StatusAccepted || a.header.Get("Job-Status") != "cancelled" {
		t.Errorf("after Cancel: %d Job-Status %q, want 202 cancelled", a.code, a.header.Get("Job-Status"))
	}
	s.Revoke(id)
	if a := patch(t, s, ids, map[string]string{"JOB-TOKEN": tok}, "x"); a.code != http.StatusForbidden {
		t.Errorf("revoked: %d, want 403", a.code)
	}
}

func put(t *testing.T, s *Server, id int64, body map[string]any) answer {
	t.Helper()
	return call(t, http.MethodPut, s.URL+"api/v4/jobs/"+jsonText(id), nil, jsonBody(t, body))
}

func TestAlloyCIUpdate(t *testing.T) {
	s := NewFlavor(t, AlloyCI)
	id, tok := runningJob(t, s)
	patch(t, s, jsonText(id), map[string]string{"JOB-TOKEN": tok}, "live")

	if a := put(t, s, id, map[string]any{"state": "success"}); a.code != http.StatusBadRequest {
		t.Errorf("no token: %d, want 400", a.code)
	}
	if a := call(t, http.MethodPut, s.URL+"api/v4/jobs/"+jsonText(id), map[string]string{"Content-Type": "text/plain"},
		jsonBody(t, map[string]any{"token": tok, "state": "success"})); a.code != http.StatusBadRequest {
		t.Errorf("not as JSON: %d, want 400", a.code)
	}
	if a := put(t, s, id, map[string]any{"token": "wrong", "state": "success"}); a.code != http.StatusForbidden {
		t.Errorf("wrong token: %d, want 403", a.code)
	}
	if a := put(t, s, id, map[string]any{"token": tok, "state": "canceled", "trace": "lost"}); a.code != http.StatusInternalServerError {
		t.Errorf("state canceled: %d, want 500", a.code)
	}
	if a := put(t, s, 999999, map[string]any{"token": tok, "state": "success"}); a.code != http.StatusInternalServerError {
		t.Errorf("unknown job: %d, want 500", a.code)
	}
	wantViolations(t, s, "without a token", "without a token", "without the job's token", "unknown state", "unknown job")

	// PUT running resets the start time, every time.
	for range 2 {
		if a := put(t, s, id, map[string]any{"token": tok, "state": "running"}); a.code != http.StatusOK {
			t.Errorf("running: %d, want 200", a.code)
		}
	}
	wantViolations(t, s, "resets the job's start time", "resets the job's start time")

	a := put(t, s, id, map[string]any{"token": tok, "state": "failed", "failure_reason": "made_up", "trace": "whole trace"})
	if a.code != http.StatusOK || a.body != "" {
		t.Errorf("final: %d %q, want 200 and no body", a.code, a.body)
	}
	if _, ok := a.header["Job-Status"]; ok {
		t.Errorf("final PUT answered with a Job-Status header")
	}
	j := s.Job(id)
	if !j.Final || j.State != "failed" || j.Stored != "whole trace" || j.Trace != "whole trace" || j.Live != "\nlive" ||
		j.StartResets != 2 || !j.TraceInUpdate || j.FinalAttempts != 1 || j.FailureReason != "made_up" {
		t.Errorf("job %+v: want final failed, stored the PUT's trace, live kept, 2 start resets", j)
	}
	if want := map[string]int{"": 1, "success": 2, "canceled": 1, "running": 2, "failed": 1}; !reflect.DeepEqual(j.Puts, want) {
		t.Errorf("puts %v, want %v", j.Puts, want)
	}
	// PATCH Job-Status follows; an empty chunk is no violation.
	if a := patch(t, s, jsonText(id), map[string]string{"JOB-TOKEN": tok}, ""); a.header.Get("Job-Status") != "failed" {
		t.Errorf("Job-Status %q after failed, want failed", a.header.Get("Job-Status"))
	}
	if total, _ := s.InFlight("rt"); total != 0 {
		t.Errorf("%d in flight after the final PUT", total)
	}
}

func TestAlloyCIFinalWithoutTraceAndCancelled(t *testing.T) {
	s := NewFlavor(t, AlloyCI)
	id, tok := runningJob(t, s)
	patch(t, s, jsonText(id), map[string]string{"JOB-TOKEN": tok}, "output")
	if a := put(t, s, id, map[string]any{"token": tok, "state": "success"}); a.code != http.StatusOK {
		t.Errorf("final without trace: %d, want 200", a.code)
	}
	wantViolations(t, s, "without the whole trace")
	if j := s.AwaitFinal(id); j.Stored != "" || j.Trace != "" || j.Live != "\noutput" {
		t.Errorf("stored %q trace %q live %q, want the empty log AlloyCI keeps", j.Stored, j.Trace, j.Live)
	}

	// A PUT on a cancelled job changes its status not; its trace is stored.
	id2 := s.EnqueueSpec("rt", Spec{Script: []string{"sleep 1"}})
	requestJob(t, s, "rt")
	s.Cancel(id2)
	if a := put(t, s, id2, map[string]any{"token": jobToken(id2), "state": "success", "trace": "t"}); a.code != http.StatusOK {
		t.Errorf("PUT on cancelled: %d, want 200", a.code)
	}
	if a := patch(t, s, jsonText(id2), map[string]string{"JOB-TOKEN": jobToken(id2)}, ""); a.header.Get("Job-Status") != "cancelled" {
		t.Errorf("Job-Status %q after a PUT on a cancelled job, want cancelled", a.header.Get("Job-Status"))
	}
	if j := s.Job(id2); !j.Final || j.Stored != "t" {
		t.Errorf("cancelled job %+v", j)
	}

	// An outage on the final PUT: the retry lands.
	id3 := s.EnqueueSpec("rt", Spec{Script: []string{"true"}})
	requestJob(t, s, "rt")
	s.FailFinalUpdates(id3, http.StatusBadGateway)
	body := map[string]any{"token": jobToken(id3), "state": "success", "trace": "all"}
	if a := put(t, s, id3, body); a.code != http.StatusBadGateway {
		t.Errorf("first final: %d, want 502", a.code)
	}
	if a := put(t, s, id3, body); a.code != http.StatusOK {
		t.Errorf("retry: %d, want 200", a.code)
	}
	if j := s.Job(id3); j.FinalAttempts != 2 || j.Stored != "all" || j.Puts["success"] != 2 {
		t.Errorf("job %+v", j)
	}
}

func TestAlloyCIAccept(t *testing.T) {
	s := NewFlavor(t, AlloyCI)
	s.AddRunner("rt")
	a := call(t, http.MethodPost, s.URL+"api/v4/jobs/request",
		map[string]string{"Content-Type": "application/json", "Accept": "application/xml"},
		jsonBody(t, map[string]any{"token": "rt", "info": goodInfo}))
	if a.code != http.StatusNotAcceptable {
		t.Errorf("Accept application/xml: %d, want 406", a.code)
	}
	wantViolations(t, s, "406")
}

func TestStrictRecords(t *testing.T) {
	s := New(t)
	if s.Flavor() != Strict {
		t.Fatalf("New: flavor %q", s.Flavor())
	}
	a := register(t, s, map[string]any{"run_untagged": false})
	if a.code != http.StatusCreated {
		t.Fatalf("register: %d", a.code)
	}
	regs := s.Registrations()
	if len(regs) != 1 || regs[0].Status != 201 || regs[0].RunUntagged == nil || *regs[0].RunUntagged ||
		regs[0].StoredRunUntagged || regs[0].Info["shell"] != "bash" {
		t.Errorf("registrations %+v", regs)
	}
	s.AddRunner("rt")
	id := s.EnqueueSpec("rt", Spec{Variables: []Variable{{"N", 3, true}, {"Z", nil, true}, {"B", false, true}},
		Script: []string{"true"}, Timeout: 5})
	a = requestJob(t, s, "rt")
	var p struct {
		RunnerInfo struct{ Timeout int } `json:"runner_info"`
		Variables  []map[string]any      `json:"variables"`
		Steps      []map[string]any      `json:"steps"`
		Image      any                   `json:"image"`
	}
	if err := json.Unmarshal([]byte(a.body), &p); err != nil || a.code != http.StatusCreated {
		t.Fatalf("job: %d %v", a.code, err)
	}
	got := map[string]any{}
	for _, v := range p.Variables {
		got[v["key"].(string)] = v["value"]
	}
	if got["N"] != "3" || got["Z"] != "" || got["B"] != "false" || got["CI_JOB_TOKEN"] != jobToken(id) ||
		p.RunnerInfo.Timeout != 5 || len(p.Steps) != 1 || p.Steps[0]["timeout"] != float64(5) || p.Image != nil {
		t.Errorf("strict payload %+v", p)
	}
	h := map[string]string{"JOB-TOKEN": jobToken(id), "Content-Range": "0-2"}
	if a := patch(t, s, jsonText(id), h, "abc"); a.code != http.StatusAccepted || a.header.Get("Range") != "0-3" {
		t.Errorf("strict chunk: %d Range %q", a.code, a.header.Get("Range"))
	}
	if a := put(t, s, id, map[string]any{"token": jobToken(id), "state": "success"}); a.code != http.StatusOK || a.header.Get("Job-Status") != "success" {
		t.Errorf("strict final: %d Job-Status %q", a.code, a.header.Get("Job-Status"))
	}
	if j := s.Job(id); j.Live != "abc" || j.Stored != "abc" || j.Trace != "abc" || j.Patched != 3 || j.Puts["success"] != 1 {
		t.Errorf("strict job %+v", j)
	}
	id2 := s.EnqueueSpec("rt", Spec{Script: []string{"true"}})
	requestJob(t, s, "rt")
	s.Cancel(id2)
	h = map[string]string{"JOB-TOKEN": jobToken(id2), "Content-Range": "0-0"}
	if a := patch(t, s, jsonText(id2), h, "x"); a.header.Get("Job-Status") != "canceled" {
		t.Errorf("strict Job-Status %q after Cancel, want canceled", a.header.Get("Job-Status"))
	}
}
