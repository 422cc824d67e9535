package coordinatortest

// The AlloyCI flavor: the answers of the real AlloyCI server (repository
// AlloyCI/alloy_ci, lib/alloy_ci/...), quirks included. Each handler follows
// the order in which the real server checks things; the comments name the
// source of each rule. A violation is recorded only where the real server
// would break (500, 400) or lose data.

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

const (
	statusCancelled = "cancelled" // pipelines.ex cancel: two l's
	// readBodyLimit is Plug's read_body default length: a longer trace
	// chunk makes `{:ok, trace, conn} = read_body(conn)` fail to match.
	readBodyLimit = 8_000_000
)

// phoenixParams returns the request's params as the endpoint's Plug.Parsers
// (parsers: urlencoded, multipart, json; pass: */*) leave them: the body is
// parsed, and consumed, only for those content types. status is non-zero
// when the parser refuses the body.
func phoenixParams(r *http.Request, body []byte) (params map[string]any, consumed bool, status int) {
	params = map[string]any{}
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	default:
		return params, false, 0
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return params, false, 0
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return params, false, http.StatusUnsupportedMediaType
	}
	typ, sub, _ := strings.Cut(mt, "/")
	switch {
	case typ == "application" && (sub == "json" || strings.HasSuffix(sub, "+json")):
		if len(strings.TrimSpace(string(body))) == 0 {
			return params, true, 0
		}
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			return params, true, http.StatusBadRequest
		}
		if m, ok := v.(map[string]any); ok {
			return m, true, 0
		}
		params["_json"] = v
		return params, true, 0
	case typ == "application" && sub == "x-www-form-urlencoded":
		q, err := url.ParseQuery(string(body))
		if err != nil {
			return params, true, http.StatusBadRequest
		}
		for k, v := range q {
			params[k] = v[0]
		}
		return params, true, 0
	case typ == "multipart":
		return params, true, 0 // not modelled: no params
	}
	return params, false, 0
}

// acceptable is the api pipeline's plug(:accepts, ["json", "text"]).
func acceptable(h string) bool {
	if strings.TrimSpace(h) == "" {
		return true
	}
	for _, part := range strings.Split(h, ",") {
		mt, _, _ := strings.Cut(part, ";")
		switch strings.ToLower(strings.TrimSpace(mt)) {
		case "*/*", "application/*", "text/*", "application/json", "text/plain":
			return true
		}
	}
	return false
}

