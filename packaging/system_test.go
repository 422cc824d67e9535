package packaging_test

// TestSystem: the two packages under a real systemd. make test-system builds
// them and sets ALLOY_SYSTEM_TEST_DEBS; without it the test skips at once,
// so make test stays quick.
//
// A minimal Debian 12 root is made with mmdebstrap from the mirror this
// machine's apt uses, kept as a tarball in ALLOY_SYSTEM_TEST_CACHE keyed by
// everything that goes into it, unpacked into a temporary directory and
// booted with systemd-nspawn on a private network (its own loopback and
// nothing else). The test drives the container by entering the namespaces
// of its PID 1 with nsenter: with --register=no there is no machinectl or
// systemd-run --machine, and nsenter needs nothing running inside but the
// container's own systemd. At the end the container is powered off from
// inside (SIGTERM, then SIGKILL, to systemd-nspawn if that hangs) and its
// root removed. packaging/README.md has the whole picture.

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	envDebs   = "ALLOY_SYSTEM_TEST_DEBS"   // the directory holding the two .debs
	envCache  = "ALLOY_SYSTEM_TEST_CACHE"  // where the root tarball is kept between runs
	envMirror = "ALLOY_SYSTEM_TEST_MIRROR" // a Debian mirror URL instead of this machine's apt sources
)

// rootPackages are installed into the root besides the apt variant's
// Essential set: systemd as PID 1, dbus for systemctl, curl and openssl to
// make and scrape a TLS door, and iproute2 for the allow-list's test
// addresses. Not procps: the units must run without /bin/kill (their
// ExecReload= uses the shell's kill), as on a minimal system.
// testUnitPrograms checks that the packages' Depends: cover what the units
// run.
var rootPackages = []string{"systemd", "systemd-sysv", "dbus", "curl", "ca-certificates", "openssl", "iproute2"}

// mmdebstrapArgs are the options of the root besides its packages and mirror.
var mmdebstrapArgs = []string{
	"--variant=apt",
	"--dpkgopt=path-exclude=/usr/share/man/*",
	"--dpkgopt=path-exclude=/usr/share/locale/*",
	"--dpkgopt=path-include=/usr/share/locale/locale.alias",
}

// variants are the ways to run the units that systemd/README.md documents,
// as systemd/units_test.go scores them offline: the drop-ins of
// systemd/*.d/*.conf.example (installed from the packages' examples),
// alone or combined as the README combines them. Every drop-in the packages
// ship must be in one.
var variants = []struct {
	name    string
	dropins []string
}{
	{"plain", nil},
	{"ip-allow", []string{"metrics-proxy.service.d/ip-allow.conf", "metrics-proxy.socket.d/ip-allow.conf"}},
	{"socket-activation", []string{"metrics-proxy.service.d/socket-activation.conf"}},
	{"socket-activation+ip-allow", []string{"metrics-proxy.service.d/socket-activation.conf",
		"metrics-proxy.service.d/ip-allow.conf", "metrics-proxy.socket.d/ip-allow.conf"}},
	{"unix-socket", []string{"metrics-proxy.service.d/unix-upstream.conf", "alloy-runner.service.d/unix-metrics.conf"}},
	{"isolated", []string{
		"metrics-proxy.service.d/socket-activation.conf",
		"metrics-proxy.service.d/unix-upstream.conf",
		"metrics-proxy.service.d/no-network.conf",
		"metrics-proxy.socket.d/ip-allow.conf",
		"alloy-runner.service.d/unix-metrics.conf",
	}},
}

// The addresses the allow-list test puts on the container's own lo (its
// private network has nothing else): the Prometheus placeholder that
// ip-allow.conf.example allows, and one it does not. Connections from them
// go to 127.0.0.1 and never leave the container's network namespace.
const (
	allowedSource = "192.0.2.10"
	deniedSource  = "192.0.2.99"
)

func TestSystem(t *testing.T) {
	began := time.Now()
	debDir, runnerDeb, proxyDeb := systemTestDebs(t)
	requireNspawn(t)

	tarball := rootTarball(t)
	root := unpackRoot(t, tarball)
	probeNspawn(t, root)
	c := boot(t, root, debDir)

	c.must(t, "ip addr add "+allowedSource+"/32 dev lo && ip addr add "+deniedSource+"/32 dev lo")
	if !t.Run("install", func(t *testing.T) { testInstall(t, c, runnerDeb, proxyDeb) }) {
		return
	}
	t.Run("the units run only what the packages depend on", func(t *testing.T) { testUnitPrograms(t, c) })
	if !t.Run("configure and start", func(t *testing.T) { testConfigure(t, c) }) {
		return
	}
	limits := exposureLimits(t)
	t.Run("every drop-in is in a variant", func(t *testing.T) { testDropinsCovered(t, c) })
	for _, v := range variants {
		t.Run("variant "+v.name, func(t *testing.T) {
			took := time.Now()
			applyVariant(t, c, v.dropins)
			checkVariant(t, c, v.dropins)
			checkExposure(t, c, v.name, limits)
			t.Logf("timing: variant %s: %v", v.name, time.Since(took).Round(100*time.Millisecond))
		})
	}
	applyVariant(t, c, nil)
	t.Run("reload with a broken web config", func(t *testing.T) { testBrokenReload(t, c) })
	t.Run("stop closes the ports", func(t *testing.T) { testStop(t, c) })
	t.Run("reinstall over a running install", func(t *testing.T) { testReinstall(t, c, runnerDeb, proxyDeb) })
	t.Run("remove keeps the configs", func(t *testing.T) { testRemove(t, c) })
	t.Run("purge removes the configs and state", func(t *testing.T) { testPurge(t, c) })
	t.Logf("timing: whole test (without poweroff and cleanup): %v", time.Since(began).Round(100*time.Millisecond))
}

// ---- Preconditions -----------------------------------------------------

