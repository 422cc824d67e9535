package webconfig

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/exporter-toolkit/web"
)

// clientAuthType maps client_auth_type to crypto/tls, exactly as
// exporter-toolkit's ConfigToTLSConfig does (including its legacy alias).
func clientAuthType(s string) (tls.ClientAuthType, bool) {
	switch s {
	case "", "NoClientCert":
		return tls.NoClientCert, true
	case "RequestClientCert":
		return tls.RequestClientCert, true
	case "RequireAnyClientCert", "RequireClientCert":
		return tls.RequireAnyClientCert, true
	case "VerifyClientCertIfGiven":
		return tls.VerifyClientCertIfGiven, true
	case "RequireAndVerifyClientCert":
		return tls.RequireAndVerifyClientCert, true
	}
	return 0, false
}

// buildTLS validates tls_server_config, reading each file once, and builds the
// server's *tls.Config. It returns nil when TLS is not configured or a problem
// was recorded.
//
// The *tls.Config comes from exporter-toolkit's own ConfigToTLSConfig, so
// cipher suites, curves, versions and client-auth semantics are the toolkit's.
// It is fed the bytes read here (as inline cert/key/client_ca) rather than the
// paths, so the whole snapshot is one consistent read, and its GetCertificate,
// which re-reads and re-parses the key pair on every handshake, is replaced by
// one returning the pair parsed here.
func (l *loader) buildTLS(t *web.TLSConfig, http2 bool) (*tls.Config, time.Time) {
	if !t.IsEnabled() {
		return nil, time.Time{}
	}
	before := len(l.problems)

	certPEM, certOK := l.source("cert_file", t.TLSCertPath, "cert", t.TLSCert)
	keyPEM, keyOK := l.source("key_file", t.TLSKeyPath, "key", string(t.TLSKey))
	var caPEM []byte
	if t.ClientCAs != "" {
		if b, ok := l.readFile("tls_server_config.client_ca_file", t.ClientCAs); ok {
			caPEM = b
			if !x509.NewCertPool().AppendCertsFromPEM(b) {
				l.problem("tls_server_config.client_ca_file %q holds no PEM certificate; it must hold the CA certificate(s) that sign client certificates", t.ClientCAs)
			}
		}
	} else if t.ClientCAsText != "" {
		caPEM = []byte(t.ClientCAsText)
		if !x509.NewCertPool().AppendCertsFromPEM(caPEM) {
			l.problem("tls_server_config.client_ca holds no PEM certificate; it must hold the CA certificate(s) that sign client certificates")
		}
	}

	var pair tls.Certificate
	var notAfter time.Time
	var leaf *x509.Certificate
	if certOK {
		var ok bool
		if leaf, ok = l.parseLeaf(t, certPEM); ok {
			notAfter = leaf.NotAfter
			l.checkValidity(t, leaf)
			if keyOK {
				var err error
				pair, err = tls.X509KeyPair(certPEM, keyPEM)
				if err != nil {
					l.keyProblem(t, err)
				}
			}
		}
	}

	l.checkClientAuth(t)
	if t.MinVersion > t.MaxVersion {
		l.problem("tls_server_config.min_version is above max_version, so no TLS version is left; lower min_version or raise max_version")
	}
	l.checkHTTP2Ciphers(t, http2, leaf)
	if len(l.problems) > before {
		return nil, time.Time{}
	}

	inline := *t
	inline.TLSCertPath, inline.TLSCert = "", string(certPEM)
	inline.TLSKeyPath, inline.TLSKey = "", config_util.Secret(keyPEM)
	if caPEM != nil {
		inline.ClientCAs, inline.ClientCAsText = "", string(caPEM)
	}
	cfg, err := web.ConfigToTLSConfig(&inline)
	if err != nil {
		// Everything ConfigToTLSConfig checks was checked above; this is a
		// toolkit rule this package does not know yet.
		l.problem("tls_server_config: %v", err)
		return nil, time.Time{}
	}
	// Without a choice in the file, Mozilla's "intermediate" profile rather
	// than Go's defaults, which still enable CBC suites for TLS 1.2.
	if len(t.CipherSuites) == 0 {
		cfg.CipherSuites = defaultCipherSuites()
	}
	if len(t.CurvePreferences) == 0 {
		cfg.CurvePreferences = defaultCurves()
	}
	cert := &pair
	cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert, nil }
	if inner := cfg.VerifyPeerCertificate; inner != nil {
		// The toolkit's SAN check indexes rawCerts[0], but crypto/tls also
		// calls it when a client sends no certificate (RequestClientCert,
		// VerifyClientCertIfGiven); client_auth_type already decided whether
		// that is acceptable.
		cfg.VerifyPeerCertificate = func(raw [][]byte, chains [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return nil
			}
			return inner(raw, chains)
		}
	}
	// This config is handed out by GetConfigForClient, which makes it the one
	// that negotiates ALPN: without NextProtos no client would get HTTP/2.
	if http2 {
		cfg.NextProtos = []string{"h2", "http/1.1"}
	} else {
		cfg.NextProtos = []string{"http/1.1"}
	}
	return cfg, notAfter
}

