package shell

import (
	"bytes"
	"strings"
	"testing"
)

// maskAll writes the chunks through a Masker and returns what came out.
func maskAll(t testing.TB, secrets []string, chunks ...string) string {
	t.Helper()
	var out bytes.Buffer
	m := NewMasker(&out, secrets)
	for _, c := range chunks {
		if n, err := m.Write([]byte(c)); err != nil || n != len(c) {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if err := m.Flush(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestMaskerEverySplit(t *testing.T) {
	secrets := []string{"s3cr3t-value", "tok"}
	in := "a s3cr3t-value b tok c s3cr3t-valu d s3cr3t-values3cr3t-value"
	want := "a [MASKED] b [MASKED] c s3cr3t-valu d [MASKED][MASKED]"
	if got := maskAll(t, secrets, in); got != want {
		t.Fatalf("one write: %q, want %q", got, want)
	}
	for i := 0; i <= len(in); i++ {
		for j := i; j <= len(in); j++ {
			if got := maskAll(t, secrets, in[:i], in[i:j], in[j:]); got != want {
				t.Fatalf("split at %d,%d: %q, want %q", i, j, got, want)
			}
		}
	}
}

func TestMaskerHoldsBackOnlyWhatCouldBeASecret(t *testing.T) {
	var out bytes.Buffer
	m := NewMasker(&out, []string{"password"})
	m.Write([]byte("line one\npass"))
	if got := out.String(); got != "line one\n" {
		t.Fatalf("after a partial secret: %q, want the text before it", got)
	}
	m.Write([]byte("port\n"))
	if got := out.String(); got != "line one\npassport\n" {
		t.Fatalf("after the partial secret turned out not to be one: %q", got)
	}
	m.Write([]byte("pass"))
	m.Flush()
	if got := out.String(); got != "line one\npassport\npass" {
		t.Fatalf("Flush: %q", got)
	}
}

func TestMaskerPrefersTheLongerSecret(t *testing.T) {
	secrets := []string{"abc", "abcdef"}
	if got := maskAll(t, secrets, "x abc", "def y"); got != "x [MASKED] y" {
		t.Fatalf("got %q, want the longer secret masked whole", got)
	}
	if got := maskAll(t, secrets, "x abc", " y"); got != "x [MASKED] y" {
		t.Fatalf("got %q, want the shorter secret masked", got)
	}
}

func TestMaskerURLEscapedForm(t *testing.T) {
	if got := maskAll(t, []string{"p@ss w/rd"}, "https://u:p%40ss+w%2Frd@host/ and p%40ss%20w%2Frd"); got != "https://u:[MASKED]@host/ and [MASKED]" {
		t.Fatalf("got %q", got)
	}
}

func TestMaskerNoSecrets(t *testing.T) {
	if got := maskAll(t, []string{""}, "plain", " text"); got != "plain text" {
		t.Fatalf("got %q", got)
	}
}

// FuzzMasker checks that however the output is cut into writes, no secret
// gets through and the result is the same as for one write.
func FuzzMasker(f *testing.F) {
	f.Add("hello secret world", "secret", 3)
	f.Add("sesecretcret", "secret", 5)
	f.Add("aaaa", "aa", 1)
	f.Add("", "x", 0)
	f.Fuzz(func(t *testing.T, in, secret string, cut int) {
		if secret == "" || strings.Contains(Mask, secret) {
			return // a secret inside [MASKED] itself cannot be hidden
		}
		whole := maskAll(t, []string{secret}, in)
		if cut < 0 {
			cut = -cut
		}
		cut %= len(in) + 1
		split := maskAll(t, []string{secret}, in[:cut], in[cut:])
		if split != whole {
			t.Fatalf("split at %d: %q, one write: %q", cut, split, whole)
		}
		for _, piece := range strings.Split(whole, Mask) {
			if strings.Contains(piece, secret) {
				t.Fatalf("secret %q shows in %q", secret, whole)
			}
		}
	})
}
