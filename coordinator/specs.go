package coordinator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// When an ArtifactsSpec applies: after the script succeeded, failed, or
// either.
const (
	ArtifactsOnSuccess = "on_success"
	ArtifactsOnFailure = "on_failure"
	ArtifactsAlways    = "always"
)

// ArtifactsSpec is what a job asks to upload when its script ends: the
// element of its "artifacts" list. AlloyCI sends the job's artifacts: map
// from .alloy-ci.yml as the user wrote it (builds_event_view.ex
// [build.artifacts]), so every field may be missing.
type ArtifactsSpec struct {
	// Name is the archive's name in the coordinator's UI ("" when unset).
	Name string
	// Paths are the files and directories to archive, relative to the
	// project directory, as the job gives them.
	Paths []string
	// Untracked asks for the files git does not track as well.
	Untracked bool
	// When is ArtifactsOnSuccess (the default), ArtifactsOnFailure or
	// ArtifactsAlways.
	When string
	// ExpireIn is how long the coordinator keeps the archive, as the job
	// says it ("1 week"); "" lets the coordinator choose (AlloyCI: 7 days).
	ExpireIn string
}

// CacheSpec is the element of a job's "cache" list. The shell executor keeps
// caches on the runner's host: nothing of it goes to the coordinator.
type CacheSpec struct {
	Key       string
	Paths     []string
	Untracked bool
}

// ArtifactsFile describes a dependency's archive. AlloyCI's Size is always
// 2500 (builds.ex map_dependency hard-codes it): never rely on it.
type ArtifactsFile struct {
	Filename string
	Size     int64
}

// Dependency is a job of an earlier stage whose artifacts this job
// downloads: the element of its "dependencies" list. Token is the
// dependency's own job token, to download with; it is a secret, and String
// and GoString do not show it.
type Dependency struct {
	ID    int64
	Name  string
	Token string
	// File is nil when the coordinator says nothing of an archive.
	File *ArtifactsFile
}

// String shows the dependency's id and name, never its token.
func (d Dependency) String() string { return fmt.Sprintf("dependency %d (%s)", d.ID, d.Name) }

// GoString is String, so %#v cannot dump the token either.
func (d Dependency) GoString() string { return d.String() }

// ArtifactsSpec returns what the job asks to upload, and whether it asks for
// anything: false when "artifacts" is absent, null, empty or [null], or
// malformed (then a decoded job is Unusable and says why).
func (j *Job) ArtifactsSpec() (*ArtifactsSpec, bool) {
	a, err := decodeArtifacts(j.Artifacts)
	return a, err == nil && a != nil
}

// CacheSpec returns the job's cache, and whether it has one: false when
// "cache" is absent, null, empty or [null], or malformed (then a decoded job
// is Unusable and says why).
func (j *Job) CacheSpec() (*CacheSpec, bool) {
	c, err := decodeCache(j.Cache)
	return c, err == nil && c != nil
}

// ArtifactDependencies returns the jobs whose artifacts this job downloads,
// in the coordinator's order: none when "dependencies" is absent, null or
// empty, or malformed (then a decoded job is Unusable and says why).
// Missing fields are zero: DownloadArtifacts refuses a dependency without an
// id or a token.
func (j *Job) ArtifactDependencies() []Dependency {
	d, err := decodeDependencies(j.Dependencies)
	if err != nil {
		return nil
	}
	return d
}

// checkSpecs says what in the job's artifacts, cache and dependencies the
// runner cannot read, or "".
func (j *Job) checkSpecs() string {
	if _, err := decodeArtifacts(j.Artifacts); err != nil {
		return "the job's artifacts: " + err.Error()
	}
	if _, err := decodeCache(j.Cache); err != nil {
		return "the job's cache: " + err.Error()
	}
	if _, err := decodeDependencies(j.Dependencies); err != nil {
		return "the job's dependencies: " + err.Error()
	}
	return ""
}

