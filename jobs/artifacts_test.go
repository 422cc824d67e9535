package jobs_test

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/alloyci/hardened-runner/builds"
	"github.com/alloyci/hardened-runner/coordinator"
	"github.com/alloyci/hardened-runner/coordinator/coordinatortest"
	"github.com/alloyci/hardened-runner/internal/ziptest"
)

// depID is a finished job of an earlier stage whose archive a test sets with
// SetArtifact; the double's own ids start at 1001.
const depID = 9001

// depName is how the trace names it.
const depName = `dependency "build" (job 9001)`

func withArtifacts(sp coordinatortest.Spec, a coordinator.ArtifactsSpec) coordinatortest.Spec {
	sp.Artifacts = &a
	return sp
}

func dependingOn(sp coordinatortest.Spec, ids ...int64) coordinatortest.Spec {
	for _, id := range ids {
		name := "build"
		if id != depID {
			name = fmt.Sprintf("job-%d", id)
		}
		sp.Dependencies = append(sp.Dependencies, coordinator.Dependency{ID: id, Name: name})
	}
	return sp
}

// Job A uploads out/result.txt; job B, of a later stage, depends on A and
// finds the file in its tree before its script runs.
func TestArtifactsReachTheDependentJob(t *testing.T) {
	forFlavors(t, func(t *testing.T, f coordinatortest.Flavor) {
		h := newFlavorHarness(t, f, "runner-token-a")
		r := newRepo(t)
		sha := r.commit("file.txt", "x")
		a := withArtifacts(spec(r, sha, []string{"mkdir -p out", "echo result-of-A > out/result.txt", "echo other > not-archived.txt"}, nil),
			coordinator.ArtifactsSpec{Paths: []string{"out/"}, ExpireIn: "1 week"})
		a.Name, a.Stage = "build", "build"
		idA := h.enqueueSpec("runner-token-a", a)
		h.start(1, h.runner("a", "runner-token-a"))

		got := h.d.AwaitFinal(idA)
		if got.State != "success" {
			t.Fatalf("job A: %s/%s\n%s", got.State, got.FailureReason, got.Stored)
		}
		zip, expire, ok := h.d.Artifact(idA)
		if !ok {
			t.Fatalf("job A uploaded nothing:\n%s", got.Stored)
		}
		if ents := ziptest.Entries(t, zip); !reflect.DeepEqual(ents, map[string]string{"out/result.txt": "result-of-A\n"}) {
			t.Errorf("job A's archive holds %q, want exactly out/result.txt", ents)
		}
		up := h.d.Uploads(idA)
		if len(up) != 1 || up[0].Status != 201 || up[0].Filename != "artifacts.zip" || up[0].ExpireIn != "1 week" || expire != "1 week" {
			t.Errorf("uploads of job A: %+v (expire_in kept: %q), want one 201 of artifacts.zip expiring in 1 week", up, expire)
		}
		h.assertTraceKept(got, "Uploading artifacts for successful job\n", "Uploading artifacts (1 file)...\n",
			fmt.Sprintf("Uploaded artifacts.zip (%d bytes)\n", len(zip)))

		b := dependingOn(spec(r, sha, []string{"cat out/result.txt"}, nil), idA)
		idB := h.enqueueSpec("runner-token-a", b)
		got = h.d.AwaitFinal(idB)
		if got.State != "success" {
			t.Fatalf("job B: %s/%s\n%s", got.State, got.FailureReason, got.Stored)
		}
		name := fmt.Sprintf(`dependency "job-%d" (job %d)`, idA, idA)
		h.assertTraceKept(got, "Downloading artifacts\n", "Downloading artifacts for "+name+"...\n",
			fmt.Sprintf("Extracted the artifacts of %s (%d bytes)\n", name, len(zip)),
			"$ cat out/result.txt\x1b[0;m\nresult-of-A\n", "Job succeeded\n")
		if strings.Contains(got.Stored, "WARNING") {
			t.Errorf("job B's trace warns:\n%s", got.Stored)
		}
		if d := h.d.Downloads(idA); len(d) != 1 || d[0].Status != 200 {
			t.Errorf("downloads of job A's archive: %+v, want one", d)
		}
	})
}

