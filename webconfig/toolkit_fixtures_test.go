package webconfig

import (
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// toolkitFixture is what Load and Check must say about one of
// exporter-toolkit's own web/testdata files.
type toolkitFixture struct {
	// toolkitGood: the toolkit's tests load this file without error (whatever
	// its name says; a few "bad" ones only fail a later request or handshake).
	toolkitGood bool
	// warnings are Load's exact warnings for an accepted file, after the
	// "<path>: " prefix.
	warnings []string
	// problems, when set, are the problems Load and Check report, in order, as
	// substrings after the "<path>: " prefix; "DIR" is the fixture directory.
	problems []string
}

// verifyIfGivenWarning is the warning for VerifyClientCertIfGiven without a CA.
const verifyIfGivenWarning = "tls_server_config: client_auth_type VerifyClientCertIfGiven without client_ca_file: client certificates are then checked against the system roots and authenticate nobody; set client_ca_file, or use basic_auth_users"

// toolkitFixtures covers every *.yml and *.yaml in exporter-toolkit's
// web/testdata. A file the toolkit accepts is accepted here too, unless it is
// listed with problems and a reason.
var toolkitFixtures = map[string]toolkitFixture{
	"tls_config_noAuth.requireandverifyclientcert.good.yml":    {toolkitGood: true},
	"tls_config_noAuth.requireanyclientcert.good.yml":          {toolkitGood: true},
	"tls_config_noAuth.requireanyclientcertkeyinline.good.yml": {toolkitGood: true},
	"web_config_auth_client_san.good.yaml":                     {toolkitGood: true},
	// Loads in the toolkit; only a client certificate without the SANs fails.
	"web_config_auth_client_san.bad.yaml":            {toolkitGood: true},
	"web_config_headers.good.yml":                    {toolkitGood: true},
	"web_config_rate_limiter_nonblocking.yaml":       {toolkitGood: true},
	"web_config_noAuth.good.yml":                     {toolkitGood: true, warnings: []string{verifyIfGivenWarning}},
	"web_config_noAuth_allCiphers.good.yml":          {toolkitGood: true, warnings: []string{verifyIfGivenWarning}},
	"web_config_noAuth_allCurves.good.yml":           {toolkitGood: true, warnings: []string{verifyIfGivenWarning}},
	"web_config_noAuth_noHTTP2.good.yml":             {toolkitGood: true, warnings: []string{verifyIfGivenWarning}},
	"web_config_noAuth_someCiphers.good.yml":         {toolkitGood: true, warnings: []string{verifyIfGivenWarning}},
	"web_config_noAuth_someCiphers_noOrder.good.yml": {toolkitGood: true, warnings: []string{verifyIfGivenWarning}},
	"web_config_noAuth_someCurves.good.yml":          {toolkitGood: true, warnings: []string{verifyIfGivenWarning}},
	"web_config_noAuth_tlsInline.good.yml":           {toolkitGood: true, warnings: []string{verifyIfGivenWarning}},

	// Accepted by the toolkit, refused here, each for a reason a security
	// review should agree with:
	//
	// An empty file is what a truncated write looks like; the toolkit serves
	// it as plain HTTP without authentication.
	"web_config_empty.yml": {toolkitGood: true, problems: []string{
		"the file is empty; configure tls_server_config and/or basic_auth_users",
	}},
	// Without a client CA, "verified" client certificates are verified against
	// the system roots, so any certificate from any public CA passes, and the
	// proxy would count them as authentication (the toolkit's test only
	// shows that its self-signed client certificate is refused).
	"web_config_noAuth.good.blocking.yml": {toolkitGood: true, problems: []string{
		"tls_server_config: client_auth_type RequireAndVerifyClientCert needs client_ca_file; without it client certificates are verified against the system roots, which any public CA's certificate passes",
	}},
	// bob's hash has cost 18. Every check is padded to the highest cost, so
	// each wrong password or unknown name would cost 2^18 rounds (tens of
	// seconds of a core): two requests would hold a 2-core proxy's bcrypt
	// workers, and a new scraper's first check would outlast its timeout.
	"web_config_users.good.yml": {toolkitGood: true, problems: []string{
		`basic_auth_users: user "bob": bcrypt cost 18 is too high`,
	}},
	"web_config_users_noTLS.good.yml": {toolkitGood: true, problems: []string{
		`basic_auth_users: user "bob": bcrypt cost 18 is too high`,
	}},
	// An interval with burst 0 refuses every request (the toolkit's own test
	// expects 429 for all): an outage, never an intended policy.
	"web_config_rate_limiter_one_second.yaml": {toolkitGood: true, problems: []string{
		"rate_limit.burst is 0 with an interval set, which refuses every request; set burst to at least 1",
	}},

	// Refused by the toolkit, and here.
	"web_config_auth_clientCAs_invalid.bad.yml": {problems: []string{
		`tls_server_config.client_ca_file "DIR/somefile" does not exist`,
		"tls_server_config: client_ca_file is set but client_auth_type is not",
	}},
	"web_config_auth_clientCAs_missing.bad.yml": {problems: []string{
		"tls_server_config: client_auth_type RequireAndVerifyClientCert needs client_ca_file",
	}},
	"web_config_auth_user_list_invalid.bad.yml": {problems: []string{
		`basic_auth_users: user "john": password hash is not a valid bcrypt hash`,
	}},
	"web_config_headers_content_type_options.bad.yml": {problems: []string{
		`http_server_config.headers: invalid value "sniff" for X-Content-Type-Options`,
	}},
	"web_config_headers_extra_header.bad.yml": {problems: []string{
		`http_server_config.headers: HTTP header "Content-Type" can not be configured`,
	}},
	"web_config_headers_frame_options.bad.yml": {problems: []string{
		`http_server_config.headers: invalid value "foo" for X-Frame-Options`,
	}},
	"web_config_junk.yml": {problems: []string{
		"line 1: cannot unmarshal !!str (value not shown) into web.Config",
	}},
	"web_config_junk_key.yml": {problems: []string{
		`line 2: unknown key "cert_filse" in tls_server_config`,
	}},
	"web_config_noAuth.bad.yml": {problems: []string{
		`tls_server_config.client_ca_file "/dev/null" holds no PEM certificate`,
		"tls_server_config: client_ca_file is set but client_auth_type is not",
	}},
	"web_config_noAuth_certPath_empty.bad.yml": {problems: []string{
		"tls_server_config: missing one of cert or cert_file",
	}},
	"web_config_noAuth_certPath_invalid.bad.yml": {problems: []string{
		`tls_server_config.cert_file "DIR/somefile" does not exist`,
	}},
	"web_config_noAuth_certPath_keyPath_empty.bad.yml": {problems: []string{
		"tls_server_config: missing one of cert or cert_file",
		"tls_server_config: missing one of key or key_file",
		`tls_server_config.client_auth_type "x" is not valid`,
	}},
	"web_config_noAuth_certPath_keyPath_invalid.bad.yml": {problems: []string{
		`tls_server_config.cert_file "DIR/somefile" does not exist`,
		`tls_server_config.key_file "DIR/somefile" does not exist`,
	}},
	"web_config_noAuth_cert_empty.bad.yml": {problems: []string{
		"tls_server_config: missing one of cert or cert_file",
	}},
	"web_config_noAuth_inventedCiphers.bad.yml": {problems: []string{
		"invalid value: unknown cipher: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA2048",
	}},
	"web_config_noAuth_inventedCurves.bad.yml": {problems: []string{
		"invalid value: unknown curve: CurveP257",
	}},
	"web_config_noAuth_keyPath_empty.bad.yml": {problems: []string{
		"tls_server_config: missing one of key or key_file",
	}},
	"web_config_noAuth_keyPath_invalid.bad.yml": {problems: []string{
		`tls_server_config.cert_file "DIR/server.cert" does not exist`,
		`tls_server_config.key_file "DIR/somefile" does not exist`,
	}},
	"web_config_noAuth_key_empty.bad.yml": {problems: []string{
		"tls_server_config: missing one of key or key_file",
	}},
	"web_config_noAuth_noHTTP2Cipher.bad.yml": {problems: []string{
		"tls_server_config.cipher_suites has neither of the suites HTTP/2 requires over TLS 1.2, so HTTP/2 clients (Prometheus among them) that negotiate TLS 1.2 would be disconnected; add TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 (the certificate's key is RSA), or set min_version: TLS13, or set http_server_config.http2: false",
	}},
	"web_config_noAuth_wrongTLSVersion.bad.yml": {problems: []string{
		"invalid value: unknown TLS version: TLS111",
	}},
}

// toolkitTestdata returns exporter-toolkit's web/testdata directory in the
// module cache, at the version go.mod requires, or skips the test.
func toolkitTestdata(t *testing.T) string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH, so exporter-toolkit's module directory cannot be found; run the test with go on PATH")
	}
	out, err := exec.Command(goCmd, "list", "-m", "-f", "{{.Dir}}", "github.com/prometheus/exporter-toolkit").Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		t.Skipf("exporter-toolkit is not in the module cache (go list: %v); run `go mod download github.com/prometheus/exporter-toolkit` to check its fixtures", err)
	}
	return filepath.Join(dir, "web", "testdata")
}

