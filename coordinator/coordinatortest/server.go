// Package coordinatortest is a coordinator test double: an HTTP server on
// 127.0.0.1 that implements the coordinator API the runner speaks, hands out
// queued jobs, and records what the runner sends.
//
// It comes in two flavors. Strict (New) is a GitLab-like coordinator that
// checks everything the runner sends (tokens, Content-Range contiguity,
// states and failure reasons, last_update, runner info). AlloyCI
// (NewFlavor(t, AlloyCI)) answers exactly as the real AlloyCI server does,
// quirks included (see /work/shared/coordinator-api.md), and records as a
// violation only what would break the real server or lose data there, and a
// request with a wrong job token.
//
// Both flavors take artifacts uploads and serve downloads (see SetArtifact,
// Artifact, Uploads, Downloads, HoldUploads): archives are streamed to files
// of the test's temporary directory, never held in memory.
// Every violation is reported as a test error when the test ends.
package coordinatortest

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alloyci/hardened-runner/coordinator"
)

// RegistrationToken is the registration token the double accepts.
const RegistrationToken = "registration-token-for-tests"

// waitLimit bounds every wait, so a broken runner fails the test instead of
// hanging it. It is a safety net, not an assertion about time.
const waitLimit = 60 * time.Second

// Flavor is the kind of coordinator a Server plays.
type Flavor string

// The flavors.
const (
	// Strict is a GitLab-like coordinator that checks everything.
	Strict Flavor = "strict"
	// AlloyCI is the real AlloyCI server, quirks included.
	AlloyCI Flavor = "alloyci"
)

// Flavors lists both flavors, for table tests: Strict, AlloyCI.
func Flavors() []Flavor { return []Flavor{Strict, AlloyCI} }

// Server is the coordinator test double.
type Server struct {
	// URL is the runner url to use, e.g. http://127.0.0.1:PORT/.
	URL string

	t      testing.TB
	srv    *httptest.Server
	flavor Flavor

	mu            sync.Mutex
	registrations []Registration
	nextRunnerID  int64
	changed       chan struct{}
	runners       map[string]*runner
	jobs          map[int64]*job
	nextID        int64
	nextUpdate    int
	inFlight      int
	maxFlight     int
	calls         int
	violations    []string

	dir      string               // the archives the double keeps
	arts     map[int64]*artifacts // by job id
	hold     chan struct{}        // closed to release held uploads
	held     int                  // uploads waiting for hold
	uploaded atomic.Int64         // upload body bytes read
}

type runner struct {
	token      string
	id         int64
	tags       []string
	queue      []*job
	lastUpdate string
	requests   int
	inFlight   int
	maxFlight  int
}

type job struct {
	id          int64
	token       string
	payload     []byte // the JSON the double answers the job request with
	runnerToken string
	trace       []byte
	status      string
	revoked     bool
	final       bool
	state       string
	reason      string
	states      []string
	patches     int
	ranges      int
	finalTries  int
	traceInPut  bool
	failFinal   []int
	loseAt      int

	patched     int
	live        []byte  // AlloyCI: every chunk appended, never dropped
	cache       []byte  // AlloyCI: the server's live trace cache, dropped by a PUT with a trace
	stored      *string // AlloyCI: the trace of the last PUT that carried one
	puts        map[string]int
	startResets int
	maxPut      int
	tooLarge    int
}

