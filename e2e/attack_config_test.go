package e2e

// The web config's rules: what refuses to start and what check-config says
// of it, what serves with a warning, the public-door rule, and reloads
// (watched, SIGHUP, broken, half-written, a rotated certificate).

import (
	"crypto/x509"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serveOnce runs `metrics-proxy` on 127.0.0.1:0 with the web config file and
// returns its exit code and output.
func serveOnce(t *testing.T, file string) (int, string) {
	t.Helper()
	return run(t, 15*time.Second, "metrics-proxy", "--web.listen-address", "127.0.0.1:0", "--web.config.file", file,
		"--upstream.url", "http://"+freeAddr(t))
}

// checkConfig runs `metrics-proxy check-config` on the file.
func checkConfig(t *testing.T, file string) (int, string) {
	t.Helper()
	return run(t, 15*time.Second, "metrics-proxy", "check-config", "--web.config.file", file, "--web.listen-address", "127.0.0.1:9253")
}

const (
	reloadFailed = `msg="Web config reload failed; still serving the last good config"`
	reloaded     = `msg="Web config reloaded"`
)

// statusAs is the status of /metrics fetched from p as user over a new
// connection from src.
func (p *proxy) statusAs(t *testing.T, src, user, password string) int {
	t.Helper()
	return p.getAs(t, p.client(src), "/metrics", user, password).Status
}

// wantStatus fails the test unless statusAs is want.
func (p *proxy) wantStatus(t *testing.T, what, src, user, password string, want int) {
	t.Helper()
	if st := p.statusAs(t, src, user, password); st != want {
		t.Errorf("%s: %d, want %d", what, st, want)
	}
}

// Broken web configs refuse to start with exit 1 and an error naming the
// key and the kind of problem, never quoting a hash or password, and
// check-config refuses them the same way; the same file with a good hash
// passes check-config.
func TestAttackConfigStartFaults(t *testing.T) {
	t.Parallel()
	k := newPKI(t)
	dir := k.Dir
	hash := defaultHash(t)
	tlsOK := tlsBlock(k)
	users := usersBlock("alice", hash)
	_, otherKey := k.issue(t, "other", time.Now().Add(-time.Hour), time.Now().Add(time.Hour), x509.ExtKeyUsageServerAuth)
	certDir := filepath.Join(dir, "certdir")
	if err := os.Mkdir(certDir, 0o700); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.crt")
	const plainPassword = "hunter2-pasted-in-place-of-a-hash"
	cost17 := hash[:4] + "17" + hash[6:]
	webFile := filepath.Join(dir, "web.yml")
	alice := func(kind string) problem { return problem{`basic_auth_users: user "alice"`, kind} }

	cases := []struct {
		name, content string
		problems      []problem
		secrets       []string // must not appear in the output
	}{
		{"missing certificate", tlsFiles(missing, k.KeyFile) + users,
			[]problem{{"tls_server_config.cert_file", "does not exist"}}, []string{hash}},
		{"certificate path is a directory", tlsFiles(certDir, k.KeyFile) + users,
			[]problem{{"tls_server_config.cert_file", "cannot be read: is a directory"}}, nil},
		{"key does not match the certificate", tlsFiles(k.CertFile, otherKey) + users,
			[]problem{{"tls_server_config.key_file", "does not match the certificate in tls_server_config.cert_file"}}, nil},
		{"malformed YAML", tlsOK[:len(tlsOK)-1] + ": extra\n" + users,
			[]problem{{"line 3", "invalid YAML"}}, []string{hash}},
		{"tab indentation", tlsOK + users + "\tbob: x\n",
			[]problem{{"line 6", "invalid YAML"}}, []string{hash}},
		{"unknown keys",
			strings.Replace(tlsOK, "cert_file", "cert_fil", 1) + strings.Replace(users, "basic_auth_users", "basic_auth_user", 1),
			[]problem{{"tls_server_config", `unknown key "cert_fil"`}, {"line 4", `unknown key "basic_auth_user"`}}, []string{hash}},
		{"hash used as a key", tlsOK + users + "http_server_config:\n  '" + hash + "': true\n",
			[]problem{{"http_server_config", "unknown key"}}, []string{hash, hash[7:]}},
		{"malformed bcrypt hash", tlsOK + usersBlock("alice", hash[:40]),
			[]problem{alice("not a valid bcrypt hash: it is 40 characters long")}, []string{hash[:40], hash[7:40]}},
		{"damaged bcrypt digest", tlsOK + usersBlock("alice", hash[:59]+"~"),
			[]problem{alice("not a valid bcrypt hash: the digest")}, []string{hash[:59], hash[29:59]}},
		{"plain password instead of a hash", tlsOK + usersBlock("alice", plainPassword),
			[]problem{alice("not a valid bcrypt hash: it is 33 characters long")}, []string{plainPassword}},
		{"short hash", tlsOK + usersBlock("scraper-short", "$2a$10$tooshort"),
			[]problem{{`basic_auth_users: user "scraper-short"`, "not a valid bcrypt hash: it is 15 characters long"}}, []string{"$2a$10$tooshort"}},
		{"another plain password", tlsOK + usersBlock("scraper-plain", "hunter2-plain-password"),
			[]problem{{`basic_auth_users: user "scraper-plain"`, "not a valid bcrypt hash"}}, []string{"hunter2-plain-password"}},
		{"the example hash", tlsOK + usersBlock("alice", "$2a$10$dGe1Z/0L3l4edbI7dn2B1.LoOTlcimUTXQwL344o0CspDa/lTZ/.a"),
			[]problem{alice("the documented example hash")}, nil},
		{"the example hash as $2y$", tlsOK + usersBlock("alice", "$2y$10$dGe1Z/0L3l4edbI7dn2B1.LoOTlcimUTXQwL344o0CspDa/lTZ/.a"),
			[]problem{alice("the documented example hash")}, nil},
		{"cost above 16", tlsOK + usersBlock("alice", cost17),
			[]problem{alice("bcrypt cost 17 is too high")}, []string{cost17}},
		{"empty file", "", []problem{{webFile, "the file is empty"}}, nil},
		{"only a comment (a truncated file)", "# web config\n", []problem{{webFile, "the file is empty"}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			writeFile(t, webFile, tc.content)
			code, out := serveOnce(t, webFile)
			ccode, cout := checkConfig(t, webFile)
			if code != 1 || !strings.Contains(out, `msg="refusing to start"`) || strings.Contains(out, "msg=listening") {
				t.Errorf("serve: exit %d, want 1, refusing to start before listening; output:\n%s", code, out)
			}
			if ccode != 1 || !strings.Contains(cout, webFile+": ") || !strings.Contains(cout, " problem(s):\n") {
				t.Errorf("check-config: exit %d, want 1 listing the problems; output:\n%s", ccode, cout)
			}
			wantProblems(t, "serve", out, tc.problems...)
			wantProblems(t, "check-config", cout, tc.problems...)
			for _, s := range tc.secrets {
				if strings.Contains(out, s) || strings.Contains(cout, s) {
					t.Errorf("the output contains the secret %q:\n%s\n%s", s, out, cout)
				}
			}
		})
	}

	t.Run("no web config file", func(t *testing.T) {
		missingFile := filepath.Join(dir, "nope.yml")
		code, out := serveOnce(t, missingFile)
		if code != 1 {
			t.Errorf("exit %d:\n%s", code, out)
		}
		wantProblems(t, "serve", out, problem{missingFile, "the file does not exist"})
	})

	t.Run("unreadable by permission", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("running as root, which reads a file whatever its mode; the directory case covers unreadable certificates")
		}
		locked := filepath.Join(dir, "locked.crt")
		b, _ := os.ReadFile(k.CertFile)
		writeFile(t, locked, string(b))
		os.Chmod(locked, 0)
		writeFile(t, webFile, tlsFiles(locked, k.KeyFile)+users)
		code, out := serveOnce(t, webFile)
		if code != 1 {
			t.Errorf("exit %d:\n%s", code, out)
		}
		wantProblems(t, "serve", out, problem{"tls_server_config.cert_file", "cannot be read: permission denied"})
	})

	t.Run("the control: a good hash passes", func(t *testing.T) {
		writeFile(t, webFile, tlsOK+usersBlock("scraper-good", hash))
		if code, out := checkConfig(t, webFile); code != 0 || out != webFile+": OK\n" {
			t.Errorf("check-config: exit %d, output:\n%s", code, out)
		}
	})
}