// untracked: true archives the files git does not track (and does not
// ignore), and only those when no paths are given.
func TestArtifactsOfUntrackedFiles(t *testing.T) {
	forFlavors(t, func(t *testing.T, f coordinatortest.Flavor) {
		h := newFlavorHarness(t, f, "runner-token-a")
		r := newRepo(t)
		r.commit(".gitignore", "*.log\n")
		sha := r.commit("file.txt", "tracked")
		id := h.enqueueSpec("runner-token-a", withArtifacts(spec(r, sha,
			[]string{"echo new > untracked.txt", "echo log > build.log", "mkdir sub", "echo deep > sub/deep.txt"}, nil),
			coordinator.ArtifactsSpec{Untracked: true}))
		h.start(1, h.runner("a", "runner-token-a"))
		if got := h.d.AwaitFinal(id); got.State != "success" {
			t.Fatalf("%s\n%s", got.State, got.Stored)
		}
		zip, _, _ := h.d.Artifact(id)
		if ents := ziptest.Entries(t, zip); !reflect.DeepEqual(ents, map[string]string{"untracked.txt": "new\n", "sub/deep.txt": "deep\n"}) {
			t.Errorf("archive holds %q, want the two untracked files", ents)
		}
	})
}

// A dependency's archive is another job's output: an entry that would land
// outside the project directory, a symlink out of it, a bomb past
// artifacts_limit, a damaged archive each fail the job before its script,
// with the reason in its trace, and nothing is written outside the project
// directory. The failure is the pipeline's (script_failure): the project
// made the archive.
func TestHostileDependencyFailsTheJob(t *testing.T) {
	forFlavors(t, func(t *testing.T, f coordinatortest.Flavor) {
		valid := ziptest.Zip(t, ziptest.Entry{Name: "out/result.txt", Body: "fine\n"})
		for _, tc := range []struct {
			name     string
			zip      func(root string) []byte
			reason   string // the trace's line about the archive
			message  string // the job's failure
			notThere func(root string) string
		}{{
			name: "dot-dot entry",
			zip:  func(string) []byte { return ziptest.Zip(t, ziptest.Entry{Name: "../../escape", Body: "x"}) },
			reason: `ERROR: ` + depName + `: archive: entry "../../escape" refused: its name contains a ".." segment; ` +
				`the runner never writes such an entry, so the archive is damaged or hostile: check the job that made it`,
			message: "the artifacts of " + depName + " are refused",
		}, {
			name: "absolute entry",
			zip: func(root string) []byte {
				return ziptest.Zip(t, ziptest.Entry{Name: filepath.Join(root, "abs-escape"), Body: "x"})
			},
			reason: `ERROR: ` + depName + `: archive: entry "%ROOT%/abs-escape" refused: its name is absolute; ` +
				`the runner never writes such an entry, so the archive is damaged or hostile: check the job that made it`,
			message:  "the artifacts of " + depName + " are refused",
			notThere: func(root string) string { return filepath.Join(root, "abs-escape") },
		}, {
			name: "symlink to /etc",
			zip: func(string) []byte {
				return ziptest.Zip(t, ziptest.Symlink("etc", "/etc"), ziptest.Entry{Name: "etc/passwd-copy", Body: "x"})
			},
			reason: `ERROR: ` + depName + `: archive: entry "etc" refused: it is a symlink to the absolute path "/etc"; ` +
				`the runner never writes such an entry, so the archive is damaged or hostile: check the job that made it`,
			message: "the artifacts of " + depName + " are refused",
		}, {
			name: "1 GiB of zeros",
			zip:  func(string) []byte { return ziptest.ZeroBomb(t, "zeros", 1<<30, 0) },
			reason: `ERROR: ` + depName + `: archive: entry "zeros": archive too large: the archive holds more than 2097152 bytes; ` +
				`archive fewer files or raise the limit`,
			message: "the artifacts of " + depName + " unpack to more than the 2097152 bytes artifacts_limit in config.toml allows",
		}, {
			name: "truncated archive",
			zip:  func(string) []byte { return ziptest.Truncated(valid) },
			reason: `ERROR: ` + depName + `: archive: not a readable zip archive (zip: not a valid zip file): ` +
				`it is truncated, damaged or not an archive; run the job that made it again`,
			message: "the artifacts of " + depName + " are refused",
		}} {
			t.Run(tc.name, func(t *testing.T) {
				h := newFlavorHarness(t, f, "runner-token-a")
				r := newRepo(t)
				sha := r.commit("file.txt", "x")
				run := h.runner("a", "runner-token-a")
				run.ArtifactsLimit = 2048 // KiB: the bomb's 1 MiB passes the download
				root := filepath.Dir(run.BuildsDir)
				h.d.SetArtifact(depID, "", tc.zip(root))
				before := tree(t, root)
				id := h.enqueueSpec("runner-token-a", dependingOn(spec(r, sha, []string{"echo script-ran"}, []string{"echo after-ran"}), depID))
				h.start(1, run)

				got := h.d.AwaitFinal(id)
				if got.State != "failed" || got.FailureReason != "script_failure" {
					t.Errorf("final = %s/%s, want failed/script_failure", got.State, got.FailureReason)
				}
				reason := strings.ReplaceAll(tc.reason, "%ROOT%", root)
				h.assertTraceKept(got, "Downloading artifacts for "+depName+"...\n", reason+"\n", "ERROR: Job failed: "+tc.message+"\n")
				if strings.Contains(got.Stored, "script-ran") || strings.Contains(got.Stored, "after-ran") {
					t.Errorf("the job's scripts ran after its dependency was refused:\n%s", got.Stored)
				}
				dir := projectDir(t, run.BuildsDir)
				assertOnlyInside(t, root, before, dir)
				if tc.notThere != nil && exists(tc.notThere(root)) {
					t.Errorf("%s was written", tc.notThere(root))
				}
				if _, err := os.Lstat(filepath.Join(dir, "etc")); err == nil {
					t.Error("the project directory got the archive's etc")
				}
				if tmp, _ := filepath.Glob(dir + ".tmp/*"); len(tmp) != 0 {
					t.Errorf("left in the job's temporary directory: %v", tmp)
				}
			})
		}
	})
}