// Job is what the double knows about a job.
type Job struct {
	// Trace is the trace as the coordinator holds it. For AlloyCI that is
	// what the server shows (builds.ex get_trace): the live trace cache
	// while the job runs, the stored trace (Stored) otherwise.
	Trace string
	// Final is true once a final state was recorded.
	Final         bool
	State         string
	FailureReason string
	// States lists every state the runner reported, in order.
	States []string
	// Patches counts accepted trace chunks (202); RangeErrors the 416
	// answers (never, for AlloyCI).
	Patches, RangeErrors int
	// FinalAttempts counts PUTs with a final state, failed ones included.
	FinalAttempts int
	// TraceInUpdate is true when a final PUT carried the whole trace.
	// FailureReason is recorded for AlloyCI too, though the server ignores
	// it.
	TraceInUpdate bool

	// Patched is the total bytes of all PATCH trace bodies received,
	// accepted or not.
	Patched int
	// Live is, for AlloyCI, the live trace: every non-empty chunk appended
	// after a "\n", as the server does (kept here even after the server
	// would drop its cache, so tests can read it); for Strict, the
	// assembled trace (= Trace).
	Live string
	// Stored is the trace the server keeps for the finished job: for
	// AlloyCI the trace of the last PUT that carried one ("" if none); for
	// Strict the final PUT's trace if it carried one, else the assembled
	// trace.
	Stored string
	// Puts counts the PUTs received, by state ("running", "success",
	// "failed", ...; "" when the body named none), answered or not.
	Puts map[string]int
	// StartResets counts, for AlloyCI, PUTs with state running on a running
	// job: each resets the job's start time on the real server.
	StartResets int
	// LargestPut is the length of the longest PUT body received, answered
	// or not; TooLarge counts the PUTs answered 413 (see MaxJSONBody).
	LargestPut, TooLarge int
}

// New starts a Strict double on 127.0.0.1; it stops, and reports protocol
// violations, when the test ends.
func New(t testing.TB) *Server { return NewFlavor(t, Strict) }

// NewFlavor starts a double of flavor f on 127.0.0.1; it stops, and reports
// protocol violations, when the test ends.
func NewFlavor(t testing.TB, f Flavor) *Server {
	if f != Strict && f != AlloyCI {
		t.Fatalf("coordinatortest: unknown flavor %q", f)
	}
	s := &Server{
		t:       t,
		flavor:  f,
		changed: make(chan struct{}),
		runners: make(map[string]*runner),
		jobs:    make(map[int64]*job),
		nextID:  1000,
		dir:     t.TempDir(),
		arts:    make(map[int64]*artifacts),
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.Listener = l
	s.srv.Start()
	s.URL = s.srv.URL + "/"
	t.Cleanup(func() {
		s.srv.CloseClientConnections()
		s.srv.Close()
		for _, v := range s.Violations() {
			t.Errorf("coordinator double: protocol violation: %s", v)
		}
	})
	return s
}

// Flavor says which coordinator s plays.
func (s *Server) Flavor() Flavor { return s.flavor }

// AddRunner makes the double know a runner token.
func (s *Server) AddRunner(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runners[token] == nil {
		s.addRunnerLocked(token, 0, nil)
	}
}

func (s *Server) addRunnerLocked(token string, id int64, tags []string) *runner {
	if id == 0 {
		s.nextRunnerID++
		id = s.nextRunnerID
	}
	r := &runner{token: token, id: id, tags: tags}
	s.runners[token] = r
	return r
}

// Enqueue queues j for the runner with runnerToken and returns its id. A zero
// ID and an empty token are filled in. The payload is j as given, in both
// flavors; EnqueueSpec renders a job the way each flavor does.
func (s *Server) Enqueue(runnerToken string, j coordinator.Job) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runners[runnerToken] == nil {
		s.t.Fatalf("Enqueue: unknown runner token")
	}
	if j.ID == 0 {
		s.nextID++
		j.ID = s.nextID
	}
	if j.Token == "" {
		j.Token = jobToken(j.ID)
	}
	payload, err := json.Marshal(j)
	if err != nil {
		s.t.Fatalf("Enqueue: %v", err)
	}
	return s.enqueueLocked(runnerToken, j.ID, j.Token, payload)
}

func jobToken(id int64) string { return fmt.Sprintf("job-token-%d-secret", id) }

func (s *Server) enqueueLocked(runnerToken string, id int64, token string, payload []byte) int64 {
	r := s.runners[runnerToken]
	j := &job{id: id, token: token, payload: append(payload, '\n'), runnerToken: runnerToken,
		status: "pending", loseAt: -1, puts: make(map[string]int)}
	r.queue = append(r.queue, j)
	s.jobs[id] = j
	a := s.artifactsLocked(id)
	a.token, a.declares, a.enqueued = token, declaresArtifacts(payload), true
	s.notifyLocked()
	return id
}