// Weak but working configs (an expired certificate, a bcrypt cost below 10)
// start with a warning for each that names its key and never the hash, and
// serve: the cheap user gets in. check-config refuses the same file.
func TestAttackConfigWeakButServing(t *testing.T) {
	t.Parallel()
	const password = "cheap password"
	cheap := hashPassword(t, password, 4)
	var expired *x509.Certificate
	var expiredFile string
	p, _ := startWithUpstream(t, nil, proxyOptions{Web: func(k *pki) string {
		var key string
		expiredFile, key = k.issue(t, "expired", time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour), x509.ExtKeyUsageServerAuth)
		expired = readCert(t, expiredFile)
		return tlsFiles(expiredFile, key) + usersBlock("scraper-cheap", cheap)
	}})
	p.waitLog(`msg=listening address=127\.0\.0\.1:\d+ tls=true auth=basic`)
	warnings := p.startupMessages(t)
	if !strings.Contains(warnings, `level=warn`) || !strings.Contains(warnings, `msg="Web config weakness"`) {
		t.Errorf("start-up log has no weakness warnings:\n%s", p.Logs())
	}
	ps := []problem{
		{"tls_server_config.cert_file", "the certificate expired at"},
		{`user "scraper-cheap"`, "bcrypt cost 4 is below 10"},
	}
	wantProblems(t, "start-up log", warnings, ps...)
	if strings.Contains(p.Logs(), cheap) {
		t.Errorf("log contains the hash")
	}

	// A client that checks the certificate at a time it was valid.
	c := p.client("")
	c.Transport.(*http.Transport).TLSClientConfig.Time = func() time.Time { return expired.NotAfter.Add(-time.Hour) }
	if r := p.getAs(t, c, "/metrics", "scraper-cheap", password); r.Status != 200 || r.Body != upBody {
		t.Errorf("cost-4 user: %d %q, want 200", r.Status, r.Body)
	}

	code, out := checkConfig(t, p.WebConfig)
	if code != 1 || !strings.Contains(out, p.WebConfig+": 2 problem(s):") || strings.Contains(out, cheap) {
		t.Errorf("check-config: exit %d, want 1 with 2 problems and no hash:\n%s", code, out)
	}
	wantProblems(t, "check-config", out, ps...)
}

