package access

import (
	"slices"
	"testing"
)

func TestPolicy(t *testing.T) {
	const lacks = "basic_auth_users, tokens in --web.routes.file, or client_auth_type: RequireAndVerifyClientCert with client_ca_file"
	for _, tc := range []struct {
		p     Policy
		auth  bool
		mode  string
		lacks string
	}{
		{Policy{}, false, "none", lacks},
		{Policy{Users: true}, true, "basic", ""},
		{Policy{Tokens: true}, true, "token", ""},
		{Policy{Users: true, Tokens: true}, true, "basic+token", ""},
		{Policy{ClientCerts: true}, true, "client-cert", ""},
		{Policy{Users: true, ClientCerts: true}, true, "basic+client-cert", ""},
		{Policy{Tokens: true, ClientCerts: true}, true, "token+client-cert", ""},
		{Policy{Users: true, Tokens: true, ClientCerts: true}, true, "basic+token+client-cert", ""},
	} {
		if got := tc.p.Authenticates(); got != tc.auth {
			t.Errorf("%+v Authenticates = %v, want %v", tc.p, got, tc.auth)
		}
		if got := tc.p.Mode(); got != tc.mode {
			t.Errorf("%+v Mode = %q, want %q", tc.p, got, tc.mode)
		}
		if got := tc.p.Missing(); got != tc.lacks {
			t.Errorf("%+v Missing = %q, want %q", tc.p, got, tc.lacks)
		}
	}
}

// A reload that drops any factor, or several, is named factor by factor, in
// the order users, tokens, client certificates; adding or keeping factors
// removes nothing.
func TestRemoved(t *testing.T) {
	all := Policy{Users: true, Tokens: true, ClientCerts: true}
	both := Policy{Users: true, ClientCerts: true}
	cert, pw, tok := clientCerts, users, tokens
	for _, tc := range []struct {
		from, to Policy
		want     []Factor
	}{
		{both, both, nil},
		{both, Policy{Users: true}, []Factor{cert}},
		{both, Policy{ClientCerts: true}, []Factor{pw}},
		{both, Policy{}, []Factor{pw, cert}},
		{Policy{}, both, nil},
		{Policy{Users: true}, Policy{ClientCerts: true}, []Factor{pw}},
		{all, all, nil},
		{all, both, []Factor{tok}},
		{all, Policy{}, []Factor{pw, tok, cert}},
		{Policy{Tokens: true}, Policy{Users: true}, []Factor{tok}},
		{Policy{Users: true}, Policy{Users: true, Tokens: true}, nil},
	} {
		if got := tc.from.Removed(tc.to); !slices.Equal(got, tc.want) {
			t.Errorf("%+v -> %+v: Removed = %v, want %v", tc.from, tc.to, got, tc.want)
		}
	}
	if tok.Setting != "tokens (the routes file's tokens:)" || tok.Requires != "a bearer token" {
		t.Errorf("tokens factor %+v", tok)
	}
}
