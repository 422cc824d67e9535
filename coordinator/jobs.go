package coordinator

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Job is a job the coordinator handed to a runner. Its String and GoString
// show only the ids, so logging a Job by mistake leaks neither its token nor
// its variables.
type Job struct {
	ID            int64      `json:"id"`
	Token         string     `json:"token"`
	AllowGitFetch bool       `json:"allow_git_fetch"`
	JobInfo       JobInfo    `json:"job_info"`
	GitInfo       GitInfo    `json:"git_info"`
	RunnerInfo    RunnerInfo `json:"runner_info"`
	Variables     []Variable `json:"variables"`
	Steps         []Step     `json:"steps"`

	// Image and Services are features of other executors, kept raw: the
	// shell executor only says in the trace that it ignored them (see
	// Unsupported).
	Image    json.RawMessage `json:"image,omitempty"`
	Services json.RawMessage `json:"services,omitempty"`
	// Artifacts, Cache and Dependencies are kept raw as the coordinator sent
	// them; ArtifactsSpec, CacheSpec and ArtifactDependencies read them, and
	// a job whose values they cannot read is Unusable.
	Artifacts    json.RawMessage `json:"artifacts,omitempty"`
	Cache        json.RawMessage `json:"cache,omitempty"`
	Dependencies json.RawMessage `json:"dependencies,omitempty"`

	// Unusable, when set, says why the runner cannot run this job (a field
	// of an unexpected type, an unknown step): the coordinator has already
	// marked it running, so it must be reported failed with this reason in
	// its trace, not dropped. It never holds a secret value.
	Unusable string `json:"-"`
}

// JobInfo names the job and its project.
type JobInfo struct {
	Name        string `json:"name"`
	Stage       string `json:"stage"`
	ProjectID   int64  `json:"project_id"`
	ProjectName string `json:"project_name"`
}

// GitInfo says what to check out.
type GitInfo struct {
	RepoURL   string `json:"repo_url"`
	Ref       string `json:"ref"`
	Sha       string `json:"sha"`
	BeforeSha string `json:"before_sha"`
	RefType   string `json:"ref_type"`
}

// RunnerInfo carries the job's limits.
type RunnerInfo struct {
	// Timeout is the job's time limit in seconds.
	Timeout int `json:"timeout"`
}

// Variable is one of the job's variables.
type Variable struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	// Public false means a secret: it must never be shown.
	Public bool `json:"public"`
	// Masked is GitLab's newer way to mark a secret; honoured as well.
	Masked bool `json:"masked,omitempty"`
}

