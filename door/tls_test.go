package door

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// Connections that never start a handshake must not keep a good client from
// being accepted, and each is closed when its handshake time runs out.
func TestTLSListenerSilentClientsDoNotBlockOthers(t *testing.T) {
	cert, pool := selfSigned(t)
	raw, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var failed atomic.Int32
	l := NewTLS(raw, TLSOptions{
		Config:           &tls.Config{Certificates: []tls.Certificate{cert}},
		HandshakeTimeout: 300 * time.Millisecond,
		OnHandshakeError: func(net.Addr, error) { failed.Add(1) },
	})
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { c.Write([]byte("hello")); c.Close() }()
		}
	}()
	var silent []net.Conn
	for range 50 {
		c, err := net.Dial("tcp4", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		silent = append(silent, c)
	}
	good, err := tls.Dial("tcp4", raw.Addr().String(), &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatalf("good client: %v", err)
	}
	b, _ := io.ReadAll(good)
	if string(b) != "hello" {
		t.Fatalf("good client read %q", b)
	}
	// Every silent connection is closed by the server once its time is up.
	for _, c := range silent {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("silent connection: read %v, want EOF from the server closing it", err)
		}
		c.Close()
	}
	if n := failed.Load(); n != 50 {
		t.Fatalf("handshake errors reported = %d, want 50", n)
	}
}

func TestTLSListenerCloseEndsAccept(t *testing.T) {
	cert, _ := selfSigned(t)
	raw, _ := net.Listen("tcp4", "127.0.0.1:0")
	l := NewTLS(raw, TLSOptions{Config: &tls.Config{Certificates: []tls.Certificate{cert}}})
	done := make(chan error)
	go func() { _, err := l.Accept(); done <- err }()
	l.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
}

// emfileListener fails its first accepts as a process out of file
// descriptors does, then accepts for real.
type emfileListener struct {
	net.Listener
	failures atomic.Int32
}

func (l *emfileListener) Accept() (net.Conn, error) {
	if l.failures.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// Running out of file descriptors (EMFILE is no timeout) must not end the
// door for good: the accept loop backs off, says so, and serves again.
func TestTLSListenerSurvivesEMFILE(t *testing.T) {
	cert, pool := selfSigned(t)
	raw, _ := net.Listen("tcp4", "127.0.0.1:0")
	fl := &emfileListener{Listener: raw}
	fl.failures.Store(3)
	var reported atomic.Int32
	l := NewTLS(fl, TLSOptions{
		Config:        &tls.Config{Certificates: []tls.Certificate{cert}},
		OnAcceptError: func(error) { reported.Add(1) },
	})
	defer l.Close()
	go func() {
		c, err := tls.Dial("tcp", raw.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
		if err == nil {
			c.Close()
		}
	}()
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("Accept after EMFILE: %v", err)
	}
	c.Close()
	if n := reported.Load(); n != 3 {
		t.Errorf("accept errors reported = %d, want 3", n)
	}
}
