package coordinator_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/alloyci/hardened-runner/coordinator"
	"github.com/alloyci/hardened-runner/coordinator/coordinatortest"
)

// decodeVia sends body as the job AlloyCI hands out and returns it decoded.
func decodeVia(t *testing.T, body string) *coordinator.Job {
	t.Helper()
	job, _, err := newClient(&sleeps{}).RequestJob(context.Background(), alloyJob(t, body), "rt", "")
	if err != nil || job == nil {
		t.Fatalf("job=%v err=%v: a job with an id and a token is returned, usable or not", job, err)
	}
	return job
}

const specJob = `{"id":43,"token":"jt","steps":[{"name":"script","script":["true"]}]%s}`

func TestSpecsOfTheAlloyCIPayload(t *testing.T) {
	job := decodeVia(t, alloyJobJSON)
	if job.Unusable != "" {
		t.Fatalf("unusable: %s", job.Unusable)
	}
	a, ok := job.ArtifactsSpec()
	want := coordinator.ArtifactsSpec{Name: "dist", Paths: []string{"dist/"}, When: "on_success", ExpireIn: "1 week"}
	if !ok || !reflect.DeepEqual(*a, want) {
		t.Errorf("ArtifactsSpec = %+v, %v; want %+v", a, ok, want)
	}
	c, ok := job.CacheSpec()
	if !ok || !reflect.DeepEqual(*c, coordinator.CacheSpec{Key: "deps", Paths: []string{"vendor/"}}) {
		t.Errorf("CacheSpec = %+v, %v", c, ok)
	}
	deps := job.ArtifactDependencies()
	wantDeps := []coordinator.Dependency{{ID: 41, Name: "build", Token: "JOB_TOKEN_OF_41",
		File: &coordinator.ArtifactsFile{Filename: "artifacts.zip", Size: 2500}}}
	if !reflect.DeepEqual(deps, wantDeps) {
		t.Errorf("ArtifactDependencies = %#v", deps)
	}
}

