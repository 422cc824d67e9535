package listener

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
)

// fakeResolver answers from a fixed table, so tests never touch real DNS.
type fakeResolver map[string][]string

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	ips, ok := f[host]
	if !ok {
		return nil, errors.New("no such host")
	}
	out := make([]netip.Addr, len(ips))
	for i, s := range ips {
		out[i] = netip.MustParseAddr(s)
	}
	return out, nil
}

var hosts = fakeResolver{
	"localhost":      {"127.0.0.1", "::1"},
	"lo4.example":    {"127.0.0.2"},
	"mixed.example":  {"127.0.0.1", "192.0.2.7"},
	"public.example": {"203.0.113.5"},
	"mapped.example": {"::ffff:127.0.0.1"},
}

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want Addr
		err  string
	}{
		// The seed's examples.
		{in: ":9252", want: Addr{Host: "", Port: 9252}},
		{in: "localhost:9252", want: Addr{Host: "localhost", Port: 9252}},
		{in: "[2001:db8::1]:http", want: Addr{Host: "2001:db8::1", Port: 80}},
		// A missing port means 9252.
		{in: "localhost", want: Addr{Host: "localhost", Port: 9252}},
		{in: "127.0.0.1", want: Addr{Host: "127.0.0.1", Port: 9252}},
		{in: "[::1]", want: Addr{Host: "::1", Port: 9252}},
		{in: "[::1]:9999", want: Addr{Host: "::1", Port: 9999}},
		{in: "127.0.0.1:https", want: Addr{Host: "127.0.0.1", Port: 443}},
		{in: "127.0.0.1:0", want: Addr{Host: "127.0.0.1", Port: 0}},
		{in: "unix:/run/alloy-runner/metrics.sock", want: Addr{Unix: "/run/alloy-runner/metrics.sock"}},
		// A host called "unix" is still a host (found by fuzzing: String must round-trip).
		{in: "unix:9252", want: Addr{Host: "unix", Port: 9252}},
		{in: "unix:http", want: Addr{Host: "unix", Port: 80}},
		{in: "unix", want: Addr{Host: "unix", Port: 9252}},
		// Mistakes.
		{in: "", err: "address is empty"},
		{in: "::1", err: "IPv6 hosts must be in brackets"},
		{in: "2001:db8::1:9252", err: "IPv6 hosts must be in brackets"},
		{in: "[::1", err: "missing ']'"},
		{in: "127.0.0.1:65536", err: `port "65536" is not a number from 0 to 65535`},
		{in: "127.0.0.1:-1", err: `port "-1" is not a number from 0 to 65535`},
		{in: "127.0.0.1:", err: "the port is empty"},
		{in: "127.0.0.1:no-such-service-xyz", err: `port "no-such-service-xyz" is not a known service name`},
		{in: "[zz::1]:9252", err: `"zz::1" is not a valid IPv6 address`},
		{in: "unix:", err: "needs an absolute path"},
		{in: "unix:relative.sock", err: "needs an absolute path"},
		{in: "a b:9252", err: `"a b" is not a valid host`},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in, DefaultPort)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Parse(%q) error = %v, want it to contain %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestRequireLoopback(t *testing.T) {
	tests := []struct {
		in     string
		listen []string // the literals to listen on
		reason string   // refusal reason; every refusal also mentions loopback and metrics-proxy
	}{
		{in: "127.0.0.1:9252", listen: []string{"127.0.0.1:9252"}},
		{in: "127.0.0.53:9252", listen: []string{"127.0.0.53:9252"}},
		{in: "[::1]:9252", listen: []string{"[::1]:9252"}},
		{in: "localhost:9252", listen: []string{"127.0.0.1:9252", "[::1]:9252"}},
		{in: "localhost", listen: []string{"127.0.0.1:9252", "[::1]:9252"}},
		{in: "lo4.example:http", listen: []string{"127.0.0.2:80"}},
		{in: "mapped.example:9252", listen: []string{"127.0.0.1:9252"}},
		{in: "[::ffff:127.0.0.1]:9252", listen: []string{"127.0.0.1:9252"}},
		{in: ":9252", reason: "an empty host means every interface"},
		{in: "0.0.0.0:9252", reason: "0.0.0.0 means every interface"},
		{in: "[::]:9252", reason: ":: means every interface"},
		{in: "[2001:db8::1]:http", reason: "2001:db8::1 is not a loopback address"},
		{in: "192.0.2.1:9252", reason: "192.0.2.1 is not a loopback address"},
		{in: "203.0.113.5", reason: "203.0.113.5 is not a loopback address"},
		{in: "public.example:9252", reason: `host "public.example" resolves to 203.0.113.5`},
		{in: "mixed.example:9252", reason: `host "mixed.example" resolves to 192.0.2.7`},
		{in: "[fe80::1%eth0]:9252", reason: "fe80::1%eth0 is not a loopback address"},
	}
	for _, tt := range tests {
		_, aps, err := RequireLoopback(context.Background(), tt.in, hosts)
		if tt.reason != "" {
			var le *LoopbackError
			if !errors.As(err, &le) {
				t.Errorf("RequireLoopback(%q) = %v, %v; want a LoopbackError", tt.in, aps, err)
				continue
			}
			msg := err.Error()
			for _, want := range []string{tt.reason, "loopback only", "metrics-proxy", `"` + tt.in + `"`} {
				if !strings.Contains(msg, want) {
					t.Errorf("RequireLoopback(%q) error %q lacks %q", tt.in, msg, want)
				}
			}
			continue
		}
		if err != nil {
			t.Errorf("RequireLoopback(%q) = %v", tt.in, err)
			continue
		}
		var got []string
		for _, ap := range aps {
			got = append(got, ap.String())
		}
		if strings.Join(got, " ") != strings.Join(tt.listen, " ") {
			t.Errorf("RequireLoopback(%q) listens on %v, want %v", tt.in, got, tt.listen)
		}
	}
}

