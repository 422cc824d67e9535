package e2e

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// atkLogfmt is s as it appears inside a quoted logfmt value.
func atkLogfmt(s string) string { return strings.ReplaceAll(s, `"`, `\"`) }

// atkServeOnce runs `metrics-proxy` on 127.0.0.1:0 with the web config file
// and returns its exit code and output.
func atkServeOnce(t *testing.T, file string) (int, string) {
	t.Helper()
	return run(t, 15*time.Second, "metrics-proxy", "--web.listen-address", "127.0.0.1:0", "--web.config.file", file,
		"--upstream.url", "http://"+atkClosedAddr(t))
}

// atkCheckConfig runs `metrics-proxy check-config` on the file.
func atkCheckConfig(t *testing.T, file string) (int, string) {
	t.Helper()
	return run(t, 15*time.Second, "metrics-proxy", "check-config", "--web.config.file", file, "--web.listen-address", "127.0.0.1:9253")
}

// Broken web configs refuse to start with exit 1 and an error saying what is
// wrong, never quoting a hash or password.
func TestAttackConfigStartFaults(t *testing.T) {
	t.Parallel()
	k := newPKI(t)
	dir := k.Dir
	hash := atkHashed(t, atkPassword, 10)
	tlsOK := atkTLSHeader(k)
	users := fmt.Sprintf("basic_auth_users:\n  alice: '%s'\n", hash)
	_, otherKey := k.issue(t, "other", time.Now().Add(-time.Hour), time.Now().Add(time.Hour), x509.ExtKeyUsageServerAuth)
	certDir := filepath.Join(dir, "certdir")
	if err := os.Mkdir(certDir, 0o700); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.crt")
	const plainPassword = "hunter2-pasted-in-place-of-a-hash"
	cost17 := hash[:4] + "17" + hash[6:]
	webFile := filepath.Join(dir, "web.yml")

	cases := []struct {
		name, content string
		want          []string // fragments of the log line, as logfmt writes them
		secrets       []string // must not appear in the output
	}{
		{"missing certificate",
			fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n", missing, k.KeyFile) + users,
			[]string{`msg="refusing to start"`, atkLogfmt(fmt.Sprintf(`tls_server_config.cert_file "%s" does not exist; fix the path`, missing))}, []string{hash}},
		{"certificate path is a directory",
			fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n", certDir, k.KeyFile) + users,
			[]string{atkLogfmt(fmt.Sprintf(`tls_server_config.cert_file "%s" cannot be read: is a directory`, certDir))}, nil},
		{"key does not match the certificate",
			fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n", k.CertFile, otherKey) + users,
			[]string{atkLogfmt(fmt.Sprintf(`tls_server_config.key_file "%s" does not match the certificate in tls_server_config.cert_file "%s"; use the private key the certificate was issued for`, otherKey, k.CertFile))}, nil},
		{"malformed YAML",
			tlsOK[:len(tlsOK)-1] + ": extra\n" + users,
			[]string{webFile + `: invalid YAML: line 3: mapping values are not allowed in this context`}, []string{hash}},
		{"tab indentation",
			tlsOK + users + "\tbob: x\n",
			[]string{webFile + `: invalid YAML: line 6: found character that cannot start any token`}, []string{hash}},
		{"unknown keys",
			strings.Replace(tlsOK, "cert_file", "cert_fil", 1) + strings.Replace(users, "basic_auth_users", "basic_auth_user", 1),
			[]string{atkLogfmt(`line 2: unknown key "cert_fil" in tls_server_config; fix its spelling or remove it`),
				atkLogfmt(`line 4: unknown key "basic_auth_user" in the top level; fix its spelling or remove it`)}, []string{hash}},
		{"hash used as a key",
			tlsOK + "basic_auth_users:\n  alice: '" + hash + "'\n" + "http_server_config:\n  '" + hash + "': true\n",
			[]string{atkLogfmt(`line 7: unknown key in http_server_config (not shown: it does not look like a setting name); fix or remove it`)}, []string{hash, hash[7:]}},
		{"malformed bcrypt hash",
			tlsOK + "basic_auth_users:\n  alice: '" + hash[:40] + "'\n",
			[]string{atkLogfmt(`basic_auth_users: user "alice": password hash is not a valid bcrypt hash: it is 40 characters long, a bcrypt hash has 60; generate one with "metrics-proxy hash-password"`)}, []string{hash[:40], hash[7:40]}},
		{"damaged bcrypt digest",
			tlsOK + "basic_auth_users:\n  alice: '" + hash[:59] + "~'\n",
			[]string{atkLogfmt(`basic_auth_users: user "alice": password hash is not a valid bcrypt hash: the digest is not one bcrypt produces`)}, []string{hash[:59], hash[29:59]}},
		{"plain password instead of a hash",
			tlsOK + "basic_auth_users:\n  alice: '" + plainPassword + "'\n",
			[]string{atkLogfmt(`user "alice": password hash is not a valid bcrypt hash: it is 33 characters long`)}, []string{plainPassword}},
		{"the example hash",
			tlsOK + "basic_auth_users:\n  alice: '$2a$10$dGe1Z/0L3l4edbI7dn2B1.LoOTlcimUTXQwL344o0CspDa/lTZ/.a'\n",
			[]string{atkLogfmt(`basic_auth_users: user "alice": password hash is the documented example hash, whose password is public; replace it with the output of "metrics-proxy hash-password"`)}, nil},
		{"the example hash as $2y$",
			tlsOK + "basic_auth_users:\n  alice: '$2y$10$dGe1Z/0L3l4edbI7dn2B1.LoOTlcimUTXQwL344o0CspDa/lTZ/.a'\n",
			[]string{`password hash is the documented example hash`}, nil},
		{"cost above 16",
			tlsOK + "basic_auth_users:\n  alice: '" + cost17 + "'\n",
			[]string{atkLogfmt(`basic_auth_users: user "alice": bcrypt cost 17 is too high`)}, []string{cost17}},
		{"empty file", "",
			[]string{webFile + `: the file is empty; configure tls_server_config and/or basic_auth_users`}, nil},
		{"only a comment (a truncated file)", "# web config\n",
			[]string{webFile + `: the file is empty`}, nil},
	}
	for _, tc := range cases {
		writeFile(t, webFile, tc.content)
		code, out := atkServeOnce(t, webFile)
		if code != 1 {
			t.Errorf("%s: exit %d, want 1; output:\n%s", tc.name, code, out)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %q:\n%s", tc.name, w, out)
			}
		}
		for _, s := range tc.secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s: output contains the secret %q:\n%s", tc.name, s, out)
			}
		}
		if strings.Contains(out, "msg=listening") {
			t.Errorf("%s: listened before refusing", tc.name)
		}
		// check-config refuses the same file.
		if code, cout := atkCheckConfig(t, webFile); code != 1 || !strings.Contains(cout, "problem(s):") {
			t.Errorf("%s: check-config exit %d:\n%s", tc.name, code, cout)
		}
	}

	missingFile := filepath.Join(dir, "nope.yml")
	if code, out := atkServeOnce(t, missingFile); code != 1 || !strings.Contains(out, missingFile+`: the file does not exist; check --web.config.file`) {
		t.Errorf("missing web config: exit %d:\n%s", code, out)
	}

	t.Run("unreadable by permission", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("running as root, which reads a file whatever its mode; the directory case covers unreadable certificates")
		}
		locked := filepath.Join(dir, "locked.crt")
		b, _ := os.ReadFile(k.CertFile)
		writeFile(t, locked, string(b))
		os.Chmod(locked, 0)
		writeFile(t, webFile, fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n", locked, k.KeyFile)+users)
		code, out := atkServeOnce(t, webFile)
		if code != 1 || !strings.Contains(out, atkLogfmt(fmt.Sprintf(`tls_server_config.cert_file "%s" cannot be read: permission denied`, locked))) {
			t.Errorf("exit %d:\n%s", code, out)
		}
	})
}