func systemTestDebs(t *testing.T) (dir, runner, proxy string) {
	t.Helper()
	dir = os.Getenv(envDebs)
	if dir == "" {
		t.Skip("the system test runs under make test-system, which builds the packages and sets " + envDebs)
	}
	one := func(pkg string) string {
		m, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
		if len(m) != 1 {
			t.Fatalf("%s: want exactly one %s_*.deb, found %q (make deb makes it)", dir, pkg, m)
		}
		return filepath.Base(m[0])
	}
	return dir, one("alloy-runner"), one("metrics-proxy")
}

func requireNspawn(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the system test boots a container with systemd-nspawn, which needs root")
	}
	for _, tool := range []string{"systemd-nspawn", "mmdebstrap", "nsenter", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed, so no container can be booted (packaging/system-test-deps.sh installs it)", tool)
		}
	}
}

// probeNspawn runs /bin/true in the root with the boot's options: where that
// fails (no namespaces, no cgroups, a seccomp or LSM that forbids them),
// nspawn cannot run here at all, and the test says so and skips.
func probeNspawn(t *testing.T, root string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "systemd-nspawn", "--quiet", "--private-network", "--register=no",
		"--keep-unit", "--system-call-filter=bpf", "--directory="+root, "/bin/true").CombinedOutput()
	if err != nil {
		t.Skipf("systemd-nspawn cannot run a container on this machine (%v), so the units are not booted:\n%s", err, out)
	}
}

// ---- The root ----------------------------------------------------------

// aptSources is the one-line sources.list for the root: the bookworm entries
// of this machine's apt sources (main only), or ALLOY_SYSTEM_TEST_MIRROR.
func aptSources(t *testing.T) string {
	t.Helper()
	if m := os.Getenv(envMirror); m != "" {
		return "deb " + m + " bookworm main\n"
	}
	type entry struct{ uri, suite, signedBy string }
	var entries []entry
	add := func(types, uris, suites, signedBy string) {
		if !slicesContains(strings.Fields(types), "deb") {
			return
		}
		if !strings.HasPrefix(signedBy, "/") {
			signedBy = "" // an inline key: mmdebstrap's own keyring has Debian's
		}
		for _, u := range strings.Fields(uris) {
			for _, s := range strings.Fields(suites) {
				if s == "bookworm" || strings.HasPrefix(s, "bookworm-") || strings.HasPrefix(s, "bookworm/") {
					entries = append(entries, entry{u, s, signedBy})
				}
			}
		}
	}
	if b, err := os.ReadFile("/etc/apt/sources.list"); err == nil {
		parseOneLine(string(b), add)
	}
	lists, _ := filepath.Glob("/etc/apt/sources.list.d/*.list")
	for _, f := range lists {
		if b, err := os.ReadFile(f); err == nil {
			parseOneLine(string(b), add)
		}
	}
	deb822, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	for _, f := range deb822 {
		if b, err := os.ReadFile(f); err == nil {
			parseDeb822(string(b), add)
		}
	}
	if len(entries) == 0 {
		t.Fatalf("no bookworm source in /etc/apt/sources.list or /etc/apt/sources.list.d; set %s to a Debian mirror", envMirror)
	}
	var b strings.Builder
	for _, e := range entries {
		opts := ""
		if e.signedBy != "" {
			opts = "[signed-by=" + e.signedBy + "] "
		}
		fmt.Fprintf(&b, "deb %s%s %s main\n", opts, e.uri, e.suite)
	}
	return b.String()
}

func parseOneLine(text string, add func(types, uris, suites, signedBy string)) {
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		signedBy := ""
		if i := strings.Index(l, "["); i >= 0 {
			if j := strings.Index(l, "]"); j > i {
				for _, o := range strings.Fields(l[i+1 : j]) {
					if v, ok := strings.CutPrefix(o, "signed-by="); ok {
						signedBy = v
					}
				}
				l = l[:i] + l[j+1:]
			}
		}
		f := strings.Fields(l)
		if len(f) >= 3 {
			add(f[0], f[1], f[2], signedBy)
		}
	}
}

func parseDeb822(text string, add func(types, uris, suites, signedBy string)) {
	for _, stanza := range regexp.MustCompile(`\n\s*\n`).Split(text, -1) {
		fields := map[string]string{}
		key := ""
		for _, l := range strings.Split(stanza, "\n") {
			if strings.HasPrefix(l, "#") {
				continue
			}
			if strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t") {
				if key != "" {
					fields[key] += "\n" + strings.TrimSpace(l)
				}
				continue
			}
			k, v, ok := strings.Cut(l, ":")
			if !ok {
				continue
			}
			key = strings.ToLower(strings.TrimSpace(k))
			fields[key] = strings.TrimSpace(v)
		}
		if strings.EqualFold(fields["enabled"], "no") {
			continue
		}
		add(fields["types"], fields["uris"], fields["suites"], fields["signed-by"])
	}
}

func slicesContains(s []string, v string) bool {
	for _, e := range s {
		if e == v {
			return true
		}
	}
	return false
}