// Rule: no insecure public door. A listener reachable from the network
// refuses to start without TLS and authentication, naming what is missing,
// before it serves; on loopback, plain HTTP serves with a warning; a public
// listener with TLS and users serves, asks anonymous clients for a
// password, and refuses a reload that would drop the users.
func TestAttackConfigPublicDoor(t *testing.T) {
	k := newPKI(t)
	users := usersBlock(defaultUser, defaultHash(t))
	const reachable = "which is reachable from the network"

	for _, tc := range []struct {
		name, config, missing string
	}{
		{"users without TLS", users, "tls_server_config"},
		{"TLS without authentication", tlsBlock(k), "basic_auth_users"},
		{"no web config", "", "--web.config.file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"--web.listen-address", "0.0.0.0:0", "--upstream.url", "http://127.0.0.1:9"}
			if tc.config != "" {
				f := filepath.Join(t.TempDir(), "web.yml")
				writeFile(t, f, tc.config)
				args = append(args, "--web.config.file", f)
			}
			code, out := run(t, 10*time.Second, "metrics-proxy", args...)
			if code != 1 || !strings.Contains(out, `msg="refusing to start"`) {
				t.Fatalf("exit %d, want 1 refusing to start; output:\n%s", code, out)
			}
			wantProblems(t, "serve", out, problem{tc.missing, reachable})
			if strings.Contains(out, "msg=listening") {
				t.Fatalf("it served before refusing; output:\n%s", out)
			}
		})
	}

	t.Run("loopback without TLS starts with a warning", func(t *testing.T) {
		s := startStack(t, proxyOptions{Web: func(*pki) string { return users }})
		s.waitLog(`level=warn .*msg="serving plain HTTP on loopback only: fine for tests and demos, use TLS for anything else"`)
		s.startupMessages(t)
		if !strings.HasPrefix(s.URL, "http://127.0.0.1:") {
			t.Fatalf("proxy URL %s", s.URL)
		}
		if r := s.get(t, s.client(""), "/metrics"); r.Status != 200 || !strings.Contains(r.Body, "ci_runner_version_info{") {
			t.Fatalf("plain HTTP scrape: %d %.200q", r.Status, r.Body)
		}
	})

	t.Run("public listener with TLS and users starts", func(t *testing.T) {
		up := startUpstream(t, nil)
		f := filepath.Join(t.TempDir(), "web.yml")
		writeFile(t, f, tlsBlock(k)+users)
		pr := start(t, "metrics-proxy", "--web.listen-address", "0.0.0.0:0", "--web.config.file", f, "--upstream.url", up.URL)
		port := pr.waitLog(`msg=listening address=\S*:(\d+) tls=true auth=basic`)
		if strings.Contains(pr.Logs(), "plain HTTP") {
			t.Fatalf("warned about plain HTTP; log:\n%s", pr.Logs())
		}
		// Bound to every interface, talked to on loopback only.
		p := &proxy{proc: pr, PKI: k, Addr: "127.0.0.1:" + port, URL: "https://127.0.0.1:" + port, WebConfig: f,
			User: defaultUser, Password: defaultPassword}
		c := p.client("")
		if r := p.get(t, c, "/metrics"); r.Status != 200 || r.Body != upBody {
			t.Fatalf("authenticated: %d %q", r.Status, r.Body)
		}
		if r := p.getAs(t, c, "/metrics", "", ""); r.Status != 401 {
			t.Fatalf("anonymous: %d, want 401", r.Status)
		}

		// An edit that drops the users is refused on reload: the running
		// public door keeps asking for the password.
		writeFile(t, f, tlsBlock(k))
		p.waitMessage(t, reloadFailed, problem{"removing basic_auth_users", "needs a restart"})
		if r := p.getAs(t, c, "/metrics", "", ""); r.Status != 401 {
			t.Fatalf("anonymous after an edit dropping the users: %d, want 401", r.Status)
		}
		if r := p.get(t, c, "/metrics"); r.Status != 200 {
			t.Fatalf("authenticated after the refused edit: %d, want 200", r.Status)
		}
	})
}