// UnmarshalJSON reads a variable whose value may be of any JSON scalar type,
// as AlloyCI sends the values of .alloy-ci.yml (read as YAML): a string as
// it is, a number or a boolean as its JSON text (3, 1.5, true), null as
// empty. An object or an array is an error that names the key, not the value.
func (v *Variable) UnmarshalJSON(b []byte) error {
	var raw struct {
		Key    string          `json:"key"`
		Value  json.RawMessage `json:"value"`
		Public bool            `json:"public"`
		Masked bool            `json:"masked"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	val, err := scalarText(raw.Value)
	if err != nil {
		return fmt.Errorf("variable %q: %w", raw.Key, err)
	}
	*v = Variable{Key: raw.Key, Value: val, Public: raw.Public, Masked: raw.Masked}
	return nil
}

// scalarText is the text of a JSON scalar as YAML would show it.
func scalarText(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", nil
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", errors.New("the value is not a valid JSON string")
		}
		return s, nil
	case 'n':
		return "", nil // null
	case 't', 'f':
		return string(raw), nil // true, false: the decoder checked them
	case '{':
		return "", errors.New("the value is an object, want a string, number, boolean or null")
	case '[':
		return "", errors.New("the value is an array, want a string, number, boolean or null")
	default:
		// A number: its text, so 3 stays "3" and 1.5 "1.5".
		return json.Number(raw).String(), nil
	}
}

// Secret reports whether v's value must be kept out of the trace and logs.
// A variable that does not say it is public is a secret.
func (v Variable) Secret() bool { return !v.Public || v.Masked }

// String shows the key, and the value only when it is public.
func (v Variable) String() string {
	if v.Secret() {
		return v.Key + "=[MASKED]"
	}
	return v.Key + "=" + v.Value
}

// Step is a script step: "script" (before_script folded in) or "after_script".
type Step struct {
	Name         string   `json:"name"`
	Script       []string `json:"script"`
	Timeout      int      `json:"timeout"`
	When         string   `json:"when"`
	AllowFailure bool     `json:"allow_failure"`
}

// Step names.
const (
	StepScript      = "script"
	StepAfterScript = "after_script"
)

// String names the job without its token or variables.
func (j Job) String() string {
	return fmt.Sprintf("job %d (project %d)", j.ID, j.JobInfo.ProjectID)
}

// GoString is String, so %#v cannot dump the token either.
func (j Job) GoString() string { return j.String() }

// Step returns the step named name.
func (j *Job) Step(name string) (Step, bool) {
	for _, s := range j.Steps {
		if s.Name == name {
			return s, true
		}
	}
	return Step{}, false
}

// Secrets lists every value the trace and logs must not show: the job token,
// the values of secret variables, a password in repo_url, and the tokens of
// the job's dependencies (found even when the dependencies do not decode).
// Empty values are left out.
func (j *Job) Secrets() []string {
	var out []string
	add := func(s string) {
		if s != "" {
			out = append(out, s)
		}
	}
	add(j.Token)
	if j.Token != "" {
		// The form git sends it in, should anything print that header.
		add(base64.StdEncoding.EncodeToString([]byte("gitlab-ci-token:" + j.Token)))
	}
	for _, v := range j.Variables {
		if v.Secret() {
			add(v.Value)
		}
	}
	if u, err := url.Parse(j.GitInfo.RepoURL); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			add(p)
			add(base64.StdEncoding.EncodeToString([]byte(u.User.Username() + ":" + p)))
		}
	}
	for _, t := range j.dependencyTokens() {
		add(t)
	}
	return out
}

// Unsupported lists the features the job asks for that the shell executor
// does not have (image, services, artifacts, cache, dependencies), in that
// order. Absent, null, empty and [null] values do not count. Artifacts, cache
// and dependencies are listed for a caller that does not handle them; one
// that does reads ArtifactsSpec, CacheSpec and ArtifactDependencies, and
// leaves those names out of its warnings.
func (j *Job) Unsupported() []string {
	var out []string
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{
		{"image", j.Image}, {"services", j.Services}, {"artifacts", j.Artifacts},
		{"cache", j.Cache}, {"dependencies", j.Dependencies},
	} {
		if used(f.raw) {
			out = append(out, f.name)
		}
	}
	return out
}

// used reports whether a raw JSON value says something: not null, "", {},
// [] or an array of those.
func used(raw json.RawMessage) bool {
	if len(bytes.TrimSpace(raw)) == 0 {
		return false
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return true // malformed but present: say it was ignored
	}
	return meaningful(v)
}

func meaningful(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case string:
		return x != ""
	case []any:
		for _, e := range x {
			if meaningful(e) {
				return true
			}
		}
		return false
	case map[string]any:
		for _, e := range x {
			if meaningful(e) {
				return true
			}
		}
		return false
	case bool:
		return x
	default:
		return true
	}
}

// Job states a runner reports with UpdateJob. StateRunning is no keep-alive:
// on AlloyCI a PUT running resets the job's start time and its answer has no
// Job-Status; an empty PatchTrace is the keep-alive.
const (
	StateRunning = "running"
	StateSuccess = "success"
	StateFailed  = "failed"
)

// Failure reasons for StateFailed.
const (
	ScriptFailure       = "script_failure"
	RunnerSystemFailure = "runner_system_failure"
	JobExecutionTimeout = "job_execution_timeout"
)

const (
	statusRunning = "running"
	// maxJobBytes bounds a job's JSON: far above any real job, well below
	// what would hurt the runner.
	maxJobBytes int64 = 16 << 20
)

// JobRunning reports whether a Job-Status value lets the job go on: it is
// absent, or "running". Anything else (canceled, failed, ...) means the
// coordinator no longer expects this runner to work on the job.
func JobRunning(status string) bool {
	return status == "" || status == statusRunning
}

type jobRequest struct {
	Token      string `json:"token"`
	Info       Info   `json:"info"`
	LastUpdate string `json:"last_update,omitempty"`
}

// RequestJob asks the coordinator at baseURL for a job for the runner with
// runnerToken. It returns the job, or nil when there is none, and the
// last_update value to send next time (the previous one when the coordinator
// gave none). A 401 matches ErrUnauthorized, a 409 ErrConflict.
func (cl *Client) RequestJob(ctx context.Context, baseURL, runnerToken, lastUpdate string) (*Job, string, error) {
	c, err := jsonCall(http.MethodPost, baseURL, "api/v4/jobs/request",
		jobRequest{Token: runnerToken, Info: cl.info, LastUpdate: lastUpdate}, RetryBriefly)
	if err != nil {
		return nil, lastUpdate, err
	}
	resp, err := cl.do(ctx, c)
	if err != nil {
		return nil, lastUpdate, err
	}
	if lu := resp.Header.Get("X-GitLab-Last-Update"); lu != "" {
		lastUpdate = lu
	}
	switch resp.StatusCode {
	case http.StatusCreated:
		job, err := decodeJob(resp)
		if err != nil {
			return nil, lastUpdate, fmt.Errorf("requesting a job: %w", err)
		}
		return job, lastUpdate, nil
	case http.StatusNoContent:
		drain(resp)
		return nil, lastUpdate, nil
	case http.StatusUnauthorized, http.StatusForbidden:
		// GitLab answers 403 where this API document says 401: both mean
		// the runner token is not known.
		drain(resp)
		return nil, lastUpdate, fmt.Errorf("requesting a job: the runner token is not known to the coordinator: register the runner again or fix its token: %w", ErrUnauthorized)
	case http.StatusConflict:
		drain(resp)
		return nil, lastUpdate, fmt.Errorf("requesting a job: %w", ErrConflict)
	default:
		return nil, lastUpdate, unexpected(http.MethodPost, resp)
	}
}

// decodeJob reads a job. A job whose JSON is well formed and carries an id
// and a token is returned even when the rest does not decode, or names a
// step this runner does not know: then Unusable says why, so the caller can
// report it failed (the coordinator already marked it running). Unknown
// fields are ignored.
func decodeJob(resp *http.Response) (*Job, error) {
	b, err := readAll(resp, maxJobBytes)
	if err != nil {
		return nil, err
	}
	var job Job
	err = json.Unmarshal(b, &job)
	if err != nil {
		var id struct {
			ID    json.RawMessage `json:"id"`
			Token json.RawMessage `json:"token"`
		}
		if json.Unmarshal(b, &id) != nil {
			return nil, fmt.Errorf("decoding the job: %w", err)
		}
		job.ID, _ = strconv.ParseInt(strings.Trim(string(id.ID), `"`), 10, 64)
		job.Token = ""
		_ = json.Unmarshal(id.Token, &job.Token)
		job.Unusable = "the job's JSON does not decode: " + strings.TrimPrefix(err.Error(), "json: ")
	}
	if job.ID <= 0 || job.Token == "" {
		if err != nil {
			return nil, fmt.Errorf("decoding the job: %w; and it has no id or token to report it with", err)
		}
		return nil, errors.New("the coordinator sent a job without id or token")
	}
	if job.Unusable == "" {
		job.Unusable = job.check()
	}
	return &job, nil
}

