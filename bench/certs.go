package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// tlsFiles are the throw-away CA and the server certificate for 127.0.0.1
// that every proxy under test serves.
type tlsFiles struct {
	certFile, keyFile string
	caFile            string         // the CA certificate, for the flood process
	pool              *x509.CertPool // trusts the CA, for the clients
}

// makeCerts writes, in dir, a server certificate and key for 127.0.0.1 and
// localhost, signed by a CA generated here and valid for a day.
func makeCerts(dir string) (tlsFiles, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tlsFiles{}, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "metrics-proxy bench CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return tlsFiles{}, fmt.Errorf("creating the bench CA: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return tlsFiles{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tlsFiles{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return tlsFiles{}, fmt.Errorf("creating the server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tlsFiles{}, err
	}
	f := tlsFiles{
		certFile: filepath.Join(dir, "server.crt"),
		keyFile:  filepath.Join(dir, "server.key"),
		caFile:   filepath.Join(dir, "ca.crt"),
		pool:     x509.NewCertPool(),
	}
	f.pool.AddCert(ca)
	if err := os.WriteFile(f.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return tlsFiles{}, err
	}
	if err := os.WriteFile(f.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		return tlsFiles{}, err
	}
	if err := os.WriteFile(f.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return tlsFiles{}, err
	}
	return f, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n.Add(n, big.NewInt(1))
}

// randomPassword returns n random bytes as hex.
func randomPassword(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails since Go 1.24
	return hex.EncodeToString(b)
}

// hashPassword hashes password with `metrics-proxy hash-password --cost N`,
// the way an operator makes the hash.
func hashPassword(proxyBin, password string, cost int) (string, error) {
	cmd := exec.Command(proxyBin, "hash-password", "--cost", fmt.Sprint(cost))
	cmd.Stdin = strings.NewReader(password + "\n")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s hash-password: %v: %s", proxyBin, err, strings.TrimSpace(stderr.String()))
	}
	h := strings.TrimSpace(string(out))
	if !strings.HasPrefix(h, "$2") {
		return "", fmt.Errorf("%s hash-password printed %q, not a bcrypt hash", proxyBin, h)
	}
	return h, nil
}

// writeWebConfig writes the exporter-toolkit web config that metrics-proxy
// and the toolkit baseline both read: TLS and the basic-auth users, given as
// user and hash pairs.
func writeWebConfig(path string, t tlsFiles, userHashes ...string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n", t.certFile, t.keyFile)
	for i := 0; i+1 < len(userHashes); i += 2 {
		fmt.Fprintf(&b, "  %s: '%s'\n", userHashes[i], userHashes[i+1])
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}
