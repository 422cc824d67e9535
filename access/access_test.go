package access

import (
	"slices"
	"testing"
)

func TestPolicy(t *testing.T) {
	for _, tc := range []struct {
		p     Policy
		auth  bool
		mode  string
		lacks string
	}{
		{Policy{}, false, "none", "basic_auth_users, or client_auth_type: RequireAndVerifyClientCert with client_ca_file"},
		{Policy{Users: true}, true, "basic", ""},
		{Policy{ClientCerts: true}, true, "client-cert", ""},
		{Policy{Users: true, ClientCerts: true}, true, "basic+client-cert", ""},
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

// A reload that drops either factor, or both, is named factor by factor;
// adding or keeping factors removes nothing.
func TestRemoved(t *testing.T) {
	both := Policy{Users: true, ClientCerts: true}
	cert := clientCerts
	pw := users
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
	} {
		if got := tc.from.Removed(tc.to); !slices.Equal(got, tc.want) {
			t.Errorf("%+v -> %+v: Removed = %v, want %v", tc.from, tc.to, got, tc.want)
		}
	}
}