// Cancel marks the job canceled (Strict: status "canceled"; AlloyCI:
// "cancelled", and only while the job is pending or running, as the real
// server's pipeline cancel does): the next trace or state answer says so.
func (s *Server) Cancel(id int64) {
	s.edit(id, func(j *job) {
		if s.flavor == AlloyCI {
			if j.status == "pending" || j.status == "running" {
				j.status = statusCancelled
			}
			return
		}
		j.status = "canceled"
	})
}

// Revoke makes the job's token invalid: every later call about it gets 403.
func (s *Server) Revoke(id int64) { s.edit(id, func(j *job) { j.revoked = true }) }

// FailFinalUpdates makes the next PUTs with a final state fail, one per code:
// an HTTP status, or 0 to drop the connection without an answer.
func (s *Server) FailFinalUpdates(id int64, codes ...int) {
	s.edit(id, func(j *job) { j.failFinal = append(j.failFinal, codes...) })
}

// LoseTraceOnce makes the double lose the trace past keep bytes once: the
// first chunk that reaches past keep is answered 416 with Range 0-keep, as if
// the coordinator had kept only that much. AlloyCI never answers 416: there
// the live trace is cut to keep bytes once, silently (202 as always), as a
// lost cache would be.
func (s *Server) LoseTraceOnce(id int64, keep int) { s.edit(id, func(j *job) { j.loseAt = keep }) }

func (s *Server) edit(id int64, f func(*job)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[id]
	if j == nil {
		s.t.Fatalf("unknown job %d", id)
	}
	f(j)
	s.notifyLocked()
}

// Job returns what the double knows about job id.
func (s *Server) Job(id int64) Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[id]
	if j == nil {
		s.t.Fatalf("unknown job %d", id)
	}
	out := Job{
		Trace: string(j.trace), Final: j.final, State: j.state, FailureReason: j.reason,
		States: append([]string(nil), j.states...), Patches: j.patches, RangeErrors: j.ranges,
		FinalAttempts: j.finalTries, TraceInUpdate: j.traceInPut,
		Patched: j.patched, Puts: make(map[string]int, len(j.puts)), StartResets: j.startResets,
		LargestPut: j.maxPut, TooLarge: j.tooLarge,
	}
	for k, v := range j.puts {
		out.Puts[k] = v
	}
	if s.flavor == AlloyCI {
		out.Live = string(j.live)
		if j.stored != nil {
			out.Stored = *j.stored
		}
		// What the server shows: the live cache while the job runs, the
		// stored trace otherwise (builds.ex get_trace).
		out.Trace = out.Stored
		if j.status == "running" {
			out.Trace = string(j.cache)
		}
	} else {
		out.Live, out.Stored = out.Trace, out.Trace
	}
	return out
}

// Registrations lists every POST /runners the double received, in order.
func (s *Server) Registrations() []Registration {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Registration, len(s.registrations))
	copy(out, s.registrations)
	return out
}

// Requests counts the job requests of the runner with token.
func (s *Server) Requests(token string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.runners[token]; r != nil {
		return r.requests
	}
	return 0
}

// Calls counts every request the double served.
func (s *Server) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// Queued counts the jobs still waiting for the runner with token.
func (s *Server) Queued(token string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.runners[token]; r != nil {
		return len(r.queue)
	}
	return 0
}

// InFlight counts the jobs handed out and not yet finished, overall and for
// the runner with token.
func (s *Server) InFlight(token string) (total, runner int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.runners[token]; r != nil {
		runner = r.inFlight
	}
	return s.inFlight, runner
}

// MaxInFlight is the most jobs that were handed out and not yet finished at
// once, overall and for the runner with token.
func (s *Server) MaxInFlight(token string) (total, runner int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.runners[token]; r != nil {
		runner = r.maxFlight
	}
	return s.maxFlight, runner
}

// Violations lists the protocol violations seen so far.
func (s *Server) Violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.violations...)
}

// TakeViolations returns the violations seen so far and forgets them, so a
// test that provokes some on purpose can check them and still pass.
func (s *Server) TakeViolations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.violations
	s.violations = nil
	return v
}

