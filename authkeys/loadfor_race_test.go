package authkeys

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/keytool/keytool/jwk"
)

// Two commands at once, each revoking a key: whichever ends first finds
// the directory's stamp moved by both writes, and records its own change
// up to that stamp, not knowing the other's file. The other, at its end,
// must not leave the index current without its file: authorize of the
// key it revoked read only what the index named, did not see the
// revocation, and authorized a revoked key (found by review).
func TestLoadForConcurrentCommandsBothIndexed(t *testing.T) {
	for _, firstEnds := range []string{"first loaded", "second loaded"} {
		t.Run(firstEnds, func(t *testing.T) {
			opts := fillHome(t, 10)
			s, finish := LoadFor(opts, Lookups{})
			if _, err := s.Revoke(key(t, 62)); err != nil {
				t.Fatal(err)
			}
			finish()
			_, finish = LoadFor(opts, Lookups{}) // the revocation directory indexed
			finish()
			a, b := key(t, 60), key(t, 61)
			sa, finishA := LoadFor(opts, Lookups{Keys: [][32]byte{a.SPKIHash()}})
			sb, finishB := LoadFor(opts, Lookups{Keys: [][32]byte{b.SPKIHash()}})
			if _, err := sa.Revoke(a); err != nil {
				t.Fatal(err)
			}
			if _, err := sb.Revoke(b); err != nil {
				t.Fatal(err)
			}
			if firstEnds == "first loaded" {
				finishA()
				finishB()
			} else {
				finishB()
				finishA()
			}
			for _, k := range []*jwk.Key{a, b} {
				s, finish := LoadFor(opts, Lookups{Keys: [][32]byte{k.SPKIHash()}})
				_, err := s.LookupKey(k, netip.Addr{})
				finish()
				if !errors.As(err, new(*RevokedError)) {
					t.Errorf("a key revoked by one of two commands at once: LookupKey says %v, want *RevokedError", err)
				}
			}
		})
	}
}
