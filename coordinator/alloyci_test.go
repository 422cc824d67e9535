package coordinator_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/alloyci/hardened-runner/coordinator"
	"github.com/alloyci/hardened-runner/coordinator/coordinatortest"
)

// alloyRegister mimics AlloyCI's POST /runners (Runners.create/1): without
// info it raises (500); without info.name or a description the runner
// record is invalid and the answer is 403, as for a wrong token.
func alloyRegister(t *testing.T, regToken string, seen *map[string]any) string {
	var mu sync.Mutex
	return server127(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		*seen = body
		info, ok := body["info"].(map[string]any)
		if _, tok := body["token"]; !tok || !ok {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		if body["token"] != regToken || info["name"] == nil || info["name"] == "" || body["description"] == nil || body["description"] == "" {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"id":5,"token":"runner-token-xyz"}`))
	})
}

func TestRegisterSendsInfoAndDescription(t *testing.T) {
	var seen map[string]any
	url := alloyRegister(t, "reg-secret", &seen)
	reg, err := newClient(&sleeps{}).Register(context.Background(), url, coordinator.Registration{
		Token: "reg-secret", TagList: "linux,bash", Locked: true, RunUntagged: true,
	})
	if err != nil || reg.ID != 5 || reg.Token != "runner-token-xyz" {
		t.Fatalf("register against AlloyCI: %+v, %v", reg, err)
	}
	info, _ := seen["info"].(map[string]any)
	for k, want := range map[string]string{"name": "alloy-runner", "executor": "shell", "shell": "bash"} {
		if info[k] != want {
			t.Errorf("info.%s = %v, want %q", k, info[k], want)
		}
	}
	for _, k := range []string{"version", "revision", "platform", "architecture"} {
		if s, _ := info[k].(string); s == "" {
			t.Errorf("info.%s is empty: %v", k, info)
		}
	}
	if seen["description"] != coordinator.DefaultDescription() || seen["tag_list"] != "linux,bash" ||
		seen["locked"] != true || seen["run_untagged"] != true {
		t.Errorf("registration body = %v, want the host name as description and the flags as given", seen)
	}
}

func TestRegisterRefusalsSayWhy(t *testing.T) {
	var seen map[string]any
	url := alloyRegister(t, "reg-secret", &seen)
	s := &sleeps{}
	_, err := newClient(s).Register(context.Background(), url, coordinator.Registration{Token: "wrong-secret", Description: "d"})
	if !errors.Is(err, coordinator.ErrForbidden) || !strings.Contains(err.Error(), "refused the registration token (403)") ||
		strings.Contains(err.Error(), "wrong-secret") {
		t.Fatalf("403: err = %v", err)
	}

	// A coordinator that fails on the registration: retried, then said.
	url500 := server127(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	_, err = newClient(s).Register(context.Background(), url500, coordinator.Registration{Token: "reg-secret", Description: "d"})
	var se *coordinator.StatusError
	if !errors.As(err, &se) || se.Code != 500 || strings.Contains(err.Error(), "reg-secret") ||
		!strings.Contains(err.Error(), "the coordinator failed on the registration (500); AlloyCI answers 500 when info is missing") {
		t.Fatalf("500: err = %v", err)
	}
}

func TestVariablesOfAnyScalarTypeDecode(t *testing.T) {
	var j coordinator.Job
	err := json.Unmarshal([]byte(`{"id":1,"token":"t","variables":[
		{"key":"S","value":"text","public":true},
		{"key":"N","value":3,"public":true},
		{"key":"F","value":1.5,"public":true},
		{"key":"B","value":true,"public":true},
		{"key":"Z","value":null,"public":true},
		{"key":"SECRET","value":42,"public":false},
		{"key":"NOPUBLIC","value":"x"}]}`), &j)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, v := range j.Variables {
		got[v.Key] = v.Value
	}
	want := map[string]string{"S": "text", "N": "3", "F": "1.5", "B": "true", "Z": "", "SECRET": "42", "NOPUBLIC": "x"}
	if len(got) != len(want) {
		t.Fatalf("variables = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if !j.Variables[5].Secret() || !j.Variables[6].Secret() || j.Variables[1].Secret() {
		t.Errorf("secrets wrong: %v", j.Variables)
	}
}

// alloyJob serves one job with body b on /jobs/request.
func alloyJob(t *testing.T, b string) string {
	return server127(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(b))
	})
}

// The job AlloyCI renders (coordinator-api.md), with unknown fields, decodes.
const alloyJobJSON = `{"id":42,"token":"JOB_TOKEN","allow_git_fetch":true,"new_field":{"x":1},
 "job_info":{"name":"test","stage":"test","project_id":7,"project_name":"app"},
 "git_info":{"repo_url":"https://x-access-token:TOKEN@github.com/owner/app.git","ref":"refs/heads/main","sha":"abc","before_sha":"def","ref_type":"branch"},
 "runner_info":{"timeout":3600},
 "variables":[{"key":"CI","value":"true","public":true},{"key":"CI_JOB_TOKEN","value":"JOB_TOKEN","public":false},
  {"key":"CI_COMMIT_PUSHER","value":null,"public":true},{"key":"GIT_DEPTH","value":3,"public":true}],
 "steps":[{"name":"script","script":["make","make test"],"timeout":3600,"when":"on_success","allow_failure":false},
  {"name":"after_script","script":["echo done"],"timeout":3600,"when":"always","allow_failure":true}],
 "image":{"name":null},"services":[],
 "artifacts":[{"name":"dist","paths":["dist/"],"untracked":false,"when":"on_success","expire_in":"1 week"}],
 "cache":[{"key":"deps","paths":["vendor/"],"untracked":false}],
 "dependencies":[{"id":41,"name":"build","token":"JOB_TOKEN_OF_41","artifacts_file":{"filename":"artifacts.zip","size":2500}}]}`

func TestRequestJobDecodesAlloyCIJob(t *testing.T) {
	job, _, err := newClient(&sleeps{}).RequestJob(context.Background(), alloyJob(t, alloyJobJSON), "rt", "")
	if err != nil || job == nil {
		t.Fatalf("job=%v err=%v", job, err)
	}
	if job.Unusable != "" || job.ID != 42 || job.Variables[3].Value != "3" || job.Variables[2].Value != "" || len(job.Steps) != 2 {
		t.Fatalf("decoded: unusable=%q %+v", job.Unusable, job.Variables)
	}
	if got := strings.Join(job.Unsupported(), ","); got != "artifacts,cache,dependencies" {
		t.Errorf("Unsupported = %q", got)
	}
}

func TestRequestJobKeepsAnUnusableJob(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"object variable", `{"id":43,"token":"jt","variables":[{"key":"V","value":{"a":"s3cret"},"public":true}],"steps":[{"name":"script","script":["true"]}]}`,
			`variable "V": the value is an object`},
		{"script as a string", `{"id":43,"token":"jt","steps":[{"name":"script","script":"make"}]}`,
			"cannot unmarshal string into Go struct field"},
		{"timeout as a string", `{"id":43,"token":"jt","runner_info":{"timeout":"1h"},"steps":[{"name":"script","script":["true"]}]}`,
			"cannot unmarshal string into Go struct field"},
		{"unknown step", `{"id":43,"token":"jt","steps":[{"name":"script","script":["true"]},{"name":"release","script":["x"]}]}`,
			`the job has a step "release"; this runner knows only "script" and "after_script"`},
		{"no script", `{"id":43,"token":"jt","steps":[]}`, "the job has no script step"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job, _, err := newClient(&sleeps{}).RequestJob(context.Background(), alloyJob(t, tc.body), "rt", "")
			if err != nil || job == nil {
				t.Fatalf("job=%v err=%v: an unusable job must be returned to be reported", job, err)
			}
			if job.ID != 43 || job.Token != "jt" || !strings.Contains(job.Unusable, tc.want) || strings.Contains(job.Unusable, "s3cret") {
				t.Fatalf("id=%d unusable=%q, want it to contain %q", job.ID, job.Unusable, tc.want)
			}
		})
	}
	// Without an id and a token nothing can be reported: an error.
	_, _, err := newClient(&sleeps{}).RequestJob(context.Background(), alloyJob(t, `{"steps":"x"}`), "rt", "")
	if err == nil || !strings.Contains(err.Error(), "no id or token") {
		t.Fatalf("err = %v", err)
	}
}

// An empty chunk is the keep-alive: it goes out with an empty body, a
// Content-Range that claims no byte, and brings back AlloyCI's Job-Status.
func TestPatchTraceEmptyKeepAlive(t *testing.T) {
	var rng, body string
	url := server127(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rng, body = r.Header.Get("Content-Range"), string(b)
		w.Header().Set("Job-Status", "cancelled")
		w.Header().Set("Range", "0-100") // AlloyCI's, whatever it holds
		w.WriteHeader(http.StatusAccepted)
	})
	ans, err := newClient(&sleeps{}).PatchTrace(context.Background(), url, 1, "jt", 250, nil, coordinator.RetryBriefly)
	if err != nil || rng != "250-249" || body != "" {
		t.Fatalf("keep-alive: err=%v Content-Range=%q body=%q", err, rng, body)
	}
	if ans.Status != "cancelled" || coordinator.JobRunning(ans.Status) {
		t.Fatalf("status %q: AlloyCI's cancelled must stop the job", ans.Status)
	}
}

// Register, verify and unregister work against both flavors of the double;
// the body carries info and the host name as default description.
func TestRegisterAgainstFlavors(t *testing.T) {
	for _, f := range coordinatortest.Flavors() {
		t.Run(string(f), func(t *testing.T) {
			d := coordinatortest.NewFlavor(t, f)
			c := newClient(&sleeps{})
			ctx := context.Background()
			_, err := c.Register(ctx, d.URL, coordinator.Registration{Token: "wrong-reg-token"})
			if !errors.Is(err, coordinator.ErrForbidden) || strings.Contains(err.Error(), "wrong-reg-token") {
				t.Fatalf("wrong token: err = %v", err)
			}
			reg, err := c.Register(ctx, d.URL, coordinator.Registration{Token: coordinatortest.RegistrationToken, TagList: "linux", Locked: true, RunUntagged: true})
			if err != nil || reg.Token == "" {
				t.Fatalf("register: %+v %v", reg, err)
			}
			regs := d.Registrations()
			last := regs[len(regs)-1]
			if last.Status != http.StatusCreated || last.Description != coordinator.DefaultDescription() || last.Info["name"] != "alloy-runner" ||
				last.Info["executor"] != "shell" || last.Info["shell"] != "bash" || last.Info["version"] == "" ||
				last.Locked == nil || !*last.Locked || !last.StoredRunUntagged || last.TagList != "linux" {
				t.Errorf("registration as the double saw it: %+v", last)
			}
			if err := c.Verify(ctx, d.URL, reg.Token); err != nil {
				t.Errorf("verify: %v", err)
			}
			if err := c.Unregister(ctx, d.URL, reg.Token); err != nil {
				t.Errorf("unregister: %v", err)
			}
		})
	}
}

// The job each flavor renders decodes: AlloyCI's typed and null values as
// YAML shows them, Strict's strings as they are.
func TestRequestJobAgainstFlavors(t *testing.T) {
	for _, f := range coordinatortest.Flavors() {
		t.Run(string(f), func(t *testing.T) {
			d := coordinatortest.NewFlavor(t, f)
			d.AddRunner("runner-token")
			d.EnqueueSpec("runner-token", coordinatortest.Spec{RepoURL: "https://example.invalid/a.git", Ref: "main", SHA: "abc",
				Script: []string{"true"}, Variables: []coordinatortest.Variable{
					{Key: "N", Value: 3, Public: true}, {Key: "F", Value: 1.5, Public: true},
					{Key: "B", Value: true, Public: true}, {Key: "Z", Value: nil, Public: true}}})
			job, _, err := newClient(&sleeps{}).RequestJob(context.Background(), d.URL, "runner-token", "")
			if err != nil || job == nil || job.Unusable != "" {
				t.Fatalf("job=%v err=%v unusable=%q", job, err, job.Unusable)
			}
			got := map[string]string{}
			for _, v := range job.Variables {
				got[v.Key] = v.Value
			}
			if got["N"] != "3" || got["F"] != "1.5" || got["B"] != "true" || got["Z"] != "" {
				t.Errorf("variables: %v", got)
			}
			// The test ends with the job running; report it so the double is content.
			tr := "x"
			if _, err := newClient(&sleeps{}).UpdateJob(context.Background(), d.URL, job.ID, job.Token,
				coordinator.Update{State: coordinator.StateSuccess, Trace: &tr}, coordinator.RetryBriefly); err != nil {
				t.Errorf("update: %v", err)
			}
		})
	}
}
