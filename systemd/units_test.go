package systemd_test

// The systemd units are checked with systemd's own tools: `systemd-analyze
// security --offline=true` gives each unit an exposure score that must stay
// within its budget, and `systemd-analyze verify` must find nothing to say about
// any unit or drop-in. Both run on the units as `make install` renders them,
// with the ExecStart= binaries replaced by stubs that exist, so verify has no
// missing executable to report. The tests skip only where systemd-analyze is
// not installed.

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/alloyci/hardened-runner/config"
)

// units are the files `make install` puts in the unit directory.
var units = []string{"alloy-runner.service", "metrics-proxy.service", "metrics-proxy.socket"}

// variants are the supported ways to run the units: the plain install, and the
// drop-ins of systemd/*.d/*.example that README.md documents, alone or
// combined as the README combines them. Every variant must stay in budget.
var variants = []struct {
	name    string
	dropins []string // paths under systemd/, without ".example"
}{
	{"plain", nil},
	{"ip-allow", []string{"metrics-proxy.service.d/ip-allow.conf", "metrics-proxy.socket.d/ip-allow.conf"}},
	{"socket-activation", []string{"metrics-proxy.service.d/socket-activation.conf"}},
	{"unix-socket", []string{"metrics-proxy.service.d/unix-upstream.conf", "alloy-runner.service.d/unix-metrics.conf"}},
	{"isolated", []string{
		"metrics-proxy.service.d/socket-activation.conf",
		"metrics-proxy.service.d/unix-upstream.conf",
		"metrics-proxy.service.d/no-network.conf",
		"metrics-proxy.socket.d/ip-allow.conf",
		"alloy-runner.service.d/unix-metrics.conf",
	}},
}

// maxExposure is the budget per service: the proxy only proxies, the runner
// runs arbitrary builds and keeps what they need (README.md lists it).
var maxExposure = map[string]float64{
	"metrics-proxy.service": 1.2,
	"alloy-runner.service":  3.0,
}

func requireAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (apt-get install systemd); the units are not checked")
	}
	return p
}

// render writes the units and the given drop-ins into a new directory, with
// @BINDIR@ pointing at stub executables, and returns the directory.
func render(t *testing.T, dropins []string) string {
	t.Helper()
	bin := t.TempDir()
	for _, name := range []string{"alloy-runner", "metrics-proxy"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	subst := strings.NewReplacer("@BINDIR@", bin, "@DOCDIR@", "/usr/local/share/doc/alloy-runner")
	write := func(src, dst string) {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		out := subst.Replace(string(b))
		if m := placeholderRe.FindString(out); m != "" {
			t.Fatalf("%s: placeholder %s left after rendering", src, m)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range units {
		write(u, filepath.Join(dir, u))
	}
	for _, d := range dropins {
		write(d+".example", filepath.Join(dir, d))
	}
	return dir
}

var placeholderRe = regexp.MustCompile(`@[A-Z]+@`)

var overallRe = regexp.MustCompile(`Overall exposure level for (\S+): ([0-9]+(?:\.[0-9]+)?)`)

func TestSecurityExposure(t *testing.T) {
	analyze := requireAnalyze(t)
	for _, v := range variants {
		dir := render(t, v.dropins)
		for unit, limit := range maxExposure {
			t.Run(v.name+"/"+unit, func(t *testing.T) {
				// A file argument makes systemd-analyze read the unit and the
				// drop-in directories next to it, not the host's units.
				cmd := exec.Command(analyze, "security", "--offline=true", "--no-pager", filepath.Join(dir, unit))
				out, err := cmd.CombinedOutput()
				m := overallRe.FindSubmatch(out)
				if m == nil {
					t.Fatalf("systemd-analyze security %s printed no overall exposure level (err %v):\n%s", unit, err, out)
				}
				score, perr := strconv.ParseFloat(string(m[2]), 64)
				if perr != nil {
					t.Fatalf("exposure level %q: %v", m[2], perr)
				}
				t.Logf("%s (%s): exposure %.1f, limit %.1f", unit, v.name, score, limit)
				if score > limit {
					t.Errorf("%s (%s): exposure level %.1f is over the limit %.1f; the checks that count against it:\n%s",
						unit, v.name, score, limit, failedChecks(out))
				}
			})
		}
	}
}

// failedChecks keeps the lines of the security table that add to the score.
func failedChecks(out []byte) string {
	var b strings.Builder
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "✗") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func TestVerify(t *testing.T) {
	analyze := requireAnalyze(t)
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			dir := render(t, v.dropins)
			args := []string{"verify", "--man=no"}
			for _, u := range units {
				args = append(args, filepath.Join(dir, u))
			}
			cmd := exec.Command(analyze, args...)
			out, err := cmd.CombinedOutput()
			// verify exits 0 even after warnings about unknown keys or values
			// it cannot parse, so any line it prints is a failure.
			if text := strings.TrimSpace(string(out)); text != "" || err != nil {
				t.Errorf("systemd-analyze verify (%s) is not silent (err %v):\n%s", v.name, err, text)
			}
		})
	}
}