// dependencyTokens returns every token in the job's dependencies that it can
// find, even in a list that does not decode as a whole, for Secrets.
func (j *Job) dependencyTokens() []string {
	var elems []json.RawMessage
	if json.Unmarshal(j.Dependencies, &elems) != nil {
		return nil
	}
	var out []string
	for _, e := range elems {
		var fields map[string]json.RawMessage
		if json.Unmarshal(e, &fields) != nil {
			continue
		}
		var tok string
		if json.Unmarshal(fields["token"], &tok) == nil && tok != "" {
			out = append(out, tok)
		}
	}
	return out
}

// kind names the JSON type of raw for an error: "null", "a string", ...
func kind(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "null"
	}
	switch raw[0] {
	case 'n':
		return "null"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case '{':
		return "an object"
	case '[':
		return "a list"
	default:
		return "a number"
	}
}

func isNull(raw json.RawMessage) bool { return kind(raw) == "null" }

// specElements reads a one-element list as AlloyCI sends artifacts and cache
// ([x], x possibly null): it returns the one non-null element, or nil. A
// value that is not a list, an element that is not an object, and two
// non-null elements are errors.
func specElements(raw json.RawMessage, what string) (map[string]json.RawMessage, error) {
	elems, err := listElements(raw)
	if err != nil {
		return nil, err
	}
	var found map[string]json.RawMessage
	n := 0
	for i, e := range elems {
		if isNull(e) {
			continue
		}
		f, err := object(e, fmt.Sprintf("element %d", i+1))
		if err != nil {
			return nil, err
		}
		n++
		if n > 1 {
			return nil, fmt.Errorf("the list has %d entries; this runner takes one %s", countNonNull(elems), what)
		}
		found = f
	}
	return found, nil
}

