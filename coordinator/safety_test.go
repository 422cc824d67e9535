package coordinator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/alloyci/hardened-runner/coordinator"
	"github.com/alloyci/hardened-runner/coordinator/coordinatortest"
)

// A coordinator that stores the registration and then loses the connection
// before answering: the runner must not register again (a second runner
// with a live token), and must say the first one may exist.
func TestRegisterIsNotRepeatedOnceItMayHaveArrived(t *testing.T) {
	var mu sync.Mutex
	stored := 0
	url := server127(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		stored++
		mu.Unlock()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		_ = conn.Close()
	})
	s := &sleeps{}
	_, err := newClient(s).Register(context.Background(), url, coordinator.Registration{Token: "reg-secret", Description: "d"})
	mu.Lock()
	n := stored
	mu.Unlock()
	if n != 1 {
		t.Errorf("the coordinator received %d registrations, want exactly 1", n)
	}
	if err == nil {
		t.Fatal("Register succeeded without an answer")
	}
	msg := err.Error()
	for _, want := range []string{"the registration may have been stored", "AlloyCI UI", "alloy-runner verify"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if strings.Contains(msg, "reg-secret") || s.count != 0 {
		t.Errorf("err = %v, %d retries", err, s.count)
	}
}

// A 5xx answer to the registration is not retried either: a proxy's 502 may
// come after the coordinator stored it.
func TestRegisterDoesNotRetry5xx(t *testing.T) {
	url, calls := statusServer(t, http.StatusBadGateway)
	_, err := newClient(&sleeps{}).Register(context.Background(), url, coordinator.Registration{Token: "reg-secret", Description: "d"})
	var se *coordinator.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusBadGateway || !strings.Contains(err.Error(), "may have been stored") {
		t.Fatalf("err = %v", err)
	}
	if calls.Load() != 1 {
		t.Fatalf("%d registrations sent, want 1", calls.Load())
	}
}

// A failed dial cannot have reached anyone: that is retried, and the error
// does not claim the runner may exist.
func TestRegisterRetriesAFailedDial(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens there now
	s := &sleeps{}
	_, err = newClient(s).Register(context.Background(), "http://"+addr+"/", coordinator.Registration{Token: "reg-secret", Description: "d"})
	if err == nil || strings.Contains(err.Error(), "may have been stored") || !strings.Contains(err.Error(), "gave up after 3 attempts") {
		t.Fatalf("err = %v", err)
	}
	if s.count != 2 {
		t.Fatalf("%d back-offs, want 2", s.count)
	}
}

// Request bodies are not HTML-escaped: a trace of <, > and & is sent as it
// is, one byte each.
func TestUpdateDoesNotEscapeHTML(t *testing.T) {
	var raw []byte
	url := server127(t, func(w http.ResponseWriter, r *http.Request) {
		raw, _ = io.ReadAll(r.Body)
	})
	trace := strings.Repeat("<a href=x>&</a>", 100)
	if _, err := newClient(&sleeps{}).UpdateJob(context.Background(), url, 1, "jt",
		coordinator.Update{State: "success", Trace: &trace}, coordinator.RetryBriefly); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte(trace)) || bytes.Contains(raw, []byte(`\u003c`)) {
		t.Fatalf("body escapes HTML: %.200s", raw)
	}
}

