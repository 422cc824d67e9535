// Package access is metrics-proxy's one answer to "who may pass the door":
// which credentials authenticate a request (basic-auth users, bearer tokens,
// verified client certificates, any combination, or none), and which changes
// a reload may not make.
// The web config states it (webconfig.Config.Access); the door rule, the
// reload check, the start-up log line and the proxy's Host guard all ask it,
// so the rule is written once.
package access

import (
	"crypto/tls"
	"strings"
)

// Policy is what authenticates a request at the door.
type Policy struct {
	// Users is true when basic_auth_users is configured: a request may
	// authenticate with a valid password.
	Users bool
	// Tokens is true when bearer tokens are configured (the routes file's
	// tokens:): a request may authenticate with a valid token.
	Tokens bool
	// ClientCerts is true when every connection must present a client
	// certificate signed by the configured client CA (client_auth_type
	// RequireAndVerifyClientCert). The weaker client_auth_type modes accept
	// any or no certificate, so they authenticate nobody and do not count.
	ClientCerts bool
}

// Authenticates reports whether anything authenticates requests. Without it
// the door is open to whoever reaches it, which is allowed on loopback only.
func (p Policy) Authenticates() bool { return p.Users || p.Tokens || p.ClientCerts }

// Mode names the policy for log lines: basic, token or basic+token, each
// with +client-cert when client certificates are required, client-cert
// alone, or none.
func (p Policy) Mode() string {
	var parts []string
	if p.Users {
		parts = append(parts, "basic")
	}
	if p.Tokens {
		parts = append(parts, "token")
	}
	if p.ClientCerts {
		parts = append(parts, "client-cert")
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "+")
}

// Factor is one authentication factor, named for messages.
type Factor struct {
	// Setting is the config setting that provides it.
	Setting string
	// Requires says what a running config with it requires of clients.
	Requires string
}

// The factors, in the order Removed lists them.
var (
	users       = Factor{Setting: "basic_auth_users", Requires: "a password"}
	tokens      = Factor{Setting: "tokens (the routes file's tokens:)", Requires: "a bearer token"}
	clientCerts = Factor{Setting: "client certificate verification (client_auth_type: RequireAndVerifyClientCert)", Requires: "it"}
)

// Removed lists the factors p has and next lacks. A reload must never remove
// one: a half-written file that still parses looks exactly like a deliberate
// removal, so removing a factor needs a restart.
func (p Policy) Removed(next Policy) []Factor {
	var gone []Factor
	if p.Users && !next.Users {
		gone = append(gone, users)
	}
	if p.Tokens && !next.Tokens {
		gone = append(gone, tokens)
	}
	if p.ClientCerts && !next.ClientCerts {
		gone = append(gone, clientCerts)
	}
	return gone
}

// Missing describes what p lacks to authenticate anyone, for a refusal.
func (p Policy) Missing() string {
	if p.Authenticates() {
		return ""
	}
	return "basic_auth_users, tokens in --web.routes.file, or client_auth_type: RequireAndVerifyClientCert with client_ca_file"
}

// Identity is who an authenticated request is, as routes name them: the
// basic-auth user, the bearer token's name, and the subject alternative names
// of the verified client certificate. Any of them may be empty; a request
// the door let through with no credentials at all (loopback without
// authentication) has the zero Identity.
type Identity struct {
	// User is the basic-auth user name, "" when none was verified.
	User string
	// Token is the name of the verified bearer token, "" when none.
	Token string
	// SANs are the DNS names, e-mail addresses, IP addresses and URIs of the
	// verified client certificate, nil without one.
	SANs []string
}

// WithPeer returns id with the SANs of the connection's verified client
// certificate. An unverified certificate (client_auth_type below
// RequireAndVerifyClientCert, or VerifyClientCertIfGiven without one)
// names nobody.
func (id Identity) WithPeer(state *tls.ConnectionState) Identity {
	if state == nil || len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return id
	}
	leaf := state.VerifiedChains[0][0]
	sans := make([]string, 0, len(leaf.DNSNames)+len(leaf.EmailAddresses)+len(leaf.IPAddresses)+len(leaf.URIs))
	sans = append(sans, leaf.DNSNames...)
	sans = append(sans, leaf.EmailAddresses...)
	for _, ip := range leaf.IPAddresses {
		sans = append(sans, ip.String())
	}
	for _, u := range leaf.URIs {
		sans = append(sans, u.String())
	}
	id.SANs = sans
	return id
}

// Name is the identity's name for the upstream queue's fairness key and for
// logs: the user, else "token:" and the token's name, else "".
func (id Identity) Name() string {
	switch {
	case id.User != "":
		return id.User
	case id.Token != "":
		return "token:" + id.Token
	}
	return ""
}
