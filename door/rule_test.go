package door

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"

	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/alloyci/hardened-runner/webconfig"
)

// fakeListener is a listener with a chosen address, for Public.
type fakeListener struct {
	net.Listener
	addr net.Addr
}

func (f fakeListener) Addr() net.Addr { return f.addr }

// config builds a loaded web config with the given protections.
func config(tlsOn, users, clientCerts bool) *webconfig.Config {
	c := &webconfig.Config{Path: "web.yml", Web: &web.Config{}}
	if users {
		c.Web.Users = map[string]config_util.Secret{"prometheus": "$2y$10$..."}
	}
	if tlsOn {
		c.TLS = &tls.Config{}
		if clientCerts {
			c.TLS.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return c
}

// Every listener kind × TLS × users × client certificates, and the exact
// refusal: a door reachable from the network needs TLS and authentication;
// loopback and unix sockets need neither.
func TestRequireSafeDoor(t *testing.T) {
	const (
		noTLS  = "TLS (tls_server_config with cert_file and key_file)"
		noAuth = "authentication (basic_auth_users, tokens in --web.routes.file, or client_auth_type: RequireAndVerifyClientCert with client_ca_file)"
	)
	listeners := []struct {
		name   string
		addr   net.Addr
		public bool
	}{
		{"loopback v4", &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 9253}, false},
		{"loopback v6", &net.TCPAddr{IP: net.IPv6loopback, Port: 9253}, false},
		{"unix socket", &net.UnixAddr{Name: "/run/metrics-proxy.sock", Net: "unix"}, false},
		{"all interfaces", &net.TCPAddr{IP: net.IPv6unspecified, Port: 9253}, true},
		{"public address", &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 9253}, true},
	}
	for _, l := range listeners {
		for _, tlsOn := range []bool{false, true} {
			for _, users := range []bool{false, true} {
				for _, certs := range []bool{false, true} {
					if certs && !tlsOn {
						continue // client certificates need TLS
					}
					public := Public([]net.Listener{fakeListener{addr: l.addr}})
					err := RequireSafeDoor(public, config(tlsOn, users, certs))
					var missing []string
					if l.public && !tlsOn {
						missing = append(missing, noTLS)
					}
					if l.public && !users && !certs {
						missing = append(missing, noAuth)
					}
					name := l.name
					if tlsOn {
						name += "+tls"
					}
					if users {
						name += "+users"
					}
					if certs {
						name += "+certs"
					}
					if len(missing) == 0 {
						if err != nil {
							t.Errorf("%s: refused: %v", name, err)
						}
						continue
					}
					want := "listening on " + l.addr.String() + ", which is reachable from the network, needs TLS and authentication, but web.yml has no " +
						strings.Join(missing, " and no ") + "; add them to the web config (see web-config.yml.example), or listen on loopback only (--web.listen-address=127.0.0.1:9253)"
					if err == nil || err.Error() != want {
						t.Errorf("%s: got %v\nwant %s", name, err, want)
					}
				}
			}
		}
	}
}

// Without --web.config.file a public listener is refused; loopback is served.
func TestRequireSafeDoorWithoutConfig(t *testing.T) {
	if err := RequireSafeDoor(nil, nil); err != nil {
		t.Errorf("loopback without a config: %v", err)
	}
	want := "listening on [::]:9253, which is reachable from the network, needs TLS and authentication, but no --web.config.file was given; add them to the web config (see web-config.yml.example), or listen on loopback only (--web.listen-address=127.0.0.1:9253)"
	if err := RequireSafeDoor([]string{"[::]:9253"}, nil); err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}