// check says what in a decoded job the runner cannot run, or "".
func (j *Job) check() string {
	for _, s := range j.Steps {
		switch s.Name {
		case StepScript, StepAfterScript:
		default:
			return fmt.Sprintf("the job has a step %q; this runner knows only %q and %q", s.Name, StepScript, StepAfterScript)
		}
	}
	if _, ok := j.Step(StepScript); !ok {
		return "the job has no script step"
	}
	return j.checkSpecs()
}

// TraceAnswer is the coordinator's answer to a trace chunk.
type TraceAnswer struct {
	// Status is the Job-Status header: see JobRunning.
	Status string
	// Held is the Range header "0-N" read as N, or -1 when it did not say.
	// It means something only on a 416 (see RangeError): AlloyCI answers
	// every chunk with a hard-coded "0-100", whatever it holds, so a caller
	// keeps its own count of the bytes sent and ignores Held on success.
	Held int64
}

// RangeError is a 416 answer to a trace chunk: the chunk did not line up
// with what the coordinator holds (a coordinator that checks ranges; AlloyCI
// never answers 416). Resend from Held (-1: it did not say).
type RangeError struct {
	Held   int64
	Status string
}

func (e *RangeError) Error() string {
	return fmt.Sprintf("trace chunk did not line up (416): the coordinator holds %d bytes", e.Held)
}

