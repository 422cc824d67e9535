package packaging_test

// The packaging files, checked without building a package (make test): the
// Debian version, what stage.sh makes of systemd/ and examples/, that the
// nfpm configs ship all of it, the presets and the maintainer scripts' syntax.

import (
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

func TestDebVersion(t *testing.T) {
	for _, c := range []struct{ version, commits, want string }{
		{"v1.2.3", "10", "1.2.3"},
		{"1.2.3", "10", "1.2.3"},
		{"v1.2.3-4-gabc1234", "14", "1.2.3+git4.gabc1234"},
		{"v1.3.0-rc1", "20", "1.3.0~rc1"},
		{"v1.3.0-rc1-2-gdeadbee-dirty", "22", "1.3.0~rc1+git2.gdeadbee+dirty"},
		{"abc1234", "57", "0.0.0~git57.gabc1234"},
		{"305980f-dirty", "100", "0.0.0~git100.g305980f+dirty"},
		{"0.0.0-dev", "0", "0.0.0~dev"},
	} {
		out, err := exec.Command("./deb-version.sh", c.version, c.commits).CombinedOutput()
		if got := strings.TrimSpace(string(out)); err != nil || got != c.want {
			t.Errorf("deb-version.sh %s %s = %q (err %v), want %q", c.version, c.commits, got, err, c.want)
		}
	}
	// Ordering: what dpkg must see as upgrades, in order.
	order := []string{"0.0.0~dev", "0.0.0~git57.gabc1234", "0.0.0~git100.g305980f", "1.2.3~rc1", "1.2.3", "1.2.3+git4.gabc1234", "1.2.4"}
	if _, err := exec.LookPath("dpkg"); err == nil {
		for i := 1; i < len(order); i++ {
			if err := exec.Command("dpkg", "--compare-versions", order[i-1], "lt", order[i]).Run(); err != nil {
				t.Errorf("dpkg does not order %s before %s", order[i-1], order[i])
			}
		}
	}
	for _, bad := range []string{"foo", "v1.2_3", ""} {
		out, err := exec.Command("./deb-version.sh", bad, "1").CombinedOutput()
		if err == nil {
			t.Errorf("deb-version.sh %q = %q, want a refusal", bad, out)
		}
	}
}

// stage runs stage.sh as make deb does, with stub binaries that answer
// --help-man, and returns the stage directory.
func stage(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	for _, b := range []string{"alloy-runner", "metrics-proxy"} {
		stub := "#!/bin/sh\nprintf '.TH " + b + " 1 multi\\nline version\\n.SH \"NAME\"\\n" + b + "\\n.SH \"SYNOPSIS\"\\n" + b + "\\n'\n"
		if err := os.WriteFile(filepath.Join(bin, b), []byte(stub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(t.TempDir(), "stage")
	cmd := exec.Command("packaging/stage.sh", dir)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "DEB_VERSION=1.2.3", "DEB_MAINTAINER=Test <test@example.org>",
		"SOURCE_DATE_EPOCH=1700000000", "DEB_BIN="+bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("stage.sh: %v\n%s", err, out)
	}
	return dir
}

// entries returns the lines of a sysusers.d or tmpfiles.d file that are not
// comments, with their fields joined by one space.
func entries(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, strings.Join(strings.Fields(l), " "))
		}
	}
	return out
}

var packages = []string{"alloy-runner", "metrics-proxy"}