// defaultCipherSuites are the TLS 1.2 suites served when the file names none:
// Mozilla's "intermediate" profile as far as Go implements it (it has no DHE),
// that is ECDHE with AES-GCM or ChaCha20-Poly1305 and no CBC. TLS 1.3 suites are
// not configurable in Go and are all AEAD. A function, so that no caller can
// change the defaults for everyone.
func defaultCipherSuites() []uint16 {
	return []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
}

// defaultCurves are the key exchange groups offered when the file names no
// curve_preferences: the hybrid post-quantum X25519MLKEM768 first (Go's own
// first choice), then Mozilla's intermediate X25519, P-256 and P-384.
func defaultCurves() []tls.CurveID {
	return []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256, tls.CurveP384}
}

// checkHTTP2Ciphers refuses what x/net/http2's ConfigureServer refuses, and so
// exporter-toolkit at start: with HTTP/2 on, TLS 1.2 allowed and cipher_suites
// set, one of the two suites HTTP/2 requires must be among them. This proxy
// configures ALPN itself, so nothing would refuse the file, and every HTTP/2
// client that negotiates TLS 1.2 would get a suite HTTP/2 forbids and be sent
// GOAWAY. leaf, when known, names the suite that fits the certificate's key.
func (l *loader) checkHTTP2Ciphers(t *web.TLSConfig, http2 bool, leaf *x509.Certificate) {
	if !http2 || len(t.CipherSuites) == 0 || t.MinVersion >= tls.VersionTLS13 {
		return
	}
	for _, c := range t.CipherSuites {
		switch uint16(c) {
		case tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256:
			return
		}
	}
	add := "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 (for an ECDSA certificate) or TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 (for an RSA one)"
	if leaf != nil {
		switch leaf.PublicKeyAlgorithm {
		case x509.RSA:
			add = "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 (the certificate's key is RSA)"
		case x509.ECDSA, x509.Ed25519: // TLS 1.2 signs with Ed25519 under the ECDSA suites
			add = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 (the certificate's key is " + leaf.PublicKeyAlgorithm.String() + ")"
		}
	}
	l.problem("tls_server_config.cipher_suites has neither of the suites HTTP/2 requires over TLS 1.2, so HTTP/2 clients (Prometheus among them) that negotiate TLS 1.2 would be disconnected; add %s, or set min_version: TLS13, or set http_server_config.http2: false", add)
}

// source returns the PEM of the certificate or key, from its file (which wins,
// as in exporter-toolkit) or inline.
func (l *loader) source(fileKey, path, inlineKey, inline string) ([]byte, bool) {
	if path != "" {
		return l.readFile("tls_server_config."+fileKey, path)
	}
	if inline != "" {
		return []byte(inline), true
	}
	l.problem("tls_server_config: missing one of %s or %s; set %s to the PEM file", inlineKey, fileKey, fileKey)
	return nil, false
}

// certName names where the certificate came from, for messages.
func certName(t *web.TLSConfig) string {
	if t.TLSCertPath != "" {
		return fmt.Sprintf("tls_server_config.cert_file %q", t.TLSCertPath)
	}
	return "tls_server_config.cert"
}

func keyName(t *web.TLSConfig) string {
	if t.TLSKeyPath != "" {
		return fmt.Sprintf("tls_server_config.key_file %q", t.TLSKeyPath)
	}
	return "tls_server_config.key"
}

// parseLeaf parses the first certificate of the chain, the one served, so that
// a garbled certificate is reported as such rather than as a key problem.
func (l *loader) parseLeaf(t *web.TLSConfig, certPEM []byte) (*x509.Certificate, bool) {
	rest := certPEM
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			l.problem("%s holds no PEM certificate; it must hold the server certificate (then any intermediates) in PEM", certName(t))
			return nil, false
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		leaf, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			l.problem("%s: the certificate cannot be parsed (%v); replace it with a valid PEM certificate", certName(t), err)
			return nil, false
		}
		return leaf, true
	}
}

