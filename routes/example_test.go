package routes

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

const examplePath = "../examples/routes.yml"

func TestExampleTokenSHA256(t *testing.T) {
	sum := sha256.Sum256([]byte("example-token-replace-me"))
	if got := hex.EncodeToString(sum[:]); got != ExampleTokenSHA256 {
		t.Errorf("ExampleTokenSHA256 = %s, want the SHA-256 of the documented string, %s", ExampleTokenSHA256, got)
	}
}

// TestExampleFile: the shipped example is refused for its placeholder
// token only, and is otherwise exactly the documented three routes.
func TestExampleFile(t *testing.T) {
	content, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	tab, problems, warnings := Parse(content)
	want := []string{"token node-scraper: sha256 is the documented example; replace it with the sha256 line printed by metrics-proxy hash-token"}
	if !reflect.DeepEqual(problems, want) || len(warnings) != 0 || tab != nil {
		t.Fatalf("Parse(%s) = %v, problems %q, warnings %q; want only the problem %q", examplePath, tab, problems, warnings, want)
	}
	if !strings.Contains(string(content), ExampleTokenSHA256) {
		t.Fatalf("%s does not use ExampleTokenSHA256", examplePath)
	}

	// With a real token in its place, the rest must be exactly as documented.
	real := sha256.Sum256([]byte("a real token"))
	fixed := strings.Replace(string(content), ExampleTokenSHA256, hex.EncodeToString(real[:]), 1)
	tab, problems, warnings = Parse([]byte(fixed))
	if len(problems) > 0 || len(warnings) > 0 {
		t.Fatalf("with a real token: problems %q, warnings %q", problems, warnings)
	}
	tcp := func(port, path string) Upstream {
		return Upstream{Raw: "http://127.0.0.1:" + port + path, Network: "tcp", Address: "127.0.0.1:" + port, Host: "127.0.0.1:" + port, Path: path}
	}
	wantTable := &Table{
		Routes: []Route{
			{Name: "runner", Path: "/metrics", Upstream: tcp("9252", "/metrics"), Allow: Allow{Everyone: true}},
			{Name: "node", Path: "/node/metrics", Upstream: tcp("9100", "/metrics"), Allow: Allow{Everyone: true}},
			{Name: "pprof", Path: "/debug/pprof/", Upstream: tcp("9252", "/debug/pprof/"), Timeout: 60 * time.Second, Allow: Allow{Users: []string{"oncall"}}},
		},
		Tokens: map[string][sha256.Size]byte{"node-scraper": real},
	}
	if !reflect.DeepEqual(tab, wantTable) {
		t.Errorf("table:\n got %+v\nwant %+v", tab, wantTable)
	}
}