// startAliceAndBob starts a proxy for the users alice and bob in front of a
// fake upstream, and checks that alice gets in.
func startAliceAndBob(t *testing.T, pwAlice, pwBob string) *proxy {
	t.Helper()
	hashA, hashB := hashPassword(t, pwAlice, 10), hashPassword(t, pwBob, 10)
	p, _ := startWithUpstream(t, nil, proxyOptions{Web: func(k *pki) string {
		return tlsBlock(k) + usersBlock("alice", hashA, "bob", hashB)
	}})
	if st := p.statusAs(t, "", "alice", pwAlice); st != 200 {
		t.Fatalf("alice before: %d", st)
	}
	return p
}

// A broken file swapped in atomically is refused and the last good config
// keeps serving (including users who never logged in before); the next good
// file is applied without a restart.
func TestAttackConfigReloadAtomicBroken(t *testing.T) {
	t.Parallel()
	const pwA, pwB, pwC = "alice-one", "bob-one", "alice-two"
	hashC := hashPassword(t, pwC, 10)
	p := startAliceAndBob(t, pwA, pwB)
	for i, broken := range []string{
		tlsBlock(p.PKI) + "basic_auth_users:\n  alice: '" + hashC + "\n", // unterminated quote
		tlsBlock(p.PKI) + usersBlock("alice", hashC[:30]),
		"",
	} {
		replaceAtomically(t, p.WebConfig, broken)
		p.waitCount(reloadFailed, i+1)
	}
	// bob never logged in, so this is a bcrypt check against the old file.
	p.wantStatus(t, "bob after the broken reloads", "", "bob", pwB, 200)
	p.wantStatus(t, "alice with the broken files' password", "127.0.5.1", "alice", pwC, 401)
	p.User, p.Password = "bob", pwB
	p.expectReloads(t, false, "failure", 3)
	if strings.Contains(p.Logs(), hashC[7:30]) {
		t.Errorf("the log quotes the broken hash")
	}

	replaceAtomically(t, p.WebConfig, tlsBlock(p.PKI)+usersBlock("alice", hashC))
	p.waitCount(reloaded, 1)
	p.wantStatus(t, "alice with the new password", "", "alice", pwC, 200)
	// The old password was cached as good, but under the old hash: refused.
	p.wantStatus(t, "alice with the old password", "127.0.5.2", "alice", pwA, 401)
	p.wantStatus(t, "removed user bob", "127.0.5.3", "bob", pwB, 401)
	p.User, p.Password = "alice", pwC
	p.expectReloads(t, true, "success", 1)
}

