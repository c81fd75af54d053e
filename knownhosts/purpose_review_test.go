package knownhosts

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// TestWildcardForAPurposeLeavesAPinWithoutAddress: a key pinned without
// an address for every purpose (admitted at any address its certificate
// names) and by a wildcard for pool only. A connection without a purpose
// to a host the wildcard matches is decided by the pin for every purpose
// (PinnedIfNamed), as it is where the wildcard is absent: a wildcard pin,
// which cannot make another key a changed one, is no pin of the address
// that comes first — the pin for pool made it Refused, a pin for fewer
// connections taking away what the pin for every purpose gave (found by
// review, 2026-12-06).
func TestWildcardForAPurposeLeavesAPinWithoutAddress(t *testing.T) {
	k, _ := selfSigned(t, []string{"db.example"})
	home := t.TempDir()
	dir := filepath.Join(home, "trusted_hosts.d")
	keydirtest.Write(t, filepath.Join(dir, "any.json"), keydirtest.JWK(t, k.PublicKey()))
	wild := keydirtest.WithAttrs(k.PublicKey(), "address", "*.example:443")
	wild.Attrs.SetList("purpose", []string{"pool"})
	keydirtest.Write(t, filepath.Join(dir, "wild-pool.json"), keydirtest.JWK(t, wild))
	s := Load(HomeOptions(home))
	if p := s.Problems(); len(p) != 0 {
		t.Fatal(p)
	}
	for purpose, want := range map[string]Verdict{"": PinnedIfNamed, "pool": Pinned, "ldap": PinnedIfNamed} {
		if d := s.DecidePurpose("db.example:443", purpose, k.SPKIHash()); d.Verdict != want {
			t.Errorf("purpose %q: %v (%v), want %v", purpose, d.Verdict, d.Err, want)
		}
	}
	// With only the wildcard for pool, it is refused there, as before.
	only := t.TempDir()
	keydirtest.Write(t, filepath.Join(only, "trusted_hosts.d", "wild-pool.json"), keydirtest.JWK(t, wild))
	var po *PurposesOnlyError
	if d := Load(HomeOptions(only)).Decide("db.example:443", k.SPKIHash()); d.Verdict != Refused || !errors.As(d.Err, &po) {
		t.Errorf("the wildcard for pool alone: %v (%v), want a *PurposesOnlyError", d.Verdict, d.Err)
	}
}

// TestAddKeyAtMostOfAKeyPinnedForSomePurposes: AddKeyAtMost bounds the
// keys pinned for an address; pinning for every purpose a key the
// address already pins for some purposes adds no key, and is not
// refused at the bound (tlsbridge's UpdateHostKeys does so, for a client
// without a purpose, since such a key no longer admits it: the key a
// host announces, pinned for ldap by hand, was refused and warned about
// at every retry once the address had its bound of keys; found by
// review, 2026-12-06). A key not pinned there still is.
func TestAddKeyAtMostOfAKeyPinnedForSomePurposes(t *testing.T) {
	const addr = "db.example:443"
	s := Load(HomeOptions(t.TempDir()))
	for _, k := range []int{1, 2} {
		if _, err := s.AddKey(addr, forPurposes(t, k, "ldap"), AddAnother); err != nil {
			t.Fatal(err)
		}
	}
	// RoomNow, which a client asks before its user, decides as
	// AddKeyAtMost does (roomFor): room for a key pinned already, none
	// for another.
	if n, room := s.RoomNow(addr, key(t, 2).SPKIHash(), 2); !room || n != 2 {
		t.Errorf("RoomNow for key 2 at the bound: %d pinned, room %v; want 2, true", n, room)
	}
	if n, room := s.RoomNow(addr, key(t, 3).SPKIHash(), 2); room || n != 2 {
		t.Errorf("RoomNow for key 3 at the bound: %d pinned, room %v; want 2, false", n, room)
	}
	if _, err := s.AddKeyAtMost(addr, forPurposes(t, 2), AddAnother, 2); err != nil {
		t.Fatalf("pinning key 2, pinned for ldap, for every purpose at the bound: %v", err)
	}
	if d := s.Decide(addr, key(t, 2).SPKIHash()); d.Verdict != Pinned {
		t.Errorf("key 2: %v (%v)", d.Verdict, d.Err)
	}
	var tooMany *TooManyKeysError
	if _, err := s.AddKeyAtMost(addr, forPurposes(t, 3), AddAnother, 2); !errors.As(err, &tooMany) || tooMany.Pinned != 2 {
		t.Errorf("a third key at a bound of 2: %v, want a *TooManyKeysError", err)
	}
}

// TestOtherKeyBesideAWildcardForAPurpose: a wildcard pin for some
// purposes makes no other key a changed one for a connection without a
// purpose — no wildcard does — while an exact one does, as the docs say
// (docs/design.md, "Purposes").
func TestOtherKeyBesideAWildcardForAPurpose(t *testing.T) {
	home := t.TempDir()
	dir := filepath.Join(home, "trusted_hosts.d")
	wild := pinned(t, 1, "*.example:443")
	wild.Attrs.SetList("purpose", []string{"pool"})
	keydirtest.Write(t, filepath.Join(dir, "wild.json"), keydirtest.JWK(t, wild))
	exact := pinned(t, 2, "db.example:443")
	exact.Attrs.SetList("purpose", []string{"pool"})
	keydirtest.Write(t, filepath.Join(dir, "db.json"), keydirtest.JWK(t, exact))
	s := Load(HomeOptions(home))
	for addr, want := range map[string]Verdict{"web.example:443": Unknown, "db.example:443": Changed} {
		if d := s.Decide(addr, key(t, 9).SPKIHash()); d.Verdict != want {
			t.Errorf("another key at %s: %v (%v), want %v", addr, d.Verdict, d.Err, want)
		}
	}
}
