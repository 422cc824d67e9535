package auth

import (
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestParseUsersAcceptsValidHashes(t *testing.T) {
	h4 := hashOf(t, "pw")
	// Hashes from other bcrypt implementations use $2b$ (Python) and $2y$ (htpasswd).
	h2b := "$2b$" + h4[4:]
	h2y := "$2y$" + h4[4:]
	u, err := ParseUsers(map[string]string{"alice": h4, "bob": h2b, "carol": h2y, "dave": string(dummyHash(12))})
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Names(); !slices.Equal(got, []string{"alice", "bob", "carol", "dave"}) {
		t.Fatalf("Names = %q", got)
	}
	if c, ok := u.Cost("dave"); !ok || c != 12 {
		t.Fatalf("Cost(dave) = %d, %v", c, ok)
	}
	if _, ok := u.Cost("mallory"); ok {
		t.Fatal("Cost of an unknown user reported ok")
	}
	if got := u.Weak(RecommendedMinCost); !slices.Equal(got, []string{"alice", "bob", "carol"}) {
		t.Fatalf("Weak(10) = %q", got)
	}
	if got := u.Weak(bcrypt.MinCost); got != nil {
		t.Fatalf("Weak(4) = %q", got)
	}
	if u.Len() != 4 || !slices.Equal(u.Costs(), []int{4, 12}) {
		t.Fatalf("Len %d Costs %v", u.Len(), u.Costs())
	}
}

func TestParseUsersEmptyIsNoUsers(t *testing.T) {
	for _, m := range []map[string]string{nil, {}} {
		u, err := ParseUsers(m)
		if err != nil || u.Len() != 0 || len(u.Names()) != 0 || u.Weak(10) != nil || u.Costs() != nil {
			t.Fatalf("ParseUsers(%v) = %v, %v", m, u, err)
		}
	}
	var nilUsers *Users
	if nilUsers.Len() != 0 || nilUsers.Weak(10) != nil {
		t.Fatal("nil *Users is not empty")
	}
}

func TestParseUsersRefusesWithAnErrorNamingTheUser(t *testing.T) {
	good := hashOf(t, "pw")
	const suffix = `; generate one with "metrics-proxy hash-password"`
	const prefix = `basic_auth_users: user "alice": password hash is not a valid bcrypt hash: `
	tests := []struct {
		name string
		user string
		hash string
		want string
	}{
		{"plain password pasted as hash", "alice", "hunter2hunter2", prefix + "it is 14 characters long, a bcrypt hash has 60" + suffix},
		{"truncated", "alice", good[:59], prefix + "it is 59 characters long, a bcrypt hash has 60" + suffix},
		{"extra character", "alice", good + "x", prefix + "it is 61 characters long, a bcrypt hash has 60" + suffix},
		{"other scheme", "alice", "$6$" + good[3:], prefix + `it must start with "$2a$", "$2b$" or "$2y$"` + suffix},
		{"buggy $2x$ variant", "alice", "$2x$" + good[4:], prefix + `it must start with "$2a$", "$2b$" or "$2y$"` + suffix},
		{"cost not digits", "alice", "$2a$1x" + good[6:], prefix + "the cost after the version must be two digits followed by '$'" + suffix},
		{"cost below bcrypt's minimum", "alice", "$2a$03" + good[6:], prefix + "cost 3 is outside bcrypt's range 4 to 31" + suffix},
		{"cost above bcrypt's maximum", "alice", "$2a$32" + good[6:], prefix + "cost 32 is outside bcrypt's range 4 to 31" + suffix},
		{"salt outside the alphabet", "alice", good[:10] + "+" + good[11:], prefix + "the salt contains characters outside bcrypt's alphabet" + suffix},
		{"digest outside the alphabet", "alice", good[:40] + "=" + good[41:], prefix + "the digest is not one bcrypt produces (characters outside its alphabet or a damaged last character)" + suffix},
		{"damaged last character", "alice", good[:59] + "/", prefix + "the digest is not one bcrypt produces (characters outside its alphabet or a damaged last character)" + suffix},
		{"cost above MaxCost", "alice", string(dummyHash(17)), `basic_auth_users: user "alice": bcrypt cost 17 is too high: every check would take minutes and a few requests could keep all bcrypt workers busy; generate a hash of cost 10 to 16 with "metrics-proxy hash-password"`},
		{"the documented example hash", "alice", ExampleHash, `basic_auth_users: user "alice": password hash is the documented example hash, whose password is public; replace it with the output of "metrics-proxy hash-password"`},
		{"the example hash relabelled $2y$", "alice", "$2y$" + ExampleHash[4:], `basic_auth_users: user "alice": password hash is the documented example hash, whose password is public; replace it with the output of "metrics-proxy hash-password"`},
		{"empty name", "", good, "basic_auth_users: a user name is empty; give every user a non-empty name"},
		{"colon in name", "al:ice", good, `basic_auth_users: user "al:ice": name contains ':', which ends the user name in basic auth, so it could never log in; rename the user`},
		{"name too long", strings.Repeat("n", 1025), good, `basic_auth_users: user "` + strings.Repeat("n", 32) + `"...: name is 1025 bytes long; use a name of at most 1024 bytes`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseUsers(map[string]string{tt.user: tt.hash, "zed": good})
			if err == nil || err.Error() != tt.want {
				t.Fatalf("got  %v\nwant %s", err, tt.want)
			}
			if len(tt.hash) > 8 && strings.Contains(err.Error(), tt.hash[7:]) {
				t.Fatal("the error quotes the hash")
			}
		})
	}
}