// Weak but working configs start with a warning and fail check-config: an
// expired certificate, and a bcrypt cost below 10.
func TestAttackConfigWeakButServing(t *testing.T) {
	t.Parallel()
	k := newPKI(t)
	expiredCert, expiredKey := k.issue(t, "expired", time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour), x509.ExtKeyUsageServerAuth)
	cheap := hashPassword(t, atkPassword, 4)
	file := filepath.Join(k.Dir, "web.yml")
	writeFile(t, file, fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  alice: '%s'\n", expiredCert, expiredKey, cheap))

	p := start(t, "metrics-proxy", "--web.listen-address", "127.0.0.1:0", "--web.config.file", file, "--upstream.url", "http://"+atkClosedAddr(t))
	p.waitLog(`msg=listening address=127\.0\.0\.1:\d+ tls=true auth=basic`)
	logs := p.Logs()
	for _, w := range []string{
		`level=warn`,
		atkLogfmt(fmt.Sprintf(`tls_server_config.cert_file "%s": the certificate expired at `, expiredCert)),
		atkLogfmt(`user "alice": bcrypt cost 4 is below 10; regenerate with metrics-proxy hash-password`),
	} {
		if !strings.Contains(logs, w) {
			t.Errorf("start-up log lacks %q:\n%s", w, logs)
		}
	}
	if strings.Contains(logs, cheap) {
		t.Errorf("log contains the hash")
	}
	code, out := atkCheckConfig(t, file)
	if code != 1 || !strings.Contains(out, file+": 2 problem(s):") || !strings.Contains(out, "the certificate expired at") ||
		!strings.Contains(out, `user "alice": bcrypt cost 4 is below 10`) || strings.Contains(out, cheap) {
		t.Errorf("check-config: exit %d:\n%s", code, out)
	}
}

