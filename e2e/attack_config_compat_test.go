package e2e

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A TLS 1.2 config whose cipher suites no HTTP/2 client can use is refused
// at start and by check-config, saying what to change, instead of serving
// GOAWAY to every Prometheus.
func TestAttackConfigHTTP2WithoutItsCipherIsRefused(t *testing.T) {
	t.Parallel()
	k := newPKI(t)
	file := filepath.Join(k.Dir, "web.yml")
	writeFile(t, file, tlsBlock(k)+`  min_version: TLS12
  cipher_suites:
    - TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA
    - TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA
`+usersBlock(defaultUser, defaultHash(t)))
	want := problem{"tls_server_config.cipher_suites", "has neither of the suites HTTP/2 requires over TLS 1.2"}
	code, out := checkConfig(t, file)
	if code != 1 {
		t.Errorf("check-config: exit %d, output:\n%s\nwant exit 1 naming the cipher rule and the fixes", code, out)
	}
	wantProblems(t, "check-config", out, want, problem{"min_version: TLS13", "http_server_config.http2: false"})
	code, out = serveOnce(t, file)
	if code != 1 || !strings.Contains(out, `msg="refusing to start"`) {
		t.Errorf("serve: exit %d, output:\n%s\nwant exit 1 refusing to start", code, out)
	}
	wantProblems(t, "serve", out, want)
	// The same suites with http2 off serve: the rule is about HTTP/2 only.
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, file, strings.Replace(string(b), "basic_auth_users", "http_server_config:\n  http2: false\nbasic_auth_users", 1))
	if code, out := checkConfig(t, file); code != 0 || !strings.HasSuffix(out, file+": OK\n") {
		t.Errorf("check-config with http2 off: exit %d, output:\n%s", code, out)
	}
}

// With no cipher suites named, TLS 1.2 offers Mozilla "intermediate" only: a
// client offering only CBC suites cannot connect, one offering GCM can.
func TestAttackConfigDefaultCiphersRefuseCBC(t *testing.T) {
	t.Parallel()
	p := startProxy(t, proxyOptions{})
	dial := func(suites ...uint16) error {
		c, err := tls.Dial("tcp", p.Addr, &tls.Config{
			RootCAs: p.PKI.Pool, ServerName: "127.0.0.1",
			MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12, CipherSuites: suites,
		})
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA); err == nil {
		t.Error("a TLS 1.2 client offering only CBC suites connected")
	}
	if err := dial(tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256); err != nil {
		t.Errorf("a TLS 1.2 GCM client: %v", err)
	}
}

// VerifyClientCertIfGiven without a client CA, as 8 of exporter-toolkit's own
// good fixtures have it, loads with a warning (such certificates
// authenticate nobody here); RequireAndVerifyClientCert without one stays
// refused.
func TestAttackConfigVerifyIfGivenWithoutCAWarns(t *testing.T) {
	t.Parallel()
	k := newPKI(t)
	file := filepath.Join(k.Dir, "web.yml")
	users := usersBlock(defaultUser, defaultHash(t))
	writeFile(t, file, tlsBlock(k)+"  client_auth_type: VerifyClientCertIfGiven\n"+users)
	code, out := checkConfig(t, file)
	if code != 0 || !strings.Contains(out, file+": OK\n") {
		t.Errorf("check-config: exit %d, output:\n%s\nwant exit 0 with the warning", code, out)
	}
	wantProblems(t, "check-config", out, problem{"warning: " + file + ": tls_server_config: client_auth_type VerifyClientCertIfGiven", "without client_ca_file"})
	writeFile(t, file, tlsBlock(k)+"  client_auth_type: RequireAndVerifyClientCert\n"+users)
	code, out = checkConfig(t, file)
	if code != 1 {
		t.Errorf("RequireAndVerifyClientCert without a CA: exit %d, output:\n%s", code, out)
	}
	wantProblems(t, "check-config", out, problem{"client_auth_type RequireAndVerifyClientCert", "needs client_ca_file"})
}

// Users at mixed bcrypt costs are served with a warning that every check now
// pays the highest cost (so timing tells no names apart); check-config says
// the same and passes.
func TestAttackConfigMixedCostsWarn(t *testing.T) {
	t.Parallel()
	k := newPKI(t)
	file := filepath.Join(k.Dir, "web.yml")
	users := usersBlock(defaultUser, defaultHash(t), "alice", hashPassword(t, "alice's password", 11))
	writeFile(t, file, tlsBlock(k)+users)
	warning := problem{"basic_auth_users", "mixes bcrypt costs (10 and 11): every check pays cost 11"}
	code, out := checkConfig(t, file)
	if code != 0 {
		t.Errorf("check-config: exit %d, output:\n%s\nwant exit 0 with the mixed-cost warning", code, out)
	}
	wantProblems(t, "check-config", out, warning)
	p := startProxy(t, proxyOptions{Web: func(k *pki) string { return tlsBlock(k) + users }})
	wantProblems(t, "start-up log", p.startupMessages(t), warning)
	if r := p.get(t, p.client("127.0.0.2"), "/proxy/metrics"); r.Status != 200 {
		t.Errorf("scrape with the cost-10 user: %d", r.Status)
	}
}

// A flood repeating one wrong password from one address is answered 429
// (held back) after a small burst, instead of 401 at full speed; the
// address's right password still gets 200, and another address is not
// affected.
func TestAttackRepeatedWrongPasswordIsCharged(t *testing.T) {
	t.Parallel()
	p := startProxy(t, proxyOptions{Args: []string{"--web.throttle-delay=1ms"}})
	flood := p.client("127.0.21.1")
	codes := map[int]int{}
	for range 40 {
		codes[p.getAs(t, flood, "/metrics", defaultUser, "wrong").Status]++
	}
	// One bcrypt-checked 401, then the burst of 10 cheap refusals, then 429.
	if codes[401] != 11 || codes[429] != 29 {
		t.Errorf("flood answers %v, want 11 × 401 then 29 × 429", codes)
	}
	if r := p.get(t, p.client("127.0.21.1"), "/metrics"); r.Status == 401 || r.Status == 429 {
		t.Errorf("right password from the flooding address: %d, want it to pass authentication", r.Status)
	}
	other := p.getAs(t, p.client("127.0.21.2"), "/metrics", "", "")
	if other.Status != 401 {
		t.Errorf("no credentials from another address: %d, want 401", other.Status)
	}
}
