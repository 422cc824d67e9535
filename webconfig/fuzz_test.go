package webconfig

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// hashTokenRE finds anything in the input that starts like a bcrypt hash.
var hashTokenRE = regexp.MustCompile(`\$2[^\s"'\x60,\[\]{}]*`)

// FuzzLoad feeds arbitrary files to Load next to a real set of certificates.
// Load must never panic, and its errors must never quote a password hash (or
// anything starting like one) or a PEM block from the input.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yml")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	dir := f.TempDir()
	newPKI(f, dir)
	path := filepath.Join(dir, "web.yml")

	f.Fuzz(func(t *testing.T, in []byte) {
		if err := os.WriteFile(path, in, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(path)
		if err == nil {
			if cfg == nil || cfg.Web == nil || cfg.Users == nil || len(cfg.Files) == 0 || cfg.Files[0] != path {
				t.Fatalf("Load succeeded with an incomplete config: %+v", cfg)
			}
			return
		}
		msg := err.Error()
		for _, h := range hashTokenRE.FindAllString(string(in), -1) {
			if strings.Contains(msg, h) {
				t.Fatalf("error quotes %q from the input: %s", h, msg)
			}
		}
		if strings.Contains(msg, "-----BEGIN") {
			t.Fatalf("error quotes a PEM block: %s", msg)
		}
	})
}
