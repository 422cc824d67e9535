package source

import (
	"net"
	"net/netip"
	"testing"
)

func TestOf(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"192.0.2.7:443", "192.0.2.7/32"},
		{"192.0.2.7", "192.0.2.7/32"},
		{"[2001:db8:1:2:3:4:5:6]:9253", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:1", "2001:db8:1:2::/64"},
		{"[::ffff:192.0.2.7]:80", "192.0.2.7/32"},
		{"[fe80::1%eth0]:80", "fe80::/64"},
		{"@", "invalid Prefix"},
		{"", "invalid Prefix"},
	} {
		if got := Of(tc.in).String(); got != tc.want {
			t.Errorf("Of(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestOfAddr(t *testing.T) {
	for _, tc := range []struct {
		in   net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("127.0.0.2"), Port: 5}, "127.0.0.2/32"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:127.0.0.2"), Port: 5}, "127.0.0.2/32"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::9"), Port: 5}, "2001:db8::/64"},
		{&net.UnixAddr{Name: "/run/x.sock", Net: "unix"}, "invalid Prefix"},
		{nil, "invalid Prefix"},
	} {
		if got := OfAddr(tc.in).String(); got != tc.want {
			t.Errorf("OfAddr(%v) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestSite(t *testing.T) {
	s, ok := Site(netip.MustParsePrefix("2001:db8:1:2::/64"))
	if !ok || s.String() != "2001:db8:1::/48" {
		t.Errorf("Site of a /64 = %s, %v; want 2001:db8:1::/48, true", s, ok)
	}
	if _, ok := Site(netip.MustParsePrefix("192.0.2.7/32")); ok {
		t.Error("an IPv4 source has a site; want none")
	}
	if _, ok := Site(netip.Prefix{}); ok {
		t.Error("the zero source has a site; want none")
	}
}
