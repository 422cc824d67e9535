package packaging_test

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// TestLintian runs lintian on the two packages (make test-system): nothing
// may be reported at the levels error, warning, info or pedantic but what
// packaging/*.lintian-overrides overrides, each with its reason.
func TestLintian(t *testing.T) {
	dir, runner, proxy := systemTestDebs(t)
	lintian, err := exec.LookPath("lintian")
	if err != nil {
		t.Skip("lintian is not installed (packaging/system-test-deps.sh installs it); the packages are not linted")
	}
	debs := []string{filepath.Join(dir, runner), filepath.Join(dir, proxy)}
	// What lintian says, overridden tags included (O:); with
	// --show-overrides those count for --fail-on, so the verdict is a
	// second run without it.
	out, _ := exec.Command(lintian, append([]string{"--pedantic", "--display-info", "--show-overrides", "--fail-on", "none"}, debs...)...).CombinedOutput()
	t.Logf("lintian --pedantic --display-info --show-overrides (O: overridden):\n%s", out)
	out, err = exec.Command(lintian, append([]string{"--pedantic", "--display-info", "--fail-on", "error,warning,info,pedantic"}, debs...)...).CombinedOutput()
	if err != nil {
		t.Errorf("lintian reports what packaging/*.lintian-overrides does not override (%v): fix it, or override it there with its reason:\n%s", err, out)
	}
}