// A dependency without an archive (the coordinator names no artifacts_file)
// is skipped, as by the upstream runner; one whose archive the coordinator
// does not have (404: expired, erased, never made) fails the job as the
// pipeline's.
func TestDependencyWithoutArtifacts(t *testing.T) {
	forFlavors(t, func(t *testing.T, f coordinatortest.Flavor) {
		h := newFlavorHarness(t, f, "runner-token-a")
		r := newRepo(t)
		sha := r.commit("file.txt", "x")
		first := h.enqueueSpec("runner-token-a", spec(r, sha, []string{"true"}, nil))
		h.start(1, h.runner("a", "runner-token-a"))
		h.d.AwaitFinal(first)
		name := fmt.Sprintf(`dependency "job-%d" (job %d)`, first, first)

		id := h.enqueueSpec("runner-token-a", dependingOn(spec(r, sha, []string{"echo script-ran"}, nil), first))
		got := h.d.AwaitFinal(id)
		if got.State != "success" {
			t.Errorf("job whose dependency has no archive: %s\n%s", got.State, got.Stored)
		}
		h.assertTraceKept(got, name+" has no artifacts: nothing to download\n", "script-ran\n")

		gone := spec(r, sha, []string{"echo script-ran"}, nil)
		gone.Dependencies = []coordinator.Dependency{{ID: first, Name: fmt.Sprintf("job-%d", first),
			File: &coordinator.ArtifactsFile{Filename: "artifacts.zip", Size: 2500}}}
		id = h.enqueueSpec("runner-token-a", gone)
		got = h.d.AwaitFinal(id)
		if got.State != "failed" || got.FailureReason != "script_failure" {
			t.Errorf("final = %s/%s, want failed/script_failure", got.State, got.FailureReason)
		}
		h.assertTraceKept(got, fmt.Sprintf("ERROR: %s: downloading the artifacts of job %d: the coordinator has no artifacts for it: no artifacts for the job (404)\n", name, first),
			"ERROR: Job failed: the coordinator no longer has the artifacts of "+name+": run that job again\n")
		if strings.Contains(got.Stored, "script-ran") {
			t.Error("the script ran without its dependency")
		}
	})
}