// checkValidity warns about a certificate outside its validity period: clients
// will refuse it, but refusing to load would turn an expiry into an outage of
// a proxy that may still be scraped with insecure_skip_verify, and the expiry
// is exported as a metric to alert on.
func (l *loader) checkValidity(t *web.TLSConfig, leaf *x509.Certificate) {
	switch {
	case l.now.After(leaf.NotAfter):
		l.warn("%s: the certificate expired at %s; renew it", certName(t), leaf.NotAfter.UTC().Format(time.RFC3339))
	case l.now.Before(leaf.NotBefore):
		l.warn("%s: the certificate is not valid before %s; check the clock or reissue it", certName(t), leaf.NotBefore.UTC().Format(time.RFC3339))
	}
}

// keyProblem explains a failed key pair. crypto/tls's messages name the
// problem without quoting key material.
func (l *loader) keyProblem(t *web.TLSConfig, err error) {
	msg := strings.TrimPrefix(err.Error(), "tls: ")
	if strings.Contains(msg, "does not match") {
		l.problem("%s does not match the certificate in %s; use the private key the certificate was issued for", keyName(t), certName(t))
		return
	}
	l.problem("%s cannot be used: %s; it must hold the certificate's private key in PEM", keyName(t), msg)
}

// checkClientAuth validates client_auth_type and its combination with the
// client CA and allowed SANs. Beyond the toolkit's own checks it refuses two
// settings that look secure and are not: requiring verified client
// certificates with no client CA verifies them against the system roots (any
// certificate from any public CA would pass, and the proxy would count that as
// authentication, see Config.Access), and allowed SANs without
// verification match names in certificates anyone can mint. The same lack of a
// CA with VerifyClientCertIfGiven is only a warning: that mode admits clients
// without a certificate anyway, so it authenticates nobody with or without a
// CA, and exporter-toolkit's own fixtures use it.
func (l *loader) checkClientAuth(t *web.TLSConfig) {
	auth, ok := clientAuthType(t.ClientAuth)
	if !ok {
		l.problem("tls_server_config.client_auth_type %q is not valid; use one of NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert", t.ClientAuth)
		return
	}
	configuredCA := t.ClientCAs != "" || t.ClientCAsText != ""
	switch {
	case configuredCA && auth == tls.NoClientCert:
		l.problem("tls_server_config: client_ca_file is set but client_auth_type is not; set client_auth_type: RequireAndVerifyClientCert, or remove client_ca_file")
	case !configuredCA && auth == tls.VerifyClientCertIfGiven:
		l.note("tls_server_config: client_auth_type VerifyClientCertIfGiven without client_ca_file: client certificates are then checked against the system roots and authenticate nobody; set client_ca_file, or use basic_auth_users")
	case !configuredCA && auth == tls.RequireAndVerifyClientCert:
		l.problem("tls_server_config: client_auth_type %s needs client_ca_file; without it client certificates are verified against the system roots, which any public CA's certificate passes", t.ClientAuth)
	}
	if t.ClientAllowedSans != nil && auth < tls.VerifyClientCertIfGiven {
		l.problem("tls_server_config.client_allowed_sans needs client_auth_type RequireAndVerifyClientCert: unverified certificates can claim any name")
	}
}

// ServerTLSConfig returns the *tls.Config to wrap the listener with, or nil
// when the config serves plain HTTP (then the caller must not wrap it). The
// returned config only dispatches: each handshake gets the *tls.Config of the
// Config current at that moment, so a reload applies to the next connection
// without a restart and without touching the disk.
func (s *Store) ServerTLSConfig() *tls.Config {
	if !s.Current().TLSEnabled() {
		return nil
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			c := s.Current()
			if !c.TLSEnabled() {
				return nil, errors.New("webconfig: TLS is not configured")
			}
			return c.TLS, nil
		},
		// Never used while GetConfigForClient answers; set so that callers
		// such as http.Server.ServeTLS see a config that can serve.
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			c := s.Current()
			if !c.TLSEnabled() {
				return nil, errors.New("webconfig: TLS is not configured")
			}
			return c.TLS.GetCertificate(hello)
		},
	}
}
