package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"slices"
	"strings"
)

// Bearer-token syntax. The bounds are on the token as sent, after "Bearer ":
// 22 base64 characters carry 128 bits, the least a token should have, and
// 512 bytes is far more than any token we make (GenerateToken's are 47) while
// keeping what a flood can make us hash small.
const (
	bearerPrefix = "Bearer "
	minTokenLen  = 22
	maxTokenLen  = 512
	// tokenPrefix starts every generated token, so that secret scanners can
	// recognise a leaked metrics-proxy token.
	tokenPrefix = "mpt_"
)

// Reasons a bearer attempt fails; logged, so fixed strings that never contain
// any part of the token.
const (
	reasonTokenTooShort = "bearer token shorter than 22 bytes"
	reasonTokenTooLong  = "bearer token longer than 512 bytes"
	reasonTokenChars    = "bearer token has characters outside RFC 6750's b64token"
	reasonWrongToken    = "bearer token matches no configured token"
)

// Kinds of credential, for the failure log: a basic-auth attempt is logged
// with its (escaped) user name, a bearer attempt only as "bearer token".
const (
	kindBasic  = ""
	kindBearer = "bearer token"
)

// GenerateToken returns a new bearer token, tokenPrefix followed by the
// unpadded URL-safe base64 of 32 random bytes (256 bits, so that a fast hash
// is enough to store it: nobody can guess it, offline or online), and its
// SHA-256, which is what the configuration holds.
func GenerateToken() (token string, sum [sha256.Size]byte) {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails since Go 1.24
	token = tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return token, TokenSHA256(token)
}

// TokenSHA256 returns the SHA-256 of token, as Verifier.SetTokens expects it.
func TokenSHA256(token string) [sha256.Size]byte {
	return sha256.Sum256([]byte(token))
}

// tokenSet is one generation of bearer tokens, sorted by name so that the
// choice among duplicate sums is deterministic (see match).
type tokenSet struct {
	names []string
	sums  [][sha256.Size]byte // sums[i] is the SHA-256 of names[i]'s token
}

func newTokenSet(t map[string][sha256.Size]byte) *tokenSet {
	if len(t) == 0 {
		return nil
	}
	s := &tokenSet{names: make([]string, 0, len(t))}
	for name := range t {
		s.names = append(s.names, name)
	}
	slices.Sort(s.names)
	s.sums = make([][sha256.Size]byte, len(s.names))
	for i, name := range s.names {
		s.sums[i] = t[name]
	}
	return s
}

// len returns the number of tokens; a nil set has none.
func (s *tokenSet) len() int {
	if s == nil {
		return 0
	}
	return len(s.names)
}

// match returns the name of the token whose sum is sum. It compares sum with
// every configured sum, whatever matched, and selects the index without a
// branch, so that neither time nor memory access reveals whether a token
// matched, nor which. Going from last to first, the first name
// wins when two tokens share a sum. equal is subtle.ConstantTimeCompare
// (tests count its calls).
func (s *tokenSet) match(sum [sha256.Size]byte, equal func(x, y []byte) int) (string, bool) {
	found := -1
	for i := s.len() - 1; i >= 0; i-- {
		found = subtle.ConstantTimeSelect(equal(s.sums[i][:], sum[:]), i, found)
	}
	if found < 0 {
		return "", false
	}
	return s.names[found], true
}

// isBearer reports whether h uses the Bearer scheme: "Bearer" in any case
// followed by exactly one space (the rest is parseBearer's business).
func isBearer(h string) bool {
	return len(h) >= len(bearerPrefix) && strings.EqualFold(h[:len(bearerPrefix)], bearerPrefix)
}

// parseBearer returns the token of a Bearer header (isBearer is true) and an
// empty reason when it is worth checking, or a reason* constant when not: the
// token must be an RFC 6750 b64token of minTokenLen to maxTokenLen bytes.
func parseBearer(h string) (string, string) {
	if len(h) > len(bearerPrefix)+maxTokenLen {
		return "", reasonTokenTooLong
	}
	token := h[len(bearerPrefix):]
	if len(token) < minTokenLen {
		return "", reasonTokenTooShort
	}
	if !isB64Token(token) {
		return "", reasonTokenChars
	}
	return token, ""
}

// isB64Token reports whether s is an RFC 6750 b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	end := len(s)
	for end > 0 && s[end-1] == '=' {
		end--
	}
	if end == 0 {
		return false
	}
	for i := 0; i < end; i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}