// PatchTrace sends chunk, the bytes of the job's trace from offset on. Its
// Content-Range is "START-END" with END the offset of the chunk's last byte,
// as GitLab runners send it (START-(START-1) for an empty chunk). An empty
// chunk is the keep-alive of a job with no new output: it appends nothing,
// and the answer's Job-Status tells whether the job goes on. A 416 returns
// *RangeError, a 403 matches ErrForbidden (the job must stop).
func (cl *Client) PatchTrace(ctx context.Context, baseURL string, jobID int64, jobToken string, offset int64, chunk []byte, retry Retry) (TraceAnswer, error) {
	if chunk == nil {
		chunk = []byte{} // a body, even empty: AlloyCI reads one
	}
	c := call{
		method: http.MethodPatch, base: baseURL,
		path: "api/v4/jobs/" + strconv.FormatInt(jobID, 10) + "/trace",
		body: chunk, ctype: "text/plain",
		retry: retry,
		headers: map[string]string{
			"JOB-TOKEN":     jobToken,
			"Content-Range": fmt.Sprintf("%d-%d", offset, offset+int64(len(chunk))-1),
		},
	}
	resp, err := cl.do(ctx, c)
	if err != nil {
		return TraceAnswer{Held: -1}, fmt.Errorf("job %d: sending the trace: %w", jobID, err)
	}
	ans := TraceAnswer{Status: resp.Header.Get("Job-Status"), Held: parseRange(resp.Header.Get("Range"))}
	switch resp.StatusCode {
	case http.StatusAccepted, http.StatusOK:
		drain(resp)
		return ans, nil
	case http.StatusRequestedRangeNotSatisfiable:
		drain(resp)
		return ans, &RangeError{Held: ans.Held, Status: ans.Status}
	case http.StatusForbidden:
		drain(resp)
		return ans, fmt.Errorf("job %d: the job token is no longer valid: %w", jobID, ErrForbidden)
	default:
		return ans, fmt.Errorf("job %d: sending the trace: %w", jobID, unexpected(http.MethodPatch, resp))
	}
}

