package webconfig

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
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

// dialTLS12 handshakes at TLS 1.2 with only the given cipher suites, trusting
// the test CA, and returns the negotiated suite.
func dialTLS12(t *testing.T, addr string, pki *testPKI, suites ...uint16) (uint16, error) {
	t.Helper()
	cfg := &tls.Config{RootCAs: pki.pool, ServerName: "localhost", MaxVersion: tls.VersionTLS12, CipherSuites: suites}
	d := &net.Dialer{Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.ConnectionState().CipherSuite, nil
}

// Without cipher_suites and curve_preferences in the file, the served config
// has exactly Mozilla's intermediate TLS 1.2 suites (no CBC) and groups, and a
// TLS 1.2 client offering only CBC is refused while a GCM one is served.
func TestDefaultCipherSuitesAndCurves(t *testing.T) {
	e := newStoreEnv(t, "tls.good.yml")
	cfg := e.store.Current().TLS
	wantSuites := []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
	if !slices.Equal(cfg.CipherSuites, wantSuites) {
		t.Errorf("CipherSuites = %v, want %v", suiteNames(cfg.CipherSuites), suiteNames(wantSuites))
	}
	wantCurves := []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256, tls.CurveP384}
	if !slices.Equal(cfg.CurvePreferences, wantCurves) {
		t.Errorf("CurvePreferences = %v, want %v", cfg.CurvePreferences, wantCurves)
	}

	addr := serveTLS(t, e.store.ServerTLSConfig())
	_, err := dialTLS12(t, addr, e.pki, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA)
	if err == nil || !strings.Contains(err.Error(), "handshake failure") {
		t.Errorf("a CBC-only TLS 1.2 client: %v, want a handshake failure", err)
	}
	got, err := dialTLS12(t, addr, e.pki, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)
	if err != nil || got != tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 {
		t.Errorf("a GCM TLS 1.2 client: suite %s, err %v", tls.CipherSuiteName(got), err)
	}
}

// A file that names its suites and curves gets exactly those, CBC included.
func TestNamedCipherSuitesAndCurvesAreKept(t *testing.T) {
	e := newStoreEnv(t, "named_suites_curves.good.yml")
	cfg := e.store.Current().TLS
	wantSuites := []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}
	if !slices.Equal(cfg.CipherSuites, wantSuites) || !slices.Equal(cfg.CurvePreferences, []tls.CurveID{tls.CurveP521}) {
		t.Fatalf("CipherSuites %v, CurvePreferences %v: want the file's", suiteNames(cfg.CipherSuites), cfg.CurvePreferences)
	}
	addr := serveTLS(t, e.store.ServerTLSConfig())
	got, err := dialTLS12(t, addr, e.pki, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA)
	if err != nil || got != tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA {
		t.Errorf("a CBC client against a file naming CBC: suite %s, err %v", tls.CipherSuiteName(got), err)
	}
}

func suiteNames(ids []uint16) []string {
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = tls.CipherSuiteName(id)
	}
	return names
}

// The HTTP/2 cipher rule is exactly x/net/http2's: it applies only with http2
// on, TLS 1.2 allowed and cipher_suites set, and is met by either AES-128-GCM
// ECDHE suite; the message names the suite of the certificate's key type.
func TestHTTP2CipherRule(t *testing.T) {
	const prefix = "tls_server_config.cipher_suites has neither of the suites HTTP/2 requires over TLS 1.2"
	const fix = ", or set min_version: TLS13, or set http_server_config.http2: false"
	tests := []struct {
		name, cert, extra string
		want              string // "" for accepted
	}{
		{"CBC only, ECDSA key", "server", "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA]\n",
			"add TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 (the certificate's key is ECDSA)" + fix},
		{"AES-256 only, RSA key", "rsa", "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]\n",
			"add TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 (the certificate's key is RSA)" + fix},
		{"TLS 1.3 suites only, min TLS12", "server", "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
			"add TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 (the certificate's key is ECDSA)" + fix},
		{"CBC only, min TLS13", "server", "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA]\n  min_version: TLS13\n", ""},
		{"CBC only, http2 off", "server", "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA]\nhttp_server_config:\n  http2: false\n", ""},
		{"CBC and the RSA AES-128-GCM suite, ECDSA key", "server", "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n", ""},
		{"no cipher_suites", "server", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, pki := fixture(t, "tls.good.yml")
			if tt.cert == "rsa" {
				pki.WriteRSAServer(t, "rsa")
			}
			writeFile(t, path, []byte("tls_server_config:\n  cert_file: "+tt.cert+".crt\n  key_file: "+tt.cert+".key\n"+tt.extra))
			_, err := Load(path)
			errs := Check(path)
			if tt.want == "" {
				if err != nil || len(errs) != 0 {
					t.Fatalf("refused: %v; check: %v", err, errs)
				}
				return
			}
			want := path + ": " + prefix + ", so HTTP/2 clients (Prometheus among them) that negotiate TLS 1.2 would be disconnected; " + tt.want
			if err == nil || err.Error() != want {
				t.Fatalf("got  %v\nwant %s", err, want)
			}
			if len(errs) != 1 || errs[0].Error() != want {
				t.Fatalf("check: %v", errs)
			}
		})
	}
}

// A reload to such a file is refused and the last good config keeps serving.
func TestReloadRefusesHTTP2WithoutItsCipher(t *testing.T) {
	e := newStoreEnv(t, "tls.good.yml")
	before := e.store.Current()
	copyFixture(t, e.path, "http2_cbc_only.bad.yml")
	err := e.store.Reload()
	if err == nil || !strings.Contains(err.Error(), "tls_server_config.cipher_suites has neither of the suites HTTP/2 requires") {
		t.Fatalf("reload: %v", err)
	}
	if e.store.Current() != before {
		t.Fatal("the refused file replaced the config")
	}
	e.wantReloads(t, 0, 1, 0)
}
