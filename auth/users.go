package auth

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// ExampleHash is the bcrypt hash (cost 10) of the password "changeme-example-only"
// that web-config.yml.example ships. It is public, so anyone can log in with it:
// ParseUsers refuses any user whose hash is this one, so that copying the example
// file unchanged fails loudly instead of exposing the metrics.
const ExampleHash = "$2a$10$dGe1Z/0L3l4edbI7dn2B1.LoOTlcimUTXQwL344o0CspDa/lTZ/.a"

// examplePassword is the password behind ExampleHash; HashPassword refuses it so
// that nobody regenerates the example credential with a fresh salt.
const examplePassword = "changeme-example-only"

// RecommendedMinCost is the lowest bcrypt cost callers should accept without a
// warning (see Users.Weak): below it, an offline attacker who obtains the web config
// can test passwords cheaply.
const RecommendedMinCost = 10

// MaxCost is the highest bcrypt cost ParseUsers accepts. Each step doubles the work:
// at cost 16 one check already takes seconds, and a higher cost would let a handful
// of requests with unknown credentials keep every bcrypt slot busy for minutes (every
// check, an unknown user's included, costs the work of the highest configured cost).
const MaxCost = 16

// maxUserLen bounds user names, in bytes, both in the configuration and in the
// Authorization header, so that neither logs nor cache keys grow without limit.
const maxUserLen = 1024

// maxPasswordLen is bcrypt's limit: it uses only the first 72 bytes of a password,
// so a longer one is refused when hashing and can never be what a hash was made
// from.
const maxPasswordLen = 72

// hashCommand is what our error messages tell the operator to run.
const hashCommand = `"metrics-proxy hash-password"`

// bcryptAlphabet is bcrypt's own base64 alphabet (not the standard one).
const bcryptAlphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// bcryptEncoding decodes and encodes the salt and digest parts of a bcrypt hash.
var bcryptEncoding = base64.NewEncoding(bcryptAlphabet).WithPadding(base64.NoPadding)

// Users is a validated, immutable set of basic-auth users, as configured in
// basic_auth_users. Build one with ParseUsers and install it with
// Verifier.SetUsers. A nil *Users has no users.
type Users struct {
	byName map[string]user
}

// user is one configured user: the hash exactly as configured and its cost.
type user struct {
	hash []byte
	cost int
}

