package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/alloyci/hardened-runner/auth"
)

// The shipped example must be one the proxy refuses to run with, so nobody
// deploys its public password by accident.
func TestExampleWebConfigIsRefusedForItsHash(t *testing.T) {
	b, err := os.ReadFile("../web-config.yml.example")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), auth.ExampleHash) {
		t.Fatalf("web-config.yml.example does not carry auth.ExampleHash")
	}
	code, out := run(t, 20*time.Second, "metrics-proxy", "check-config", "--web.config.file", "../web-config.yml.example")
	want := `basic_auth_users: user "prometheus": password hash is the documented example hash, whose password is public`
	if code != 1 || !strings.Contains(out, want) {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
}
