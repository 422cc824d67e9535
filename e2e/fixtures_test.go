package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// pki is a throw-away CA with a server certificate for 127.0.0.1, ::1 and
// localhost, written to a test directory.
type pki struct {
	Dir      string
	CAFile   string
	CertFile string
	KeyFile  string
	Pool     *x509.CertPool
	ca       *x509.Certificate
	caKey    *ecdsa.PrivateKey
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "e2e test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p := &pki{Dir: dir, CAFile: filepath.Join(dir, "ca.crt"), ca: ca, caKey: caKey, Pool: x509.NewCertPool()}
	p.Pool.AddCert(ca)
	writePEM(t, p.CAFile, "CERTIFICATE", caDER)
	p.CertFile, p.KeyFile = p.issue(t, "server", time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour), x509.ExtKeyUsageServerAuth)
	return p
}

// issue signs a certificate valid from notBefore to notAfter for the loopback
// names and writes it and its key to NAME.crt and NAME.key.
func (p *pki) issue(t *testing.T, name string, notBefore, notAfter time.Time, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: notBefore, NotAfter: notAfter,
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(p.Dir, name+".crt"), filepath.Join(p.Dir, name+".key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	return certFile, keyFile
}

// clientCert issues a client certificate and returns it loaded.
func (p *pki) clientCert(t *testing.T, name string) tls.Certificate {
	t.Helper()
	c, k := p.issue(t, name, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour), x509.ExtKeyUsageClientAuth)
	cert, err := tls.LoadX509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// hashPassword is a bcrypt hash at the given cost. Tests use cost 10 (the
// lowest the proxy accepts without warning) unless they measure bcrypt.
func hashPassword(t *testing.T, pw string, cost int) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// stack is a runner and a proxy in front of it, both real binaries on loopback.
type stack struct {
	Runner    *proc
	Proxy     *proc
	RunnerURL string // http://127.0.0.1:PORT
	ProxyURL  string // https://127.0.0.1:PORT (or http:// without TLS)
	WebConfig string // path of the proxy's web config
	PKI       *pki
	User      string
	Password  string
}

// stackOptions shape startStack. Zero values give TLS + one basic-auth user.
type stackOptions struct {
	NoTLS      bool     // plain HTTP (the proxy only allows it on loopback)
	WebConfig  string   // full web config; %[1]s is replaced by the PKI dir. Default: TLS + user
	ProxyArgs  []string // extra metrics-proxy flags
	RunnerArgs []string // extra alloy-runner run flags
	Upstream   string   // override --upstream.url (default: the runner)
}

// startStack starts alloy-runner on 127.0.0.1 and metrics-proxy in front of it
// and waits until both listen.
func startStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	s := &stack{PKI: newPKI(t), User: "prometheus", Password: "correct horse battery staple"}
	dir := s.PKI.Dir

	runnerCfg := filepath.Join(dir, "config.toml")
	writeFile(t, runnerCfg, "concurrent = 1\n")
	s.Runner = start(t, "alloy-runner", append([]string{"run", "--config", runnerCfg, "--metrics-server", "127.0.0.1:0"}, o.RunnerArgs...)...)
	s.RunnerURL = "http://" + s.Runner.waitLog(`msg="metrics server listening" addr=tcp:(\S+)`)

	web := o.WebConfig
	if web == "" {
		web = fmt.Sprintf("basic_auth_users:\n  %s: '%s'\n", s.User, hashPassword(t, s.Password, 10))
		if !o.NoTLS {
			web = fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n", s.PKI.CertFile, s.PKI.KeyFile) + web
		}
	} else {
		web = strings.ReplaceAll(web, "%[1]s", dir)
	}
	s.WebConfig = filepath.Join(dir, "web.yml")
	writeFile(t, s.WebConfig, web)

	upstream := o.Upstream
	if upstream == "" {
		upstream = s.RunnerURL
	}
	args := append([]string{"--web.listen-address", "127.0.0.1:0", "--web.config.file", s.WebConfig,
		"--upstream.url", upstream, "--log.level", "debug"}, withoutSourceLimits(o.ProxyArgs)...)
	s.Proxy = start(t, "metrics-proxy", args...)
	addr := s.Proxy.waitLog(`msg=listening address=(\S+)`)
	scheme := "https"
	if o.NoTLS || !strings.Contains(web, "tls_server_config") {
		scheme = "http"
	}
	s.ProxyURL = scheme + "://" + addr
	return s
}

// client returns an HTTPS client that trusts the stack's CA, with its own
// connection pool.
func (s *stack) client() *http.Client {
	return &http.Client{
		Timeout:   15 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.PKI.Pool}, ForceAttemptHTTP2: false},
	}
}

// get fetches path through the proxy with the given basic-auth credentials
// (no Authorization header when user is empty).
func (s *stack) get(t *testing.T, c *http.Client, path, user, password string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", s.ProxyURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp, b.String()
}
