package netsource

import (
	"net/netip"
	"testing"
)

// Addresses of one IPv6 /64 are one source; IPv4 addresses (mapped or
// not) each their own.
func TestOf(t *testing.T) {
	for _, c := range []struct{ a, b string }{
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"},
		{"192.0.2.1", "::ffff:192.0.2.1"},
	} {
		if Of(netip.MustParseAddr(c.a)) != Of(netip.MustParseAddr(c.b)) {
			t.Errorf("%s and %s are two sources", c.a, c.b)
		}
	}
	for _, c := range []struct{ a, b string }{
		{"2001:db8:1:2::1", "2001:db8:1:3::1"},
		{"192.0.2.1", "192.0.2.2"},
	} {
		if Of(netip.MustParseAddr(c.a)) == Of(netip.MustParseAddr(c.b)) {
			t.Errorf("%s and %s are one source", c.a, c.b)
		}
	}
	for a, want := range map[string]string{"192.0.2.1": "192.0.2.1", "::ffff:192.0.2.1": "192.0.2.1", "2001:db8:1:2::1": "2001:db8:1:2::/64"} {
		if got := String(Of(netip.MustParseAddr(a))); got != want {
			t.Errorf("String(Of(%s)) = %s, want %s", a, got, want)
		}
	}
	if Of(netip.Addr{}).IsValid() {
		t.Error("the zero address has a source")
	}
}