// expectReloads checks, in p's metrics read with p's credential, whether the
// last reload succeeded and how many reloads had result.
func (p *proxy) expectReloads(t *testing.T, lastOK bool, result string, n float64) {
	t.Helper()
	last := 0.0
	if lastOK {
		last = 1
	}
	expectMetrics(t, p.selfMetrics(t, p.client("")), map[string]float64{
		"metrics_proxy_config_last_reload_successful":                        last,
		fmt.Sprintf("metrics_proxy_config_reloads_total{result=%q}", result): n,
	})
}

// writeInTwoSteps truncates path, writes content[:cut], waits for the
// proxy to look at that, then writes the rest, as a slow editor would.
func writeInTwoSteps(t *testing.T, p *proxy, content string, cut int, seen func()) {
	t.Helper()
	f, err := os.OpenFile(p.WebConfig, os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(content[:cut]); err != nil {
		t.Fatal(err)
	}
	f.Sync()
	seen()
	if _, err := f.WriteString(content[cut:]); err != nil {
		t.Fatal(err)
	}
	f.Sync()
}

// A file truncated mid-write (half the bytes, the rest a moment later): the
// half is refused and logged, the old config keeps serving, and the whole
// file is then applied: its new password replaces the old one, and the
// reload counts as good.
func TestAttackConfigReloadTruncatedWrite(t *testing.T) {
	t.Parallel()
	const pwA, pwB, pwNew = "alice-one", "bob-one", "alice-new"
	hashNew := hashPassword(t, pwNew, 10)
	p := startAliceAndBob(t, pwA, pwB)
	next := usersBlock("alice", hashNew) + tlsBlock(p.PKI)
	writeInTwoSteps(t, p, next, len(next)/2, func() {
		p.waitCount(reloadFailed, 1)
		p.wantStatus(t, "bob while the file is half written", "", "bob", pwB, 200)
		p.wantStatus(t, "anonymous while the file is half written", "127.0.6.1", "", "", 401)
	})
	p.waitCount(reloaded, 1)
	p.wantStatus(t, "alice with the new password", "", "alice", pwNew, 200)
	p.wantStatus(t, "alice with the old password", "127.0.6.2", "alice", pwA, 401)
	p.wantStatus(t, "removed user bob", "127.0.6.3", "bob", pwB, 401)
	p.User, p.Password = "alice", pwNew
	expectMetrics(t, p.selfMetrics(t, p.client("")), map[string]float64{"metrics_proxy_config_last_reload_successful": 1})
}

// The same slow write, cut where the first half is a complete, valid file
// without basic_auth_users (TLS section first, users after). The promise is
// the same: the reload never leaves the proxy without authentication, not
// even for a moment; anonymous requests stay 401.
func TestAttackConfigReloadTruncatedWriteKeepsAuthentication(t *testing.T) {
	t.Parallel()
	const pwNew = "alice-new"
	hashNew := hashPassword(t, pwNew, 10)
	p, _ := startWithUpstream(t, nil, proxyOptions{})
	next := tlsBlock(p.PKI) + usersBlock("alice", hashNew)
	writeInTwoSteps(t, p, next, len(tlsBlock(p.PKI)), func() {
		// Wait until the proxy has looked at the half-written file, whatever
		// it decided.
		for range 1000 {
			if p.countLog(reloadFailed)+p.countLog(reloaded) > 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		p.wantStatus(t, "anonymous request while the file held only tls_server_config", "127.0.7.1", "", "", 401)
	})
	p.waitCount(`users=1`, 1)
	p.wantStatus(t, "alice with the complete file", "", "alice", pwNew, 200)
	p.wantStatus(t, "anonymous after the complete file", "127.0.7.2", "", "", 401)
}

// SIGHUP reloads the web config like a watched change: with nothing changed
// it reloads once and succeeds; a broken edit is refused and logged, and the
// last good config keeps serving on old and new connections; SIGHUP on the
// broken file refuses it again (and claims no success), and anonymous
// requests stay 401.
func TestAttackConfigReloadSIGHUP(t *testing.T) {
	t.Parallel()
	p, _ := startWithUpstream(t, nil, proxyOptions{})
	c := p.client("")
	if r := p.get(t, c, "/metrics"); r.Status != 200 {
		t.Fatalf("right password: %d", r.Status)
	}

	const sighupReloaded = `msg="SIGHUP: web config reloaded"`
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(sighupReloaded)
	expectMetrics(t, p.selfMetrics(t, c), map[string]float64{`metrics_proxy_config_reloads_total{result="success"}`: 1})

	// A broken edit is seen by the watcher, refused, and the old config
	// serves.
	writeFile(t, p.WebConfig, "tls_server_config:\n  cert_file: [unclosed\n")
	p.waitCount(reloadFailed, 1)
	if r := p.get(t, c, "/metrics"); r.Status != 200 {
		t.Fatalf("right password after a broken edit: %d", r.Status)
	}
	if r := p.get(t, p.client(""), "/metrics"); r.Status != 200 {
		t.Fatalf("right password on a new connection after a broken edit: %d", r.Status)
	}
	expectMetrics(t, p.selfMetrics(t, c), map[string]float64{"metrics_proxy_config_last_reload_successful": 0})

	// SIGHUP tries the broken file again and refuses it again.
	n := p.countLog(reloadFailed)
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitCount(reloadFailed, n+1)
	if p.countLog(sighupReloaded) != 1 {
		t.Errorf("SIGHUP claims to have reloaded the broken file; log:\n%s", p.Logs())
	}
	p.wantStatus(t, "after a broken SIGHUP reload", "", defaultUser, defaultPassword, 200)
	p.wantStatus(t, "anonymous after a broken SIGHUP reload", "127.0.8.1", "", "", 401)
}

// A certificate replaced on disk is served to the next connection without a
// restart; the reload counts as good and the new certificate's expiry is
// exported.
func TestAttackConfigReloadRotatedCertificate(t *testing.T) {
	t.Parallel()
	p, _ := startWithUpstream(t, nil, proxyOptions{})
	served := func() *big.Int {
		t.Helper()
		conn := p.mustTLS(t, "")
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber
	}
	oldSerial := served()
	certFile, _ := p.PKI.issue(t, "server", time.Now().Add(-time.Hour), time.Now().Add(48*time.Hour), x509.ExtKeyUsageServerAuth)
	leaf := readCert(t, certFile)
	if leaf.SerialNumber.Cmp(oldSerial) == 0 {
		t.Fatal("the new certificate has the old serial")
	}
	deadline := time.Now().Add(20 * time.Second)
	for served().Cmp(leaf.SerialNumber) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("still serving serial %v, want %v; log:\n%s", served(), leaf.SerialNumber, p.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	c := p.client("")
	if r := p.get(t, c, "/metrics"); r.Status != 200 {
		t.Fatalf("scrape over the new certificate: %d", r.Status)
	}
	expectMetrics(t, p.selfMetrics(t, c), map[string]float64{
		"metrics_proxy_config_last_reload_successful":     1,
		"metrics_proxy_tls_certificate_not_after_seconds": float64(leaf.NotAfter.Unix()),
	})
}
