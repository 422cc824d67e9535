package webconfig

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testPKI is a throwaway CA and the certificates the fixtures name, generated
// at test time into a temporary directory so that no key is ever committed.
//
//	ca.crt                  the CA (client_ca_file)
//	server.crt, server.key  valid now, for 127.0.0.1 and localhost
//	expired.crt/.key        expired an hour ago
//	other.key               a key that matches no certificate
//	garbage.crt             not PEM at all
type testPKI struct {
	dir    string
	now    time.Time
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	pool   *x509.CertPool
	serial int64
	// serverNotAfter is the expiry of the server.crt written last.
	serverNotAfter time.Time
	serverSerial   int64
}

func newPKI(t testing.TB, dir string) *testPKI {
	t.Helper()
	p := &testPKI{dir: dir, now: time.Now(), pool: x509.NewCertPool()}
	p.caKey = newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(p.nextSerial()),
		Subject:               pkix.Name{CommonName: "webconfig test CA"},
		NotBefore:             p.now.Add(-time.Hour),
		NotAfter:              p.now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &p.caKey.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	p.caCert, _ = x509.ParseCertificate(der)
	p.pool.AddCert(p.caCert)
	writeFile(t, filepath.Join(dir, "ca.crt"), pemBytes("CERTIFICATE", der))

	p.WriteServer(t, "server", p.now.Add(-time.Hour), p.now.Add(24*time.Hour))
	p.WriteServer(t, "expired", p.now.Add(-48*time.Hour), p.now.Add(-time.Hour))
	writeFile(t, filepath.Join(dir, "other.key"), keyPEM(t, newKey(t)))
	writeFile(t, filepath.Join(dir, "garbage.crt"), []byte("this is not a certificate\n"))
	return p
}

func (p *testPKI) nextSerial() int64 {
	p.serial++
	return p.serial
}

// WriteServer issues a server certificate valid from notBefore to notAfter and
// writes NAME.crt and NAME.key, each by atomic rename as a certificate tool
// would. It returns the serial number.
func (p *testPKI) WriteServer(t testing.TB, name string, notBefore, notAfter time.Time) int64 {
	t.Helper()
	certPEM, kPEM, serial := p.issue(t, notBefore, notAfter, x509.ExtKeyUsageServerAuth, "localhost")
	writeAtomic(t, filepath.Join(p.dir, name+".crt"), certPEM)
	writeAtomic(t, filepath.Join(p.dir, name+".key"), kPEM)
	if name == "server" {
		p.serverNotAfter, p.serverSerial = notAfter.Truncate(time.Second), serial
	}
	return serial
}

// WriteRSAServer writes NAME.crt and NAME.key, a server certificate from the CA
// with an RSA key, for messages that depend on the key type.
func (p *testPKI) WriteRSAServer(t testing.TB, name string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.nextSerial()),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    p.now.Add(-time.Hour),
		NotAfter:     p.now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(p.dir, name+".crt"), pemBytes("CERTIFICATE", der))
	writeFile(t, filepath.Join(p.dir, name+".key"), pemBytes("PRIVATE KEY", kder))
}

// ClientCert returns a client certificate signed by the CA, for mTLS tests.
func (p *testPKI) ClientCert(t testing.TB) tls.Certificate {
	t.Helper()
	certPEM, kPEM, _ := p.issue(t, p.now.Add(-time.Hour), p.now.Add(time.Hour), x509.ExtKeyUsageClientAuth, "client.test")
	c, err := tls.X509KeyPair(certPEM, kPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (p *testPKI) issue(t testing.TB, notBefore, notAfter time.Time, usage x509.ExtKeyUsage, dnsName string) (certPEM, kPEM []byte, serial int64) {
	t.Helper()
	key := newKey(t)
	serial = p.nextSerial()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: dnsName},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		DNSNames:     []string{dnsName},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pemBytes("CERTIFICATE", der), keyPEM(t, key), serial
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func keyPEM(t testing.TB, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pemBytes("PRIVATE KEY", der)
}

func pemBytes(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeAtomic replaces path the way editors, `mv` and certificate tools do:
// write a temporary file next to it, then rename it over.
func writeAtomic(t testing.TB, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	writeFile(t, tmp, b)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// fixture copies testdata/name to web.yml in a new directory that also holds a
// fresh testPKI, and returns the config path.
func fixture(t testing.TB, name string) (string, *testPKI) {
	t.Helper()
	dir := t.TempDir()
	p := newPKI(t, dir)
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "web.yml")
	writeFile(t, path, b)
	return path, p
}

// copyFixture replaces the config at path with testdata/name, atomically.
func copyFixture(t testing.TB, path, name string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, path, b)
}