// ARTIFACT_DOWNLOAD_ATTEMPTS retries a failed download as a whole: after
// the client's own brief retries (3 attempts here), a second attempt gets
// the archive. With the default of 1 the job fails, the runner's failure.
func TestArtifactDownloadAttempts(t *testing.T) {
	h := newHarness(t, "runner-token-a")
	r := newRepo(t)
	sha := r.commit("file.txt", "x")
	h.d.SetArtifact(depID, "", ziptest.Zip(t, ziptest.Entry{Name: "out/result.txt", Body: "fine\n"}))
	h.d.FailDownloads(depID, 502, 0, 503)
	retried := dependingOn(spec(r, sha, []string{"cat out/result.txt"}, nil,
		coordinatortest.Variable{Key: "ARTIFACT_DOWNLOAD_ATTEMPTS", Value: "2", Public: true}), depID)
	id := h.enqueueSpec("runner-token-a", retried)
	h.start(1, h.runner("a", "runner-token-a"))

	url := h.d.URL + "api/v4/jobs/9001/artifacts"
	got := h.d.AwaitFinal(id)
	if got.State != "success" {
		t.Fatalf("final = %s/%s\n%s", got.State, got.FailureReason, got.Stored)
	}
	h.assertTraceKept(got,
		"WARNING: "+depName+": downloading the artifacts of job 9001: GET "+url+": coordinator answered 503 Service Unavailable (gave up after 3 attempts): retrying, attempt 2 of 2\n",
		"fine\n")
	if d := h.d.Downloads(depID); len(d) != 4 || d[3].Status != 200 {
		t.Errorf("downloads: %+v, want 3 failed and 1 whole", d)
	}

	h.d.FailDownloads(depID, 502, 502, 502)
	id = h.enqueueSpec("runner-token-a", dependingOn(spec(r, sha, []string{"echo script-ran"}, nil), depID))
	got = h.d.AwaitFinal(id)
	if got.State != "failed" || got.FailureReason != "runner_system_failure" {
		t.Errorf("final = %s/%s, want failed/runner_system_failure", got.State, got.FailureReason)
	}
	h.assertTraceKept(got,
		"ERROR: "+depName+": downloading the artifacts of job 9001: GET "+url+": coordinator answered 502 Bad Gateway (gave up after 3 attempts)\n",
		"ERROR: Job failed: runner system failure: downloading the artifacts of "+depName+" failed\n")
	if strings.Contains(got.Stored, "script-ran") {
		t.Error("the script ran without its dependency")
	}
}

