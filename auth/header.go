package auth

import (
	"encoding/base64"
	"strings"
)

// Bounds on what parseAuthorization decodes. A user name is at most maxUserLen bytes;
// we decode up to that many bytes of password too, so that an over-long password is
// recognised as such (and logged with its user name) rather than as garbage. A
// header beyond this is refused without decoding.
const (
	basicPrefix        = "Basic "
	maxDecodedLen      = maxUserLen + 1 + maxUserLen
	maxAuthorizationSz = len(basicPrefix) + (maxDecodedLen+2)/3*4
)

// Reasons parseAuthorization gives; they are logged, so they are fixed strings that
// never contain any part of the header.
const (
	reasonNoCredentials   = "no Authorization header"
	reasonManyHeaders     = "more than one Authorization header"
	reasonHeaderTooLong   = "Authorization header too long"
	reasonNotBasic        = "not Basic authentication"
	reasonBadBase64       = "credentials are not valid base64"
	reasonNoColon         = "credentials lack the ':' between user and password"
	reasonEmptyUser       = "empty user name"
	reasonUserTooLong     = "user name longer than 1024 bytes"
	reasonPasswordTooLong = "password longer than bcrypt's 72 bytes"
)

// Reasons Authorize gives instead of a parseAuthorization one, depending on
// what is configured.
const (
	// reasonNotBasicOrBearer replaces reasonNotBasic when tokens are configured.
	reasonNotBasicOrBearer = "neither Basic nor Bearer authentication"
	// reasonNoUsers refuses a Basic credential when only tokens are configured.
	reasonNoUsers = "Basic authentication without basic_auth_users configured"
)

// credentials are a user name and password exactly as the client sent them: raw
// bytes, not necessarily UTF-8 (a non-UTF-8 name or password simply matches
// nothing).
type credentials struct {
	user     string
	password string
}

// parseAuthorization parses one Authorization header value strictly. It returns
// the credentials and an empty reason when they are worth verifying, or a reason
// (one of the reason* constants) when they are not. Strict means: the scheme is
// "Basic" in any case followed by exactly one space; the rest is standard base64
// with padding, canonical, and nothing else (no whitespace, no line breaks, which
// Go's decoder would otherwise skip); the decoded text has a ':'; the user name
// before it is 1 to 1024 bytes.
//
// A password longer than 72 bytes is refused with reasonPasswordTooLong but the
// user is still returned: bcrypt could never have produced a hash from it (see
// HashPassword), so it is answered 401 without bcrypt, yet it is a guess like any
// other and is counted and logged as a failure.
func parseAuthorization(h string) (credentials, string) {
	if len(h) > maxAuthorizationSz {
		return credentials{}, reasonHeaderTooLong
	}
	if len(h) < len(basicPrefix) || !strings.EqualFold(h[:len(basicPrefix)], basicPrefix) {
		return credentials{}, reasonNotBasic
	}
	token := h[len(basicPrefix):]
	for i := 0; i < len(token); i++ {
		if !isBase64Byte(token[i]) {
			return credentials{}, reasonBadBase64
		}
	}
	decoded, err := base64.StdEncoding.Strict().DecodeString(token)
	if err != nil {
		return credentials{}, reasonBadBase64
	}
	userPart, password, found := strings.Cut(string(decoded), ":")
	switch {
	case !found:
		return credentials{}, reasonNoColon
	case userPart == "":
		return credentials{}, reasonEmptyUser
	case len(userPart) > maxUserLen:
		return credentials{}, reasonUserTooLong
	case len(password) > maxPasswordLen:
		return credentials{user: userPart}, reasonPasswordTooLong
	}
	return credentials{user: userPart, password: password}, ""
}

// isBase64Byte reports whether c may appear in standard padded base64.
func isBase64Byte(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '+' || c == '/' || c == '='
}