// listElements reads a JSON list as its elements; null is none.
func listElements(raw json.RawMessage) ([]json.RawMessage, error) {
	if isNull(raw) {
		return nil, nil
	}
	if k := kind(raw); k != "a list" {
		return nil, fmt.Errorf("the value is %s, want a list", k)
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, fmt.Errorf("the list does not decode: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return elems, nil
}

// object reads a JSON object as its fields; what names it in errors.
func object(raw json.RawMessage, what string) (map[string]json.RawMessage, error) {
	if k := kind(raw); k != "an object" {
		return nil, fmt.Errorf("%s is %s, want an object", what, k)
	}
	var f map[string]json.RawMessage
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("%s does not decode: %s", what, strings.TrimPrefix(err.Error(), "json: "))
	}
	return f, nil
}

func countNonNull(elems []json.RawMessage) int {
	n := 0
	for _, e := range elems {
		if !isNull(e) {
			n++
		}
	}
	return n
}

// textField reads a field the user wrote in YAML as text: a string as it
// is, a number or a boolean as its JSON text (YAML may type "key: 2024"),
// null or absent as "". An object or a list is an error.
func textField(fields map[string]json.RawMessage, name string) (string, error) {
	raw, ok := fields[name]
	if !ok {
		return "", nil
	}
	switch k := kind(raw); k {
	case "an object", "a list":
		return "", fmt.Errorf("%q is %s, want a string", name, k)
	}
	s, err := scalarText(raw)
	if err != nil {
		return "", fmt.Errorf("%q: %w", name, err)
	}
	return s, nil
}

// stringField reads a field that must be a JSON string (or null, absent).
func stringField(fields map[string]json.RawMessage, name string) (string, error) {
	raw, ok := fields[name]
	if !ok || isNull(raw) {
		return "", nil
	}
	if k := kind(raw); k != "a string" {
		return "", fmt.Errorf("%q is %s, want a string", name, k)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%q is not a valid JSON string", name)
	}
	return s, nil
}

func boolField(fields map[string]json.RawMessage, name string) (bool, error) {
	raw, ok := fields[name]
	if !ok || isNull(raw) {
		return false, nil
	}
	if k := kind(raw); k != "a boolean" {
		return false, fmt.Errorf("%q is %s, want true or false", name, k)
	}
	return bytes.Equal(bytes.TrimSpace(raw), []byte("true")), nil
}

// pathsField reads a list of strings; null or absent is none.
func pathsField(fields map[string]json.RawMessage, name string) ([]string, error) {
	raw, ok := fields[name]
	if !ok || isNull(raw) {
		return nil, nil
	}
	if k := kind(raw); k != "a list" {
		return nil, fmt.Errorf("%q is %s, want a list of strings", name, k)
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, fmt.Errorf("%q does not decode: %s", name, strings.TrimPrefix(err.Error(), "json: "))
	}
	out := make([]string, 0, len(elems))
	for i, e := range elems {
		if k := kind(e); k != "a string" {
			return nil, fmt.Errorf("%q element %d is %s, want a string", name, i+1, k)
		}
		var s string
		if err := json.Unmarshal(e, &s); err != nil {
			return nil, fmt.Errorf("%q element %d is not a valid JSON string", name, i+1)
		}
		out = append(out, s)
	}
	return out, nil
}

// intField reads a whole JSON number; null or absent is 0.
func intField(fields map[string]json.RawMessage, name string) (int64, error) {
	raw, ok := fields[name]
	if !ok || isNull(raw) {
		return 0, nil
	}
	if k := kind(raw); k != "a number" {
		return 0, fmt.Errorf("%q is %s, want a number", name, k)
	}
	n, err := strconv.ParseInt(string(bytes.TrimSpace(raw)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a whole number", name)
	}
	return n, nil
}

func decodeArtifacts(raw json.RawMessage) (*ArtifactsSpec, error) {
	f, err := specElements(raw, "archive")
	if err != nil || f == nil {
		return nil, err
	}
	var a ArtifactsSpec
	if a.Name, err = textField(f, "name"); err != nil {
		return nil, err
	}
	if a.Paths, err = pathsField(f, "paths"); err != nil {
		return nil, err
	}
	if a.Untracked, err = boolField(f, "untracked"); err != nil {
		return nil, err
	}
	if a.When, err = stringField(f, "when"); err != nil {
		return nil, err
	}
	switch a.When {
	case "":
		a.When = ArtifactsOnSuccess
	case ArtifactsOnSuccess, ArtifactsOnFailure, ArtifactsAlways:
	default:
		return nil, fmt.Errorf(`"when" is %q, want %s, %s or %s`, a.When, ArtifactsOnSuccess, ArtifactsOnFailure, ArtifactsAlways)
	}
	if a.ExpireIn, err = textField(f, "expire_in"); err != nil {
		return nil, err
	}
	return &a, nil
}

func decodeCache(raw json.RawMessage) (*CacheSpec, error) {
	f, err := specElements(raw, "cache")
	if err != nil || f == nil {
		return nil, err
	}
	var c CacheSpec
	if c.Key, err = textField(f, "key"); err != nil {
		return nil, err
	}
	if c.Paths, err = pathsField(f, "paths"); err != nil {
		return nil, err
	}
	if c.Untracked, err = boolField(f, "untracked"); err != nil {
		return nil, err
	}
	return &c, nil
}

func decodeDependencies(raw json.RawMessage) ([]Dependency, error) {
	elems, err := listElements(raw)
	if err != nil {
		return nil, err
	}
	var out []Dependency
	for i, e := range elems {
		if isNull(e) {
			continue
		}
		d, err := decodeDependency(e)
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", i+1, err)
		}
		out = append(out, d)
	}
	return out, nil
}

func decodeDependency(raw json.RawMessage) (Dependency, error) {
	var d Dependency
	f, err := object(raw, "it")
	if err != nil {
		return d, err
	}
	if d.ID, err = intField(f, "id"); err != nil {
		return d, err
	}
	if d.Name, err = stringField(f, "name"); err != nil {
		return d, err
	}
	if d.Token, err = stringField(f, "token"); err != nil {
		return d, err
	}
	file, ok := f["artifacts_file"]
	if !ok || isNull(file) {
		return d, nil
	}
	ff, err := object(file, `"artifacts_file"`)
	if err != nil {
		return d, err
	}
	d.File = &ArtifactsFile{}
	if d.File.Filename, err = stringField(ff, "filename"); err != nil {
		return d, fmt.Errorf(`"artifacts_file": %w`, err)
	}
	if d.File.Size, err = intField(ff, "size"); err != nil {
		return d, fmt.Errorf(`"artifacts_file": %w`, err)
	}
	return d, nil
}