// rootTarball returns the cached root tarball, making it with mmdebstrap
// when there is none for this package list, mirror and mmdebstrap version.
func rootTarball(t *testing.T) string {
	t.Helper()
	cache := os.Getenv(envCache)
	if cache == "" {
		cache = "/var/cache/alloy-runner-system-test"
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	sources := aptSources(t)
	version, _ := exec.Command("mmdebstrap", "--version").Output()
	args := append([]string{"--include=" + strings.Join(rootPackages, ",")}, mmdebstrapArgs...)
	sum := sha256.Sum256([]byte(strings.Join(args, "\n") + "\n" + sources + string(version)))
	key := hex.EncodeToString(sum[:8])
	tarball := filepath.Join(cache, "bookworm-"+key+".tar")
	if _, err := os.Stat(tarball); err == nil {
		t.Logf("timing: mmdebstrap: none, the root is cached in %s", tarball)
		return tarball
	}

	srcFile := filepath.Join(t.TempDir(), "sources.list")
	if err := os.WriteFile(srcFile, []byte(sources), 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := fmt.Sprintf("%s.tmp-%d", tarball, os.Getpid())
	defer os.Remove(tmp)
	t.Logf("mmdebstrap bookworm with %s from:\n%s", strings.Join(rootPackages, ", "), sources)
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "mmdebstrap", append(append(args, "--quiet", "--format=tar"), "bookworm", tmp, srcFile)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mmdebstrap: %v\n%s", err, out)
	}
	if err := os.Rename(tmp, tarball); err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: mmdebstrap: %v (cached as %s)", time.Since(began).Round(100*time.Millisecond), tarball)
	// Roots of other package lists or mirrors are not needed again.
	old, _ := filepath.Glob(filepath.Join(cache, "bookworm-*.tar"))
	for _, o := range old {
		if o != tarball {
			os.Remove(o)
		}
	}
	return tarball
}

// unpackRoot unpacks the tarball into a new directory, removed at the end
// once the container is gone.
func unpackRoot(t *testing.T, tarball string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "alloy-system-test-")
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	t.Cleanup(func() { removeRoot(t, dir, root) })
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	out, err := exec.Command("tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", root, "-xf", tarball).CombinedOutput()
	if err != nil {
		t.Fatalf("unpack %s: %v\n%s", tarball, err, out)
	}
	// The root has no DNS: its network is private, and nothing in it may
	// ask this machine's resolver anything.
	os.Remove(filepath.Join(root, "etc/resolv.conf"))
	if err := os.WriteFile(filepath.Join(root, "etc/resolv.conf"), []byte("# no DNS: the container's network is private\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: unpack the root: %v", time.Since(began).Round(100*time.Millisecond))
	return root
}

// removeRoot removes the container's directory, unless something is still
// mounted below it (then it says so and leaves it).
func removeRoot(t *testing.T, dir, root string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			fields := strings.Fields(s.Text())
			if len(fields) > 4 && (fields[4] == root || strings.HasPrefix(fields[4], root+"/")) {
				f.Close()
				t.Errorf("%s is still mounted; %s is left in place", fields[4], dir)
				return
			}
		}
		f.Close()
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Errorf("remove the container's root: %v", err)
	}
}

// ---- The container -----------------------------------------------------

type container struct {
	nspawn  *exec.Cmd
	done    chan struct{}
	init    int    // the container's PID 1, as this machine's PID namespace numbers it
	console string // systemd-nspawn's output
}

// boot starts systemd-nspawn and waits until the container's systemd says
// the boot is over.
func boot(t *testing.T, root, debDir string) *container {
	t.Helper()
	console := filepath.Join(filepath.Dir(root), "console.log")
	f, err := os.Create(console)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	began := time.Now()
	cmd := exec.Command("systemd-nspawn", "--boot", "--quiet", "--private-network", "--register=no", "--keep-unit",
		"--system-call-filter=bpf", fmt.Sprintf("--machine=alloy-system-test-%d", os.Getpid()),
		"--directory="+root, "--bind-ro="+debDir+":/debs", "--console=pipe")
	cmd.Stdout, cmd.Stderr = f, f
	// Should this test die, systemd-nspawn powers the container off.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		t.Fatalf("systemd-nspawn: %v", err)
	}
	c := &container{nspawn: cmd, done: make(chan struct{}), console: console}
	go func() { cmd.Wait(); close(c.done) }()
	t.Cleanup(func() { c.poweroff(t) })

	for deadline := time.Now().Add(30 * time.Second); c.init == 0; {
		c.init = childOf(cmd.Process.Pid, "systemd")
		if c.init != 0 {
			break
		}
		select {
		case <-c.done:
			t.Fatalf("systemd-nspawn exited before the container's systemd started: %v\n%s", cmd.ProcessState, readFile(console))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no systemd under systemd-nspawn (pid %d) after 30s:\n%s", cmd.Process.Pid, readFile(console))
		}
		time.Sleep(20 * time.Millisecond)
	}

	// systemctl fails until the container's systemd listens on its private
	// socket; from then on, --wait returns once the boot is over.
	state := ""
	for deadline := time.Now().Add(2 * time.Minute); ; {
		out, _ := c.sh("systemctl is-system-running --wait")
		state = strings.TrimSpace(out)
		if state == "running" || state == "degraded" {
			break
		}
		select {
		case <-c.done:
			t.Fatalf("the container stopped while booting: %v\n%s", cmd.ProcessState, readFile(console))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container did not finish booting in 2 minutes: systemctl is-system-running says %q\n%s", state, readFile(console))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("timing: boot (systemd-nspawn to is-system-running %s): %v", state, time.Since(began).Round(10*time.Millisecond))
	if state == "degraded" {
		out, _ := c.sh("systemctl --failed --no-legend")
		t.Logf("units that failed at boot (none of them ours):\n%s", out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the units' journal and status at the end:\n%s", c.journal())
		}
	})
	return c
}

// childOf returns the PID of a child of ppid whose command is comm.
func childOf(ppid int, comm string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		rest := strings.Fields(s[end+1:])
		if len(rest) > 1 && rest[1] == strconv.Itoa(ppid) && s[open+1:end] == comm {
			return pid
		}
	}
	return 0
}

// poweroff shuts the container down from inside; SIGTERM to systemd-nspawn
// (which asks the container's systemd to halt) if that hangs, SIGKILL last.
func (c *container) poweroff(t *testing.T) {
	select {
	case <-c.done:
		return
	default:
	}
	began := time.Now()
	c.sh("systemctl --no-block poweroff")
	wait := func(d time.Duration) bool {
		select {
		case <-c.done:
			return true
		case <-time.After(d):
			return false
		}
	}
	if wait(time.Minute) {
		t.Logf("timing: poweroff: %v", time.Since(began).Round(10*time.Millisecond))
		return
	}
	t.Errorf("the container did not power off in a minute; sending SIGTERM to systemd-nspawn")
	c.nspawn.Process.Signal(syscall.SIGTERM)
	if wait(30 * time.Second) {
		return
	}
	t.Errorf("systemd-nspawn ignored SIGTERM; killing it and the container")
	c.nspawn.Process.Kill()
	syscall.Kill(c.init, syscall.SIGKILL)
	wait(30 * time.Second)
}

