package auth

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// The operator learns who tried what from where; the password and the hash never
// reach the log, whatever the outcome.
func TestFailureLogHasUserAndAddressButNoSecret(t *testing.T) {
	const secret = "hunter2-Sup3rSecret"
	hash := hashOf(t, "right")
	f := newFixture(t, map[string]string{"alice": hash})
	wantAllowed(t, f.basic("198.51.100.7:4711", "alice", "right"), OutcomeOK)
	want401(t, f.basic("198.51.100.7:4711", "alice", secret))
	want401(t, f.basic("198.51.100.7:4711", "alice", secret)) // from memory
	want401(t, f.basic("198.51.100.7:4711", "nobody", secret))
	want401(t, f.basic("198.51.100.7:4711", "alice", secret+strings.Repeat("x", 80)))
	want401(t, f.header("198.51.100.7:4711", "Basic "+b64(secret)))
	want401(t, f.header("198.51.100.7:4711", "Bearer "+secret))
	want429(t, f.basic("198.51.100.7:4711", "alice", secret+"2"), OutcomeThrottled, "1")

	out := f.logs.String()
	for _, leak := range []string{secret, "right", hash, hash[29:], b64(secret)} {
		if strings.Contains(out, leak) {
			t.Fatalf("log contains %q:\n%s", leak, out)
		}
	}
	lines := f.logs.Lines(`msg="authentication failed"`)
	want := []string{
		`level=warn msg="authentication failed" outcome=unauthorized reason="wrong password" client=198.51.100.7:4711 user=alice`,
		`level=warn msg="authentication failed" outcome=unauthorized reason="repeated a rejected credential" client=198.51.100.7:4711 user=alice`,
		`level=warn msg="authentication failed" outcome=unauthorized reason="unknown user" client=198.51.100.7:4711 user=nobody`,
		`level=warn msg="authentication failed" outcome=unauthorized reason="password longer than bcrypt's 72 bytes" client=198.51.100.7:4711 user=alice`,
		`level=warn msg="authentication failed" outcome=unauthorized reason="credentials lack the ':' between user and password" client=198.51.100.7:4711 user=`,
		`level=warn msg="authentication failed" outcome=unauthorized reason="not Basic authentication" client=198.51.100.7:4711 user=`,
		`level=warn msg="authentication failed" outcome=throttled reason="client in back-off" client=198.51.100.7:4711 user=alice`,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("log lines:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

// The user name is attacker-chosen: it is escaped, so it cannot forge a log line or
// a field, and capped at 64 bytes.
func TestFailureLogEscapesAndCapsUserName(t *testing.T) {
	f := newFixture(t, map[string]string{"alice": hashOf(t, "right")})
	f.v.compare = mismatchUnless("right")
	want401(t, f.basic("192.0.2.1:1", "x\nlevel=error msg=\"forged\" user=\"root", "pw"))
	want401(t, f.basic("192.0.2.2:1", strings.Repeat("é", 100), "pw"))
	lines := f.logs.Lines("authentication failed")
	if len(lines) != 2 || strings.Count(f.logs.String(), "\n") != 2 {
		t.Fatalf("log:\n%s", f.logs.String())
	}
	if !strings.HasSuffix(lines[0], `user="x\\nlevel=error msg=\\\"forged\\\" user=\\\"root"`) {
		t.Fatalf("got %s", lines[0])
	}
	if !strings.HasSuffix(lines[1], "user="+strings.Repeat(`\u00e9`, 32)+"...") {
		t.Fatalf("got %s", lines[1])
	}
}

func TestLogSafeUser(t *testing.T) {
	tests := map[string]string{
		"alice":                    "alice",
		"":                         "",
		"a b":                      "a b",
		"\xff":                     `\xff`,
		"tab\there":                `tab\there`,
		strings.Repeat("a", 64):    strings.Repeat("a", 64),
		strings.Repeat("a", 65):    strings.Repeat("a", 64) + "...",
		strings.Repeat("é", 40):    strings.Repeat(`\u00e9`, 32) + "...",
		"\u202eevil-bidi-override": `\u202eevil-bidi-override`,
	}
	for in, want := range tests {
		if got := logSafeUser(in); got != want {
			t.Errorf("logSafeUser(%q) = %q, want %q", in, got, want)
		}
	}
}

// A flood cannot fill the disk: at a frozen instant only the burst of 10 lines is
// written; later a single line reports how many were dropped.
func TestFailureLogIsRateLimited(t *testing.T) {
	f := newFixture(t, map[string]string{"alice": hashOf(t, "right")})
	f.v.compare = mismatchUnless("right")
	wantAllowed(t, f.basic("192.0.2.1:1", "alice", "right"), OutcomeOK)
	for i := range 1000 {
		f.header(fmt.Sprintf("[2001:db8:%x::1]:1", i), "Bearer token")
	}
	if n := len(f.logs.Lines("authentication failed")); n != logBurst {
		t.Fatalf("%d lines for 1000 failures at one instant, want %d", n, logBurst)
	}
	if n := len(f.logs.Lines("suppressed")); n != 0 {
		t.Fatalf("summary too early: %d", n)
	}

	// Nine seconds on: nine more tokens, no summary yet.
	f.clock.Advance(9 * time.Second)
	for i := range 100 {
		f.header(fmt.Sprintf("192.0.2.%d:1", i), "Bearer token")
	}
	if n := len(f.logs.Lines("authentication failed")); n != logBurst+9 {
		t.Fatalf("%d lines, want %d", n, logBurst+9)
	}

	// Ten seconds after the first drop, any request (here a good scrape) writes the
	// summary: 990 + 91 dropped.
	f.clock.Advance(time.Second)
	wantAllowed(t, f.basic("192.0.2.1:1", "alice", "right"), OutcomeOKCached)
	summaries := f.logs.Lines("suppressed")
	if len(summaries) != 1 || !strings.Contains(summaries[0], `level=warn msg="suppressed 1081 failed-auth log lines" suppressed=1081 since=2030-01-02T03:04:05Z`) {
		t.Fatalf("summaries: %q", summaries)
	}
	wantAllowed(t, f.basic("192.0.2.1:1", "alice", "right"), OutcomeOKCached)
	if len(f.logs.Lines("suppressed")) != 1 {
		t.Fatal("summary repeated without new drops")
	}
	// The burst, the nine, the summary, and the debug line of the first verification.
	if total := strings.Count(f.logs.String(), "\n"); total != logBurst+9+1+1 {
		t.Fatalf("%d log lines in all:\n%s", total, f.logs.String())
	}
}
