package jobs_test

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/alloyci/hardened-runner/coordinator"
	"github.com/alloyci/hardened-runner/coordinator/coordinatortest"
)

// A job that prints nearly 4 MiB (the trace limit) of ANSI escapes and
// invalid UTF-8, whose JSON would be about 20 MB, still gets its final state
// recorded: the final PUT stays under AlloyCI's 8 MB request limit by
// cutting the front of the trace, with a note; the end of the trace, with
// the job's last lines, is kept, and no secret appears, not even one that
// the replacement of invalid bytes would complete.
func TestFlavorsHugeEscapedTraceIsRecorded(t *testing.T) {
	forFlavors(t, func(t *testing.T, f coordinatortest.Flavor) {
		h := newFlavorHarness(t, f, "runner-token-a")
		r := newRepo(t)
		sha := r.commit("file.txt", "x")
		id := h.enqueueSpec("runner-token-a", spec(r, sha, []string{
			"echo secret=$SECRET",
			`head -c 3100000 /dev/zero | tr '\0' '\033'; echo`,
			`yes $'\xff\e[31m' | head -c 1000000 || true; echo`,
			`printf 'weird=a\xffb\n'`,
			"echo secret-again=$SECRET",
			"echo LAST-LINE-MARKER",
		}, nil,
			coordinatortest.Variable{Key: "SECRET", Value: "huge-trace-s3cret", Public: false},
			coordinatortest.Variable{Key: "WEIRD", Value: "a\uFFFDb", Public: false}))
		h.start(1, h.runner("a", "runner-token-a"))

		got := h.d.AwaitFinal(id)
		if got.State != coordinator.StateSuccess {
			t.Fatalf("final = %s/%s\n...%q", got.State, got.FailureReason, got.Stored[max(0, len(got.Stored)-2000):])
		}
		if got.TooLarge != 0 || got.LargestPut >= coordinatortest.MaxJSONBody || got.LargestPut > coordinator.MaxUpdateBytes {
			t.Errorf("largest PUT %d bytes, %d answered 413", got.LargestPut, got.TooLarge)
		}
		var dropped int
		if _, err := fmt.Sscanf(got.Stored, coordinator.CutNote, &dropped); err != nil || dropped < 1_000_000 {
			t.Fatalf("the stored trace does not start with the cut note (%v, %d dropped): %.300q", err, dropped, got.Stored)
		}
		if !strings.HasPrefix(got.Stored, "[trace cut to fit the coordinator's 8 MB request limit: ") {
			t.Errorf("cut note: %.200q", got.Stored)
		}
		if !strings.HasSuffix(got.Stored, "\nLAST-LINE-MARKER\nJob succeeded\n") {
			t.Errorf("the stored trace does not end with the job's last lines: ...%q", got.Stored[max(0, len(got.Stored)-200):])
		}
		// "a\xffb" became "a\ufffdb", the secret WEIRD: masked again.
		for _, want := range []string{"\nweird=[MASKED]\n", "\nsecret-again=[MASKED]\n"} {
			if !strings.Contains(got.Stored, want) {
				t.Errorf("the stored trace lacks %q", want)
			}
		}
		if !utf8.ValidString(got.Stored) {
			t.Error("the stored trace is not valid UTF-8")
		}
		h.assertNoSecrets(got.Stored)
		h.stop()
	})
}