// sh runs script with /bin/sh -e in the container: in all the namespaces of
// its PID 1, with its root, a clean environment and root's home.
func (c *container) sh(script string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", "--target", strconv.Itoa(c.init), "--all", "--root", "--wd",
		"/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "HOME=/root", "TERM=dumb",
		"SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", "DEBIAN_FRONTEND=noninteractive",
		"/bin/sh", "-ec", script)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("no answer in 3 minutes: %w", err)
	}
	return string(out), err
}

// must runs script and fails the test, with the units' journal, when it fails.
func (c *container) must(t *testing.T, script string) string {
	t.Helper()
	out, err := c.sh(script)
	if err != nil {
		t.Fatalf("in the container:\n%s\nfailed (%v):\n%s\n%s", script, err, out, c.journal())
	}
	return out
}

// journal is what an operator would look at first: the units' status and
// their last journal lines.
func (c *container) journal() string {
	out, _ := c.sh("systemctl --no-pager --full status alloy-runner.service metrics-proxy.service metrics-proxy.socket 2>&1 || true; " +
		"echo '--- journalctl -u alloy-runner -u metrics-proxy -u metrics-proxy.socket'; " +
		"journalctl --no-pager -o short-monotonic -n 80 -u alloy-runner.service -u metrics-proxy.service -u metrics-proxy.socket 2>&1 || true")
	return out
}

// show returns systemctl show's value of prop for unit.
func (c *container) show(t *testing.T, unit, prop string) string {
	t.Helper()
	return strings.TrimSpace(c.must(t, "systemctl show --value -p "+prop+" "+unit))
}

// ---- Scraping ----------------------------------------------------------

// curl scrapes https://127.0.0.1:9253PATH in the container, with the test's
// password when auth, from source when it is not empty, and returns the
// status code and curl's exit code (0, 7 connection refused, 28 timeout).
func (c *container) curl(t *testing.T, path string, auth bool, source string) (code string, exit int) {
	t.Helper()
	opts := "--cacert /etc/metrics-proxy/tls/server.crt --connect-timeout 3 --max-time 10"
	if auth {
		opts += " -K /root/curl-auth"
	}
	if source != "" {
		opts += " --interface " + source
	}
	out, err := c.sh("rc=0; code=$(curl -s -o /root/body -w '%{http_code}' " + opts + " https://127.0.0.1:9253" + path + ") || rc=$?; echo \"$code $rc\"")
	if err != nil {
		t.Fatalf("curl in the container: %v\n%s", err, out)
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		t.Fatalf("curl in the container printed %q", out)
	}
	exit, _ = strconv.Atoi(f[1])
	return f[0], exit
}

// expect200 checks that the door serves the runner's metrics with the
// password: at the first try, since systemctl returned only once both
// Type=notify units said READY=1 (a later success is reported as a unit that
// is ready before it serves).
func (c *container) expect200(t *testing.T, source string) {
	t.Helper()
	code, exit := c.curl(t, "/metrics", true, source)
	if code != "200" {
		tries := 1
		for deadline := time.Now().Add(10 * time.Second); code != "200" && time.Now().Before(deadline); tries++ {
			time.Sleep(200 * time.Millisecond)
			code, exit = c.curl(t, "/metrics", true, source)
		}
		if code != "200" {
			t.Fatalf("GET /metrics with the password (from %q): %s (curl exit %d), for 10s\n%s", source, code, exit, c.journal())
		}
		t.Errorf("GET /metrics with the password (from %q) failed at first and answered 200 after %d tries: "+
			"the units said READY=1 before they served\n%s", source, tries, c.journal())
	}
	body := c.must(t, "cat /root/body")
	if !strings.Contains(body, "ci_runner_version_info") {
		t.Errorf("200 without the runner's metrics (no ci_runner_version_info):\n%.2000s", body)
	}
}

// runnerTCP asks the runner's metrics server on 127.0.0.1:9252 directly:
// "200 0" when it serves there, "000 7" when nothing listens.
func (c *container) runnerTCP(t *testing.T) string {
	t.Helper()
	return strings.TrimSpace(c.must(t, "rc=0; code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 http://127.0.0.1:9252/metrics) || rc=$?; echo \"$code $rc\""))
}

func (c *container) expect401(t *testing.T) {
	t.Helper()
	if code, exit := c.curl(t, "/metrics", false, ""); code != "401" {
		t.Errorf("GET /metrics without a password: %s (curl exit %d), want 401", code, exit)
	}
}

// ---- The steps ---------------------------------------------------------