// atkReplaceAtomically writes content next to path and renames it over path.
func atkReplaceAtomically(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	writeFile(t, tmp, content)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// atkWaitCount waits until the log holds at least n occurrences of s.
func (p *atkProxy) atkWaitCount(t *testing.T, s string, n int) {
	t.Helper()
	atkWaitLogCount(t, p.proc, s, n)
}

const (
	atkReloadFailed = `msg="Web config reload failed; still serving the last good config"`
	atkReloaded     = `msg="Web config reloaded"`
)

// atkStatusAs fetches /metrics as user with a fresh connection from src.
func (p *atkProxy) atkStatusAs(t *testing.T, src, user, password string) int {
	t.Helper()
	hdr := map[string]string{}
	if user != "" {
		hdr["Authorization"] = atkBasic(user, password)
	}
	return atkDo(t, p.atkClient(src), "GET", p.URL+"/metrics", hdr).Status
}

// A broken file swapped in atomically is refused and the last good config
// keeps serving (including users who never logged in before); the next good
// file is applied without a restart.
func TestAttackConfigReloadAtomicBroken(t *testing.T) {
	t.Parallel()
	const pwA, pwB, pwC = "alice-one", "bob-one", "alice-two"
	hashA, hashB, hashC := atkHashed(t, pwA, 10), atkHashed(t, pwB, 10), atkHashed(t, pwC, 10)
	up := atkStartUpstream(t, nil)
	p := atkStartProxy(t, atkProxyOptions{Upstream: up.URL, Web: func(k *pki) string {
		return atkTLSHeader(k) + fmt.Sprintf("basic_auth_users:\n  alice: '%s'\n  bob: '%s'\n", hashA, hashB)
	}})
	if st := p.atkStatusAs(t, "", "alice", pwA); st != 200 {
		t.Fatalf("alice before: %d", st)
	}
	for i, broken := range []string{
		atkTLSHeader(p.PKI) + "basic_auth_users:\n  alice: '" + hashC + "\n", // unterminated quote
		atkTLSHeader(p.PKI) + "basic_auth_users:\n  alice: '" + hashC[:30] + "'\n",
		"",
	} {
		atkReplaceAtomically(t, p.WebConfig, broken)
		p.atkWaitCount(t, atkReloadFailed, i+1)
	}
	// bob never logged in, so this is a bcrypt check against the old file.
	if st := p.atkStatusAs(t, "", "bob", pwB); st != 200 {
		t.Errorf("bob after the broken reloads: %d", st)
	}
	if st := p.atkStatusAs(t, "127.0.5.1", "alice", pwC); st != 401 {
		t.Errorf("alice with the broken files' password: %d", st)
	}
	m := atkDo(t, p.atkClient(""), "GET", p.URL+"/proxy/metrics", map[string]string{"Authorization": atkBasic("bob", pwB)}).Body
	if atkMetric(m, "metrics_proxy_config_last_reload_successful") != 0 || atkMetric(m, `metrics_proxy_config_reloads_total{result="failure"}`) != 3 {
		t.Errorf("reload metrics after 3 failures:\n%s", m)
	}
	if strings.Contains(p.Logs(), hashC[7:30]) {
		t.Errorf("the log quotes the broken hash")
	}

	atkReplaceAtomically(t, p.WebConfig, atkTLSHeader(p.PKI)+fmt.Sprintf("basic_auth_users:\n  alice: '%s'\n", hashC))
	p.atkWaitCount(t, atkReloaded, 1)
	if st := p.atkStatusAs(t, "", "alice", pwC); st != 200 {
		t.Errorf("alice with the new password: %d", st)
	}
	// The old password was cached as good, but under the old hash: refused.
	if st := p.atkStatusAs(t, "127.0.5.2", "alice", pwA); st != 401 {
		t.Errorf("alice with the old password: %d", st)
	}
	if st := p.atkStatusAs(t, "127.0.5.3", "bob", pwB); st != 401 {
		t.Errorf("removed user bob: %d", st)
	}
	m = atkDo(t, p.atkClient(""), "GET", p.URL+"/proxy/metrics", map[string]string{"Authorization": atkBasic("alice", pwC)}).Body
	if atkMetric(m, "metrics_proxy_config_last_reload_successful") != 1 || atkMetric(m, `metrics_proxy_config_reloads_total{result="success"}`) != 1 {
		t.Errorf("reload metrics after the good file:\n%s", m)
	}
}

// atkWriteInTwoSteps truncates path, writes content[:cut], waits for the
// proxy to look at that, then writes the rest, as a slow editor would.
func atkWriteInTwoSteps(t *testing.T, p *atkProxy, content string, cut int, seen func()) {
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
// half is refused and logged, the old config keeps serving, the whole file is
// then applied.
func TestAttackConfigReloadTruncatedWrite(t *testing.T) {
	t.Parallel()
	const pwA, pwB, pwNew = "alice-one", "bob-one", "alice-new"
	hashA, hashB, hashNew := atkHashed(t, pwA, 10), atkHashed(t, pwB, 10), atkHashed(t, pwNew, 10)
	up := atkStartUpstream(t, nil)
	p := atkStartProxy(t, atkProxyOptions{Upstream: up.URL, Web: func(k *pki) string {
		return atkTLSHeader(k) + fmt.Sprintf("basic_auth_users:\n  alice: '%s'\n  bob: '%s'\n", hashA, hashB)
	}})
	if st := p.atkStatusAs(t, "", "alice", pwA); st != 200 {
		t.Fatalf("alice before: %d", st)
	}
	next := fmt.Sprintf("basic_auth_users:\n  alice: '%s'\n", hashNew) + atkTLSHeader(p.PKI)
	atkWriteInTwoSteps(t, p, next, len(next)/2, func() {
		p.atkWaitCount(t, atkReloadFailed, 1)
		if st := p.atkStatusAs(t, "", "bob", pwB); st != 200 {
			t.Errorf("bob while the file is half written: %d", st)
		}
		if st := p.atkStatusAs(t, "127.0.6.1", "", ""); st != 401 {
			t.Errorf("anonymous while the file is half written: %d", st)
		}
	})
	p.atkWaitCount(t, atkReloaded, 1)
	if st := p.atkStatusAs(t, "", "alice", pwNew); st != 200 {
		t.Errorf("alice with the new password: %d", st)
	}
	if st := p.atkStatusAs(t, "127.0.6.2", "alice", pwA); st != 401 {
		t.Errorf("alice with the old password: %d", st)
	}
	if st := p.atkStatusAs(t, "127.0.6.3", "bob", pwB); st != 401 {
		t.Errorf("removed user bob: %d", st)
	}
}

// The same slow write, cut where the first half is a complete, valid file
// without basic_auth_users (TLS section first, users after). The promise is
// the same: the reload never leaves the proxy without authentication, not
// even for a moment; anonymous requests stay 401.
func TestAttackConfigReloadTruncatedWriteKeepsAuthentication(t *testing.T) {
	t.Parallel()
	const pwNew = "alice-new"
	hashNew := atkHashed(t, pwNew, 10)
	up := atkStartUpstream(t, nil)
	p := atkStartProxy(t, atkProxyOptions{Upstream: up.URL})
	next := atkTLSHeader(p.PKI) + fmt.Sprintf("basic_auth_users:\n  alice: '%s'\n", hashNew)
	atkWriteInTwoSteps(t, p, next, len(atkTLSHeader(p.PKI)), func() {
		// Wait until the proxy has looked at the half-written file, whatever
		// it decided.
		for range 1000 {
			if p.countLog(atkReloadFailed)+p.countLog(atkReloaded) > 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if st := p.atkStatusAs(t, "127.0.7.1", "", ""); st != 401 {
			t.Errorf("anonymous request while the file held only tls_server_config: %d, want 401", st)
		}
	})
	p.atkWaitCount(t, `users=1`, 1)
	if st := p.atkStatusAs(t, "", "alice", pwNew); st != 200 {
		t.Errorf("alice with the complete file: %d", st)
	}
	if st := p.atkStatusAs(t, "127.0.7.2", "", ""); st != 401 {
		t.Errorf("anonymous after the complete file: %d", st)
	}
}

// SIGHUP with a broken file behaves like a watched change: refused, logged,
// last good config kept.
func TestAttackConfigReloadSIGHUPBroken(t *testing.T) {
	t.Parallel()
	up := atkStartUpstream(t, nil)
	p := atkStartProxy(t, atkProxyOptions{Upstream: up.URL})
	writeFile(t, p.WebConfig, "tls_server_config:\n  cert_file: [\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.atkWaitCount(t, atkReloadFailed, 1)
	if st := p.atkStatusAs(t, "", atkUser, atkPassword); st != 200 {
		t.Errorf("after a broken SIGHUP reload: %d", st)
	}
	if st := p.atkStatusAs(t, "127.0.8.1", "", ""); st != 401 {
		t.Errorf("anonymous after a broken SIGHUP reload: %d", st)
	}
}
