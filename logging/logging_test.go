package logging

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/go-kit/log/level"
)

func TestLevelFilters(t *testing.T) {
	var buf bytes.Buffer
	l, err := New(Config{Level: "warn", Format: "logfmt"}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	level.Info(l).Log("msg", "hidden")
	level.Warn(l).Log("msg", "shown")
	out := buf.String()
	if strings.Contains(out, "hidden") || !strings.Contains(out, "msg=shown") || !strings.Contains(out, "level=warn") {
		t.Fatalf("unexpected log output %q", out)
	}
}

func TestJSONFormat(t *testing.T) {
	var buf bytes.Buffer
	l, err := New(Config{Level: "info", Format: "json"}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	level.Info(l).Log("msg", "hello")
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("not JSON: %v: %q", err, buf.String())
	}
	if m["msg"] != "hello" || m["level"] != "info" {
		t.Fatalf("got %v", m)
	}
}

func TestUnknownValuesAreErrors(t *testing.T) {
	if _, err := New(Config{Format: "xml"}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), `unknown log format "xml"`) {
		t.Fatalf("got %v", err)
	}
	if _, err := New(Config{Level: "trace"}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), `unknown log level "trace"`) {
		t.Fatalf("got %v", err)
	}
}