// testInstall installs the runner alone first (its sysusers entry makes the
// group metrics-proxy for /run/alloy-runner), then the proxy, and checks
// what the maintainer scripts did.
func testInstall(t *testing.T, c *container, runnerDeb, proxyDeb string) {
	began := time.Now()
	runnerOut := c.must(t, "dpkg -i /debs/"+runnerDeb+" 2>&1")
	t.Logf("dpkg -i %s:\n%s", runnerDeb, runnerOut)
	if got := c.must(t, "stat -c '%a %U %G' /run/alloy-runner /etc/alloy-runner"); got != "2750 alloy-runner metrics-proxy\n750 root alloy-runner\n" {
		t.Errorf("/run/alloy-runner, /etc/alloy-runner: %q, want 2750 alloy-runner metrics-proxy and 750 root alloy-runner", got)
	}
	proxyOut := c.must(t, "dpkg -i /debs/"+proxyDeb+" 2>&1")
	t.Logf("dpkg -i %s:\n%s", proxyDeb, proxyOut)
	t.Logf("timing: install both: %v", time.Since(began).Round(10*time.Millisecond))

	for _, f := range []string{"/usr/bin/alloy-runner", "/usr/bin/metrics-proxy",
		"/usr/lib/systemd/system/alloy-runner.service", "/usr/lib/systemd/system/metrics-proxy.service",
		"/usr/lib/systemd/system/metrics-proxy.socket", "/usr/lib/sysusers.d/alloy-runner.conf",
		"/usr/lib/sysusers.d/metrics-proxy.conf", "/usr/lib/tmpfiles.d/alloy-runner.conf",
		"/usr/lib/tmpfiles.d/metrics-proxy.conf", "/usr/lib/systemd/system-preset/90-metrics-proxy.preset",
		"/usr/lib/systemd/system-preset/90-alloy-runner.preset"} {
		if _, err := c.sh("test -e " + f); err != nil {
			t.Errorf("not installed: %s", f)
		}
	}
	if got := c.must(t, "id -gn metrics-proxy; id -Gn alloy-runner; getent passwd alloy-runner | cut -d: -f6,7"); got != "metrics-proxy\nalloy-runner\n/var/lib/alloy-runner:/usr/sbin/nologin\n" {
		t.Errorf("users: %q, want metrics-proxy in its group metrics-proxy, alloy-runner in alloy-runner only, home /var/lib/alloy-runner, no shell", got)
	}
	if got := c.must(t, "stat -c '%a %U %G' /etc/metrics-proxy /etc/metrics-proxy/tls"); got != "750 root metrics-proxy\n750 root metrics-proxy\n" {
		t.Errorf("/etc/metrics-proxy and tls/: %q, want 750 root metrics-proxy", got)
	}
	for unit, want := range map[string]string{
		"alloy-runner.service": "enabled", "metrics-proxy.service": "enabled", "metrics-proxy.socket": "disabled",
	} {
		out, _ := c.sh("systemctl is-enabled " + unit)
		if got := strings.TrimSpace(out); got != want {
			t.Errorf("after install, %s is %q, want %q (the presets)", unit, got, want)
		}
	}
	// postinst started the enabled services; with no config they were
	// skipped, not failed.
	for _, unit := range []string{"alloy-runner.service", "metrics-proxy.service"} {
		if got := c.show(t, unit, "ActiveState") + " " + c.show(t, unit, "ConditionResult"); got != "inactive no" {
			t.Errorf("%s without its config: ActiveState ConditionResult = %q, want \"inactive no\" (started, condition not met)", unit, got)
		}
	}
	// ... and postinst said what to do.
	if want := "there is no /etc/alloy-runner/config.toml yet"; !strings.Contains(runnerOut, want) {
		t.Errorf("dpkg -i %s did not say %q", runnerDeb, want)
	}
	if want := "there is no /etc/metrics-proxy/web-config.yml yet"; !strings.Contains(proxyOut, want) {
		t.Errorf("dpkg -i %s did not say %q", proxyDeb, want)
	}
}

// testUnitPrograms: every program a unit runs (Exec*=) is installed, and
// comes from the unit's own package, a package it depends on, or an
// Essential one: dpkg -i on a minimal system must give units that start and
// reload.
func testUnitPrograms(t *testing.T, c *container) {
	for _, pkg := range []string{"alloy-runner", "metrics-proxy"} {
		deps := c.must(t, "dpkg-query -W -f '${Depends}' "+pkg)
		var names []string
		for _, d := range strings.Split(deps, ",") {
			if f := strings.Fields(strings.Split(d, "|")[0]); len(f) > 0 {
				names = append(names, f[0])
			}
		}
		units := strings.Fields(c.must(t, "dpkg -L "+pkg+" | grep -E '^/usr/lib/systemd/system/[^/]+\\.(service|socket)$' || true"))
		for _, u := range units {
			lines := c.must(t, "grep -hE '^Exec[A-Za-z]*=' "+u+" || true")
			for _, l := range strings.Split(strings.TrimSpace(lines), "\n") {
				if l == "" {
					continue
				}
				_, cmdline, _ := strings.Cut(l, "=")
				prog := strings.TrimLeft(strings.Fields(cmdline + " x")[0], "-@:+!")
				// /bin/sh is diverted by dash: dpkg -S lists the diversion first.
				owner, err := c.sh("dpkg -S " + prog + " | grep -v '^diversion by' | cut -d: -f1 | head -n1")
				owner = strings.TrimSpace(owner)
				if err != nil || owner == "" {
					t.Errorf("%s: %s runs %s, which no installed package has", u, strings.SplitN(l, "=", 2)[0], prog)
					continue
				}
				essential := strings.TrimSpace(c.must(t, "dpkg-query -W -f '${Essential}' "+owner))
				if owner != pkg && essential != "yes" && !slicesContains(names, owner) {
					t.Errorf("%s: %s runs %s, from the package %s, which %s does not depend on (Depends: %s)",
						u, strings.SplitN(l, "=", 2)[0], prog, owner, pkg, deps)
				}
			}
		}
	}
}

// runnerConfig is a config.toml whose coordinator is a closed port on the
// container's loopback: the runner polls it (connection refused) and serves
// its metrics.
func runnerConfig(metricsServer string) string {
	return `concurrent = 1
check_interval = 3
metrics_server = "` + metricsServer + `"

[[runners]]
  name = "system-test"
  url = "http://127.0.0.1:9/"
  token = "system-test-token"
  executor = "shell"
  shell = "bash"
  builds_dir = "/var/lib/alloy-runner/builds"
  limit = 1
`
}

