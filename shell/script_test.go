package shell

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alloyci/hardened-runner/internal/proctest"
)

func runScript(t *testing.T, ctx context.Context, commands ...string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	var out bytes.Buffer
	err := RunScript(ctx, Script{
		Name: "script", Commands: commands, Dir: dir,
		Env:       []string{"PATH=" + os.Getenv("PATH"), "GREETING=hello there"},
		ScriptDir: filepath.Join(t.TempDir(), "tmp"),
	}, &out)
	return out.String(), err
}

func TestScriptEchoesAndStopsAtFirstFailure(t *testing.T) {
	out, err := runScript(t, context.Background(), "echo one", "false", "echo two")
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 1 {
		t.Fatalf("err = %v, want exit code 1", err)
	}
	want := "\x1b[32;1m$ echo one\x1b[0;m\none\n\x1b[32;1m$ false\x1b[0;m\n"
	if out != want {
		t.Fatalf("output %q, want %q", out, want)
	}
}

func TestScriptSemantics(t *testing.T) {
	for _, tc := range []struct {
		name     string
		commands []string
		code     int // -1: success
		contains []string
		lacks    []string
	}{
		{"exit status", []string{"exit 3"}, 3, nil, nil},
		{"pipefail", []string{"false | true", "echo after"}, 1, nil, []string{"after\n"}},
		{"errexit inside a multi-line command", []string{"echo a\nfalse\necho b"}, 1,
			[]string{"$ echo a # collapsed multi-line command", "a\n"}, []string{"b\n"}},
		{"quotes are not expanded in the echo", []string{`echo "$GREETING" 'it'"'"'s'`}, -1,
			[]string{`$ echo "$GREETING" 'it'"'"'s'`, "hello there it's\n"}, nil},
		{"commands share the shell", []string{"X=1; cd /", "echo $X $PWD"}, -1, []string{"1 /\n"}, nil},
		{"a syntax error fails only its command", []string{"echo ok", "if then"}, 2, []string{"ok\n"}, nil},
		{"stdout and stderr in order", []string{"echo a; echo b >&2; echo c"}, -1, []string{"a\nb\nc\n"}, nil},
		{"stdin is empty", []string{"cat"}, -1, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runScript(t, context.Background(), tc.commands...)
			var ee *ExitError
			switch {
			case tc.code < 0 && err != nil:
				t.Fatalf("err = %v, want success; output %q", err, out)
			case tc.code >= 0 && (!errors.As(err, &ee) || ee.Code != tc.code):
				t.Fatalf("err = %v, want exit code %d; output %q", err, tc.code, out)
			}
			for _, s := range tc.contains {
				if !strings.Contains(out, s) {
					t.Errorf("output %q lacks %q", out, s)
				}
			}
			for _, s := range tc.lacks {
				if strings.Contains(out, s) {
					t.Errorf("output %q has %q", out, s)
				}
			}
		})
	}
}

func TestBashScriptRefusesNUL(t *testing.T) {
	if _, err := BashScript([]string{"echo a\x00b"}); err == nil {
		t.Fatal("no error for a NUL byte")
	}
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// await polls cond; the limit is a safety net, not a timing assertion.
func await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}

func TestCancelKillsTheWholeGroup(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithCancelCause(context.Background())
	stop := errors.New("stopped by the test")
	done := make(chan error, 1)
	go func() {
		_, err := runScript(t, ctx, "sleep 300 & echo $! > "+pidfile+"; wait")
		done <- err
	}()
	await(t, "the pid file", func() bool { b, _ := os.ReadFile(pidfile); return bytes.HasSuffix(b, []byte("\n")) })
	pid := readPID(t, pidfile)
	cancel(stop)
	if err := <-done; !errors.Is(err, stop) {
		t.Fatalf("err = %v, want the cancel cause", err)
	}
	await(t, "sleep to be gone", func() bool { return proctest.Gone(pid) })
}

func TestLeftoverProcessesAreKilled(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "pid")
	out, err := runScript(t, context.Background(), "sleep 300 & echo $! > "+pidfile, "echo done")
	if err != nil {
		t.Fatalf("err = %v, output %q", err, out)
	}
	pid := readPID(t, pidfile)
	await(t, "the background sleep to be gone", func() bool { return proctest.Gone(pid) })
}

func TestCanceledBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := runScript(t, ctx, "echo never"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}