func segments(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (s *Server) serveAlloyCI(w http.ResponseWriter, r *http.Request, body []byte) {
	params, consumed, status := phoenixParams(r, body)
	seg := segments(r.URL.Path)
	if len(seg) < 2 || seg[0] != "api" || seg[1] != "v4" {
		seg = nil
	} else {
		seg = seg[2:]
	}
	if status != 0 { // Plug.Parsers, in the endpoint, before the router
		s.violate("%s %s: Content-Type %q with a body its parser refuses (AlloyCI answers %d)",
			r.Method, r.URL.Path, r.Header.Get("Content-Type"), status)
		if r.Method == http.MethodPost && len(seg) == 1 && seg[0] == "runners" {
			s.registrations = append(s.registrations, Registration{Status: status})
		}
		w.WriteHeader(status)
		return
	}
	is := func(method string, path ...string) bool {
		if r.Method != method || len(seg) != len(path) {
			return false
		}
		for i, p := range path {
			if p != "*" && seg[i] != p {
				return false
			}
		}
		return true
	}
	var handle func()
	switch {
	case is(http.MethodPost, "runners"):
		handle = func() { s.alloyRegister(w, params) }
	case is(http.MethodPost, "runners", "verify"):
		handle = func() { s.alloyVerify(w, params) }
	case is(http.MethodDelete, "runners"):
		handle = func() { s.alloyUnregister(w, params) }
	case is(http.MethodPost, "jobs", "request"):
		handle = func() { s.alloyRequest(w, params) }
	case is(http.MethodPatch, "jobs", "*", "trace"):
		handle = func() { s.alloyTrace(w, r, seg[1], body, consumed) }
	case is(http.MethodPut, "jobs", "*"):
		handle = func() { s.alloyUpdate(w, seg[1], params) }
	default:
		s.violate("unexpected %s %s", r.Method, r.URL.Path)
		http.NotFound(w, r)
		return
	}
	if !acceptable(r.Header.Get("Accept")) {
		s.violate("%s %s: Accept %q names neither JSON nor text (AlloyCI answers 406)", r.Method, r.URL.Path, r.Header.Get("Accept"))
		w.WriteHeader(http.StatusNotAcceptable)
		return
	}
	handle()
}

// castString is Ecto's :string cast of a changeset field: nil and "" are
// no value, a string is itself, anything else fails.
func castString(v any) (string, bool) {
	switch x := v.(type) {
	case nil:
		return "", true
	case string:
		return x, true
	}
	return "", false
}

// castBool is Ecto's :boolean cast.
func castBool(v any) (bool, bool) {
	switch x := v.(type) {
	case nil:
		return false, true
	case bool:
		return x, true
	case string:
		switch x {
		case "true", "1":
			return true, true
		case "false", "0":
			return false, true
		case "":
			return false, true
		}
	}
	return false, false
}

// truthy is Elixir's truthiness: everything but nil and false.
func truthy(v any) bool { return v != nil && v != false }

// alloyRegister is RunnerEventController.register and Runners.create.
func (s *Server) alloyRegister(w http.ResponseWriter, params map[string]any) {
	rec := registrationFrom(params)
	answer := func(code int) {
		rec.Status = code
		s.registrations = append(s.registrations, rec)
		w.WriteHeader(code)
	}
	token, hasToken := params["token"]
	info, hasInfo := params["info"]
	if !hasToken || !hasInfo {
		// create(%{"token" => token, "info" => runner_info}) does not match.
		s.violate("register: a body without token or info: AlloyCI raises (500)")
		answer(http.StatusInternalServerError)
		return
	}
	if token != any(RegistrationToken) {
		switch token.(type) {
		case nil: // Repo.get_by(token: nil) raises
			s.violate("register: token null: AlloyCI raises (500)")
			answer(http.StatusInternalServerError)
		case string: // no project with that token
			answer(http.StatusForbidden)
		default: // Ecto.Query.CastError
			s.violate("register: token is not a string: AlloyCI answers 400")
			answer(http.StatusBadRequest)
		}
		return
	}
	// runner_params: runner_info["..."] works on a map or nil only.
	var infoMap map[string]any
	switch x := info.(type) {
	case nil:
	case map[string]any:
		infoMap = x
	default:
		s.violate("register: info is not an object: AlloyCI raises (500)")
		answer(http.StatusInternalServerError)
		return
	}
	var tags []string
	switch x := params["tag_list"].(type) {
	case nil:
	case bool:
		if x { // String.split(true, ",") raises
			s.violate("register: tag_list is not a string: AlloyCI raises (500)")
			answer(http.StatusInternalServerError)
			return
		}
	case string:
		tags = splitTags(x)
	default:
		s.violate("register: tag_list is not a string: AlloyCI raises (500)")
		answer(http.StatusInternalServerError)
		return
	}
	locked := params["locked"]
	if !truthy(locked) {
		locked = false
	}
	runUntagged := params["run_untagged"]
	if !truthy(runUntagged) {
		runUntagged = true // params["run_untagged"] || true
	}
	// Runner.changeset: cast, then validate_required(description name token).
	valid := true
	required := func(v any) {
		str, ok := castString(v)
		valid = valid && ok && strings.TrimSpace(str) != ""
	}
	optional := func(v any) {
		_, ok := castString(v)
		valid = valid && ok
	}
	required(params["description"])
	required(infoMap["name"])
	optional(infoMap["architecture"])
	optional(infoMap["platform"])
	optional(infoMap["version"])
	_, okLocked := castBool(locked)
	stored, okUntagged := castBool(runUntagged)
	if !valid || !okLocked || !okUntagged {
		answer(http.StatusForbidden) // save/1 returns nil
		return
	}
	s.nextID++
	tok := fmt.Sprintf("runner-token-%d", s.nextID)
	s.addRunnerLocked(tok, s.nextID, tags)
	rec.ID, rec.RunnerToken, rec.StoredRunUntagged = s.nextID, tok, stored
	rec.Status = http.StatusCreated
	s.registrations = append(s.registrations, rec)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(registered{ID: s.nextID, Token: tok})
}

// runnerFor looks a runner token up as Repo.get_by(token: ...) does: nil
// raises (500), a non-string fails to cast (400). It answers and returns nil
// on those.
func (s *Server) runnerFor(w http.ResponseWriter, what string, token any) (r *runner, answered bool) {
	switch x := token.(type) {
	case nil:
		s.violate("%s: no runner token: AlloyCI raises (500)", what)
		w.WriteHeader(http.StatusInternalServerError)
		return nil, true
	case string:
		return s.runners[x], false
	default:
		s.violate("%s: the runner token is not a string: AlloyCI answers 400", what)
		w.WriteHeader(http.StatusBadRequest)
		return nil, true
	}
}

// alloyVerify is RunnerEventController.verify.
func (s *Server) alloyVerify(w http.ResponseWriter, params map[string]any) {
	r, answered := s.runnerFor(w, "verify", params["token"])
	switch {
	case answered:
	case r == nil:
		w.WriteHeader(http.StatusForbidden)
	default:
		w.WriteHeader(http.StatusOK)
	}
}

// alloyUnregister is RunnerEventController.delete and Runners.delete_by.
func (s *Server) alloyUnregister(w http.ResponseWriter, params map[string]any) {
	token, ok := params["token"]
	if !ok { // delete(conn, %{"token" => token}, ...) does not match
		s.violate("unregister: no token: AlloyCI answers 400")
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r, answered := s.runnerFor(w, "unregister", token)
	switch {
	case answered:
	case r == nil:
		w.WriteHeader(http.StatusForbidden)
	default:
		delete(s.runners, r.token)
		w.WriteHeader(http.StatusNoContent)
	}
}

// alloyRequest is BuildsEventController.request.
func (s *Server) alloyRequest(w http.ResponseWriter, params map[string]any) {
	r, answered := s.runnerFor(w, "job request", params["token"])
	if answered {
		return
	}
	if r == nil {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	r.requests++
	// Runners.update_info(runner, params["info"]): casting anything but a
	// map raises Ecto.CastError, a 400.
	if _, ok := params["info"].(map[string]any); !ok {
		s.violate("job request: info is not an object: AlloyCI answers 400")
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	// Only pending jobs are handed out: a cancelled one never is.
	for len(r.queue) > 0 && r.queue[0].status != "pending" {
		r.queue = r.queue[1:]
	}
	if len(r.queue) == 0 {
		// put_req_header("x-gitlab-last-update", ...): on the request, so
		// the answer carries none.
		w.WriteHeader(http.StatusNoContent)
		return
	}
	j := r.queue[0]
	r.queue = r.queue[1:]
	s.startLocked(r, j) // start_build: assigned and running before the answer
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(j.payload)
}

// alloyJob resolves a job id as Builds.get(id) does: an id that is not an
// integer fails to cast (400), an unknown one makes build.token raise
// (500). code is the answer to give when j is nil.
func (s *Server) alloyJob(idText string) (j *job, code int) {
	id, err := strconv.ParseInt(idText, 10, 64)
	if err != nil {
		return nil, http.StatusBadRequest
	}
	if j = s.jobs[id]; j == nil {
		return nil, http.StatusInternalServerError
	}
	return j, 0
}

// alloyTrace is BuildsEventController.trace and Builds.append_trace.
func (s *Server) alloyTrace(w http.ResponseWriter, r *http.Request, idText string, body []byte, consumed bool) {
	j, code := s.alloyJob(idText)
	if j != nil {
		j.patched += len(body)
	}
	// [token] = get_req_header(conn, "job-token"): no header raises.
	// Repeated headers arrive joined, as one.
	tokens := r.Header.Values("Job-Token")
	if len(tokens) == 0 {
		s.violate("trace chunk for job %s without a JOB-TOKEN header: AlloyCI raises (500)", idText)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	// {:ok, trace, conn} = read_body(conn): longer bodies do not match.
	if !consumed && len(body) > readBodyLimit {
		s.violate("trace chunk for job %s of %d bytes: AlloyCI reads at most %d and raises (500)", idText, len(body), readBodyLimit)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if j == nil {
		s.violate("trace chunk for unknown job %q: AlloyCI answers %d", idText, code)
		w.WriteHeader(code)
		return
	}
	if strings.Join(tokens, ", ") != j.token {
		s.violate("job %d: trace chunk without the job's JOB-TOKEN", j.id)
		w.WriteHeader(http.StatusForbidden)
		return
	}
	if j.revoked {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	trace := body
	if consumed {
		if len(body) > 0 {
			s.violate("job %d: trace chunk sent as %q: AlloyCI parses the body as params and appends nothing", j.id, r.Header.Get("Content-Type"))
		}
		trace = nil
	}
	if j.final && len(trace) > 0 {
		s.violate("job %d: trace chunk after the final state: AlloyCI keeps it in its live cache for good", j.id)
	}
	if len(trace) > 0 { // append_trace(build, "") appends nothing
		j.live = append(append(j.live, '\n'), trace...)
		j.cache = append(append(j.cache, '\n'), trace...)
		if j.loseAt >= 0 && len(j.cache) > j.loseAt {
			j.cache = j.cache[:j.loseAt]
			j.live = j.live[:min(len(j.live), j.loseAt)]
			j.loseAt = -1
		}
	}
	j.patches++
	w.Header().Set("Job-Status", j.status)
	w.Header().Set("Range", "0-100")
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`{"message":"202 Trace was patched"}`))
}

// alloyUpdate is BuildsEventController.update, Builds.transition_status and
// Builds.update_trace.
func (s *Server) alloyUpdate(w http.ResponseWriter, idText string, params map[string]any) {
	token, hasToken := params["token"]
	state := ""
	if v := params["state"]; v != nil {
		state = fmt.Sprint(v)
	}
	j, code := s.alloyJob(idText)
	if j != nil {
		j.puts[state]++
	}
	if !hasToken { // update(conn, %{"id" => id, "token" => token} = params, ...)
		s.violate("update of job %s without a token (or not as JSON): AlloyCI answers 400", idText)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if j == nil {
		s.violate("update of unknown job %q: AlloyCI answers %d", idText, code)
		w.WriteHeader(code)
		return
	}
	id := j.id
	if token != any(j.token) {
		s.violate("job %d: update without the job's token", id)
		w.WriteHeader(http.StatusForbidden)
		return
	}
	if j.revoked {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	final := false
	switch state {
	case "running":
		s.violate("job %d: state running: AlloyCI resets the job's start time and re-runs the pipeline", id)
		if j.status == "running" {
			j.startResets++
		} else if j.status == "pending" {
			j.status = "running"
		}
	case "success", "failed":
		final = true
	default: // case params["state"] has no clause: CaseClauseError
		s.violate("job %d: unknown state %q: AlloyCI raises (500)", id, state)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	trace, hasTrace := params["trace"].(string)
	if final {
		if j.failFinalOnDemand(w) {
			return
		}
		if j.final && j.state != state {
			s.violate("job %d: final state changed from %s to %s: AlloyCI keeps %s", id, j.state, state, j.status)
		}
		if !hasTrace && j.stored == nil {
			s.violate("job %d: final state %s without the whole trace: AlloyCI keeps an empty log", id, state)
		}
		// transition_status: only created, pending, manual and running
		// jobs move; a cancelled or finished one keeps its status.
		if j.status == "running" || j.status == "pending" {
			j.status = state
		}
		if !j.final {
			j.final = true
			s.finishLocked(j)
		}
		j.state = state
		j.reason, _ = params["failure_reason"].(string) // recorded; AlloyCI ignores it
		j.traceInPut = j.traceInPut || hasTrace
	}
	j.states = append(j.states, state)
	if hasTrace { // update_trace: stored, and the live cache dropped
		j.stored = &trace
		j.cache = nil
	}
	w.WriteHeader(http.StatusOK)
}
