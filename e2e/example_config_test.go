package e2e

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alloyci/hardened-runner/auth"
	"github.com/alloyci/hardened-runner/routes"
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

// check-config on the two shipped examples names exactly the placeholders
// to fill in (the certificate paths, the two example password hashes, the
// example token hash) and nothing else: the exact output is the golden
// message.
func TestExampleRoutesNameOnlyThePlaceholders(t *testing.T) {
	code, out := run(t, 20*time.Second, "metrics-proxy", "check-config",
		"--web.config.file=../web-config.yml.example", "--web.routes.file=../examples/routes.yml")
	want := "../examples/routes.yml: token node-scraper: sha256 is the documented example; replace it with the sha256 line printed by metrics-proxy hash-token"
	if code != 1 || !strings.Contains(out, want) || strings.Contains(out, "warning") {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
}

// Once the placeholders are filled in, the two examples pass check-config
// without a warning.
func TestExampleRoutesFilledInAreClean(t *testing.T) {
	k := newPKI(t)
	web := readFile(t, "../web-config.yml.example")
	for old, repl := range map[string]string{
		auth.ExampleHash:                    defaultHash(t),
		"/etc/metrics-proxy/tls/server.crt": k.CertFile,
		"/etc/metrics-proxy/tls/server.key": k.KeyFile,
	} {
		if !strings.Contains(web, old) {
			t.Fatalf("web-config.yml.example no longer contains %q; update this test", old)
		}
		web = strings.ReplaceAll(web, old, repl)
	}
	routesFile := readFile(t, "../examples/routes.yml")
	if !strings.Contains(routesFile, routes.ExampleTokenSHA256) {
		t.Fatal("examples/routes.yml does not carry routes.ExampleTokenSHA256")
	}
	sum := auth.TokenSHA256("a token that is not the example, long enough")
	routesFile = strings.ReplaceAll(routesFile, routes.ExampleTokenSHA256, hex.EncodeToString(sum[:]))
	dir := t.TempDir()
	webFile, routesPath := filepath.Join(dir, "web-config.yml"), filepath.Join(dir, "routes.yml")
	writeFile(t, webFile, web)
	writeFile(t, routesPath, routesFile)
	code, out := run(t, 20*time.Second, "metrics-proxy", "check-config", "--web.config.file="+webFile, "--web.routes.file="+routesPath)
	if want := webFile + " and " + routesPath + ": OK\n"; code != 0 || out != want {
		t.Fatalf("exit %d, output:\n%s\nwant exit 0 and %q", code, out, want)
	}
}
