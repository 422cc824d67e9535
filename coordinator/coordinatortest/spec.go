package coordinatortest

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/alloyci/hardened-runner/coordinator"
)

// Variable is a job variable as a project's .alloy-ci.yml gives it. Value is
// a string, an int, a float64, a bool or nil (YAML's null).
type Variable struct {
	Key    string
	Value  any
	Public bool
}

// Spec is a job as a project's .alloy-ci.yml gives it; EnqueueSpec renders
// its payload the way the double's flavor does.
type Spec struct {
	// Name and Stage default to "test" and "test".
	Name, Stage       string
	RepoURL, Ref, SHA string
	Variables         []Variable
	// Script is the "script" step (before_script folded in).
	Script []string
	// AfterScript is the "after_script" step when non-empty (when: always,
	// allow_failure: true).
	AfterScript []string
	// Timeout is the job's limit in seconds; 0 means 3600. AlloyCI ignores
	// it: its payload always says 3600 (override with Raw if need be).
	Timeout int
	// Artifacts is the job's artifacts: entry, nil for none. AlloyCI
	// renders it as the map the user wrote ([{...}], only the fields set:
	// name, paths, untracked when true, when, expire_in; [null] when nil);
	// Strict as GitLab does (every field, when defaulting to on_success;
	// no artifacts key when nil). A job with artifacts takes an upload.
	Artifacts *coordinator.ArtifactsSpec
	// Cache is the job's cache: entry, nil for none, rendered as Artifacts.
	Cache *coordinator.CacheSpec
	// Dependencies are the jobs whose artifacts this one downloads. An
	// empty Token is filled in with the token the double knows for that id
	// (see SetArtifact), a nil File from the archive it keeps for it, if
	// any: AlloyCI says size 2500 whatever the size (builds.ex
	// map_dependency), Strict the real size.
	Dependencies []coordinator.Dependency
	// Raw is merged over the rendered payload's top-level keys, for
	// malformed-payload tests (e.g. {"steps": 5}); a value Omit removes
	// the key.
	Raw map[string]any
}

// Omit, as a value in Spec.Raw, removes that key from the payload.
var Omit any = omitted{}

type omitted struct{}

// Registration is a POST /runners the double received, as the runner sent
// it.
type Registration struct {
	Token, Description, TagList string
	// RunUntagged and Locked are nil when absent (or not booleans).
	RunUntagged, Locked *bool
	// Info is nil when absent (or not an object).
	Info map[string]any
	// Status is what the double answered.
	Status int

	// ID and RunnerToken are the runner's id and token when registered
	// (Status 201).
	ID          int64
	RunnerToken string
	// StoredRunUntagged is run_untagged as the server keeps it: AlloyCI
	// stores params["run_untagged"] || true, so never false; Strict keeps
	// what was sent (false when absent).
	StoredRunUntagged bool
}

type registered struct {
	ID    int64  `json:"id"`
	Token string `json:"token"`
}

// recordRegistration reads what it can of a registration body.
func recordRegistration(body []byte) Registration {
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	return registrationFrom(m)
}

func registrationFrom(m map[string]any) Registration {
	var rec Registration
	str := func(k string) string {
		if v, ok := m[k].(string); ok {
			return v
		}
		return ""
	}
	boolp := func(k string) *bool {
		if v, ok := m[k].(bool); ok {
			return &v
		}
		return nil
	}
	rec.Token, rec.Description, rec.TagList = str("token"), str("description"), str("tag_list")
	rec.RunUntagged, rec.Locked = boolp("run_untagged"), boolp("locked")
	if info, ok := m["info"].(map[string]any); ok {
		rec.Info = info
	}
	return rec
}

func splitTags(list string) []string {
	if list == "" {
		return nil
	}
	return strings.Split(list, ",")
}