// RESTORE_CACHE_ATTEMPTS and ARTIFACT_DOWNLOAD_ATTEMPTS take 1 to 10; any
// other value fails the job as its own mistake, before anything runs, with
// every invalid variable named.
func TestInvalidAttemptsVariablesFailTheJob(t *testing.T) {
	h := newHarness(t, "runner-token-a")
	r := newRepo(t)
	sha := r.commit("file.txt", "x")
	id := h.enqueueSpec("runner-token-a", spec(r, sha, []string{"echo script-ran"}, nil,
		coordinatortest.Variable{Key: "RESTORE_CACHE_ATTEMPTS", Value: "0", Public: true},
		coordinatortest.Variable{Key: "ARTIFACT_DOWNLOAD_ATTEMPTS", Value: "+3", Public: true},
		coordinatortest.Variable{Key: "GIT_DEPTH", Value: "deep", Public: true}))
	h.start(1, h.runner("a", "runner-token-a"))

	got := h.d.AwaitFinal(id)
	if got.State != "failed" || got.FailureReason != "script_failure" {
		t.Errorf("final = %s/%s, want failed/script_failure", got.State, got.FailureReason)
	}
	const (
		depth   = `GIT_DEPTH is "deep": set it to the number of commits to fetch, or to 0 or empty for the whole history`
		restore = `RESTORE_CACHE_ATTEMPTS is "0": set it to a whole number from 1 to 10, or leave it empty for 1`
		attempt = `ARTIFACT_DOWNLOAD_ATTEMPTS is "+3": set it to a whole number from 1 to 10, or leave it empty for 1`
	)
	h.assertTraceKept(got, "ERROR: "+depth+"\nERROR: "+restore+"\nERROR: "+attempt+"\n",
		"ERROR: Job failed: invalid variables: "+depth+"; "+restore+"; "+attempt+"\n")
	if strings.Contains(got.Stored, "Getting source") || strings.Contains(got.Stored, "script-ran") {
		t.Errorf("the job went on with invalid variables:\n%s", got.Stored)
	}
}

// While the coordinator holds an upload, ci_runner_builds counts the job in
// upload_artifacts, running.
func TestUploadIsTrackedInItsStage(t *testing.T) {
	forFlavors(t, func(t *testing.T, f coordinatortest.Flavor) {
		h := newFlavorHarness(t, f, "runner-token-a")
		r := newRepo(t)
		sha := r.commit("file.txt", "x")
		release := h.d.HoldUploads()
		id := h.enqueueSpec("runner-token-a", withArtifacts(spec(r, sha, []string{"echo data > data.txt"}, nil),
			coordinator.ArtifactsSpec{Paths: []string{"data.txt"}}))
		h.start(1, h.runner("a", "runner-token-a"))

		h.d.Await("the upload to be held", func() bool { return h.d.UploadsHeld() == 1 })
		if n := count(h.tracker, builds.StageUploadArtifacts, builds.StateRunning); n != 1 {
			t.Errorf("ci_runner_builds{stage=upload_artifacts,state=running} = %d while the upload is held, want 1: %v", n, h.tracker.Counts())
		}
		if n := count(h.tracker, builds.StageBuildScript, builds.StateRunning); n != 0 {
			t.Errorf("build_script still counts %d", n)
		}
		release()
		if got := h.d.AwaitFinal(id); got.State != "success" {
			t.Fatalf("final = %s\n%s", got.State, got.Stored)
		}
		h.stop()
		if n := len(h.tracker.Counts()); n != 0 {
			t.Errorf("tracker still counts builds: %v", h.tracker.Counts())
		}
	})
}

// artifacts: when decides after the job's result: on_success (the default)
// uploads only for a successful job, on_failure only for a failed one,
// always for both. A failed job keeps its own failure reason.
func TestArtifactsWhen(t *testing.T) {
	forFlavors(t, func(t *testing.T, f coordinatortest.Flavor) {
		h := newFlavorHarness(t, f, "runner-token-a")
		r := newRepo(t)
		sha := r.commit("file.txt", "x")
		type job struct {
			when   string
			fail   bool
			upload bool
			id     int64
		}
		jobs := []*job{
			{when: "", fail: false, upload: true}, {when: "", fail: true, upload: false},
			{when: "on_success", fail: true, upload: false},
			{when: "on_failure", fail: false, upload: false}, {when: "on_failure", fail: true, upload: true},
			{when: "always", fail: false, upload: true}, {when: "always", fail: true, upload: true},
		}
		for _, j := range jobs {
			script := []string{"echo log > job.log"}
			if j.fail {
				script = append(script, "exit 4")
			}
			j.id = h.enqueueSpec("runner-token-a", withArtifacts(spec(r, sha, script, nil),
				coordinator.ArtifactsSpec{Paths: []string{"job.log"}, When: j.when}))
		}
		h.start(1, h.runner("a", "runner-token-a"))
		for _, j := range jobs {
			got := h.d.AwaitFinal(j.id)
			state, reason := "success", ""
			if j.fail {
				state, reason = "failed", "script_failure"
			}
			if got.State != state || got.FailureReason != reason {
				t.Errorf("when %q, failing %v: final = %s/%s, want %s/%s", j.when, j.fail, got.State, got.FailureReason, state, reason)
			}
			_, _, uploaded := h.d.Artifact(j.id)
			if uploaded != j.upload || strings.Contains(got.Stored, "Uploading artifacts") != j.upload {
				t.Errorf("when %q, failing %v: uploaded %v, want %v\n%s", j.when, j.fail, uploaded, j.upload, got.Stored)
			}
			if j.upload && j.fail && !strings.Contains(got.Stored, "Uploading artifacts for failed job\n") {
				t.Errorf("when %q: trace lacks the failed job's upload:\n%s", j.when, got.Stored)
			}
		}
	})
}

