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

// A Limit holds each source (an IPv6 /64 as one) to Max at once, forgets
// a source at its last done, and takes a done called twice once.
func TestLimit(t *testing.T) {
	l := Limit{Max: 2}
	a1, a2 := netip.MustParseAddr("2001:db8:1:2::1"), netip.MustParseAddr("2001:db8:1:2::2")
	done1, ok1 := l.Start(a1)
	_, ok2 := l.Start(a2)
	if !ok1 || !ok2 {
		t.Fatal("the first two of a source refused")
	}
	if _, ok := l.Start(netip.MustParseAddr("2001:db8:1:2::3")); ok {
		t.Error("a third of one /64 admitted")
	}
	if _, ok := l.Start(netip.MustParseAddr("192.0.2.1")); !ok {
		t.Error("another source refused")
	}
	done1()
	done1()
	if n := l.Count(a2); n != 1 {
		t.Errorf("after one done (called twice), %d under way, want 1", n)
	}
	if n := l.Sources(); n != 2 {
		t.Errorf("%d sources, want 2", n)
	}
}
