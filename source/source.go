// Package source names the client a connection or request comes from, for
// the limits metrics-proxy keeps per client: connection slots, handshakes,
// failed-auth back-off and the fair upstream queue all count by the same key.
//
// A source is an IPv4 address or an IPv6 /64, because one IPv6 host or
// customer usually holds a whole /64 and could otherwise take a fresh address
// for every connection. An IPv4-mapped IPv6 address counts as its IPv4
// address, and zones are dropped. Anything that is not an IP address (a unix
// socket, a test) is the zero Prefix: one shared source.
package source

import (
	"net"
	"net/netip"
)

// Of returns the source of a "host:port" remote address such as
// http.Request.RemoteAddr, or of a bare IP address.
func Of(remoteAddr string) netip.Prefix {
	var addr netip.Addr
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		addr = ap.Addr()
	} else if a, err := netip.ParseAddr(remoteAddr); err == nil {
		addr = a
	} else {
		return netip.Prefix{}
	}
	return ofAddr(addr)
}

// OfAddr returns the source of a net.Addr, as a listener's connection gives
// it; a non-IP address (a unix socket) is the zero Prefix.
func OfAddr(a net.Addr) netip.Prefix {
	if ta, ok := a.(*net.TCPAddr); ok {
		if addr, ok := netip.AddrFromSlice(ta.IP); ok {
			return ofAddr(addr)
		}
		return netip.Prefix{}
	}
	if a == nil {
		return netip.Prefix{}
	}
	return Of(a.String())
}

func ofAddr(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap().WithZone("")
	bits := 64
	if addr.Is4() {
		bits = 32
	}
	p, err := addr.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// Site returns the wider prefix that several sources share: the /48 of an
// IPv6 source (a site's allocation), so that a looser aggregate limit stops a
// client that walks through the 65536 /64s of its /48. IPv4 sources and the
// zero Prefix have no site: ok is false.
func Site(p netip.Prefix) (site netip.Prefix, ok bool) {
	if !p.IsValid() || p.Addr().Is4() {
		return netip.Prefix{}, false
	}
	s, err := p.Addr().Prefix(48)
	if err != nil {
		return netip.Prefix{}, false
	}
	return s, true
}