func TestParseUsersReportsEveryProblemInNameOrder(t *testing.T) {
	_, err := ParseUsers(map[string]string{"bob": "nope", "alice": ExampleHash, "carol": hashOf(t, "pw")})
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], `basic_auth_users: user "alice": password hash is the documented example hash`) ||
		!strings.HasPrefix(lines[1], `basic_auth_users: user "bob": password hash is not a valid bcrypt hash`) {
		t.Fatalf("got %q", err)
	}
}

func TestExampleHashIsTheDocumentedPassword(t *testing.T) {
	t.Parallel()
	if c, err := bcrypt.Cost([]byte(ExampleHash)); err != nil || c != 10 {
		t.Fatalf("cost %d, %v", c, err)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(ExampleHash), []byte(examplePassword)); err != nil {
		t.Fatalf("ExampleHash is not the hash of %q: %v", examplePassword, err)
	}
}

func TestDummyHashIsWellFormedAndMatchesNothing(t *testing.T) {
	d := dummyHash(bcrypt.MinCost)
	if c, err := checkHash(string(d)); err != nil || c != bcrypt.MinCost {
		t.Fatalf("checkHash = %d, %v", c, err)
	}
	for _, pw := range []string{"", "password"} {
		if err := bcrypt.CompareHashAndPassword(d, []byte(pw)); err != bcrypt.ErrMismatchedHashAndPassword {
			t.Fatalf("compare(%q) = %v, want a mismatch after a full bcrypt", pw, err)
		}
	}
	if a, b := dummyHash(5), dummyHash(5); string(a) == string(b) {
		t.Fatal("dummy hashes are not random")
	}
}

func TestHashPassword(t *testing.T) {
	tests := []struct {
		name     string
		password string
		cost     int
		want     string
	}{
		{"empty", "", 10, "the password is empty: choose a non-empty password"},
		{"over 72 bytes", strings.Repeat("p", 73), 10, "the password is 73 bytes long, but bcrypt uses only the first 72 bytes: choose a password of at most 72 bytes"},
		{"example password", examplePassword, 10, "that is the documented example password, which is public: choose your own password"},
		{"cost too low", "pw", 9, "bcrypt cost 9 is outside 10 to 16: use 10 or more (each step doubles the work)"},
		{"cost too high", "pw", 17, "bcrypt cost 17 is outside 10 to 16: use 10 or more (each step doubles the work)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := HashPassword([]byte(tt.password), tt.cost)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("got %v, want %s", err, tt.want)
			}
		})
	}

	pw := strings.Repeat("p", 72)
	h, err := HashPassword([]byte(pw), RecommendedMinCost)
	if err != nil {
		t.Fatal(err)
	}
	u, err := ParseUsers(map[string]string{"alice": h})
	if err != nil {
		t.Fatalf("ParseUsers refuses HashPassword's output: %v", err)
	}
	if c, _ := u.Cost("alice"); c != RecommendedMinCost {
		t.Fatalf("cost %d", c)
	}
	if bcrypt.CompareHashAndPassword([]byte(h), []byte(pw)) != nil {
		t.Fatal("hash does not verify")
	}
}
