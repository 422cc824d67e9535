package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The two lines to paste: the token for Prometheus, its SHA-256 for the routes
// file, and nothing on stderr.
func TestHashTokenPrintsTokenAndSum(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := hashToken(&stdout, &stderr, ""); code != 0 || stderr.Len() != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	m := regexp.MustCompile(`\Atoken: (mpt_[A-Za-z0-9_-]{43})\nsha256: ([0-9a-f]{64})\n\z`).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("output %q is not the two lines token: and sha256:", stdout.String())
	}
	if sum := sha256.Sum256([]byte(m[1])); m[2] != hex.EncodeToString(sum[:]) {
		t.Fatal("the sha256 line is not the SHA-256 of the token")
	}
	var again bytes.Buffer
	hashToken(&again, &stderr, "")
	if again.String() == stdout.String() {
		t.Fatal("two runs made the same token")
	}
}

// With --token-file the token goes only into a new file of mode 0600, as
// Prometheus's credentials_file reads it; stdout has only the sha256 line.
func TestHashTokenWritesTokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prometheus.token")
	var stdout, stderr bytes.Buffer
	if code := hashToken(&stdout, &stderr, path); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`\Ampt_[A-Za-z0-9_-]{43}\n\z`).Match(content) {
		t.Fatalf("the file holds %d bytes that are not a token and a newline", len(content))
	}
	token := strings.TrimSuffix(string(content), "\n")
	sum := sha256.Sum256([]byte(token))
	if want := "sha256: " + hex.EncodeToString(sum[:]) + "\n"; stdout.String() != want {
		t.Fatalf("stdout %q, want only %q", stdout.String(), want)
	}
	if want := "metrics-proxy hash-token: the token is in " + path + "; Prometheus reads it with authorization: {credentials_file: " + path + "}\n"; stderr.String() != want {
		t.Fatalf("stderr %q, want %q", stderr.String(), want)
	}
	if strings.Contains(stdout.String()+stderr.String(), token) {
		t.Fatal("the token was printed although it went to a file")
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode() != 0o600 {
		t.Fatalf("mode %v, want -rw-------", st.Mode())
	}
}

// An existing file, which may hold a token in use, is never overwritten,
// nor is a symlink followed; nothing is printed on stdout.
func TestHashTokenRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "prometheus.token")
	if err := os.WriteFile(path, []byte("mpt_in-use\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.token")
	if err := os.Symlink(filepath.Join(dir, "elsewhere"), link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, link} {
		var stdout, stderr bytes.Buffer
		if code := hashToken(&stdout, &stderr, p); code != 1 {
			t.Fatalf("%s: exit %d, want 1", p, code)
		}
		if want := "metrics-proxy hash-token: " + p + " already exists and may hold a token in use; remove it or choose another path\n"; stderr.String() != want {
			t.Fatalf("stderr %q, want %q", stderr.String(), want)
		}
		if stdout.Len() != 0 {
			t.Fatalf("stdout %q, want nothing", stdout.String())
		}
	}
	if content, _ := os.ReadFile(path); string(content) != "mpt_in-use\n" {
		t.Fatalf("the existing file now holds %q", content)
	}
	if _, err := os.Lstat(filepath.Join(dir, "elsewhere")); !os.IsNotExist(err) {
		t.Fatalf("the symlink was followed: %v", err)
	}
}

// A path that cannot be created fails with the path in the message and
// leaves nothing behind.
func TestHashTokenReportsOtherErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing-dir", "prometheus.token")
	var stdout, stderr bytes.Buffer
	if code := hashToken(&stdout, &stderr, path); code != 1 || stdout.Len() != 0 {
		t.Fatalf("exit %d, stdout %q", code, stdout.String())
	}
	if !strings.HasPrefix(stderr.String(), "metrics-proxy hash-token: open "+path+": ") || strings.Contains(stderr.String(), "mpt_") {
		t.Fatalf("stderr %q", stderr.String())
	}
}