// Artifacts larger than artifacts_limit fail the job, as the runner's
// failure, with the sizes in the trace; nothing is uploaded.
func TestArtifactsTooLarge(t *testing.T) {
	h := newHarness(t, "runner-token-a")
	r := newRepo(t)
	sha := r.commit("file.txt", "x")
	id := h.enqueueSpec("runner-token-a", withArtifacts(spec(r, sha,
		[]string{"mkdir out", "head -c 3000 /dev/zero > out/big", "echo small > out/small"}, nil),
		coordinator.ArtifactsSpec{Paths: []string{"out"}}))
	run := h.runner("a", "runner-token-a")
	run.ArtifactsLimit = 1 // KiB
	h.start(1, run)

	got := h.d.AwaitFinal(id)
	// The project's own doing: script_failure, never the operator's alarm.
	if got.State != "failed" || got.FailureReason != "script_failure" {
		t.Errorf("final = %s/%s, want failed/script_failure", got.State, got.FailureReason)
	}
	h.assertTraceKept(got,
		"ERROR: the artifacts come to 3006 bytes, more than the 1024 bytes artifacts_limit in config.toml allows: archive fewer files, or ask the runner's operator to raise artifacts_limit\n",
		"ERROR: Job failed: artifacts too large: 1982 bytes over the limit of 1024 bytes set by artifacts_limit in config.toml\n")
	if up := h.d.Uploads(id); len(up) != 0 {
		t.Errorf("uploads: %+v, want none", up)
	}
	if tmp, _ := filepath.Glob(projectDir(t, run.BuildsDir) + ".tmp/*"); len(tmp) != 0 {
		t.Errorf("left in the job's temporary directory: %v", tmp)
	}
}