// EnqueueSpec queues the job sp for the runner with runnerToken, rendered as
// the double's flavor renders a job, and returns its id.
func (s *Server) EnqueueSpec(runnerToken string, sp Spec) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.runners[runnerToken]
	if r == nil {
		s.t.Fatalf("EnqueueSpec: unknown runner token")
	}
	if sp.Name == "" {
		sp.Name = "test"
	}
	if sp.Stage == "" {
		sp.Stage = "test"
	}
	for _, v := range sp.Variables {
		switch v.Value.(type) {
		case string, int, int64, float64, bool, nil:
		default:
			s.t.Fatalf("EnqueueSpec: variable %s: value of type %T, want string, int, float64, bool or nil", v.Key, v.Value)
		}
	}
	s.nextID++
	id := s.nextID
	tok := jobToken(id)
	var p map[string]any
	if s.flavor == AlloyCI {
		p = renderAlloyCI(id, tok, r, sp)
	} else {
		p = renderStrict(id, tok, sp)
	}
	s.renderSpecsLocked(p, sp)
	for k, v := range sp.Raw {
		if _, ok := v.(omitted); ok {
			delete(p, k)
			continue
		}
		p[k] = v
	}
	payload, err := json.Marshal(p)
	if err != nil {
		s.t.Fatalf("EnqueueSpec: %v", err)
	}
	return s.enqueueLocked(runnerToken, id, tok, payload)
}

const (
	projectID    = 7
	projectName  = "app"
	projectOwner = "owner"
	pipelineID   = 3
	beforeSHA    = "0000000000000000000000000000000000000000"
)

func jobInfo(sp Spec) map[string]any {
	return map[string]any{"name": sp.Name, "stage": sp.Stage, "project_id": projectID, "project_name": projectName}
}

func gitInfo(sp Spec) map[string]any {
	return map[string]any{"repo_url": sp.RepoURL, "ref": sp.Ref, "sha": sp.SHA, "before_sha": beforeSHA, "ref_type": "branch"}
}

func variable(key string, value any, public bool) map[string]any {
	return map[string]any{"key": key, "value": value, "public": public}
}

func step(name string, script []string, timeout int, when string, allowFailure bool) map[string]any {
	if script == nil {
		script = []string{}
	}
	return map[string]any{"name": name, "script": script, "timeout": timeout, "when": when, "allow_failure": allowFailure}
}

// renderStrict renders sp as a GitLab-like coordinator does: string values,
// the job's own timeout, no image, services, artifacts, cache or
// dependencies.
func renderStrict(id int64, tok string, sp Spec) map[string]any {
	timeout := sp.Timeout
	if timeout == 0 {
		timeout = 3600
	}
	vars := []any{
		variable("CI", "true", true),
		variable("CI_JOB_ID", strconv.FormatInt(id, 10), true),
		variable("CI_JOB_TOKEN", tok, false),
		variable("CI_REPOSITORY_URL", sp.RepoURL, false),
	}
	for _, v := range sp.Variables {
		vars = append(vars, variable(v.Key, text(v.Value), v.Public))
	}
	steps := []any{step("script", sp.Script, timeout, "on_success", false)}
	if len(sp.AfterScript) > 0 {
		steps = append(steps, step("after_script", sp.AfterScript, timeout, "always", true))
	}
	return map[string]any{
		"id": id, "token": tok, "allow_git_fetch": true,
		"job_info": jobInfo(sp), "git_info": gitInfo(sp),
		"runner_info": map[string]any{"timeout": timeout},
		"variables":   vars, "steps": steps,
	}
}

// text is a YAML value as a GitLab-like coordinator sends it: a string.
func text(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	return ""
}