// ParseUsers validates basic_auth_users (user name to bcrypt hash) and returns them
// ready for a Verifier. Every hash is checked now, at load, so that a typo shows up
// as an error naming the user rather than as a user who can never log in. It
// refuses: empty user names, names containing ':' or longer than 1024 bytes (basic
// auth cannot carry them), malformed hashes, costs above MaxCost, and ExampleHash.
// All problems are reported together, in user-name order. Error messages never
// contain a hash, since an operator may have pasted a plain password in its place.
// An empty or nil map gives an empty set (no basic auth).
func ParseUsers(hashes map[string]string) (*Users, error) {
	names := make([]string, 0, len(hashes))
	for name := range hashes {
		names = append(names, name)
	}
	slices.Sort(names)
	u := &Users{byName: make(map[string]user, len(hashes))}
	var errs []error
	for _, name := range names {
		hash := hashes[name]
		if err := checkUserName(name); err != nil {
			errs = append(errs, err)
			continue
		}
		// "$2a$", "$2b$" and "$2y$" variants of one hash accept the same password.
		if len(hash) == len(ExampleHash) && strings.HasPrefix(hash, "$2") && hash[4:] == ExampleHash[4:] {
			errs = append(errs, fmt.Errorf("basic_auth_users: user %q: password hash is the documented example hash, whose password is public; replace it with the output of %s", name, hashCommand))
			continue
		}
		cost, err := checkHash(hash)
		if err != nil {
			errs = append(errs, fmt.Errorf("basic_auth_users: user %q: password hash is not a valid bcrypt hash: %v; generate one with %s", name, err, hashCommand))
			continue
		}
		if cost > MaxCost {
			errs = append(errs, fmt.Errorf("basic_auth_users: user %q: bcrypt cost %d is too high: every check would take minutes and a few requests could keep all bcrypt workers busy; generate a hash of cost %d to %d with %s", name, cost, RecommendedMinCost, MaxCost, hashCommand))
			continue
		}
		u.byName[name] = user{hash: []byte(hash), cost: cost}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return u, nil
}

// checkUserName refuses names that basic auth cannot carry.
func checkUserName(name string) error {
	switch {
	case name == "":
		return errors.New("basic_auth_users: a user name is empty; give every user a non-empty name")
	case len(name) > maxUserLen:
		return fmt.Errorf("basic_auth_users: user %q...: name is %d bytes long; use a name of at most %d bytes", name[:32], len(name), maxUserLen)
	case strings.Contains(name, ":"):
		return fmt.Errorf("basic_auth_users: user %q: name contains ':', which ends the user name in basic auth, so it could never log in; rename the user", name)
	}
	return nil
}

// checkHash reports why hash is not a bcrypt hash that bcrypt can compare against,
// or returns its cost. It checks more than bcrypt.Cost does (the full length and the
// alphabet), because bcrypt accepts such hashes at load and then fails every
// comparison. The reasons never quote the hash.
func checkHash(hash string) (int, error) {
	// "$2b$" + two cost digits + "$" + 22 salt characters + 31 digest characters.
	const wantLen = 60
	if len(hash) != wantLen {
		return 0, fmt.Errorf("it is %d characters long, a bcrypt hash has %d", len(hash), wantLen)
	}
	switch hash[:4] {
	case "$2a$", "$2b$", "$2y$":
	default:
		return 0, errors.New(`it must start with "$2a$", "$2b$" or "$2y$"`)
	}
	d1, d2 := hash[4], hash[5]
	if d1 < '0' || d1 > '9' || d2 < '0' || d2 > '9' || hash[6] != '$' {
		return 0, errors.New("the cost after the version must be two digits followed by '$'")
	}
	cost := int(d1-'0')*10 + int(d2-'0')
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		return 0, fmt.Errorf("cost %d is outside bcrypt's range %d to %d", cost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	salt, digest := hash[7:29], hash[29:]
	if _, err := bcryptEncoding.DecodeString(salt); err != nil {
		return 0, errors.New("the salt contains characters outside bcrypt's alphabet")
	}
	// Strict decoding also refuses a digest whose last character has bits set that
	// bcrypt never produces: such a digest could never match any password.
	if _, err := bcryptEncoding.Strict().DecodeString(digest); err != nil {
		return 0, errors.New("the digest is not one bcrypt produces (characters outside its alphabet or a damaged last character)")
	}
	return cost, nil
}

// Len returns the number of users.
func (u *Users) Len() int {
	if u == nil {
		return 0
	}
	return len(u.byName)
}

// Names returns the user names in sorted order.
func (u *Users) Names() []string {
	if u == nil {
		return nil
	}
	names := make([]string, 0, len(u.byName))
	for name := range u.byName {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Cost returns the bcrypt cost of the named user's hash, and whether the user
// exists.
func (u *Users) Cost(name string) (int, bool) {
	if u == nil {
		return 0, false
	}
	e, ok := u.byName[name]
	return e.cost, ok
}

// Weak returns, sorted, the users whose hash has a cost below minCost, so that the
// caller can refuse the configuration or warn (RecommendedMinCost is the usual
// threshold). The names, not the hashes, are what an operator needs to fix it.
func (u *Users) Weak(minCost int) []string {
	var weak []string
	for _, name := range u.Names() {
		if u.byName[name].cost < minCost {
			weak = append(weak, name)
		}
	}
	return weak
}

// Costs returns the distinct bcrypt costs in use, in ascending order. More than
// one means every check is padded to the highest (see Verifier.SetUsers), so the
// cheaper hashes no longer make their users' checks cheaper.
func (u *Users) Costs() []int {
	var costs []int
	if u != nil {
		for _, e := range u.byName {
			if !slices.Contains(costs, e.cost) {
				costs = append(costs, e.cost)
			}
		}
	}
	slices.Sort(costs)
	return costs
}

// lookup returns the named user.
func (u *Users) lookup(name string) (user, bool) {
	if u == nil {
		return user{}, false
	}
	e, ok := u.byName[name]
	return e, ok
}

// HashPassword returns the bcrypt hash of password at the given cost, for
// basic_auth_users; `metrics-proxy hash-password` uses it. It refuses an empty
// password, one longer than bcrypt's 72 bytes (bcrypt would silently ignore the
// rest, so the operator would believe in a strength the hash does not have), the
// public example password, and a cost outside bcrypt.MinCost to MaxCost.
func HashPassword(password []byte, cost int) (string, error) {
	switch {
	case len(password) == 0:
		return "", errors.New("the password is empty: choose a non-empty password")
	case len(password) > maxPasswordLen:
		return "", fmt.Errorf("the password is %d bytes long, but bcrypt uses only the first %d bytes: choose a password of at most %d bytes", len(password), maxPasswordLen, maxPasswordLen)
	case string(password) == examplePassword:
		return "", errors.New("that is the documented example password, which is public: choose your own password")
	case cost < RecommendedMinCost || cost > MaxCost:
		// Below RecommendedMinCost check-config refuses the hash, so offering
		// one would only hand the operator a config that fails later.
		return "", fmt.Errorf("bcrypt cost %d is outside %d to %d: use %d or more (each step doubles the work)", cost, RecommendedMinCost, MaxCost, RecommendedMinCost)
	}
	hash, err := bcrypt.GenerateFromPassword(password, cost)
	if err != nil {
		return "", fmt.Errorf("hashing the password: %w", err)
	}
	return string(hash), nil
}