// A trace whose JSON would pass the coordinator's 8 MB limit is cut from the
// front to fit, with a note, and keeps its end; a double of either flavor
// records the final state.
func TestUpdateCutsATraceTooLargeForTheCoordinator(t *testing.T) {
	for _, f := range coordinatortest.Flavors() {
		t.Run(string(f), func(t *testing.T) {
			d := coordinatortest.NewFlavor(t, f)
			d.AddRunner("rt")
			id := d.Enqueue("rt", coordinator.Job{Steps: []coordinator.Step{{Name: "script", Script: []string{"true"}}}})
			job, _, err := newClient(&sleeps{}).RequestJob(context.Background(), d.URL, "rt", "")
			if err != nil || job == nil || job.ID != id {
				t.Fatalf("job %v, err %v", job, err)
			}
			// 6 bytes of JSON for each ESC, 2 for each quote: 24 MB.
			trace := "first line\n" + strings.Repeat("\x1b[0m\"x\"\n", 400_000) + "the last line\n"
			trace = strings.Repeat("\x1b", 3_000_000) + trace
			if _, err := newClient(&sleeps{}).UpdateJob(context.Background(), d.URL, id, job.Token,
				coordinator.Update{State: coordinator.StateSuccess, Trace: &trace}, coordinator.RetryBriefly); err != nil {
				t.Fatal(err)
			}
			got := d.Job(id)
			if !got.Final || got.State != coordinator.StateSuccess || got.TooLarge != 0 {
				t.Fatalf("final=%v state=%s 413s=%d", got.Final, got.State, got.TooLarge)
			}
			if got.LargestPut > coordinator.MaxUpdateBytes || got.LargestPut < coordinator.MaxUpdateBytes-64<<10 {
				t.Errorf("PUT body of %d bytes, want just under %d", got.LargestPut, coordinator.MaxUpdateBytes)
			}
			var dropped int
			if _, err := fmt.Sscanf(got.Stored, coordinator.CutNote, &dropped); err != nil || dropped <= 0 {
				t.Fatalf("stored trace does not start with the cut note (%v): %.200q", err, got.Stored)
			}
			note := fmt.Sprintf(coordinator.CutNote, dropped)
			if got.Stored[len(note):] != trace[dropped:] || !strings.HasSuffix(got.Stored, "\"x\"\nthe last line\n") {
				t.Errorf("the stored trace is not the note and the end of the trace (%d bytes dropped)", dropped)
			}
			if !utf8.ValidString(got.Stored) {
				t.Error("stored trace is not valid UTF-8")
			}
		})
	}
}

// Both flavors of the double answer 413 to a JSON body over 8,000,000
// bytes, as AlloyCI's Plug.Parsers does, and record it as a violation.
func TestDoubleRefusesJSONBodiesOver8MB(t *testing.T) {
	for _, f := range coordinatortest.Flavors() {
		t.Run(string(f), func(t *testing.T) {
			d := coordinatortest.NewFlavor(t, f)
			body, _ := json.Marshal(map[string]string{"token": "x", "state": "success", "trace": strings.Repeat("a", coordinatortest.MaxJSONBody)})
			req, _ := http.NewRequest(http.MethodPut, d.URL+"api/v4/jobs/1", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d, want 413", resp.StatusCode)
			}
			if v := d.TakeViolations(); len(v) != 1 || !strings.Contains(v[0], "413") {
				t.Fatalf("violations %q", v)
			}
		})
	}
}

// No error or message of the package is formatted from a value whose name
// says it is a token: a static check of every fmt and errors call in the
// package's code, so that a new error cannot show one by mistake.
func TestNoMessageFormatsAToken(t *testing.T) {
	fset := token.NewFileSet()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, e.Name(), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	checked := 0
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			c, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := c.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			pkgName, ok := sel.X.(*ast.Ident)
			if !ok || (pkgName.Name != "fmt" && pkgName.Name != "errors") {
				return true
			}
			checked++
			for _, arg := range c.Args {
				ast.Inspect(arg, func(n ast.Node) bool {
					if id, ok := n.(*ast.Ident); ok && strings.Contains(strings.ToLower(id.Name), "token") {
						t.Errorf("%s: %s.%s is given %s", fset.Position(id.Pos()), pkgName.Name, sel.Sel.Name, id.Name)
					}
					return true
				})
			}
			return true
		})
	}
	if checked < 50 {
		t.Fatalf("only %d fmt and errors calls found: is the check looking at the package?", checked)
	}
}