// TestStageSplitsEveryEntry: each sysusers and tmpfiles entry of systemd/
// goes to exactly one package, which gets it whole; the runner's package also
// makes the group metrics-proxy, for /run/alloy-runner.
func TestStageSplitsEveryEntry(t *testing.T) {
	dir := stage(t)
	for _, kind := range []struct{ src, name string }{
		{"../systemd/alloy-runner.sysusers", "sysusers.conf"},
		{"../systemd/alloy-runner.tmpfiles", "tmpfiles.conf"},
	} {
		var got []string
		for _, p := range packages {
			for _, e := range entries(t, filepath.Join(dir, p, kind.name)) {
				if p == "alloy-runner" && kind.name == "sysusers.conf" && e == "g metrics-proxy -" {
					continue
				}
				got = append(got, e)
			}
		}
		want := entries(t, kind.src)
		sort.Strings(got)
		sort.Strings(want)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s split into the packages:\n%s\nwant:\n%s", kind.src, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	runner := strings.Join(entries(t, filepath.Join(dir, "alloy-runner/sysusers.conf")), "\n")
	if !strings.Contains(runner, "g metrics-proxy -") || !strings.Contains(runner, "u alloy-runner ") {
		t.Errorf("alloy-runner's sysusers.conf:\n%s\nwant its user and the group metrics-proxy", runner)
	}
	for _, p := range packages {
		for _, e := range entries(t, filepath.Join(dir, p, "tmpfiles.conf")) {
			if path := strings.Fields(e)[1]; !strings.Contains(path, p) {
				t.Errorf("%s's tmpfiles.conf has %s, which is not its path", p, path)
			}
		}
	}
}

// TestStageRendersUnitsAndExamples: every unit and drop-in example of
// systemd/ is in exactly one package, rendered for /usr/bin and the
// package's doc directory.
func TestStageRendersUnitsAndExamples(t *testing.T) {
	dir := stage(t)
	placeholder := regexp.MustCompile(`@[A-Z]+@`)
	srcs, _ := filepath.Glob("../systemd/*.service")
	sockets, _ := filepath.Glob("../systemd/*.socket")
	dropins, _ := filepath.Glob("../systemd/*.d/*.example")
	for _, src := range append(append(srcs, sockets...), dropins...) {
		rel := strings.TrimPrefix(src, "../systemd/")
		var found []string
		for _, p := range packages {
			for _, cand := range []string{filepath.Join(dir, p, "units", rel), filepath.Join(dir, p, "doc/examples", rel)} {
				b, err := os.ReadFile(cand)
				if err != nil {
					continue
				}
				found = append(found, p)
				text := string(b)
				if m := placeholder.FindString(text); m != "" {
					t.Errorf("%s: placeholder %s left", cand, m)
				}
				if strings.Contains(text, "Documentation=") && !strings.Contains(text, "Documentation=file:/usr/share/doc/"+p+"/README.md") {
					t.Errorf("%s: Documentation= does not name /usr/share/doc/%s/README.md", cand, p)
				}
				for _, m := range regexp.MustCompile(`(?m)^ExecStart=(\S+)`).FindAllStringSubmatch(text, -1) {
					if m[1] != "/usr/bin/"+p {
						t.Errorf("%s: ExecStart=%s, want /usr/bin/%s", cand, m[1], p)
					}
				}
			}
		}
		if len(found) != 1 {
			t.Errorf("systemd/%s is in the packages %v, want exactly one", rel, found)
		}
	}
	for _, p := range packages {
		for _, f := range []string{"doc/README.md", "doc/copyright", "doc/changelog.gz"} {
			if _, err := os.Stat(filepath.Join(dir, p, f)); err != nil {
				t.Errorf("%s: %v", p, err)
			}
		}
		zf, err := os.Open(filepath.Join(dir, p, "man", p+".1.gz"))
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(zf)
		if err != nil {
			t.Fatal(err)
		}
		man, _ := io.ReadAll(zr)
		zf.Close()
		if want := ".TH " + p + " 1 \"2023-11-14\" \"" + p + " 1.2.3\" \"User Commands\"\n.SH \"NAME\"\n" + p + " \\- "; !strings.HasPrefix(string(man), want) {
			t.Errorf("%s.1.gz starts %q, want %q", p, man, want)
		}
	}
}

// TestNfpmConfigsShipTheStage: each package's nfpm config ships every unit,
// entry file and man page stage.sh made for it, and names only files that
// exist.
func TestNfpmConfigsShipTheStage(t *testing.T) {
	dir := stage(t)
	srcRe := regexp.MustCompile(`(?m)^\s*- src: (\S+)`)
	for _, p := range packages {
		b, err := os.ReadFile(p + ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		shipped := map[string]bool{}
		for _, m := range srcRe.FindAllStringSubmatch(string(b), -1) {
			src := strings.NewReplacer("${DEB_STAGE}", dir, "${DEB_BIN}", "BIN").Replace(m[1])
			shipped[src] = true
			if strings.HasPrefix(src, "BIN/") {
				if src != "BIN/"+p {
					t.Errorf("%s.yaml ships the binary %s, want only %s", p, src, p)
				}
				continue
			}
			if !strings.HasPrefix(src, dir) {
				src = filepath.Join("..", src)
			}
			if _, err := os.Stat(src); err != nil {
				t.Errorf("%s.yaml: %v", p, err)
			}
		}
		made, _ := filepath.Glob(filepath.Join(dir, p, "units", "*"))
		man, _ := filepath.Glob(filepath.Join(dir, p, "man", "*"))
		made = append(append(made, man...), filepath.Join(dir, p, "sysusers.conf"), filepath.Join(dir, p, "tmpfiles.conf"), filepath.Join(dir, p, "doc"))
		for _, f := range made {
			if !shipped[f] {
				t.Errorf("%s.yaml does not ship %s: add it to contents:", p, strings.TrimPrefix(f, dir+"/"))
			}
		}
		if !shipped["packaging/"+p+".preset"] || !shipped["packaging/"+p+".lintian-overrides"] || !shipped["packaging/"+p+"-needs-config.conf"] {
			t.Errorf("%s.yaml does not ship its preset, lintian overrides and needs-config drop-in", p)
		}
	}
}

// TestPresets: the services are enabled by default, the socket is not.
func TestPresets(t *testing.T) {
	for file, want := range map[string][]string{
		"metrics-proxy.preset": {"enable metrics-proxy.service", "disable metrics-proxy.socket"},
		"alloy-runner.preset":  {"enable alloy-runner.service"},
	} {
		if got := entries(t, file); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: %q, want %q", file, got, want)
		}
	}
}

// TestMaintainerScripts: POSIX sh syntax (dash where it is installed, as
// Debian runs them), set -e, and exit 0 at the end.
func TestMaintainerScripts(t *testing.T) {
	shell := "sh"
	if _, err := exec.LookPath("dash"); err == nil {
		shell = "dash"
	}
	scripts, _ := filepath.Glob("scripts/*")
	if len(scripts) != 6 {
		t.Errorf("scripts/: %v, want postinst, prerm and postrm of both packages", scripts)
	}
	for _, s := range scripts {
		if out, err := exec.Command(shell, "-n", s).CombinedOutput(); err != nil {
			t.Errorf("%s -n %s: %v\n%s", shell, s, err, out)
		}
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		if !strings.HasPrefix(text, "#!/bin/sh\n") || !strings.Contains(text, "\nset -e\n") || !strings.HasSuffix(text, "\nexit 0\n") {
			t.Errorf("%s: want #!/bin/sh, set -e and a final exit 0", s)
		}
	}
}
