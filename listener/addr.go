// Package listener turns the runner's metrics server address into listeners that
// can only be reached from this host: loopback TCP, or a unix socket guarded by
// file permissions. The server it serves has no authentication, so anything
// else is refused before a socket is opened.
//
// It is also the project's one place that decides what is loopback: an
// address string (IsLoopback), a listening address (IsLoopbackAddr) and an
// HTTP Host (IsLoopbackHost). metrics-proxy's door rule asks it too.
package listener

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// DefaultPort is the port used when an address names none: the one allocated
// to the runner in Prometheus's default port list.
const DefaultPort = "9252"

// unixPrefix marks a unix socket address, as in "unix:/run/alloy-runner/metrics.sock".
const unixPrefix = "unix:"

// Addr is a parsed metrics server address: either a unix socket path, or a
// host (an IP literal, a name, or empty for "every interface") and a port.
type Addr struct {
	// Unix is the socket path for "unix:" addresses; Host and Port are then empty.
	Unix string
	// Host is the host as written, without brackets. Empty means all interfaces.
	Host string
	// Port is the numeric port, service names already looked up.
	Port uint16
}

// String formats the address the way Parse reads it.
func (a Addr) String() string {
	if a.Unix != "" {
		return unixPrefix + a.Unix
	}
	return net.JoinHostPort(a.Host, strconv.Itoa(int(a.Port)))
}

// Parse reads an address of the form [host]:<port> or unix:/path. A missing
// port means defaultPort; a port may be a service name such as "http"; IPv6
// hosts are bracketed ("[::1]:9252"). Parse does no name resolution.
func Parse(s, defaultPort string) (Addr, error) {
	// "unix:9252" is the host "unix" on port 9252, as the seed's [host]:<port>
	// says; only a path after "unix:" makes a socket address.
	if rest, ok := strings.CutPrefix(s, unixPrefix); ok && !isPort(rest) {
		p := rest
		if p == "" || !strings.HasPrefix(p, "/") {
			return Addr{}, fmt.Errorf("address %q: a unix socket address needs an absolute path, e.g. unix:/run/alloy-runner/metrics.sock", s)
		}
		if strings.ContainsRune(p, 0) {
			return Addr{}, fmt.Errorf("address %q: the socket path contains a NUL byte", s)
		}
		return Addr{Unix: p}, nil
	}
	if s == "" {
		return Addr{}, errors.New("address is empty: give [host]:<port>, e.g. 127.0.0.1:9252")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		var ae *net.AddrError
		if !errors.As(err, &ae) || ae.Err != "missing port in address" {
			if strings.Count(s, ":") > 1 && !strings.HasPrefix(s, "[") {
				return Addr{}, fmt.Errorf("address %q: IPv6 hosts must be in brackets, e.g. [::1]:9252", s)
			}
			return Addr{}, fmt.Errorf("address %q is not [host]:<port>: %v", s, ae.Err)
		}
		// No port: the whole string is the host, possibly bracketed IPv6.
		host, port = s, defaultPort
		if strings.HasPrefix(host, "[") {
			if !strings.HasSuffix(host, "]") {
				return Addr{}, fmt.Errorf("address %q: missing ']' after the IPv6 host", s)
			}
			host = host[1 : len(host)-1]
		}
	}
	if strings.ContainsAny(host, "[]/ \t") {
		return Addr{}, fmt.Errorf("address %q: %q is not a valid host", s, host)
	}
	if strings.Contains(host, ":") {
		if _, err := netip.ParseAddr(host); err != nil {
			return Addr{}, fmt.Errorf("address %q: %q is not a valid IPv6 address", s, host)
		}
	}
	p, err := parsePort(port)
	if err != nil {
		return Addr{}, fmt.Errorf("address %q: %w", s, err)
	}
	return Addr{Host: host, Port: p}, nil
}

// isPort reports whether s reads as a port: a number, or a service name.
func isPort(s string) bool {
	_, err := parsePort(s)
	return err == nil
}