// An upload is retried with the same archive, and one that fails after
// every attempt fails a successful job as the runner's failure; nothing
// selected uploads nothing and is no failure.
func TestArtifactsUploadFailures(t *testing.T) {
	h := newHarness(t, "runner-token-a")
	r := newRepo(t)
	sha := r.commit("file.txt", "x")
	art := coordinator.ArtifactsSpec{Paths: []string{"out/"}}
	retried := h.enqueueSpec("runner-token-a", withArtifacts(spec(r, sha, []string{"mkdir out", "echo one > out/a"}, nil), art))
	h.d.FailUploads(retried, 502, 0)
	failing := h.enqueueSpec("runner-token-a", withArtifacts(spec(r, sha, []string{"mkdir out", "echo two > out/a"}, nil), art))
	h.d.FailUploads(failing, 502, 503, 502)
	empty := h.enqueueSpec("runner-token-a", withArtifacts(spec(r, sha, []string{"true"}, nil), art))
	decimal := h.enqueueSpec("runner-token-a", withArtifacts(spec(r, sha, []string{"mkdir out", "echo three > out/a"}, nil),
		coordinator.ArtifactsSpec{Paths: []string{"out/"}, ExpireIn: "1.5 days"}))
	h.start(1, h.runner("a", "runner-token-a"))

	got := h.d.AwaitFinal(retried)
	up := h.d.Uploads(retried)
	zip, _, _ := h.d.Artifact(retried)
	if got.State != "success" || len(up) != 3 || up[2].Status != 201 || !reflect.DeepEqual(ziptest.Entries(t, zip), map[string]string{"out/a": "one\n"}) {
		t.Errorf("retried upload: %s, uploads %+v\n%s", got.State, up, got.Stored)
	}

	got = h.d.AwaitFinal(failing)
	if got.State != "failed" || got.FailureReason != "runner_system_failure" {
		t.Errorf("failing upload: final = %s/%s, want failed/runner_system_failure", got.State, got.FailureReason)
	}
	h.assertTraceKept(got, fmt.Sprintf("ERROR: uploading the artifacts failed: job %d: uploading the artifacts: POST %sapi/v4/jobs/%d/artifacts: "+
		"coordinator answered 502 Bad Gateway (gave up after 3 attempts)\n", failing, h.d.URL, failing),
		"ERROR: Job failed: runner system failure: uploading the artifacts failed\n")

	got = h.d.AwaitFinal(empty)
	if got.State != "success" || len(h.d.Uploads(empty)) != 0 {
		t.Errorf("nothing to upload: %s, uploads %+v", got.State, h.d.Uploads(empty))
	}
	h.assertTraceKept(got, "WARNING: pattern \"out/\" matched no files\nWARNING: no files to upload\n")

	got = h.d.AwaitFinal(decimal)
	if got.State != "failed" || len(h.d.Uploads(decimal)) != 0 {
		t.Errorf("decimal expire_in: %s, uploads %+v", got.State, h.d.Uploads(decimal))
	}
	h.assertTraceKept(got, `expire_in "1.5 days" has a decimal number, which AlloyCI cannot read (it answers 500): write whole numbers, e.g. "36 hours" for "1.5 days"`)
}

// A canceled job uploads nothing, even with when: always: the coordinator
// no longer wants its results. A timed-out job uploads its on_failure
// artifacts (what tells why it hung) and stays a timeout.
func TestArtifactsOfStoppedJobs(t *testing.T) {
	h := newHarness(t, "runner-token-a")
	r := newRepo(t)
	sha := r.commit("file.txt", "x")
	pidfile := filepath.Join(t.TempDir(), "pid")
	canceled := h.enqueueSpec("runner-token-a", withArtifacts(spec(r, sha,
		[]string{"echo partial > job.log", "sleep 300 & echo $! > " + pidfile + "; wait"}, nil),
		coordinator.ArtifactsSpec{Paths: []string{"job.log"}, When: "always"}))
	slow := withArtifacts(spec(r, sha, []string{"echo hung-here > job.log", "sleep 300"}, nil),
		coordinator.ArtifactsSpec{Paths: []string{"job.log"}, When: "on_failure"})
	slow.Raw = map[string]any{"runner_info": map[string]any{"timeout": 1}}
	timedOut := h.enqueueSpec("runner-token-a", slow)
	h.start(1, h.runner("a", "runner-token-a"))

	h.pidFrom(pidfile)
	h.d.Cancel(canceled)
	got := h.d.AwaitFinal(canceled)
	if _, _, ok := h.d.Artifact(canceled); ok || strings.Contains(got.Stored, "Uploading") {
		t.Errorf("the canceled job uploaded its artifacts:\n%s", got.Stored)
	}
	h.assertTraceKept(got, "ERROR: Job failed: canceled\n")

	got = h.d.AwaitFinal(timedOut)
	if got.State != "failed" || got.FailureReason != "job_execution_timeout" {
		t.Errorf("timed-out job: %s/%s", got.State, got.FailureReason)
	}
	zip, _, ok := h.d.Artifact(timedOut)
	if !ok || !reflect.DeepEqual(ziptest.Entries(t, zip), map[string]string{"job.log": "hung-here\n"}) {
		t.Errorf("the timed-out job did not upload its on_failure artifacts:\n%s", got.Stored)
	}
	h.assertTraceKept(got, "Uploading artifacts for failed job\n", "ERROR: Job failed: execution took longer than 1s\n")
}
