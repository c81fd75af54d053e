package knownhosts

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// TestPinPurposes: a pin may be for some purposes only (XAPI's pinned
// certificates by purpose, the "purpose" member as a JSON list or a PEM
// header). For a connection of another purpose it is not there: it
// neither admits its key nor makes another key a changed one. Pins
// without a purpose apply to every purpose. Decide (no purpose) sees
// every pin, but is admitted only by a pin for every purpose: a
// connection without a purpose is one more kind of connection, and a
// key pinned for another kind is refused (*PurposesOnlyError), not
// admitted. An empty list is an error, not "every purpose".
func TestPinPurposes(t *testing.T) {
	home := t.TempDir()
	dir := filepath.Join(home, "trusted_hosts.d")
	ldap := pinned(t, 1, "ldap.example:636")
	ldap.Attrs.SetList(jwk.AttrPurpose, []string{"ldap", "appliance"})
	keydirtest.Write(t, filepath.Join(dir, "ldap.json"), keydirtest.JWK(t, ldap))
	keydirtest.Write(t, filepath.Join(dir, "any.json"), keydirtest.JWK(t, pinned(t, 2, "any.example:443")))
	pool := pinned(t, 3, "pool.example:443")
	pool.Attrs.SetString(jwk.AttrPurpose, "pool") // a PEM header: "purpose: pool"
	keydirtest.Write(t, filepath.Join(dir, "pool.pem"), keydirtest.PEM(t, pool))
	s := Load(HomeOptions(home))
	if p := s.Problems(); len(p) != 0 {
		t.Fatal(p)
	}
	for _, c := range []struct {
		addr, purpose string
		key           int
		want          Verdict
	}{
		{"ldap.example:636", "ldap", 1, Pinned},
		{"ldap.example:636", "appliance", 1, Pinned},
		{"ldap.example:636", "ldap", 9, Changed},
		{"ldap.example:636", "pool", 1, Unknown}, // not pinned for pool
		{"ldap.example:636", "pool", 9, Unknown}, // nor a changed key
		{"ldap.example:636", "", 1, Refused},     // no purpose: pinned for ldap and appliance only
		{"ldap.example:636", "", 9, Changed},     // but the address is pinned
		{"any.example:443", "", 2, Pinned},
		{"any.example:443", "ldap", 2, Pinned}, // a pin without purpose: every purpose
		{"any.example:443", "ldap", 9, Changed},
		{"pool.example:443", "pool", 3, Pinned}, // from the PEM header
		{"pool.example:443", "ldap", 3, Unknown},
		{"pool.example:443", "", 3, Refused},
	} {
		d := s.DecidePurpose(c.addr, c.purpose, key(t, c.key).SPKIHash())
		if d.Verdict != c.want {
			t.Errorf("DecidePurpose(%s, %q, key %d) = %v, want %v", c.addr, c.purpose, c.key, d.Verdict, c.want)
		}
		if d.Verdict == Refused {
			var only *PurposesOnlyError
			if !errors.As(d.Err, &only) || only.File == "" || len(only.Purposes) == 0 {
				t.Errorf("DecidePurpose(%s, %q, key %d): %v, want a *PurposesOnlyError naming the pin's file and purposes", c.addr, c.purpose, c.key, d.Err)
			}
		}
		if c.purpose == "" {
			if d2 := s.Decide(c.addr, key(t, c.key).SPKIHash()); d2.Verdict != d.Verdict {
				t.Errorf("Decide(%s, key %d) = %v, DecidePurpose with no purpose %v", c.addr, c.key, d2.Verdict, d.Verdict)
			}
		}
	}
	var only *PurposesOnlyError
	if err := s.Check("ldap.example:636", key(t, 1)); !errors.As(err, &only) || strings.Join(only.Purposes, ",") != "ldap,appliance" || !strings.Contains(err.Error(), "ldap.json") {
		t.Errorf("Check of a key pinned for some purposes: %v", err)
	}
	if got := s.Entries()[1].Purposes; strings.Join(got, ",") != "ldap,appliance" {
		t.Errorf("Entry.Purposes = %v", got)
	}

	empty := pinned(t, 4, "e.example")
	empty.Attrs.SetList(jwk.AttrPurpose, []string{})
	keydirtest.Write(t, filepath.Join(dir, "empty.json"), keydirtest.JWK(t, empty))
	s.Reload()
	if p := s.Problems(); len(p) != 1 || !strings.Contains(p[0].Error(), "purpose") {
		t.Fatalf("an empty purpose list: problems %v", p)
	}
}