func TestUnresolvableHostIsAnError(t *testing.T) {
	_, _, err := RequireLoopback(context.Background(), "nosuch.example:9252", hosts)
	if err == nil || !strings.Contains(err.Error(), `cannot resolve host "nosuch.example"`) {
		t.Fatalf("got %v", err)
	}
}

func TestIsLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LOCALHOST": true, "localhost.": true,
		"127.0.0.1": true, "127.1.2.3": true, "[::1]": true, "::1": true,
		"": false, "attacker.example": false, "localhost.attacker.example": false,
		"192.0.2.1": false, "[::]": false, "0.0.0.0": false, "127.0.0.1.nip.io": false,
	} {
		if got := IsLoopbackHost(host); got != want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		":9253": false, "0.0.0.0:9253": false, "127.0.0.1:9253": true, "localhost:9253": true,
		"[::1]:9253": true, "mixed.example:9253": false, "unix:/tmp/x.sock": true,
	} {
		got, err := IsLoopback(context.Background(), addr, "9253", hosts)
		if err != nil || got != want {
			t.Errorf("IsLoopback(%q) = %v, %v; want %v", addr, got, err, want)
		}
	}
}

// FuzzParse checks that the address parser never panics, and that whatever it
// accepts round-trips through String and is refused by RequireLoopback unless
// every address is loopback.
func FuzzParse(f *testing.F) {
	for _, s := range []string{":9252", "localhost:9252", "[2001:db8::1]:http", "localhost", "[::1]",
		"unix:/x.sock", "::1", "[::1", "127.0.0.1:99999", "0.0.0.0:0", "[::ffff:127.0.0.1]:1", "[fe80::1%lo]:1",
		"%", "[]:1", "unix:", "a:b:c", "127.0.0.1:+1", "localhost:\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := Parse(s, DefaultPort)
		if err != nil {
			return
		}
		b, err := Parse(a.String(), DefaultPort)
		if err != nil || b != a {
			t.Fatalf("Parse(%q) = %+v, but its String %q parses as %+v, %v", s, a, a.String(), b, err)
		}
		_, aps, err := RequireLoopback(context.Background(), s, hosts)
		if err != nil {
			return
		}
		for _, ap := range aps {
			if !ap.Addr().IsLoopback() {
				t.Fatalf("RequireLoopback(%q) accepted %s", s, ap)
			}
		}
	})
}

func TestIsLoopbackAddr(t *testing.T) {
	for _, tc := range []struct {
		a    net.Addr
		want bool
	}{
		{&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 9253}, true},
		{&net.TCPAddr{IP: net.ParseIP("127.3.2.1"), Port: 9253}, true},
		{&net.TCPAddr{IP: net.ParseIP("::1"), Port: 9253}, true},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:127.0.0.1"), Port: 9253}, true},
		{&net.UnixAddr{Name: "/run/metrics-proxy.sock", Net: "unix"}, true},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 9253}, false},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 9253}, false},
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 9253}, false},
		{&net.UDPAddr{IP: net.ParseIP("127.0.0.1"), Port: 9253}, false},
	} {
		if got := IsLoopbackAddr(tc.a); got != tc.want {
			t.Errorf("IsLoopbackAddr(%v) = %v, want %v", tc.a, got, tc.want)
		}
	}
}
