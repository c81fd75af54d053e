package authkeys

import (
	"errors"
	"net/netip"
	"os"
	"testing"

	"github.com/keytool/keytool/jwk"
)

// Two commands at once, each revoking a key: whichever ends first finds
// the directory's stamp moved by both writes, and records its own change
// up to that stamp, not knowing the other's file. The other, at its end,
// must not leave the index current without its file: authorize of the
// key it revoked read only what the index named, did not see the
// revocation, and authorized a revoked key (found by review). The same
// when the first to end cannot record its change (its file changed
// since it read it: here a chmod) and the other records after it.
func TestLoadForConcurrentCommandsBothIndexed(t *testing.T) {
	for _, order := range []string{"first loaded ends first", "second loaded ends first", "first cannot record"} {
		t.Run(order, func(t *testing.T) {
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
			fa, err := sa.Revoke(a)
			if err != nil {
				t.Fatal(err)
			}
			switch order {
			case "first loaded ends first":
				if _, err := sb.Revoke(b); err != nil {
					t.Fatal(err)
				}
				finishA()
				finishB()
			case "second loaded ends first":
				if _, err := sb.Revoke(b); err != nil {
					t.Fatal(err)
				}
				finishB()
				finishA()
			case "first cannot record":
				if err := os.Chmod(fa, 0o644); err != nil { // a new ctime
					t.Fatal(err)
				}
				finishA()
				if _, err := sb.Revoke(b); err != nil {
					t.Fatal(err)
				}
				finishB()
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