// parseRange reads "0-N" and returns N, or -1.
func parseRange(h string) int64 {
	h = strings.TrimSpace(h)
	h = strings.TrimPrefix(h, "bytes=")
	lo, hi, ok := strings.Cut(h, "-")
	if !ok || lo != "0" {
		return -1
	}
	n, err := strconv.ParseInt(hi, 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// Update is a job's state report.
type Update struct {
	State         string `json:"state"`
	FailureReason string `json:"failure_reason,omitempty"`
	// Trace, when set, is the whole trace. A final state must carry it:
	// AlloyCI stores only the trace of the final PUT and drops the chunks.
	Trace *string `json:"trace,omitempty"`
}

type updateBody struct {
	Token string `json:"token"`
	Update
}

// UpdateAnswer is the coordinator's answer to an Update.
type UpdateAnswer struct {
	// Status is the Job-Status header when the coordinator sends one.
	Status string
}

// MaxUpdateBytes bounds the JSON body of a PUT job: AlloyCI's Plug.Parsers
// (endpoint.ex, default :length 8_000_000) answers 413 to a longer one, the
// runner does not retry a 413, and the job would stay running there for
// good. The margin is for the headers' and the encoder's small differences.
const MaxUpdateBytes = 7_500_000

// UpdateJob reports the job's state. A 403 matches ErrForbidden.
//
// A trace that would make the body longer than MaxUpdateBytes is cut from
// the front, where it matters least (the failure is at the end), and starts
// with a line saying how many bytes were dropped. Invalid UTF-8 in the trace
// is sent as U+FFFD: the caller, who knows the secrets, should have made the
// trace valid UTF-8 already (see the jobs package), so that no replacement
// happens here after masking.
func (cl *Client) UpdateJob(ctx context.Context, baseURL string, jobID int64, jobToken string, u Update, retry Retry) (UpdateAnswer, error) {
	path := "api/v4/jobs/" + strconv.FormatInt(jobID, 10)
	body, err := updateJSON(updateBody{Token: jobToken, Update: u}, MaxUpdateBytes)
	if err != nil {
		return UpdateAnswer{}, fmt.Errorf("%s %s: encoding the request: %w", http.MethodPut, path, err)
	}
	c := call{method: http.MethodPut, base: baseURL, path: path, body: body, ctype: "application/json", retry: retry}
	resp, err := cl.do(ctx, c)
	if err != nil {
		return UpdateAnswer{}, fmt.Errorf("job %d: updating the state: %w", jobID, err)
	}
	ans := UpdateAnswer{Status: resp.Header.Get("Job-Status")}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusAccepted, http.StatusNoContent:
		drain(resp)
		return ans, nil
	case http.StatusForbidden:
		drain(resp)
		return ans, fmt.Errorf("job %d: the job token is no longer valid: %w", jobID, ErrForbidden)
	default:
		return ans, fmt.Errorf("job %d: updating the state: %w", jobID, unexpected(http.MethodPut, resp))
	}
}

// CutNote is the first line of a trace cut to fit MaxUpdateBytes.
const CutNote = "[trace cut to fit the coordinator's 8 MB request limit: %d bytes dropped from the start]\n"

// updateJSON encodes b, cutting the front of its trace until the body is at
// most limit bytes long.
func updateJSON(b updateBody, limit int) ([]byte, error) {
	body, err := encodeJSON(b)
	if err != nil || len(body) <= limit || b.Trace == nil {
		return body, err
	}
	trace := strings.ToValidUTF8(*b.Trace, string(utf8.RuneError))
	var empty string
	b.Trace = &empty
	rest, err := encodeJSON(b)
	if err != nil {
		return nil, err
	}
	// The note's number has at most 20 digits; every rune is counted at its
	// longest encoding, so the first cut nearly always fits, and the loop
	// only guards the estimate.
	budget := limit - len(rest) - len(fmt.Sprintf(CutNote, uint64(1)<<63)) - 16
	for attempt := 0; attempt < 8 && budget > 0; attempt++ {
		cut := cutFront(trace, budget)
		t := fmt.Sprintf(CutNote, cut) + trace[cut:]
		b.Trace = &t
		if body, err = encodeJSON(b); err != nil || len(body) <= limit {
			return body, err
		}
		budget -= len(body) - limit + 1024
	}
	// Not even an empty trace fits: send the body as it is and let the
	// coordinator's answer say so.
	return body, nil
}

// cutFront returns where trace must start for the rest to take at most
// budget bytes as a JSON string's contents: a rune boundary, moved on to the
// start of the next line when that is near, so the kept trace starts with a
// whole line.
func cutFront(trace string, budget int) int {
	cut, used := len(trace), 0
	for cut > 0 {
		r, n := utf8.DecodeLastRuneInString(trace[:cut])
		if used+jsonLen(r, n) > budget {
			break
		}
		used += jsonLen(r, n)
		cut -= n
	}
	if cut == 0 {
		return 0
	}
	if nl := strings.IndexByte(trace[cut:], '\n'); nl >= 0 && nl < 4096 {
		cut += nl + 1
	}
	return cut
}

// jsonLen is at least the length of rune r, n bytes of UTF-8, inside a JSON
// string written by encoding/json without HTML escaping.
func jsonLen(r rune, n int) int {
	switch {
	case r == '"', r == '\\', r == '\n', r == '\r', r == '\t':
		return 2
	case r < 0x20, r == utf8.RuneError && n == 1, r == '\u2028', r == '\u2029':
		return 6 // \u001b, \ufffd, \u2028
	default:
		return n
	}
}
