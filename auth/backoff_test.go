package auth

import (
	"net/netip"
	"testing"
	"time"
)

func TestClientKey(t *testing.T) {
	tests := []struct {
		remote string
		want   string
	}{
		{"192.0.2.1:4711", "192.0.2.1/32"},
		{"[::ffff:192.0.2.1]:4711", "192.0.2.1/32"},
		{"[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:443", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:443", "fe80::/64"},
		{"2001:db8::1", "2001:db8::/64"},
		{"192.0.2.9", "192.0.2.9/32"},
		{"@", "invalid Prefix"},
		{"", "invalid Prefix"},
	}
	for _, tt := range tests {
		if got := clientKey(tt.remote).String(); got != tt.want {
			t.Errorf("clientKey(%q) = %s, want %s", tt.remote, got, tt.want)
		}
	}
}

func TestBackoffDelayCurve(t *testing.T) {
	want := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60}
	for n, w := range want {
		if got := backoffDelay(n); got != w*time.Second {
			t.Errorf("backoffDelay(%d) = %s, want %s", n, got, w*time.Second)
		}
	}
	if got := backoffDelay(1 << 30); got != backoffCap {
		t.Errorf("backoffDelay(huge) = %s", got)
	}
}

func TestBackoffTableIsBounded(t *testing.T) {
	tbl := newBackoffTable(3)
	now := time.Unix(0, 0)
	for i := range 10 {
		tbl.charge(netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 32), now)
	}
	if n := tbl.clients.Len(); n != 3 {
		t.Fatalf("table holds %d clients, want 3", n)
	}
}