func TestSpecsOfEveryShape(t *testing.T) {
	type want struct {
		artifacts *coordinator.ArtifactsSpec
		cache     *coordinator.CacheSpec
		deps      []coordinator.Dependency
	}
	for _, tc := range []struct {
		name, fields string
		want         want
	}{
		{"absent", ``, want{}},
		{"null", `,"artifacts":null,"cache":null,"dependencies":null`, want{}},
		{"null elements (AlloyCI without them)", `,"artifacts":[null],"cache":[null],"dependencies":[]`, want{}},
		{"empty lists", `,"artifacts":[],"cache":[]`, want{}},
		{"null dependency skipped", `,"dependencies":[null,{"id":5,"token":"t5"}]`,
			want{deps: []coordinator.Dependency{{ID: 5, Token: "t5"}}}},
		{"empty objects: declared, with defaults", `,"artifacts":[{}],"cache":[{}]`,
			want{artifacts: &coordinator.ArtifactsSpec{When: "on_success"}, cache: &coordinator.CacheSpec{}}},
		{"null fields are missing ones", `,"artifacts":[{"name":null,"paths":null,"untracked":null,"when":null,"expire_in":null}],"dependencies":[{"id":7,"name":null,"token":"t7","artifacts_file":null}]`,
			want{artifacts: &coordinator.ArtifactsSpec{When: "on_success"}, deps: []coordinator.Dependency{{ID: 7, Token: "t7"}}}},
		{"YAML scalars as text", `,"artifacts":[{"name":2024,"expire_in":3600,"when":"always","untracked":true,"paths":["a","b c"]}],"cache":[{"key":true}]`,
			want{artifacts: &coordinator.ArtifactsSpec{Name: "2024", ExpireIn: "3600", When: "always", Untracked: true, Paths: []string{"a", "b c"}},
				cache: &coordinator.CacheSpec{Key: "true"}}},
		{"on_failure, unknown fields ignored", `,"artifacts":[null,{"when":"on_failure","reports":{"junit":"x.xml"}}],"cache":[{"key":"k","policy":"pull"}]`,
			want{artifacts: &coordinator.ArtifactsSpec{When: "on_failure"}, cache: &coordinator.CacheSpec{Key: "k"}}},
		{"dependency without token or file", `,"dependencies":[{"id":1,"name":"build"}]`,
			want{deps: []coordinator.Dependency{{ID: 1, Name: "build"}}}},
		{"dependency with a file without name", `,"dependencies":[{"id":2,"token":"t2","artifacts_file":{"filename":null,"size":null}}]`,
			want{deps: []coordinator.Dependency{{ID: 2, Token: "t2", File: &coordinator.ArtifactsFile{}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job := decodeVia(t, fmt.Sprintf(specJob, tc.fields))
			if job.Unusable != "" {
				t.Fatalf("unusable: %s", job.Unusable)
			}
			a, ok := job.ArtifactsSpec()
			if ok != (tc.want.artifacts != nil) || (ok && !reflect.DeepEqual(*a, *tc.want.artifacts)) {
				t.Errorf("ArtifactsSpec = %+v, %v; want %+v", a, ok, tc.want.artifacts)
			}
			c, ok := job.CacheSpec()
			if ok != (tc.want.cache != nil) || (ok && !reflect.DeepEqual(*c, *tc.want.cache)) {
				t.Errorf("CacheSpec = %+v, %v; want %+v", c, ok, tc.want.cache)
			}
			if d := job.ArtifactDependencies(); !reflect.DeepEqual(d, tc.want.deps) {
				t.Errorf("ArtifactDependencies = %#v, want %#v", d, tc.want.deps)
			}
		})
	}
}

func TestSpecsOfUnexpectedTypesMakeTheJobUnusable(t *testing.T) {
	for _, tc := range []struct{ fields, want string }{
		{`,"artifacts":{"paths":["x"]}`, `the job's artifacts: the value is an object, want a list`},
		{`,"artifacts":"dist/"`, `the job's artifacts: the value is a string, want a list`},
		{`,"artifacts":["dist/"]`, `the job's artifacts: element 1 is a string, want an object`},
		{`,"artifacts":[{"paths":["a"]},{"paths":["b"]}]`, `the job's artifacts: the list has 2 entries; this runner takes one archive`},
		{`,"artifacts":[{"paths":"dist/"}]`, `the job's artifacts: "paths" is a string, want a list of strings`},
		{`,"artifacts":[{"paths":["a",3]}]`, `the job's artifacts: "paths" element 2 is a number, want a string`},
		{`,"artifacts":[{"paths":["a",null]}]`, `the job's artifacts: "paths" element 2 is null, want a string`},
		{`,"artifacts":[{"untracked":"yes"}]`, `the job's artifacts: "untracked" is a string, want true or false`},
		{`,"artifacts":[{"when":"sometimes"}]`, `the job's artifacts: "when" is "sometimes", want on_success, on_failure or always`},
		{`,"artifacts":[{"when":true}]`, `the job's artifacts: "when" is a boolean, want a string`},
		{`,"artifacts":[{"expire_in":{"days":1}}]`, `the job's artifacts: "expire_in" is an object, want a string`},
		{`,"artifacts":[{"name":["a"]}]`, `the job's artifacts: "name" is a list, want a string`},
		{`,"cache":[[{"key":"a"},{"key":"b"}]]`, `the job's cache: element 1 is a list, want an object`},
		{`,"cache":[{"key":{"files":["Gemfile.lock"]}}]`, `the job's cache: "key" is an object, want a string`},
		{`,"cache":[{"paths":{"a":1}}]`, `the job's cache: "paths" is an object, want a list of strings`},
		{`,"cache":7`, `the job's cache: the value is a number, want a list`},
		{`,"dependencies":{"id":1}`, `the job's dependencies: the value is an object, want a list`},
		{`,"dependencies":[5]`, `the job's dependencies: element 1: it is a number, want an object`},
		{`,"dependencies":[{"id":"41","token":"dep-secret"}]`, `the job's dependencies: element 1: "id" is a string, want a number`},
		{`,"dependencies":[{"id":4.5,"token":"dep-secret"}]`, `the job's dependencies: element 1: "id" is not a whole number`},
		{`,"dependencies":[{"id":1,"token":42}]`, `the job's dependencies: element 1: "token" is a number, want a string`},
		{`,"dependencies":[{"id":1,"token":"dep-secret"},{"id":2,"name":3,"token":"dep-secret"}]`, `the job's dependencies: element 2: "name" is a number, want a string`},
		{`,"dependencies":[{"id":1,"token":"dep-secret","artifacts_file":"a.zip"}]`, `the job's dependencies: element 1: "artifacts_file" is a string, want an object`},
		{`,"dependencies":[{"id":1,"token":"dep-secret","artifacts_file":{"filename":"a.zip","size":"2500"}}]`, `the job's dependencies: element 1: "artifacts_file": "size" is a string, want a number`},
	} {
		t.Run(tc.want, func(t *testing.T) {
			job := decodeVia(t, fmt.Sprintf(specJob, tc.fields))
			if job.ID != 43 || job.Token != "jt" || job.Unusable != tc.want {
				t.Fatalf("id=%d unusable=%q, want %q", job.ID, job.Unusable, tc.want)
			}
			if strings.Contains(job.Unusable, "dep-secret") {
				t.Errorf("the reason shows a dependency's token: %s", job.Unusable)
			}
			// The accessors say "none" for what does not decode.
			if _, ok := job.ArtifactsSpec(); ok && strings.Contains(tc.want, "artifacts") {
				t.Error("ArtifactsSpec is ok for malformed artifacts")
			}
			if d := job.ArtifactDependencies(); d != nil && strings.Contains(tc.want, "dependencies") {
				t.Errorf("ArtifactDependencies = %v for malformed dependencies", d)
			}
		})
	}
}

// A step problem is reported before a spec problem: the reasons do not
// change for jobs that were unusable already.
func TestStepReasonsComeFirst(t *testing.T) {
	job := decodeVia(t, `{"id":43,"token":"jt","steps":[],"artifacts":5}`)
	if job.Unusable != "the job has no script step" {
		t.Fatalf("unusable = %q", job.Unusable)
	}
}

func TestDependencyTokensAreSecrets(t *testing.T) {
	job := decodeVia(t, fmt.Sprintf(specJob, `,"dependencies":[{"id":41,"name":"build","token":"dep-token-41","artifacts_file":{"filename":"a.zip","size":1}},{"id":42,"token":"dep-token-42"}]`))
	deps := job.ArtifactDependencies()
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{deps, deps[0], &deps[0], *job, job} {
			if out := fmt.Sprintf(f, v); strings.Contains(out, "dep-token") {
				t.Errorf("fmt %s shows a dependency token: %s", f, out)
			}
		}
	}
	if got := fmt.Sprint(deps); got != "[dependency 41 (build) dependency 42 ()]" {
		t.Errorf("dependencies print as %s", got)
	}
	secrets := strings.Join(job.Secrets(), "|")
	for _, tok := range []string{"jt", "dep-token-41", "dep-token-42"} {
		if !strings.Contains(secrets, tok) {
			t.Errorf("Secrets() = %q misses %q", secrets, tok)
		}
	}
	// Even when the dependencies do not decode, their tokens are masked.
	bad := decodeVia(t, fmt.Sprintf(specJob, `,"dependencies":[{"id":"41","token":"dep-token-odd"},7,{"token":""}]`))
	if bad.Unusable == "" || !strings.Contains(strings.Join(bad.Secrets(), "|"), "dep-token-odd") {
		t.Errorf("unusable %q, Secrets() = %q: want the token of a malformed dependency masked", bad.Unusable, bad.Secrets())
	}
}

// Each flavor of the double renders a Spec's artifacts, cache and
// dependencies so that they decode to what the Spec says.
func TestSpecsAgainstFlavors(t *testing.T) {
	for _, f := range coordinatortest.Flavors() {
		t.Run(string(f), func(t *testing.T) {
			d := coordinatortest.NewFlavor(t, f)
			d.AddRunner("rt")
			zip := makeZip(t, map[string]string{"dist/app": "binary"})
			d.SetArtifact(41, "token-of-41", zip)
			d.EnqueueSpec("rt", coordinatortest.Spec{Script: []string{"true"},
				Artifacts: &coordinator.ArtifactsSpec{Paths: []string{"dist/"}, ExpireIn: "1 week"},
				Cache:     &coordinator.CacheSpec{Key: "deps", Paths: []string{"vendor/"}},
				Dependencies: []coordinator.Dependency{{ID: 41, Name: "build"},
					{ID: 40, Name: "lint", Token: "given", File: &coordinator.ArtifactsFile{Filename: "x.zip", Size: 9}}},
			})
			job, _, err := newClient(&sleeps{}).RequestJob(context.Background(), d.URL, "rt", "")
			if err != nil || job == nil || job.Unusable != "" {
				t.Fatalf("job=%v err=%v", job, err)
			}
			a, ok := job.ArtifactsSpec()
			if !ok || !reflect.DeepEqual(*a, coordinator.ArtifactsSpec{Paths: []string{"dist/"}, When: "on_success", ExpireIn: "1 week"}) {
				t.Errorf("ArtifactsSpec = %+v, %v", a, ok)
			}
			c, ok := job.CacheSpec()
			if !ok || !reflect.DeepEqual(*c, coordinator.CacheSpec{Key: "deps", Paths: []string{"vendor/"}}) {
				t.Errorf("CacheSpec = %+v, %v", c, ok)
			}
			size := int64(len(zip))
			if f == coordinatortest.AlloyCI {
				size = 2500 // builds.ex map_dependency
			}
			want := []coordinator.Dependency{
				{ID: 41, Name: "build", Token: "token-of-41", File: &coordinator.ArtifactsFile{Filename: "artifacts.zip", Size: size}},
				{ID: 40, Name: "lint", Token: "given", File: &coordinator.ArtifactsFile{Filename: "x.zip", Size: 9}},
			}
			if got := job.ArtifactDependencies(); !reflect.DeepEqual(got, want) {
				t.Errorf("dependencies = %+v, want %+v", got, want)
			}
			finish(t, d, job)
		})
	}
}

// finish reports job successful so the double is content.
func finish(t *testing.T, d *coordinatortest.Server, job *coordinator.Job) {
	t.Helper()
	tr := "x"
	if _, err := newClient(&sleeps{}).UpdateJob(context.Background(), d.URL, job.ID, job.Token,
		coordinator.Update{State: coordinator.StateSuccess, Trace: &tr}, coordinator.RetryBriefly); err != nil {
		t.Errorf("update: %v", err)
	}
}