// forPurposes is key n (public, no address) with a "purpose" member.
func forPurposes(t *testing.T, n int, purposes ...string) *jwk.Key {
	k := key(t, n).PublicKey()
	k.Attrs = jwk.Attributes{}
	if len(purposes) > 0 {
		k.Attrs.SetList(jwk.AttrPurpose, purposes)
	}
	return k
}

// TestAddKeyPurposes: Add sees pins as DecidePurpose does. A key is
// already pinned only by a pin that serves each of its purposes, so
// pinning a key for a purpose it is not pinned for writes a pin (beside
// the address's file) instead of answering "already trusted" while
// connections of that purpose still refuse it; and another key's pin is a
// changed key only for a purpose both pins serve.
func TestAddKeyPurposes(t *testing.T) {
	const addr = "db.example:636"
	for _, c := range []struct {
		name      string
		have      *jwk.Key // pinned first, in db.example_636.json
		add       *jwk.Key
		err       any  // *KeyChangedError, or nil
		sameFile  bool // Add answers with the first pin's file (already pinned)
		decideFor string
	}{
		{name: "a pin for every purpose serves the purpose", have: forPurposes(t, 1), add: forPurposes(t, 1, "ldap"), sameFile: true, decideFor: "ldap"},
		{name: "the same purposes: already pinned", have: forPurposes(t, 1, "ldap", "pool"), add: forPurposes(t, 1, "pool"), sameFile: true, decideFor: "pool"},
		{name: "the same key for another purpose is pinned beside", have: forPurposes(t, 1, "ldap"), add: forPurposes(t, 1, "pool"), decideFor: "pool"},
		{name: "a pin for some purposes does not serve every purpose", have: forPurposes(t, 1, "ldap"), add: forPurposes(t, 1), decideFor: "appliance"},
		{name: "another key for another purpose is no changed key", have: forPurposes(t, 1, "ldap"), add: forPurposes(t, 2, "pool"), decideFor: "pool"},
		{name: "another key for the same purpose is a changed key", have: forPurposes(t, 1, "ldap"), add: forPurposes(t, 2, "ldap", "pool"), err: new(*KeyChangedError)},
		{name: "another key for every purpose is a changed key", have: forPurposes(t, 1, "ldap"), add: forPurposes(t, 2), err: new(*KeyChangedError)},
		{name: "another key for a purpose, beside a pin for every purpose, is a changed key", have: forPurposes(t, 1), add: forPurposes(t, 2, "pool"), err: new(*KeyChangedError)},
	} {
		t.Run(c.name, func(t *testing.T) {
			home := t.TempDir()
			s := Load(HomeOptions(home))
			first, err := s.Add(addr, c.have)
			if err != nil {
				t.Fatal(err)
			}
			file, err := s.Add(addr, c.add)
			if c.err != nil {
				if !errors.As(err, c.err) {
					t.Fatalf("Add = %q, %v; want %T", file, err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (file == first) != c.sameFile {
				t.Fatalf("Add = %s (first pin %s), want the first pin's file: %v", file, first, c.sameFile)
			}
			s = Load(HomeOptions(home)) // as the next process reads it
			if p := s.Problems(); len(p) != 0 {
				t.Fatal(p)
			}
			if d := s.DecidePurpose(addr, c.decideFor, c.add.SPKIHash()); d.Verdict != Pinned {
				t.Errorf("DecidePurpose(%s, %q) = %v after Add", addr, c.decideFor, d.Verdict)
			}
		})
	}
}

// TestAddKeyPurposesBeside: one key pinned for one address purpose by
// purpose, each pin in a file of its own; a key whose every purpose some
// pin serves is already pinned.
func TestAddKeyPurposesBeside(t *testing.T) {
	const addr = "db.example:636"
	s := Load(HomeOptions(t.TempDir()))
	files := map[string]bool{}
	for _, purposes := range [][]string{{"ldap"}, {"pool"}, {"appliance", "x"}} {
		file, err := s.Add(addr, forPurposes(t, 1, purposes...))
		if err != nil || files[file] {
			t.Fatalf("Add for %v = %s, %v (files so far %v)", purposes, file, err, files)
		}
		files[file] = true
	}
	if file, err := s.Add(addr, forPurposes(t, 1, "pool", "ldap", "x")); err != nil || !files[file] {
		t.Fatalf("Add for purposes each pinned = %s, %v; want one of %v", file, err, files)
	}
	// Only a pin of the address goes beside: a file of that name holding
	// something else is still refused, for the user to look at.
	home := t.TempDir()
	keydirtest.Write(t, filepath.Join(home, "trusted_hosts.d", "other.example_636.json"), keydirtest.JWK(t, pinned(t, 2, "elsewhere.example:1")))
	s = Load(HomeOptions(home))
	var exists *FileExistsError
	if file, err := s.Add("other.example:636", forPurposes(t, 1, "ldap")); !errors.As(err, &exists) {
		t.Fatalf("Add over a file of the address's name pinning another address = %s, %v; want *FileExistsError", file, err)
	}
}

// TestPurposeNames: a pin's purposes follow the rule of a CA's
// (tlsbridge.ValidCAName, ca.d/PURPOSE/): a name no connection can have
// is a malformed file, not a pin silently never used.
func TestPurposeNames(t *testing.T) {
	for _, bad := range []string{"ldap pool", "-ldap", "ldap/pool", "x.crl", strings.Repeat("p", 65)} {
		home := t.TempDir()
		k := pinned(t, 1, "db.example:636")
		k.Attrs.SetList(jwk.AttrPurpose, []string{"ldap", bad})
		keydirtest.Write(t, filepath.Join(home, "trusted_hosts.d", "db.json"), keydirtest.JWK(t, k))
		s := Load(HomeOptions(home))
		if p := s.Problems(); len(p) != 1 || !strings.Contains(p[0].Error(), "is not a purpose") {
			t.Errorf("purpose %q: problems %v", bad, p)
		}
	}
}

// TestPinForSomePurposesNeverAdmitsWithoutAPurpose is the case a review
// of the client found (2026-12): the administrator pinned db's key for
// ldap only; a client of purpose pool, which has no pin of db, met a man
// in the middle on first use and accept-new pinned its key for pool.
// Every client without a purpose then admitted that key, because a
// connection without a purpose saw (and was admitted by) every pin. A
// key pinned for some purposes is now refused there, the address's pins
// still making any other key a changed one; a pin for every purpose,
// exact or wildcard, admits as before.
func TestPinForSomePurposesNeverAdmitsWithoutAPurpose(t *testing.T) {
	const addr = "db.example:636"
	home := t.TempDir()
	s := Load(HomeOptions(home))
	for _, k := range []*jwk.Key{forPurposes(t, 1, "ldap"), forPurposes(t, 2, "pool")} {
		if _, err := s.Add(addr, k); err != nil {
			t.Fatal(err)
		}
	}
	wild := pinned(t, 3, "*.example:443")
	wild.Attrs.SetList(jwk.AttrPurpose, []string{"pool"})
	keydirtest.Write(t, filepath.Join(home, "trusted_hosts.d", "wild.json"), keydirtest.JWK(t, wild))
	keydirtest.Write(t, filepath.Join(home, "trusted_hosts.d", "every.json"), keydirtest.JWK(t, pinned(t, 4, "*.every.example")))
	s = Load(HomeOptions(home))
	if p := s.Problems(); len(p) != 0 {
		t.Fatal(p)
	}
	for _, c := range []struct {
		addr, purpose string
		key           int
		want          Verdict
	}{
		{addr, "", 2, Refused},    // the key met by the client of purpose pool
		{addr, "", 1, Refused},    // the administrator's, for ldap only
		{addr, "", 9, Changed},    // the address is pinned all the same
		{addr, "pool", 2, Pinned}, // first use of its own purpose: by design
		{addr, "ldap", 2, Changed},
		{"web.example:443", "", 3, Refused},
		{"web.example:443", "pool", 3, Pinned},
		{"a.every.example:443", "", 4, Pinned},
	} {
		d := s.DecidePurpose(c.addr, c.purpose, key(t, c.key).SPKIHash())
		if d.Verdict != c.want {
			t.Errorf("DecidePurpose(%s, %q, key %d) = %v (%v), want %v", c.addr, c.purpose, c.key, d.Verdict, d.Err, c.want)
		}
	}
	// Pinning the key for every purpose is how to admit it there: a
	// changed key while the pin for pool of another key stands.
	var changed *KeyChangedError
	if _, err := s.Add(addr, forPurposes(t, 1)); !errors.As(err, &changed) {
		t.Fatalf("pinning key 1 for every purpose beside key 2's pin for pool: %v, want a changed key", err)
	}
	if _, err := s.Remove(key(t, 2).Fingerprint()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(addr, forPurposes(t, 1)); err != nil {
		t.Fatal(err)
	}
	if d := Load(HomeOptions(home)).Decide(addr, key(t, 1).SPKIHash()); d.Verdict != Pinned {
		t.Errorf("key 1 pinned for every purpose: %v (%v)", d.Verdict, d.Err)
	}
}