// testConfigure writes a real web config (a self-signed certificate made
// with openssl, a bcrypt hash from metrics-proxy hash-password) and the
// runner's config, starts both, and scrapes.
func testConfigure(t *testing.T, c *container) {
	c.must(t, `
cd /etc/metrics-proxy/tls
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout server.key -out server.crt 2>/dev/null
chgrp metrics-proxy server.key server.crt && chmod 0640 server.key server.crt
pw=$(openssl rand -hex 16)
umask 077
printf 'user = "prometheus:%s"\n' "$pw" > /root/curl-auth
hash=$(printf '%s\n' "$pw" | metrics-proxy hash-password)
cat > /root/web-config.yml <<EOT
tls_server_config:
  cert_file: /etc/metrics-proxy/tls/server.crt
  key_file: /etc/metrics-proxy/tls/server.key
basic_auth_users:
  prometheus: $hash
EOT
install -m 0640 -g metrics-proxy /root/web-config.yml /etc/metrics-proxy/web-config.yml
metrics-proxy check-config --web.config.file /etc/metrics-proxy/web-config.yml
`)
	writeRunnerConfig(t, c, "127.0.0.1:9252")
	began := time.Now()
	c.must(t, "systemctl enable --now alloy-runner.service metrics-proxy.service")
	t.Logf("timing: systemctl enable --now both (returns at READY=1): %v", time.Since(began).Round(10*time.Millisecond))
	c.expect200(t, "")
	c.expect401(t)
}

func writeRunnerConfig(t *testing.T, c *container, metricsServer string) {
	t.Helper()
	c.must(t, "cat > /root/config.toml <<'EOT'\n"+runnerConfig(metricsServer)+"EOT\n"+
		"install -m 0640 -g alloy-runner /root/config.toml /etc/alloy-runner/config.toml")
}

// testDropinsCovered: each drop-in example the packages ship is in a variant.
func testDropinsCovered(t *testing.T, c *container) {
	out := c.must(t, "cd /usr/share/doc && ls -1 */examples/*.d/*.conf.example")
	used := map[string]bool{}
	for _, v := range variants {
		for _, d := range v.dropins {
			used[d] = true
		}
	}
	for _, l := range strings.Fields(out) {
		_, rel, _ := strings.Cut(l, "/examples/")
		if !used[strings.TrimSuffix(rel, ".example")] {
			t.Errorf("%s is in no variant of packaging/system_test.go: add it", l)
		}
	}
}

// applyVariant installs exactly the variant's drop-ins from the packages'
// examples, as systemd/README.md says (socket activation: the service
// disabled, the socket enabled), and restarts what they change.
func applyVariant(t *testing.T, c *container, dropins []string) {
	t.Helper()
	socket, unix := false, false
	var b strings.Builder
	b.WriteString("rm -rf /etc/systemd/system/alloy-runner.service.d /etc/systemd/system/metrics-proxy.service.d /etc/systemd/system/metrics-proxy.socket.d\n")
	for _, d := range dropins {
		pkg := "metrics-proxy"
		if strings.HasPrefix(d, "alloy-runner.") {
			pkg = "alloy-runner"
		}
		fmt.Fprintf(&b, "mkdir -p /etc/systemd/system/%s\ncp /usr/share/doc/%s/examples/%s.example /etc/systemd/system/%s\n",
			filepath.Dir(d), pkg, d, d)
		socket = socket || strings.HasSuffix(d, "/socket-activation.conf")
		unix = unix || strings.HasSuffix(d, "/unix-upstream.conf")
	}
	c.must(t, b.String())
	if unix {
		writeRunnerConfig(t, c, "unix:/run/alloy-runner/metrics.sock")
	} else {
		writeRunnerConfig(t, c, "127.0.0.1:9252")
	}
	c.must(t, "systemctl daemon-reload")
	c.must(t, "systemctl restart alloy-runner.service")
	if socket {
		c.must(t, "systemctl disable --now metrics-proxy.service && systemctl stop metrics-proxy.socket && systemctl enable --now metrics-proxy.socket")
	} else {
		c.must(t, "systemctl disable --now metrics-proxy.socket && systemctl enable metrics-proxy.service && systemctl restart metrics-proxy.service")
	}
}

// checkVariant scrapes through the door, and checks what the drop-ins
// promise: the allow-list drops other sources, socket activation starts the
// proxy on the first connection and keeps the port across its restarts, the
// unix socket replaces 127.0.0.1:9252.
func checkVariant(t *testing.T, c *container, dropins []string) {
	t.Helper()
	has := func(name string) bool { return slicesContains(dropins, name) }
	socket := has("metrics-proxy.service.d/socket-activation.conf")
	if socket {
		if got := c.show(t, "metrics-proxy.service", "ActiveState"); got != "inactive" {
			t.Errorf("socket activation: the proxy is %s before the first connection, want inactive", got)
		}
	}
	c.expect200(t, "")
	c.expect401(t)

	// The allow-list of the unit that holds the listening socket.
	allowList := has("metrics-proxy.service.d/ip-allow.conf")
	if socket {
		allowList = has("metrics-proxy.socket.d/ip-allow.conf")
	}
	if allowList {
		c.expect200(t, allowedSource)
		if code, exit := c.curl(t, "/metrics", true, deniedSource); code != "000" || exit != 28 {
			t.Errorf("from %s, which the allow-list leaves out: %s (curl exit %d), want no connection (000, exit 28: dropped)", deniedSource, code, exit)
		}
	} else {
		// Without it, any source on the host's interfaces reaches the door.
		c.expect200(t, deniedSource)
	}

	if socket {
		if got := c.show(t, "metrics-proxy.service", "ActiveState"); got != "active" {
			t.Errorf("socket activation: the proxy is %s after a connection, want active", got)
		}
		// The socket keeps the port while the proxy is stopped; the next
		// connection starts it again.
		c.must(t, "systemctl stop metrics-proxy.service")
		c.expect200(t, "")
		if got := c.show(t, "metrics-proxy.service", "ActiveState"); got != "active" {
			t.Errorf("socket activation: the proxy is %s after a connection to the stopped proxy's socket, want active", got)
		}
	}

	if has("alloy-runner.service.d/unix-metrics.conf") {
		if got := c.must(t, "stat -c '%a %U %G %F' /run/alloy-runner/metrics.sock"); got != "660 alloy-runner metrics-proxy socket\n" {
			t.Errorf("/run/alloy-runner/metrics.sock: %q, want 660 alloy-runner metrics-proxy socket", got)
		}
		if got := c.runnerTCP(t); got != "000 7" {
			t.Errorf("127.0.0.1:9252 with the runner on its unix socket: %q, want connection refused (000 7)", got)
		}
	}
	if has("metrics-proxy.service.d/no-network.conf") {
		if got := c.show(t, "metrics-proxy.service", "PrivateNetwork"); got != "yes" {
			t.Errorf("no-network: PrivateNetwork=%s", got)
		}
	}
}

