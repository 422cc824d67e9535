package webconfig

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// serveTLS accepts TLS connections on 127.0.0.1 with cfg, completes each
// handshake, writes "ok" and closes.
func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	tl := tls.NewListener(ln, cfg)
	go func() {
		defer close(done)
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if c.(*tls.Conn).Handshake() == nil {
					_, _ = c.Write([]byte("ok"))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// dial handshakes as a client trusting the test CA and reads the server's
// "ok", which in TLS 1.3 is where a refused client certificate shows up. It
// returns the serial of the certificate the server presented.
func dial(t *testing.T, addr string, pki *testPKI, clientCert *tls.Certificate) (int64, error) {
	t.Helper()
	cfg := &tls.Config{RootCAs: pki.pool, ServerName: "localhost"}
	if clientCert != nil {
		cfg.Certificates = []tls.Certificate{*clientCert}
	}
	d := &net.Dialer{Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil {
		return 0, err
	}
	if string(buf) != "ok" {
		return 0, errors.New("unexpected reply " + string(buf))
	}
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
}

// A certificate rotated on disk is served from the next handshake after the
// reload, on the same listener; until the reload, the old one keeps serving
// without the files being read.
func TestCertRotationNextHandshake(t *testing.T) {
	e := newStoreEnv(t, "tls.good.yml")
	addr := serveTLS(t, e.store.ServerTLSConfig())

	first := e.pki.serverSerial
	if got, err := dial(t, addr, e.pki, nil); err != nil || got != first {
		t.Fatalf("first handshake: serial %d, err %v; want serial %d", got, err, first)
	}

	rotated := e.pki.WriteServer(t, "server", e.pki.now.Add(-time.Hour), e.pki.now.Add(72*time.Hour))
	if got, err := dial(t, addr, e.pki, nil); err != nil || got != first {
		t.Fatalf("before reload: serial %d, err %v; want the loaded %d", got, err, first)
	}
	if err := e.store.Reload(); err != nil {
		t.Fatal(err)
	}
	if got, err := dial(t, addr, e.pki, nil); err != nil || got != rotated {
		t.Fatalf("after reload: serial %d, err %v; want rotated %d", got, err, rotated)
	}
	e.wantMetric(t, "metrics_proxy_tls_certificate_not_after_seconds", "", float64(e.pki.serverNotAfter.Unix()))
}

func TestMTLSHandshake(t *testing.T) {
	e := newStoreEnv(t, "mtls.good.yml")
	addr := serveTLS(t, e.store.ServerTLSConfig())

	client := e.pki.ClientCert(t)
	if _, err := dial(t, addr, e.pki, &client); err != nil {
		t.Fatalf("client with a certificate from the CA refused: %v", err)
	}
	if _, err := dial(t, addr, e.pki, nil); err == nil {
		t.Fatal("client without a certificate accepted")
	}
}

// exporter-toolkit's SAN check indexes the first certificate unconditionally;
// crypto/tls calls it with none when a client sends none.
func TestAllowedSANsWithoutClientCertDoesNotPanic(t *testing.T) {
	path, _ := fixture(t, "tls.good.yml")
	b := []byte("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: ca.crt\n  client_auth_type: VerifyClientCertIfGiven\n  client_allowed_sans: [client.test]\n")
	writeFile(t, path, b)
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.TLS.VerifyPeerCertificate(nil, nil); err != nil {
		t.Errorf("no certificate with VerifyClientCertIfGiven: %v", err)
	}
}
