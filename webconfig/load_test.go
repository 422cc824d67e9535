package webconfig

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alloyci/hardened-runner/auth"
)

// badFixtures maps every testdata/*.bad.yml to the problems Load reports for
// it, in order; each entry is a substring of one problem, after the
// "<config path>: " prefix every problem starts with. "DIR" stands for the
// directory of the config file.
var badFixtures = map[string][]string{
	"empty.bad.yml": {
		"the file is empty; configure tls_server_config and/or basic_auth_users",
	},
	"malformed_yaml.bad.yml": {
		"invalid YAML: line 3: mapping values are not allowed in this context",
	},
	"unknown_tls_version.bad.yml": {
		"invalid value: unknown TLS version: TLS99; see exporter-toolkit's web configuration documentation for the accepted values",
	},
	"unknown_key.bad.yml": {
		`line 2: unknown key "cert_filse" in tls_server_config; fix its spelling or remove it`,
	},
	"missing_cert.bad.yml": {
		`tls_server_config.cert_file "DIR/missing.crt" does not exist; fix the path (a relative path is resolved against the config file's directory)`,
	},
	"unreadable_cert.bad.yml": {
		`tls_server_config.cert_file "DIR/garbage.crt" holds no PEM certificate; it must hold the server certificate (then any intermediates) in PEM`,
	},
	"key_mismatch.bad.yml": {
		`tls_server_config.key_file "DIR/other.key" does not match the certificate in tls_server_config.cert_file "DIR/server.crt"; use the private key the certificate was issued for`,
	},
	"missing_key.bad.yml": {
		"tls_server_config: missing one of key or key_file; set key_file to the PEM file",
	},
	"client_ca_without_auth_type.bad.yml": {
		"tls_server_config: client_ca_file is set but client_auth_type is not; set client_auth_type: RequireAndVerifyClientCert, or remove client_ca_file",
	},
	"invalid_client_auth_type.bad.yml": {
		`tls_server_config.client_auth_type "RequireSomeClientCert" is not valid; use one of NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert`,
	},
	"verify_without_client_ca.bad.yml": {
		"tls_server_config: client_auth_type RequireAndVerifyClientCert needs client_ca_file; without it client certificates are verified against the system roots",
	},
	"allowed_sans_without_verify.bad.yml": {
		"tls_server_config.client_allowed_sans needs client_auth_type RequireAndVerifyClientCert: unverified certificates can claim any name",
	},
	"http2_cbc_only.bad.yml": {
		"tls_server_config.cipher_suites has neither of the suites HTTP/2 requires over TLS 1.2, so HTTP/2 clients (Prometheus among them) that negotiate TLS 1.2 would be disconnected; add TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 (the certificate's key is ECDSA), or set min_version: TLS13, or set http_server_config.http2: false",
	},
	"min_version_above_max.bad.yml": {
		"tls_server_config.min_version is above max_version",
	},
	"malformed_hash.bad.yml": {
		`basic_auth_users: user "bob": password hash is not a valid bcrypt hash`,
	},
	"example_hash.bad.yml": {
		`basic_auth_users: user "prometheus": password hash is the documented example hash`,
	},
	"forbidden_header.bad.yml": {
		`http_server_config.headers: HTTP header "Server" can not be configured`,
		`http_server_config.headers: invalid value "allow" for X-Frame-Options; use one of ["deny" "sameorigin"]`,
	},
	"many_problems.bad.yml": {
		`http_server_config.headers: HTTP header "Server" can not be configured`,
		`tls_server_config.cert_file "DIR/missing.crt" does not exist`,
		`tls_server_config.client_auth_type "Sometimes" is not valid`,
		`basic_auth_users: user "bob": password hash is not a valid bcrypt hash`,
	},
}

// assertProblems checks that errs are exactly the expected problems, in order,
// each naming the config file, none leaking a secret from the file.
func assertProblems(t *testing.T, path string, errs []error, want []string) {
	t.Helper()
	dir := filepath.Dir(path)
	if len(errs) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%s", len(errs), len(want), joinErrs(errs))
	}
	for i, err := range errs {
		msg := err.Error()
		w := strings.ReplaceAll(want[i], "DIR", dir)
		if !strings.HasPrefix(msg, path+": ") {
			t.Errorf("problem %d does not start with the file name %q: %s", i, path, msg)
		}
		if !strings.Contains(msg, w) {
			t.Errorf("problem %d:\n got: %s\nwant: …%s…", i, msg, w)
		}
	}
	assertNoSecrets(t, path, joinErrs(errs))
}

