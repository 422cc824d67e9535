package auth

import (
	"encoding/base64"
	"strings"
	"testing"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestParseAuthorization(t *testing.T) {
	long := strings.Repeat("u", maxUserLen)
	tests := []struct {
		name       string
		header     string
		user, pass string
		reason     string
	}{
		{"plain", "Basic " + b64("alice:s3cret"), "alice", "s3cret", ""},
		{"scheme is case-insensitive", "bAsIc " + b64("alice:s3cret"), "alice", "s3cret", ""},
		{"password may contain colons", "Basic " + b64("alice:a:b:c"), "alice", "a:b:c", ""},
		{"empty password is a credential", "Basic " + b64("alice:"), "alice", "", ""},
		{"non-UTF-8 bytes pass through", "Basic " + b64("\xff\xfe:\x80"), "\xff\xfe", "\x80", ""},
		{"72-byte password", "Basic " + b64("alice:"+strings.Repeat("p", 72)), "alice", strings.Repeat("p", 72), ""},
		{"1024-byte user", "Basic " + b64(long+":x"), long, "x", ""},

		{"73-byte password", "Basic " + b64("alice:"+strings.Repeat("p", 73)), "alice", "", reasonPasswordTooLong},
		{"1025-byte user", "Basic " + b64(long+"u:x"), "", "", reasonUserTooLong},
		{"header over the bound", "Basic " + strings.Repeat("A", maxAuthorizationSz), "", "", reasonHeaderTooLong},
		{"bearer token", "Bearer " + b64("alice:s3cret"), "", "", reasonNotBasic},
		{"scheme only", "Basic", "", "", reasonNotBasic},
		{"no space", "Basic" + b64("alice:s3cret"), "", "", reasonNotBasic},
		{"empty", "", "", "", reasonNotBasic},
		{"basic-like prefix", "Basicx " + b64("alice:s3cret"), "", "", reasonNotBasic},
		{"two spaces", "Basic  " + b64("alice:s3cret"), "", "", reasonBadBase64},
		{"tab", "Basic\t" + b64("alice:s3cret"), "", "", reasonNotBasic},
		{"trailing space", "Basic " + b64("alice:s3cret") + " ", "", "", reasonBadBase64},
		{"line break inside", "Basic YWxp\nY2U6czNjcmV0", "", "", reasonBadBase64},
		{"carriage return inside", "Basic YWxp\rY2U6czNjcmV0", "", "", reasonBadBase64},
		{"missing padding", "Basic YWxpY2U6eA", "", "", reasonBadBase64},
		{"url-safe alphabet", "Basic " + base64.URLEncoding.EncodeToString([]byte("a>?:~~~")), "", "", reasonBadBase64},
		{"non-canonical padding bits", "Basic YR==", "", "", reasonBadBase64},
		{"data after padding", "Basic YQ==YQ==", "", "", reasonBadBase64},
		{"not base64 at all", "Basic !!!!", "", "", reasonBadBase64},
		{"empty token", "Basic ", "", "", reasonNoColon},
		{"no colon", "Basic " + b64("alice"), "", "", reasonNoColon},
		{"empty user", "Basic " + b64(":s3cret"), "", "", reasonEmptyUser},
		{"only a colon", "Basic " + b64(":"), "", "", reasonEmptyUser},
		{"NUL bytes", "Basic " + b64("\x00:\x00"), "\x00", "\x00", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, reason := parseAuthorization(tt.header)
			if reason != tt.reason || c.user != tt.user || c.password != tt.pass {
				t.Fatalf("parseAuthorization = (%q, %q, %q), want (%q, %q, %q)",
					c.user, c.password, reason, tt.user, tt.pass, tt.reason)
			}
		})
	}
}

// FuzzParseAuthorization checks that the parser never panics and accepts only
// what it promises: a "Basic " header whose token is the canonical base64 of
// user:password within the bounds.
func FuzzParseAuthorization(f *testing.F) {
	for _, seed := range []string{
		"Basic " + b64("alice:s3cret"),
		"basic " + b64("alice:a:b"),
		"BASIC " + b64("alice:"),
		"Basic " + b64(":pw"),
		"Basic " + b64("nocolon"),
		"Basic " + b64("alice:"+strings.Repeat("p", 73)),
		"Basic " + b64(strings.Repeat("u", maxUserLen+1)+":x"),
		"Basic " + strings.Repeat("A", maxAuthorizationSz),
		"Bearer " + b64("alice:s3cret"),
		"Basic",
		"Basic ",
		"Basic  " + b64("alice:s3cret"),
		"Basic YWxp\nY2U6czNjcmV0",
		"Basic YWxpY2U6eA",
		"Basic YR==",
		"Basic YQ==YQ==",
		"Basic " + b64("\xff\xfe:\x80"),
		"Basic\x00" + b64("a:b"),
		"Digest username=\"alice\"",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, h string) {
		c, reason := parseAuthorization(h)
		if reason != "" {
			if reason == reasonPasswordTooLong && c.password != "" {
				t.Fatalf("password returned with %q", reason)
			}
			return
		}
		if len(h) < len(basicPrefix) || !strings.EqualFold(h[:len(basicPrefix)], basicPrefix) {
			t.Fatalf("accepted %q, which lacks %q", h, basicPrefix)
		}
		if c.user == "" || len(c.user) > maxUserLen || strings.Contains(c.user, ":") || len(c.password) > maxPasswordLen {
			t.Fatalf("accepted out-of-bounds credentials (%d-byte user, %d-byte password)", len(c.user), len(c.password))
		}
		if got := b64(c.user + ":" + c.password); got != h[len(basicPrefix):] {
			t.Fatalf("accepted %q, which is not the canonical encoding %q", h, got)
		}
	})
}