var overallRe = regexp.MustCompile(`Overall exposure level for (\S+): ([0-9]+(?:\.[0-9]+)?)`)

// exposureLimits reads the offline budgets from systemd/units_test.go, so
// the online scores meet the same ones.
func exposureLimits(t *testing.T) map[string]float64 {
	t.Helper()
	b, err := os.ReadFile("../systemd/units_test.go")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile(`(?s)var maxExposure = map\[string\]float64\{(.*?)\n\}`).FindSubmatch(b)
	if block == nil {
		t.Fatal("systemd/units_test.go has no maxExposure map any more: read the budgets from where they are now")
	}
	limits := map[string]float64{}
	for _, m := range regexp.MustCompile(`"([a-z-]+\.service)":\s*([0-9.]+)`).FindAllSubmatch(block[1], -1) {
		v, err := strconv.ParseFloat(string(m[2]), 64)
		if err != nil {
			t.Fatal(err)
		}
		limits[string(m[1])] = v
	}
	if len(limits) == 0 {
		t.Fatal("no budgets in systemd/units_test.go's maxExposure")
	}
	return limits
}

// checkExposure scores the units as the running systemd loaded them.
func checkExposure(t *testing.T, c *container, variant string, limits map[string]float64) {
	t.Helper()
	units := make([]string, 0, len(limits))
	for u := range limits {
		units = append(units, u)
	}
	sort.Strings(units)
	var scores []string
	for _, u := range units {
		out, _ := c.sh("systemd-analyze security --no-pager " + u)
		m := overallRe.FindStringSubmatch(out)
		if m == nil {
			t.Errorf("systemd-analyze security %s printed no overall exposure level:\n%s", u, out)
			continue
		}
		score, _ := strconv.ParseFloat(m[2], 64)
		scores = append(scores, fmt.Sprintf("%s %.1f (budget %.1f)", u, score, limits[u]))
		if score > limits[u] {
			var failed strings.Builder
			for _, l := range strings.Split(out, "\n") {
				if strings.HasPrefix(l, "✗") {
					failed.WriteString(l + "\n")
				}
			}
			t.Errorf("online exposure of %s (%s): %.1f, over the budget %.1f of systemd/units_test.go:\n%s", u, variant, score, limits[u], failed.String())
		}
	}
	t.Logf("systemd-analyze security (online, %s): %s", variant, strings.Join(scores, ", "))
}

var reloadOKRe = regexp.MustCompile(`(?m)^metrics_proxy_config_last_reload_successful ([01])$`)

func (c *container) lastReloadOK(t *testing.T) string {
	t.Helper()
	if code, exit := c.curl(t, "/proxy/metrics", true, ""); code != "200" {
		t.Fatalf("GET /proxy/metrics: %s (curl exit %d)", code, exit)
	}
	m := reloadOKRe.FindStringSubmatch(c.must(t, "cat /root/body"))
	if m == nil {
		t.Fatalf("/proxy/metrics has no metrics_proxy_config_last_reload_successful")
	}
	return m[1]
}

// testBrokenReload: systemctl reload with a broken web config keeps the old
// one serving, in the same process; the good one back, reload applies it.
// systemd 252 returns from a reload once ExecReload='s kill has sent SIGHUP,
// not when the proxy has reloaded (systemd/README.md), so each outcome is
// awaited on the proxy's own metric before the door is checked.
func testBrokenReload(t *testing.T, c *container) {
	pid := c.show(t, "metrics-proxy.service", "MainPID")
	c.must(t, "printf 'basic_auth_users: [\\n' > /root/broken.yml && install -m 0640 -g metrics-proxy /root/broken.yml /etc/metrics-proxy/web-config.yml")
	c.must(t, "systemctl reload metrics-proxy.service")
	c.awaitReload(t, "0")
	if got := c.show(t, "metrics-proxy.service", "ActiveState") + " " + c.show(t, "metrics-proxy.service", "MainPID"); got != "active "+pid {
		t.Errorf("after a reload with a broken web config: ActiveState MainPID = %q, want \"active %s\"", got, pid)
	}
	c.expect200(t, "")
	c.expect401(t)
	t.Logf("the proxy's log of the broken reload:\n%s", c.must(t, "journalctl --no-pager -o cat -u metrics-proxy.service -n 4"))

	c.must(t, "install -m 0640 -g metrics-proxy /root/web-config.yml /etc/metrics-proxy/web-config.yml && systemctl reload metrics-proxy.service")
	c.awaitReload(t, "1")
	c.expect200(t, "")
}