// Await waits until cond holds, re-checking after every request the double
// serves (and every Step call); it fails the test if that takes unreasonably
// long. cond must not be called with the double's lock held, and is not.
func (s *Server) Await(what string, cond func() bool) {
	s.t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond) // for conditions outside the double
	defer tick.Stop()
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-tick.C:
		case <-deadline.C:
			s.t.Fatalf("gave up waiting for %s", what)
		}
	}
}

// AwaitFinal waits for job id's final state and returns the job.
func (s *Server) AwaitFinal(id int64) Job {
	s.t.Helper()
	s.Await(fmt.Sprintf("job %d to finish", id), func() bool { return s.Job(id).Final })
	return s.Job(id)
}

func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Server) violate(format string, args ...any) {
	s.violations = append(s.violations, fmt.Sprintf(format, args...))
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if id, ok := artifactsID(r); ok {
		s.serveArtifacts(w, r, id) // streamed, not read here
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 32<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.notifyLocked()
	s.calls++
	if s.tooLargeLocked(w, r, body) {
		return
	}
	if s.flavor == AlloyCI {
		s.serveAlloyCI(w, r, body)
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/api/v4/")
	switch {
	case r.Method == http.MethodPost && path == "runners":
		s.register(w, body)
	case r.Method == http.MethodPost && path == "runners/verify":
		s.verify(w, body)
	case r.Method == http.MethodDelete && path == "runners":
		s.unregister(w, body)
	case r.Method == http.MethodPost && path == "jobs/request":
		s.request(w, body)
	case r.Method == http.MethodPatch && strings.HasPrefix(path, "jobs/") && strings.HasSuffix(path, "/trace"):
		s.patch(w, r, strings.TrimSuffix(strings.TrimPrefix(path, "jobs/"), "/trace"), body)
	case r.Method == http.MethodPut && strings.HasPrefix(path, "jobs/"):
		s.update(w, strings.TrimPrefix(path, "jobs/"), body)
	default:
		s.violate("unexpected %s %s", r.Method, r.URL.Path)
		http.NotFound(w, r)
	}
}

// MaxJSONBody is the longest JSON request body the double takes: AlloyCI's
// endpoint.ex runs Plug.Parsers with the default :length of 8_000_000
// bytes, and answers 413 to a longer body before any controller sees it.
// Both flavors enforce it.
const MaxJSONBody = 8_000_000

// tooLargeLocked records the size of a PUT job's body and answers 413, a
// violation (the runner does not retry it: a final state would be lost), to
// a JSON body longer than MaxJSONBody.
func (s *Server) tooLargeLocked(w http.ResponseWriter, r *http.Request, body []byte) bool {
	path := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/api/v4/"), "/")
	var j *job
	if r.Method == http.MethodPut && strings.HasPrefix(path, "jobs/") {
		if id, err := strconv.ParseInt(strings.TrimPrefix(path, "jobs/"), 10, 64); err == nil {
			j = s.jobs[id]
		}
	}
	if j != nil {
		j.maxPut = max(j.maxPut, len(body))
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	typ, sub, _ := strings.Cut(mt, "/")
	if len(body) <= MaxJSONBody || typ != "application" || (sub != "json" && !strings.HasSuffix(sub, "+json")) {
		return false
	}
	s.violate("%s %s: JSON body of %d bytes: AlloyCI answers 413 to more than %d (Plug.Parsers :length)",
		r.Method, r.URL.Path, len(body), MaxJSONBody)
	if j != nil {
		j.tooLarge++
	}
	if r.Method == http.MethodPost && path == "runners" {
		s.registrations = append(s.registrations, Registration{Status: http.StatusRequestEntityTooLarge})
	}
	w.WriteHeader(http.StatusRequestEntityTooLarge)
	return true
}

func (s *Server) register(w http.ResponseWriter, body []byte) {
	var req struct {
		Token string `json:"token"`
	}
	rec := recordRegistration(body)
	defer func() { s.registrations = append(s.registrations, rec) }()
	if err := json.Unmarshal(body, &req); err != nil {
		s.violate("register: body is not JSON: %v", err)
		rec.Status = http.StatusBadRequest
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if req.Token != RegistrationToken {
		rec.Status = http.StatusForbidden
		w.WriteHeader(http.StatusForbidden)
		return
	}
	s.nextID++
	tok := fmt.Sprintf("runner-token-%d", s.nextID)
	s.addRunnerLocked(tok, s.nextID, splitTags(rec.TagList))
	rec.Status, rec.ID, rec.RunnerToken = http.StatusCreated, s.nextID, tok
	rec.StoredRunUntagged = rec.RunUntagged != nil && *rec.RunUntagged
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(registered{ID: s.nextID, Token: tok})
}

func (s *Server) verify(w http.ResponseWriter, body []byte) {
	var req struct{ Token string }
	_ = json.Unmarshal(body, &req)
	if s.runners[req.Token] == nil {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) unregister(w http.ResponseWriter, body []byte) {
	var req struct{ Token string }
	_ = json.Unmarshal(body, &req)
	if s.runners[req.Token] == nil {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	delete(s.runners, req.Token)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) request(w http.ResponseWriter, body []byte) {
	var req struct {
		Token      string           `json:"token"`
		Info       coordinator.Info `json:"info"`
		LastUpdate string           `json:"last_update"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		s.violate("job request: body is not JSON: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r := s.runners[req.Token]
	if r == nil {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	r.requests++
	in := req.Info
	if in.Name != "alloy-runner" || in.Executor != "shell" || in.Shell != "bash" ||
		in.Version == "" || in.Platform == "" || in.Architecture == "" {
		s.violate("job request: info %+v does not describe alloy-runner with the shell executor and bash", in)
	}
	if req.LastUpdate != r.lastUpdate {
		s.violate("job request: last_update %q, want the %q the coordinator sent last", req.LastUpdate, r.lastUpdate)
	}
	if len(r.queue) == 0 {
		s.nextUpdate++
		r.lastUpdate = "update-" + strconv.Itoa(s.nextUpdate)
		w.Header().Set("X-GitLab-Last-Update", r.lastUpdate)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	j := r.queue[0]
	r.queue = r.queue[1:]
	s.startLocked(r, j)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(j.payload)
}

// startLocked marks j running and handed to r.
func (s *Server) startLocked(r *runner, j *job) {
	j.status = "running"
	r.inFlight++
	r.maxFlight = max(r.maxFlight, r.inFlight)
	s.inFlight++
	s.maxFlight = max(s.maxFlight, s.inFlight)
}

// finishLocked counts j out of the jobs in flight.
func (s *Server) finishLocked(j *job) {
	s.inFlight--
	if r := s.runners[j.runnerToken]; r != nil {
		r.inFlight--
	}
}

// updateBody is a PUT /jobs/:id body.
type updateBody struct {
	Token         string  `json:"token"`
	State         string  `json:"state"`
	FailureReason string  `json:"failure_reason,omitempty"`
	Trace         *string `json:"trace,omitempty"`
}

func (s *Server) lookup(w http.ResponseWriter, idText string) *job {
	id, err := strconv.ParseInt(idText, 10, 64)
	j := s.jobs[id]
	if err != nil || j == nil {
		s.violate("call about unknown job %q", idText)
		w.WriteHeader(http.StatusNotFound)
		return nil
	}
	return j
}

func (s *Server) patch(w http.ResponseWriter, r *http.Request, idText string, body []byte) {
	j := s.lookup(w, idText)
	if j == nil {
		return
	}
	id := j.id
	j.patched += len(body)
	if got := r.Header.Get("JOB-TOKEN"); got != j.token {
		s.violate("job %d: trace chunk without the job's JOB-TOKEN", id)
		w.WriteHeader(http.StatusForbidden)
		return
	}
	if j.revoked {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		s.violate("job %d: trace chunk with Content-Type %q, want text/plain", id, ct)
	}
	if j.final {
		s.violate("job %d: trace chunk after the final state", id)
	}
	lo, hi, ok := strings.Cut(r.Header.Get("Content-Range"), "-")
	start, err1 := strconv.Atoi(lo)
	end, err2 := strconv.Atoi(hi)
	if !ok || err1 != nil || err2 != nil {
		s.violate("job %d: malformed Content-Range %q", id, r.Header.Get("Content-Range"))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if end != start+len(body)-1 {
		s.violate("job %d: Content-Range %d-%d for a chunk of %d bytes", id, start, end, len(body))
	}
	w.Header().Set("Job-Status", j.status)
	if start != len(j.trace) {
		j.ranges++
		w.Header().Set("Range", fmt.Sprintf("0-%d", len(j.trace)))
		w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		return
	}
	j.trace = append(j.trace, body...)
	if j.loseAt >= 0 && len(j.trace) > j.loseAt {
		j.trace = j.trace[:j.loseAt]
		j.loseAt = -1
		j.ranges++
		w.Header().Set("Range", fmt.Sprintf("0-%d", len(j.trace)))
		w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		return
	}
	// An empty chunk is a keep-alive (the runner asks for Job-Status when it
	// has no new output), as GitLab accepts it; it is not counted as a chunk.
	if len(body) > 0 {
		j.patches++
	}
	w.Header().Set("Range", fmt.Sprintf("0-%d", len(j.trace)))
	w.WriteHeader(http.StatusAccepted)
}

func (s *Server) update(w http.ResponseWriter, idText string, body []byte) {
	j := s.lookup(w, idText)
	if j == nil {
		return
	}
	id := j.id
	var req updateBody
	if err := json.Unmarshal(body, &req); err != nil {
		s.violate("job %d: update body is not JSON: %v", id, err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	j.puts[req.State]++
	if req.Token != j.token {
		s.violate("job %d: update without the job's token", id)
		w.WriteHeader(http.StatusForbidden)
		return
	}
	if j.revoked {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	switch req.State {
	case coordinator.StateRunning:
		if req.FailureReason != "" {
			s.violate("job %d: state running with failure_reason %q", id, req.FailureReason)
		}
		if j.final {
			s.violate("job %d: state running after the final state %s", id, j.state)
		}
		j.states = append(j.states, req.State)
		w.Header().Set("Job-Status", j.status)
		w.WriteHeader(http.StatusOK)
		return
	case coordinator.StateSuccess:
		if req.FailureReason != "" {
			s.violate("job %d: state success with failure_reason %q", id, req.FailureReason)
		}
	case coordinator.StateFailed:
		switch req.FailureReason {
		case coordinator.ScriptFailure, coordinator.RunnerSystemFailure, coordinator.JobExecutionTimeout:
		case "":
			if j.status != "canceled" {
				s.violate("job %d: state failed without failure_reason", id)
			}
		default:
			s.violate("job %d: unknown failure_reason %q", id, req.FailureReason)
		}
	default:
		s.violate("job %d: unknown state %q", id, req.State)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if j.failFinalOnDemand(w) {
		return
	}
	if j.final && (j.state != req.State || j.reason != req.FailureReason) {
		s.violate("job %d: final state changed from %s/%s to %s/%s", id, j.state, j.reason, req.State, req.FailureReason)
	}
	if req.Trace != nil {
		j.trace = []byte(*req.Trace)
		j.traceInPut = true
	}
	j.states = append(j.states, req.State)
	if !j.final {
		j.final = true
		if j.status == "running" {
			j.status = req.State
		}
		s.finishLocked(j)
	}
	j.state, j.reason = req.State, req.FailureReason
	w.Header().Set("Job-Status", j.status)
	w.WriteHeader(http.StatusOK)
}

// failFinalOnDemand counts a final update and fails it with the next code
// FailFinalUpdates queued (0: the connection dropped), reporting whether it
// did.
func (j *job) failFinalOnDemand(w http.ResponseWriter) bool {
	j.finalTries++
	if len(j.failFinal) == 0 {
		return false
	}
	code := j.failFinal[0]
	j.failFinal = j.failFinal[1:]
	if code == 0 {
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			_ = conn.Close()
			return true
		}
		code = http.StatusBadGateway
	}
	w.WriteHeader(code)
	return true
}