// TestExampleConfigLoads: the config.toml that `make install` puts in /etc is
// one the runner accepts, with the values the unit and the proxy expect.
func TestExampleConfigLoads(t *testing.T) {
	c, err := config.Load("../examples/config.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.MetricsServer != "127.0.0.1:9252" || c.Concurrent != 2 || c.CheckInterval != 3 {
		t.Errorf("metrics_server=%q concurrent=%d check_interval=%d, want 127.0.0.1:9252, 2, 3",
			c.MetricsServer, c.Concurrent, c.CheckInterval)
	}
	if len(c.Runners) != 1 {
		t.Fatalf("%d [[runners]], want 1", len(c.Runners))
	}
	r := c.Runners[0]
	if r.Token != "REPLACE_WITH_RUNNER_TOKEN" || r.Executor != "shell" || r.Shell != "bash" ||
		!strings.HasPrefix(r.BuildsDir, "/var/lib/alloy-runner/") {
		t.Errorf("runner %+v: want the placeholder token, shell executor, bash, builds under /var/lib/alloy-runner", r)
	}
	if len(c.Unknown) != 0 {
		t.Errorf("keys the runner does not know: %v", c.Unknown)
	}
}

// TestInstall runs `make install` into a staging directory twice, with the
// installed config.toml edited in between: the edit must survive, and the
// binaries and units must be where the units say they are.
func TestInstall(t *testing.T) {
	for _, b := range []string{"alloy-runner", "metrics-proxy"} {
		if _, err := os.Stat(filepath.Join("..", "bin", b)); err != nil {
			t.Skipf("bin/%s is missing: run `make build` first (`make test` does)", b)
		}
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	dest := t.TempDir()
	install := func() string {
		t.Helper()
		// -o build: use the binaries already in bin/ (other tests may be
		// running them) instead of building them again.
		cmd := exec.Command("make", "-C", "..", "-o", "build", "install", "DESTDIR="+dest, "PREFIX=/usr/local")
		cmd.Env = withoutMakeVars(os.Environ())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make install: %v\n%s", err, out)
		}
		return string(out)
	}

	install()
	for _, b := range []string{"alloy-runner", "metrics-proxy"} {
		got, err := os.ReadFile(filepath.Join(dest, "usr/local/bin", b))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join("..", "bin", b))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("installed %s differs from bin/%s", b, b)
		}
		fi, err := os.Stat(filepath.Join(dest, "usr/local/bin", b))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o755 {
			t.Errorf("installed %s has mode %v, want 0755", b, fi.Mode().Perm())
		}
	}
	for unit, exe := range map[string]string{
		"alloy-runner.service":  "ExecStart=/usr/local/bin/alloy-runner ",
		"metrics-proxy.service": "ExecStart=/usr/local/bin/metrics-proxy ",
		"metrics-proxy.socket":  "ListenStream=9253",
	} {
		b, err := os.ReadFile(filepath.Join(dest, "usr/local/lib/systemd/system", unit))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "\n"+exe) {
			t.Errorf("installed %s has no line starting %q", unit, exe)
		}
		if m := placeholderRe.FindString(string(b)); m != "" {
			t.Errorf("installed %s still has the placeholder %s", unit, m)
		}
	}
	for _, f := range []string{
		"usr/local/lib/sysusers.d/alloy-runner.conf",
		"usr/local/lib/tmpfiles.d/alloy-runner.conf",
		"usr/local/share/doc/alloy-runner/README.md",
		"usr/local/share/doc/alloy-runner/examples/metrics-proxy.service.d/ip-allow.conf.example",
		"usr/local/share/doc/alloy-runner/examples/nftables-metrics-proxy.nft",
	} {
		if _, err := os.Stat(filepath.Join(dest, f)); err != nil {
			t.Errorf("not installed: %v", err)
		}
	}

	cfg := filepath.Join(dest, "etc/alloy-runner/config.toml")
	fi, err := os.Stat(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("config.toml installed with mode %v, want 0640 (it holds the runner token)", fi.Mode().Perm())
	}
	edited := []byte("# edited by the operator\nconcurrent = 7\n")
	if err := os.WriteFile(cfg, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	webCfg := filepath.Join(dest, "etc/metrics-proxy/web-config.yml")
	if err := os.WriteFile(webCfg, []byte("# edited\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	out := install()
	if got, err := os.ReadFile(cfg); err != nil || !bytes.Equal(got, edited) {
		t.Errorf("the second make install changed the existing config.toml (err %v):\n%s", err, got)
	}
	if !strings.Contains(out, "kept existing "+cfg) {
		t.Errorf("make install did not say it kept %s; it printed:\n%s", cfg, out)
	}
	if got, err := os.ReadFile(webCfg); err != nil || string(got) != "# edited\n" {
		t.Errorf("the second make install changed the existing web-config.yml (err %v):\n%s", err, got)
	}
}

// TestInstallNamesTheConfigDirectory: staged (DESTDIR), make install cannot
// give /etc/metrics-proxy its group, so its hint must name the directory as
// well as the file: a proxy that cannot enter the directory reads neither.
func TestInstallNamesTheConfigDirectory(t *testing.T) {
	for _, b := range []string{"alloy-runner", "metrics-proxy"} {
		if _, err := os.Stat(filepath.Join("..", "bin", b)); err != nil {
			t.Skipf("bin/%s is missing: run `make build` first (`make test` does)", b)
		}
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	dest := t.TempDir()
	cmd := exec.Command("make", "-C", "..", "-o", "build", "install", "DESTDIR="+dest, "PREFIX=/usr/local")
	cmd.Env = withoutMakeVars(os.Environ())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	if want := "make it readable by its service: chgrp metrics-proxy /etc/metrics-proxy/web-config.yml /etc/metrics-proxy\n"; !strings.Contains(string(out), want) {
		t.Errorf("make install printed no hint %q:\n%s", want, out)
	}
	fi, err := os.Stat(filepath.Join(dest, "etc/metrics-proxy"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o750 {
		t.Errorf("/etc/metrics-proxy installed with mode %v, want 0750", fi.Mode().Perm())
	}
}

// The tmpfiles entry gives /etc/metrics-proxy and its tls/ the group
// metrics-proxy (mode 0750), also when the directory exists already as
// root:root (as a staged make install leaves it), and /run/alloy-runner its
// owner, group and setgid bit. Checked as written, and, where
// systemd-tmpfiles is installed and this runs as root, by running it on a
// root directory of its own.
func TestTmpfiles(t *testing.T) {
	b, err := os.ReadFile("alloy-runner.tmpfiles")
	if err != nil {
		t.Fatal(err)
	}
	var entries []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			entries = append(entries, strings.Join(strings.Fields(l), " "))
		}
	}
	want := []string{
		"d /run/alloy-runner 2750 alloy-runner metrics-proxy -",
		"d /etc/metrics-proxy 0750 root metrics-proxy -",
		"d /etc/metrics-proxy/tls 0750 root metrics-proxy -",
	}
	if strings.Join(entries, "\n") != strings.Join(want, "\n") {
		t.Errorf("alloy-runner.tmpfiles entries:\n%s\nwant:\n%s", strings.Join(entries, "\n"), strings.Join(want, "\n"))
	}

	tmpfiles, err := exec.LookPath("systemd-tmpfiles")
	if err != nil {
		t.Skip("systemd-tmpfiles is not installed; the entries are not run")
	}
	if os.Geteuid() != 0 {
		t.Skip("not root: systemd-tmpfiles cannot chown; the entries are not run")
	}
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	const runnerID, proxyID = 990, 991
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nalloy-runner:x:990:990::/var/lib/alloy-runner:/usr/sbin/nologin\nmetrics-proxy:x:991:991::/:/usr/sbin/nologin\n",
		"etc/group":  "root:x:0:\nalloy-runner:x:990:\nmetrics-proxy:x:991:\n",
	}
	for name, body := range files {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// What a staged make install leaves: root:root 0750.
	if err := os.Mkdir(filepath.Join(root, "etc/metrics-proxy"), 0o750); err != nil {
		t.Fatal(err)
	}
	conf, err := filepath.Abs("alloy-runner.tmpfiles") // a relative one is looked up under --root
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(tmpfiles, "--create", "--root="+root, conf).CombinedOutput(); err != nil {
		t.Fatalf("systemd-tmpfiles --create: %v\n%s", err, out)
	}
	for path, w := range map[string]struct {
		mode     os.FileMode
		uid, gid uint32
	}{
		"etc/metrics-proxy":     {0o750, 0, proxyID},
		"etc/metrics-proxy/tls": {0o750, 0, proxyID},
		"run/alloy-runner":      {0o750 | os.ModeSetgid, runnerID, proxyID},
	} {
		fi, err := os.Stat(filepath.Join(root, path))
		if err != nil {
			t.Errorf("systemd-tmpfiles made no /%s: %v", path, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if got := fi.Mode() & (os.ModePerm | os.ModeSetgid); got != w.mode || st.Uid != w.uid || st.Gid != w.gid {
			t.Errorf("/%s: mode %v, owner %d:%d; want %v, %d:%d", path, got, st.Uid, st.Gid, w.mode, w.uid, w.gid)
		}
	}
}

// serviceSettings are the [Service] assignments of a rendered unit and its
// drop-ins (dir/<unit>.d/*.conf, in name order), as systemd combines them:
// for each key the values in order, an empty assignment clearing those
// before it.
func serviceSettings(t *testing.T, dir, unit string) map[string][]string {
	t.Helper()
	files := []string{filepath.Join(dir, unit)}
	dropins, _ := filepath.Glob(filepath.Join(dir, unit+".d", "*.conf"))
	sort.Strings(dropins)
	files = append(files, dropins...)
	settings := map[string][]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		section := ""
		for _, l := range strings.Split(string(b), "\n") {
			l = strings.TrimSpace(l)
			switch {
			case l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";"):
			case strings.HasPrefix(l, "["):
				section = l
			case section == "[Service]":
				k, v, _ := strings.Cut(l, "=")
				if v == "" {
					delete(settings, k)
					continue
				}
				settings[k] = append(settings[k], v)
			}
		}
	}
	return settings
}

// TestNotifyUnits: in every variant both services are Type=notify, only
// their main process may notify, a reload is kill -HUP (which the binaries
// answer with RELOADING=1 and READY=1), and AF_UNIX sockets are allowed:
// sd_notify sends its datagrams over one, and without it systemd would wait
// for READY=1 until TimeoutStartSec and then fail the unit.
func TestNotifyUnits(t *testing.T) {
	for _, v := range variants {
		dir := render(t, v.dropins)
		for _, unit := range []string{"alloy-runner.service", "metrics-proxy.service"} {
			s := serviceSettings(t, dir, unit)
			last := func(k string) string {
				if vs := s[k]; len(vs) > 0 {
					return vs[len(vs)-1]
				}
				return ""
			}
			for k, want := range map[string]string{
				"Type":         "notify",
				"NotifyAccess": "main",
				"ExecReload":   `/bin/sh -c 'kill -HUP "$MAINPID"'`,
			} {
				if got := last(k); got != want {
					t.Errorf("%s (%s): %s=%q, want %q", unit, v.name, k, got, want)
				}
			}
			var families []string
			for _, f := range s["RestrictAddressFamilies"] {
				families = append(families, strings.Fields(f)...)
			}
			if !slices.Contains(families, "AF_UNIX") || slices.ContainsFunc(families, func(f string) bool { return strings.HasPrefix(f, "~") }) {
				t.Errorf("%s (%s): RestrictAddressFamilies=%v does not allow AF_UNIX, which sd_notify needs", unit, v.name, families)
			}
		}
	}
}

// withoutMakeVars drops the variables a parent make exports (`make test` runs
// this test), so the inner make starts clean: no jobserver, no inherited flags.
func withoutMakeVars(env []string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "DESTDIR", "PREFIX":
			continue
		}
		out = append(out, kv)
	}
	return out
}

// TestNftablesExample checks the firewall example's syntax with nft's check
// mode, which parses and validates against the kernel without loading.
func TestNftablesExample(t *testing.T) {
	nft, err := exec.LookPath("nft")
	if err != nil {
		t.Skip("nft is not installed; examples/nftables-metrics-proxy.nft is not checked")
	}
	const file = "../examples/nftables-metrics-proxy.nft"
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"192.0.2.10", "2001:db8::10"} {
		if !strings.Contains(string(b), addr) {
			t.Errorf("%s: no placeholder address %s", file, addr)
		}
	}
	out, err := exec.Command(nft, "-c", "-f", file).CombinedOutput()
	if err != nil && strings.Contains(string(out), "Operation not permitted") {
		t.Skipf("nft -c needs CAP_NET_ADMIN here: %s", out)
	}
	if err != nil {
		t.Errorf("nft -c -f %s: %v\n%s", file, err, out)
	}
}