// awaitReload waits up to 5s for metrics_proxy_config_last_reload_successful
// to be want.
func (c *container) awaitReload(t *testing.T, want string) {
	t.Helper()
	got := ""
	for deadline := time.Now().Add(5 * time.Second); ; {
		if got = c.lastReloadOK(t); got == want || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got != want {
		t.Errorf("metrics_proxy_config_last_reload_successful is %s 5s after the reload, want %s\n%s", got, want, c.journal())
	}
}

// testStop: systemctl stop closes the proxy's port and the runner's.
func testStop(t *testing.T, c *container) {
	c.must(t, "systemctl stop metrics-proxy.service")
	if code, exit := c.curl(t, "/metrics", true, ""); code != "000" || exit != 7 {
		t.Errorf("after systemctl stop metrics-proxy: %s (curl exit %d), want connection refused (000, exit 7)", code, exit)
	}
	began := time.Now()
	c.must(t, "systemctl stop alloy-runner.service")
	t.Logf("timing: systemctl stop alloy-runner (graceful, no jobs): %v", time.Since(began).Round(10*time.Millisecond))
	if got := c.runnerTCP(t); got != "000 7" {
		t.Errorf("127.0.0.1:9252 after systemctl stop alloy-runner: %q, want connection refused (000 7)", got)
	}
	for _, u := range []string{"alloy-runner.service", "metrics-proxy.service"} {
		if got := c.show(t, u, "ActiveState") + " " + c.show(t, u, "Result"); got != "inactive success" {
			t.Errorf("%s after stop: ActiveState Result = %q, want \"inactive success\"", u, got)
		}
	}
	c.must(t, "systemctl start alloy-runner.service metrics-proxy.service")
	c.expect200(t, "")
}

// configSums are the admin's files the packages must never touch.
const configSums = "sha256sum /etc/alloy-runner/config.toml /etc/metrics-proxy/web-config.yml /etc/metrics-proxy/tls/server.key"

// testReinstall installs the same packages over the running ones (what an
// upgrade runs): the configs stay as they are, the proxy is restarted in
// place, the runner's restart is queued and happens.
func testReinstall(t *testing.T, c *container, runnerDeb, proxyDeb string) {
	sums := c.must(t, configSums)
	proxyPID, runnerPID := c.show(t, "metrics-proxy.service", "MainPID"), c.show(t, "alloy-runner.service", "MainPID")
	out := c.must(t, "dpkg -i /debs/"+runnerDeb+" /debs/"+proxyDeb+" 2>&1")
	t.Logf("dpkg -i over the running install:\n%s", out)
	if got := c.must(t, configSums); got != sums {
		t.Errorf("the reinstall changed the configs:\nbefore:\n%s\nafter:\n%s", sums, got)
	}
	if got := c.show(t, "metrics-proxy.service", "MainPID"); got == proxyPID || got == "0" {
		t.Errorf("the proxy's MainPID went from %s to %s: the new binary was not started", proxyPID, got)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		pid, state := c.show(t, "alloy-runner.service", "MainPID"), c.show(t, "alloy-runner.service", "ActiveState")
		if pid != runnerPID && pid != "0" && state == "active" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the runner's queued restart did not happen in 30s: MainPID %s (was %s), %s\n%s", pid, runnerPID, state, c.journal())
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.expect200(t, "")
}

// testRemove: dpkg -r takes the binaries and units away and reloads systemd;
// the configs stay.
func testRemove(t *testing.T, c *container) {
	out := c.must(t, "dpkg -r alloy-runner metrics-proxy 2>&1")
	t.Logf("dpkg -r:\n%s", out)
	for _, f := range []string{"/usr/bin/alloy-runner", "/usr/bin/metrics-proxy",
		"/usr/lib/systemd/system/alloy-runner.service", "/usr/lib/systemd/system/metrics-proxy.service",
		"/usr/lib/systemd/system/metrics-proxy.socket", "/usr/lib/systemd/system/metrics-proxy.service.d",
		"/usr/lib/sysusers.d/metrics-proxy.conf", "/usr/share/doc/metrics-proxy"} {
		if _, err := c.sh("test ! -e " + f); err != nil {
			t.Errorf("left after dpkg -r: %s", f)
		}
	}
	for _, u := range []string{"alloy-runner.service", "metrics-proxy.service", "metrics-proxy.socket"} {
		if got := c.show(t, u, "LoadState") + " " + c.show(t, u, "ActiveState"); got != "not-found inactive" {
			t.Errorf("%s after dpkg -r: LoadState ActiveState = %q, want \"not-found inactive\" (stopped, daemon-reload done)", u, got)
		}
	}
	if _, err := c.sh("test -s /etc/alloy-runner/config.toml && test -s /etc/metrics-proxy/web-config.yml && test -s /etc/metrics-proxy/tls/server.key"); err != nil {
		t.Errorf("dpkg -r removed a config; it must keep them for a reinstall")
	}
	if got := c.must(t, "dpkg-query -W -f '${db:Status-Abbrev}\\n' alloy-runner metrics-proxy"); got != "rc \nrc \n" {
		t.Errorf("dpkg status after dpkg -r: %q, want rc (config files kept) for both", got)
	}
}

// testPurge: dpkg --purge removes the configs, the runner's state and what
// enabling left; the system users stay, as Debian leaves them.
func testPurge(t *testing.T, c *container) {
	out := c.must(t, "dpkg --purge alloy-runner metrics-proxy 2>&1")
	t.Logf("dpkg --purge:\n%s", out)
	for _, f := range []string{"/etc/metrics-proxy", "/etc/alloy-runner", "/var/lib/alloy-runner", "/run/alloy-runner"} {
		if _, err := c.sh("test ! -e " + f); err != nil {
			t.Errorf("left after dpkg --purge: %s", f)
		}
	}
	if links := strings.TrimSpace(c.must(t, "find /etc/systemd/system -name 'alloy-runner.*' -o -name 'metrics-proxy.*'")); links != "" {
		t.Errorf("left in /etc/systemd/system after dpkg --purge:\n%s", links)
	}
	if out, err := c.sh("dpkg-query -W alloy-runner metrics-proxy 2>&1"); err == nil {
		t.Errorf("dpkg still knows the packages after --purge:\n%s", out)
	}
	if _, err := c.sh("getent passwd alloy-runner && getent passwd metrics-proxy"); err != nil {
		t.Errorf("the system users are gone after --purge; Debian keeps them")
	}
}

func readFile(name string) string {
	b, err := os.ReadFile(name)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
