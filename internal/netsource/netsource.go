// Package netsource holds the one rule by which keytool counts what
// remote peers do per source — enrollment's rate limits, the proxy's log
// of failures, the connections a source may have at once (Limit): an
// IPv4 address, or an IPv6 address's /64. A host is given a /64 (RFC
// 6177) and may send from any address in it, so that counting IPv6
// addresses one by one would count one client as 2^64.
package netsource

import "net/netip"

// Of returns the source of addr: the address itself for IPv4 (an IPv4
// address mapped in IPv6 included), its /64 for IPv6; the zero Prefix
// for the zero Addr.
func Of(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap()
	bits := addr.BitLen()
	if addr.Is6() {
		bits = 64
	}
	p, _ := addr.Prefix(bits)
	return p
}

// String is a source as logs show it: an IPv4 address alone, an IPv6
// source as its /64.
func String(p netip.Prefix) string {
	if p.Addr().Is4() {
		return p.Addr().String()
	}
	return p.String()
}