// renderAlloyCI renders sp as AlloyCI does (builds_event_view.ex, builds.ex
// extra_fields, predefined_vars, steps): typed and null variable values, the
// predefined variables first, a hard-coded timeout of 3600, image always an
// object, artifacts and cache one-element lists.
func renderAlloyCI(id int64, tok string, r *runner, sp Spec) map[string]any {
	var tags any
	if len(r.tags) > 0 {
		tags = strings.Join(r.tags, ",")
	}
	vars := []any{
		variable("ALLOY_CI", "true", true),
		variable("CI", "true", true),
		variable("CI_COMMIT_MESSAGE", "Fix the build\n\nA longer body.", true),
		variable("CI_COMMIT_PUSHER", nil, true),
		variable("CI_COMMIT_REF_NAME", sp.Ref, true),
		variable("CI_COMMIT_REF_SLUG", cleanRef(sp.Ref), true),
		variable("CI_COMMIT_SHA", sp.SHA, true),
		variable("CI_JOB_ID", strconv.FormatInt(id, 10), true),
		variable("CI_JOB_NAME", sp.Name, true),
		variable("CI_JOB_STAGE", sp.Stage, true),
		variable("CI_JOB_TOKEN", tok, false),
		variable("CI_PIPELINE_ID", strconv.Itoa(pipelineID), true),
		variable("CI_PROJECT_NAME", projectName, true),
		variable("CI_PROJECT_NAMESPACE", projectOwner, true),
		variable("CI_PROJECT_PATH", projectOwner+"/"+projectName, true),
		variable("CI_REPOSITORY_URL", sp.RepoURL, false),
		variable("CI_RUNNER_ID", strconv.FormatInt(r.id, 10), true),
		variable("CI_RUNNER_TAGS", tags, true),
		variable("CI_SERVER_NAME", "AlloyCI", true),
		variable("CI_SERVER_VERSION", "0.9.0", true),
		variable("GIT_SSL_NO_VERIFY", "true", true),
	}
	for _, v := range sp.Variables {
		vars = append(vars, variable(v.Key, v.Value, v.Public))
	}
	steps := []any{step("script", sp.Script, 3600, "on_success", false)}
	if len(sp.AfterScript) > 0 {
		steps = append(steps, step("after_script", sp.AfterScript, 3600, "always", true))
	}
	return map[string]any{
		"id": id, "token": tok, "allow_git_fetch": true,
		"job_info": jobInfo(sp), "git_info": gitInfo(sp),
		"runner_info":  map[string]any{"timeout": 3600},
		"variables":    vars,
		"steps":        steps,
		"image":        map[string]any{"name": nil},
		"services":     []any{},
		"artifacts":    []any{nil},
		"cache":        []any{nil},
		"dependencies": []any{},
	}
}

// cleanRef is builds.ex clean_ref: the ref without refs/heads/, refs/tags/
// or (for anything else, forks included) refs/.
func cleanRef(ref string) string {
	prefix := "refs/"
	switch {
	case strings.Contains(ref, "heads"):
		prefix = "refs/heads/"
	case strings.Contains(ref, "tags"):
		prefix = "refs/tags/"
	}
	return strings.ReplaceAll(ref, prefix, "")
}

// renderSpecsLocked renders sp's artifacts, cache and dependencies into p
// as the double's flavor does.
func (s *Server) renderSpecsLocked(p map[string]any, sp Spec) {
	alloy := s.flavor == AlloyCI
	if a := sp.Artifacts; a != nil {
		m := map[string]any{}
		if alloy {
			setIf(m, "name", a.Name)
			if a.Paths != nil {
				m["paths"] = a.Paths
			}
			if a.Untracked {
				m["untracked"] = true
			}
			setIf(m, "when", a.When)
			setIf(m, "expire_in", a.ExpireIn)
		} else {
			when := a.When
			if when == "" {
				when = coordinator.ArtifactsOnSuccess
			}
			m = map[string]any{"name": a.Name, "untracked": a.Untracked, "paths": nonNil(a.Paths), "when": when,
				"expire_in": a.ExpireIn, "artifact_type": "archive", "artifact_format": "zip"}
		}
		p["artifacts"] = []any{m}
	}
	if c := sp.Cache; c != nil {
		m := map[string]any{}
		if alloy {
			setIf(m, "key", c.Key)
			if c.Paths != nil {
				m["paths"] = c.Paths
			}
			if c.Untracked {
				m["untracked"] = true
			}
		} else {
			m = map[string]any{"key": c.Key, "untracked": c.Untracked, "paths": nonNil(c.Paths), "policy": "pull-push"}
		}
		p["cache"] = []any{m}
	}
	if len(sp.Dependencies) == 0 {
		return
	}
	deps := []any{}
	for _, d := range sp.Dependencies {
		a := s.arts[d.ID]
		if d.Token == "" {
			d.Token = jobToken(d.ID)
			if a != nil {
				d.Token = a.token
			}
		}
		m := map[string]any{"id": d.ID, "name": d.Name, "token": d.Token}
		switch {
		case d.File != nil:
			m["artifacts_file"] = map[string]any{"filename": d.File.Filename, "size": d.File.Size}
		case a != nil && a.stored != nil:
			size := a.stored.size
			if alloy {
				size = 2500
			}
			m["artifacts_file"] = map[string]any{"filename": a.stored.filename, "size": size}
		}
		deps = append(deps, m)
	}
	p["dependencies"] = deps
}

func setIf(m map[string]any, k, v string) {
	if v != "" {
		m[k] = v
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