// Every web config exporter-toolkit's own tests accept is accepted by Load and
// by Check (check-config), or is refused for an argued reason listed above;
// every one it refuses is refused here too. The files are read in place, where
// their relative certificate paths resolve, and never written.
func TestExporterToolkitFixtures(t *testing.T) {
	dir := toolkitTestdata(t)
	yml, _ := filepath.Glob(filepath.Join(dir, "*.yml"))
	yaml, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	files := append(yml, yaml...)
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	sort.Strings(names)
	for _, name := range names {
		if _, ok := toolkitFixtures[name]; !ok {
			t.Errorf("%s is not in toolkitFixtures: decide whether it must be accepted, and if not, why", name)
		}
	}
	if len(names) != len(toolkitFixtures) {
		t.Errorf("%s has %d web configs, toolkitFixtures %d: keep them in step", dir, len(names), len(toolkitFixtures))
	}

	for _, name := range names {
		want, ok := toolkitFixtures[name]
		if !ok {
			continue
		}
		t.Run(name, func(t *testing.T) {
			if !want.toolkitGood && want.problems == nil {
				t.Fatal("the toolkit refuses this file: list what refuses it here too")
			}
			path := filepath.Join(dir, name)
			cfg, err := Load(path)
			checked := Check(path)
			if want.problems == nil {
				if err != nil {
					t.Fatalf("Load refused it: %v", err)
				}
				if len(checked) != 0 {
					t.Fatalf("Check refused it: %s", joinErrs(checked))
				}
				if len(cfg.Warnings) != len(want.warnings) {
					t.Fatalf("warnings %q, want %q", cfg.Warnings, want.warnings)
				}
				for i, w := range cfg.Warnings {
					if w != path+": "+want.warnings[i] {
						t.Errorf("warning %d:\n got: %s\nwant: %s: %s", i, w, path, want.warnings[i])
					}
				}
				return
			}
			if err == nil {
				t.Fatalf("Load accepted it, want %q", want.problems)
			}
			errs := []error{err}
			if pl, ok := err.(interface{ Unwrap() []error }); ok {
				errs = pl.Unwrap()
			}
			assertProblems(t, path, errs, want.problems)
			assertProblems(t, path, checked, want.problems)
		})
	}
}
