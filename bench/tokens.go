package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// tokenPrefix starts every token metrics-proxy hash-token makes (auth's
// tokenPrefix); the wrong token has it too, so that it is well formed and
// the proxy hashes and compares it rather than refusing its syntax.
const tokenPrefix = "mpt_"

// tokenName is the name of wrong-token-h2's one configured token.
const tokenName = "prometheus"

// randomToken returns a token of the form hash-token makes: tokenPrefix and
// the unpadded URL-safe base64 of 32 random bytes (43 characters).
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails since Go 1.24
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

var sha256Line = regexp.MustCompile(`(?m)^sha256: ([0-9a-f]{64})$`)

// prepareTokens makes wrong-token-h2's credentials and routes file: a real
// token from `metrics-proxy hash-token --token-file`, as an operator makes
// one; a wrong, well-formed one that matches no configured token; and a
// routes file that serves /metrics from the runner and configures the real
// token, beside the web config's basic-auth users.
func prepareTokens(s *setup, o options) error {
	proxyBin := filepath.Join(o.binDir, "metrics-proxy")
	tokenFile := filepath.Join(s.dir, "prometheus.token")
	cmd := exec.Command(proxyBin, "hash-token", "--token-file", tokenFile)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("%s hash-token (this build may have no bearer tokens): %v: %s", proxyBin, err, strings.TrimSpace(stderr.String()))
	}
	m := sha256Line.FindStringSubmatch(string(out))
	if m == nil {
		return fmt.Errorf("%s hash-token printed no sha256 line: %q", proxyBin, strings.TrimSpace(string(out)))
	}
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		return err
	}
	s.token = strings.TrimSpace(string(b))
	if s.wrongToken = randomToken(); s.wrongToken == s.token {
		return fmt.Errorf("the wrong token is the real one") // 2^-256
	}
	s.routesFile = filepath.Join(s.dir, "routes.yml")
	routes := fmt.Sprintf("routes:\n  - name: runner\n    path: /metrics\n    upstream: %s/metrics\ntokens:\n  %s: %s\n", s.runnerURL, tokenName, m[1])
	return os.WriteFile(s.routesFile, []byte(routes), 0o600)
}