// assertNoSecrets checks that msg quotes no hash, plain-text password or key
// material from the config at path or from the keys next to it.
func assertNoSecrets(t *testing.T, path, msg string) {
	t.Helper()
	content, _ := os.ReadFile(path)
	for _, tok := range strings.Fields(string(content)) {
		if strings.HasPrefix(tok, "$2") && strings.Contains(msg, tok) {
			t.Errorf("message quotes the hash %q: %s", tok, msg)
		}
	}
	for _, secret := range []string{"$2", "plain-text-password", "not-a-bcrypt-hash", "PRIVATE KEY", auth.ExampleHash} {
		if strings.Contains(msg, secret) {
			t.Errorf("message contains %q: %s", secret, msg)
		}
	}
}

func joinErrs(errs []error) string {
	s := make([]string, len(errs))
	for i, e := range errs {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

func TestLoadBadFixtures(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.bad.yml")
	if len(files) != len(badFixtures) {
		t.Errorf("testdata has %d bad fixtures, the table %d: keep them in step", len(files), len(badFixtures))
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			want, ok := badFixtures[name]
			if !ok {
				t.Fatalf("no expected problems for %s in badFixtures", name)
			}
			path, _ := fixture(t, name)
			cfg, err := Load(path)
			if err == nil {
				t.Fatalf("Load accepted %s: %+v", name, cfg)
			}
			if cfg != nil {
				t.Errorf("Load returned a config along with the error")
			}
			errs := []error{err}
			if pl, ok := err.(interface{ Unwrap() []error }); ok {
				errs = pl.Unwrap()
			}
			assertProblems(t, path, errs, want)
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.yml")
	_, err := Load(path)
	want := path + ": the file does not exist; check --web.config.file"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}

func TestExampleHashFixtureMatchesAuth(t *testing.T) {
	b, err := os.ReadFile("testdata/example_hash.bad.yml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), auth.ExampleHash) {
		t.Fatal("testdata/example_hash.bad.yml no longer holds auth.ExampleHash; update it")
	}
}

func TestLoadGoodFixtures(t *testing.T) {
	type want struct {
		tls, users, verifies bool
		warnings             []string
		minVersion           uint16
		files                []string // relative to the config's directory
	}
	cases := map[string]want{
		"tls.good.yml": {
			tls: true, minVersion: tls.VersionTLS12,
			files: []string{"web.yml", "server.crt", "server.key"},
		},
		"tls_users.good.yml": {
			tls: true, users: true, minVersion: tls.VersionTLS13,
			files: []string{"web.yml", "server.crt", "server.key"},
		},
		"mtls.good.yml": {
			tls: true, verifies: true, minVersion: tls.VersionTLS12,
			files: []string{"web.yml", "server.crt", "server.key", "ca.crt"},
		},
		"users_plain_http.good.yml": {
			users:    true,
			warnings: []string{"basic_auth_users without tls_server_config: passwords cross the network in clear text; configure tls_server_config"},
			files:    []string{"web.yml"},
		},
		"tls_expired_cert.good.yml": {
			tls: true, minVersion: tls.VersionTLS12,
			warnings: []string{`tls_server_config.cert_file "DIR/expired.crt": the certificate expired at `},
			files:    []string{"web.yml", "expired.crt", "expired.key"},
		},
		"users_weak_cost.good.yml": {
			tls: true, users: true, minVersion: tls.VersionTLS12,
			warnings: []string{
				`user "weak": bcrypt cost 4 is below 10; regenerate with metrics-proxy hash-password`,
				"basic_auth_users mixes bcrypt costs (4 and 10): every check pays cost 10 so timing does not reveal names; rehash the others at 10 to spend less",
			},
			files: []string{"web.yml", "server.crt", "server.key"},
		},
		"users_mixed_cost.good.yml": {
			tls: true, users: true, minVersion: tls.VersionTLS12,
			warnings: []string{"basic_auth_users mixes bcrypt costs (10 and 12): every check pays cost 12 so timing does not reveal names; rehash the others at 12 to spend less"},
			files:    []string{"web.yml", "server.crt", "server.key"},
		},
		"verify_if_given_without_client_ca.good.yml": {
			tls: true, minVersion: tls.VersionTLS12,
			warnings: []string{"tls_server_config: client_auth_type VerifyClientCertIfGiven without client_ca_file: client certificates are then checked against the system roots and authenticate nobody; set client_ca_file, or use basic_auth_users"},
			files:    []string{"web.yml", "server.crt", "server.key"},
		},
		"named_suites_curves.good.yml": {
			tls: true, minVersion: tls.VersionTLS12,
			files: []string{"web.yml", "server.crt", "server.key"},
		},
	}
	files, _ := filepath.Glob("testdata/*.good.yml")
	if len(files) != len(cases) {
		t.Errorf("testdata has %d good fixtures, the table %d: keep them in step", len(files), len(cases))
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			w, ok := cases[name]
			if !ok {
				t.Fatalf("no expectations for %s", name)
			}
			path, pki := fixture(t, name)
			dir := filepath.Dir(path)
			cfg, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.TLSEnabled() != w.tls || cfg.Access().Users != w.users || cfg.Access().ClientCerts != w.verifies {
				t.Errorf("TLSEnabled=%v Access().Users=%v Access().ClientCerts=%v, want %v %v %v",
					cfg.TLSEnabled(), cfg.Access().Users, cfg.Access().ClientCerts, w.tls, w.users, w.verifies)
			}
			if len(cfg.Warnings) != len(w.warnings) {
				t.Fatalf("warnings %q, want %q", cfg.Warnings, w.warnings)
			}
			for i, warn := range cfg.Warnings {
				if want := path + ": " + strings.ReplaceAll(w.warnings[i], "DIR", dir); !strings.HasPrefix(warn, want) {
					t.Errorf("warning %d:\n got: %s\nwant: %s…", i, warn, want)
				}
			}
			var wantFiles []string
			for _, f := range w.files {
				wantFiles = append(wantFiles, filepath.Join(dir, f))
			}
			if !slices.Equal(cfg.Files, wantFiles) {
				t.Errorf("Files = %q, want %q", cfg.Files, wantFiles)
			}
			if cfg.Users == nil || cfg.Users.Len() != len(cfg.Web.Users) {
				t.Errorf("Users not built from basic_auth_users")
			}
			if !w.tls {
				if cfg.TLS != nil || !cfg.NotAfter.IsZero() {
					t.Errorf("plain HTTP config has TLS %v, NotAfter %v", cfg.TLS, cfg.NotAfter)
				}
				return
			}
			if cfg.TLS.MinVersion != w.minVersion || cfg.TLS.MaxVersion != tls.VersionTLS13 {
				t.Errorf("TLS versions %x..%x, want %x..%x", cfg.TLS.MinVersion, cfg.TLS.MaxVersion, w.minVersion, tls.VersionTLS13)
			}
			if !slices.Equal(cfg.TLS.NextProtos, []string{"h2", "http/1.1"}) {
				t.Errorf("NextProtos = %q, want h2 and http/1.1 (http2 defaults to true)", cfg.TLS.NextProtos)
			}
			if name == "tls.good.yml" && !cfg.NotAfter.Equal(pki.serverNotAfter) {
				t.Errorf("NotAfter = %v, want %v", cfg.NotAfter, pki.serverNotAfter)
			}
		})
	}
}

// TestLoadReadsOnce proves the point of the package: once loaded, the config
// serves its certificate without the files, where exporter-toolkit would
// re-read them on every handshake.
func TestLoadReadsOnce(t *testing.T) {
	path, pki := fixture(t, "tls.good.yml")
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"server.crt", "server.key"} {
		if err := os.Remove(filepath.Join(pki.dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	cert, err := cfg.TLS.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if got := cert.Leaf.SerialNumber.Int64(); got != pki.serverSerial {
		t.Errorf("serial %d, want %d", got, pki.serverSerial)
	}
}

func TestLoadDefaultsAndRelativePaths(t *testing.T) {
	path, pki := fixture(t, "tls.good.yml")
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Web.HTTPConfig.HTTP2 {
		t.Error("http2 should default to true, as in exporter-toolkit")
	}
	if got, want := cfg.Web.TLSConfig.TLSCertPath, filepath.Join(pki.dir, "server.crt"); got != want {
		t.Errorf("cert_file resolved to %q, want %q", got, want)
	}
}

func TestLoadHTTP2Off(t *testing.T) {
	path, _ := fixture(t, "tls.good.yml")
	b, _ := os.ReadFile(path)
	writeFile(t, path, append(b, "http_server_config:\n  http2: false\n"...))
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.TLS.NextProtos, []string{"http/1.1"}) {
		t.Errorf("NextProtos = %q, want only http/1.1", cfg.TLS.NextProtos)
	}
}

func TestLoadRefusesHugeFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "web.yml")
	writeFile(t, path, make([]byte, maxFileSize+1))
	_, err := Load(path)
	want := path + `: file "` + path + `" cannot be read: larger than 1048576 bytes; is this the right file?`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		`user "$2y$10$abc./XYZ": bad`:                                        `user "[hash redacted]": bad`,
		"cannot unmarshal !!str `$2y$10$...` into":                           "cannot unmarshal !!str (value not shown) into",
		"key -----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY----- x": "key [PEM redacted] x",
		"cut -----BEGIN EC PRIVATE KEY-----\\nMHcCAQEE":                      "cut [PEM redacted]",
		"nothing secret here":                                                "nothing secret here",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// A password pasted one line off becomes an unknown key; its text must not
// reach the error (and so the log), while a misspelt setting is still named.
func TestUnknownKeyThatLooksLikeASecretIsNotEchoed(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/web.yml"
	if err := os.WriteFile(path, []byte("basic_auth_users: {}\nHunter2-Pa55word!: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	want := path + ": line 2: unknown key in the top level (not shown: it does not look like a setting name); fix or remove it"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

// rate_limit becomes a token bucket built once per load; without an
// interval there is none.
func TestRateLimitBecomesALimiter(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/web.yml"
	if err := os.WriteFile(path, []byte("rate_limit:\n  interval: 1s\n  burst: 5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Limiter == nil || c.Limiter.Burst() != 5 || c.Limiter.Limit() != 1 {
		t.Fatalf("limiter = %+v", c.Limiter)
	}
	if err := os.WriteFile(path, []byte("basic_auth_users: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err = Load(path); err != nil || c.Limiter != nil {
		t.Fatalf("without rate_limit: %v, %v", c.Limiter, err)
	}
}

// Mixed costs are listed in ascending order; Check does not refuse them (every
// check is padded to the highest cost, so they are a waste, not a weakness).
func TestMixedCostsWarningListsEveryCost(t *testing.T) {
	path := filepath.Join(t.TempDir(), "web.yml")
	writeFile(t, path, []byte("basic_auth_users:\n"+
		"  a: $2a$12$./KgzMgnSan5EQPnOQGWme0HaQJwsAOK9LtDJCfsicubhNkQT0Vee\n"+
		"  b: $2a$10$jSGfWpHm1fGRA4O5ru/WyOI.dlo1ysLNqYjSfIxy872zXIQhUtNcS\n"+
		"  c: $2a$11$NERfMh5MtEzjlIqVPYFGFu7XynIfNJkGVhmZHTt5JEQY3gb5PADg6\n"))
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		path + ": basic_auth_users mixes bcrypt costs (10, 11 and 12): every check pays cost 12 so timing does not reveal names; rehash the others at 12 to spend less",
		path + ": basic_auth_users without tls_server_config: passwords cross the network in clear text; configure tls_server_config",
	}
	if !slices.Equal(cfg.Warnings, want) {
		t.Fatalf("warnings %q\nwant %q", cfg.Warnings, want)
	}
	if errs := Check(path); len(errs) != 0 {
		t.Fatalf("Check refused mixed costs: %s", joinErrs(errs))
	}
}
