package jobs

import (
	"strings"
	"testing"

	"github.com/alloyci/hardened-runner/coordinator"
)

func TestTraceBufferLimit(t *testing.T) {
	tb := newTraceBuffer(10)
	tb.Write([]byte("01234"))
	tb.Write([]byte("56789abc"))
	tb.Write([]byte("XYZ"))
	got := tb.String()
	if !strings.HasPrefix(got, "0123456789\nJob's log exceeded limit of 10 bytes.") || strings.Contains(got, "abc") || strings.Contains(got, "XYZ") {
		t.Fatalf("trace = %q", got)
	}
	if string(tb.From(8, 4)) != "89\nJ" || tb.From(tb.Len(), 4) != nil || tb.Len() != int64(len(got)) {
		t.Fatalf("From/Len disagree with %q", got)
	}
}

func TestProjectName(t *testing.T) {
	for in, want := range map[string]string{"": "project-unnamed", "..": "project-unnamed", "../../etc": "project-..-..-etc", "my app": "project-my-app"} {
		if got := projectName(coordinatorJobInfo(in)); got != want {
			t.Errorf("projectName(%q) = %q, want %q", in, got, want)
		}
	}
}

func coordinatorJobInfo(name string) coordinator.JobInfo {
	return coordinator.JobInfo{ProjectName: name}
}