// parsePort accepts a number from 0 to 65535 or a service name from the
// services database (Go carries the common ones when /etc/services is absent).
func parsePort(port string) (uint16, error) {
	if port == "" {
		return 0, errors.New("the port is empty: give a number such as 9252 or a service name such as http")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err == nil {
		return uint16(n), nil
	}
	if port[0] >= '0' && port[0] <= '9' || port[0] == '-' || port[0] == '+' {
		return 0, fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	n, err := net.LookupPort("tcp", port)
	if err != nil {
		return 0, fmt.Errorf("port %q is not a known service name: use a number such as 9252", port)
	}
	return uint16(n), nil
}

// Resolver looks up the IP addresses of a host name. *net.Resolver implements it;
// tests pass their own.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Resolve returns the IP addresses and port a TCP address stands for: the
// literal itself, or every address the name resolves to, without duplicates.
// An empty host resolves to the unspecified addresses (all interfaces).
func (a Addr) Resolve(ctx context.Context, r Resolver) ([]netip.AddrPort, error) {
	if a.Unix != "" {
		return nil, fmt.Errorf("address %s is a unix socket and has no IP addresses", a)
	}
	if a.Host == "" {
		return []netip.AddrPort{
			netip.AddrPortFrom(netip.IPv4Unspecified(), a.Port),
			netip.AddrPortFrom(netip.IPv6Unspecified(), a.Port),
		}, nil
	}
	if ip, err := netip.ParseAddr(a.Host); err == nil {
		return []netip.AddrPort{netip.AddrPortFrom(ip.Unmap(), a.Port)}, nil
	}
	ips, err := r.LookupNetIP(ctx, "ip", a.Host)
	if err != nil {
		return nil, fmt.Errorf("address %s: cannot resolve host %q: %w", a, a.Host, err)
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("address %s: host %q resolves to no address", a, a.Host)
	}
	seen := make(map[netip.Addr]bool, len(ips))
	out := make([]netip.AddrPort, 0, len(ips))
	for _, ip := range ips {
		ip = ip.Unmap()
		if !seen[ip] {
			seen[ip] = true
			out = append(out, netip.AddrPortFrom(ip, a.Port))
		}
	}
	return out, nil
}

// LoopbackError explains why an address was refused for a server without
// authentication.
type LoopbackError struct {
	Addr   string
	Reason string
}

func (e *LoopbackError) Error() string {
	return fmt.Sprintf("refusing metrics server address %q: %s; the metrics server has no authentication, "+
		"so it listens on loopback only (e.g. 127.0.0.1:9252, [::1]:9252, localhost:9252) or on a unix socket "+
		"(unix:/run/alloy-runner/metrics.sock); to expose metrics to the network, put metrics-proxy in front of it",
		e.Addr, e.Reason)
}

// RequireLoopback parses s and resolves it, and refuses it unless it is a unix
// socket or every address it stands for is loopback. It returns the parsed
// address and, for TCP, the IP literals to listen on.
func RequireLoopback(ctx context.Context, s string, r Resolver) (Addr, []netip.AddrPort, error) {
	a, err := Parse(s, DefaultPort)
	if err != nil {
		return Addr{}, nil, err
	}
	if a.Unix != "" {
		return a, nil, nil
	}
	if a.Host == "" {
		return Addr{}, nil, &LoopbackError{Addr: s, Reason: "an empty host means every interface, not loopback"}
	}
	aps, err := a.Resolve(ctx, r)
	if err != nil {
		return Addr{}, nil, err
	}
	for _, ap := range aps {
		ip := ap.Addr()
		switch {
		case ip.IsUnspecified():
			return Addr{}, nil, &LoopbackError{Addr: s, Reason: ip.String() + " means every interface, not loopback"}
		case !ip.IsLoopback():
			if ip.String() == a.Host {
				return Addr{}, nil, &LoopbackError{Addr: s, Reason: ip.String() + " is not a loopback address"}
			}
			return Addr{}, nil, &LoopbackError{Addr: s, Reason: fmt.Sprintf("host %q resolves to %s, which is not a loopback address", a.Host, ip)}
		}
	}
	return a, aps, nil
}

// IsLoopback reports whether every address s stands for is loopback (or s is a
// unix socket). Callers with a public door use it to decide how strict to be.
func IsLoopback(ctx context.Context, s, defaultPort string, r Resolver) (bool, error) {
	a, err := Parse(s, defaultPort)
	if err != nil {
		return false, err
	}
	if a.Unix != "" {
		return true, nil
	}
	aps, err := a.Resolve(ctx, r)
	if err != nil {
		return false, err
	}
	for _, ap := range aps {
		if !ap.Addr().IsLoopback() {
			return false, nil
		}
	}
	return true, nil
}

// IsLoopbackAddr reports whether a listening address can be reached only
// from this host: a loopback IP, or a unix socket.
func IsLoopbackAddr(a net.Addr) bool {
	switch a := a.(type) {
	case *net.TCPAddr:
		ip, ok := netip.AddrFromSlice(a.IP)
		return ok && ip.Unmap().IsLoopback()
	case *net.UnixAddr:
		return true
	}
	return false
}

// IsLoopbackHost reports whether host (as in an HTTP Host header, without the
// port) is "localhost" or a loopback IP literal. It does no resolution, so a
// name an attacker controls through DNS rebinding never passes.
func IsLoopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" {
		return true
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
