package webconfig

import (
	"path/filepath"
	"testing"
)

// Check reports everything Load refuses, in the same words.
func TestCheckBadFixtures(t *testing.T) {
	for name, want := range badFixtures {
		if name == "many_problems.bad.yml" {
			continue // stricter in Check, see TestCheckListsEveryProblem
		}
		t.Run(name, func(t *testing.T) {
			path, _ := fixture(t, name)
			assertProblems(t, path, Check(path), want)
		})
	}
}

func TestCheckListsEveryProblem(t *testing.T) {
	path, _ := fixture(t, "many_problems.bad.yml")
	assertProblems(t, path, Check(path), []string{
		`http_server_config.headers: HTTP header "Server" can not be configured`,
		`tls_server_config.cert_file "DIR/missing.crt" does not exist`,
		`tls_server_config.client_auth_type "Sometimes" is not valid`,
		`basic_auth_users: user "bob": password hash is not a valid bcrypt hash`,
		// weak's own hash is well-formed: its cost is still checked although
		// bob's hash made the user table invalid.
		`user "weak": bcrypt cost 4 is below 10; regenerate with metrics-proxy hash-password`,
	})
}

func TestCheckGoodFixtures(t *testing.T) {
	cases := map[string][]string{
		"tls.good.yml":              nil,
		"tls_users.good.yml":        nil,
		"mtls.good.yml":             nil,
		"users_plain_http.good.yml": nil, // plain HTTP is for loopback; the listen policy decides
		"tls_expired_cert.good.yml": {`tls_server_config.cert_file "DIR/expired.crt": the certificate expired at `},
		"users_weak_cost.good.yml":  {`user "weak": bcrypt cost 4 is below 10; regenerate with metrics-proxy hash-password`},
		// Warnings that check-config does not turn into problems: mixed costs
		// are padded (a cost, not a weakness), and VerifyClientCertIfGiven
		// authenticates nobody with or without a CA.
		"users_mixed_cost.good.yml":                  nil,
		"verify_if_given_without_client_ca.good.yml": nil,
		"named_suites_curves.good.yml":               nil,
	}
	files, _ := filepath.Glob("testdata/*.good.yml")
	if len(files) != len(cases) {
		t.Errorf("testdata has %d good fixtures, the table %d", len(files), len(cases))
	}
	for name, want := range cases {
		t.Run(name, func(t *testing.T) {
			path, _ := fixture(t, name)
			assertProblems(t, path, Check(path), want)
		})
	}
}

// A YAML error stops the check: nothing after it would mean anything.
func TestCheckYAMLErrorIsTerminal(t *testing.T) {
	path, _ := fixture(t, "malformed_yaml.bad.yml")
	if errs := Check(path); len(errs) != 1 {
		t.Fatalf("got %d problems, want 1: %v", len(errs), errs)
	}
}
