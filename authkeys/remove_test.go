package authkeys

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// Remove takes every copy of a key away, whatever form of fingerprint
// names it, and a Lookup after a successful Remove misses. Two files
// holding the same key used to leave the second one authorizing it while
// Remove reported success (Entries hides duplicates).
func TestRemoveTakesEveryCopy(t *testing.T) {
	k, other := key(t, 1), key(t, 2)
	for _, tc := range []struct {
		form string
		fp   string
	}{
		{"SHA256", k.Fingerprint()},
		{"key ID", k.KeyID()},
		{"RFC 7638 thumbprint", k.Thumbprint()},
	} {
		t.Run(tc.form, func(t *testing.T) {
			home := t.TempDir()
			opts := HomeOptions(home)
			d := opts.Dirs[0]
			keydirtest.Write(t, filepath.Join(d, "a.json"), keydirtest.JWK(t, k))
			keydirtest.Write(t, filepath.Join(d, "b.json"), keydirtest.JWK(t, k))
			keydirtest.Write(t, filepath.Join(d, "team.pem"), keydirtest.PEM(t, keydirtest.WithAttrs(k, "name", "c"), other))
			keydirtest.Write(t, filepath.Join(home, "authorized_keys.json"), keydirtest.JWK(t, k))
			s := Load(opts)
			removed, err := s.Remove(tc.fp)
			if err != nil {
				t.Fatalf("Remove(%s): %v", tc.fp, err)
			}
			if len(removed) != 4 {
				t.Errorf("removed %d entries, want the 4 copies", len(removed))
			}
			if _, err := s.LookupKey(k, netip.Addr{}); !errors.As(err, new(*NotAuthorizedError)) {
				t.Errorf("Lookup after Remove: %v, want *NotAuthorizedError", err)
			}
			for _, f := range []string{filepath.Join(d, "a.json"), filepath.Join(d, "b.json"), filepath.Join(home, "authorized_keys.json")} {
				if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s: still there (%v)", f, err)
				}
			}
			if _, err := s.LookupKey(other, netip.Addr{}); err != nil {
				t.Errorf("the other key of team.pem: %v", err)
			}
		})
	}
}

// Removing a name leaves the key's entry under another name, and says so:
// nobody must believe a key gone that still gets in.
func TestRemoveNameReportsKeyStillAuthorized(t *testing.T) {
	k := key(t, 1)
	home := t.TempDir()
	opts := HomeOptions(home)
	keydirtest.Write(t, filepath.Join(opts.Dirs[0], "alice.json"), keydirtest.JWK(t, k))
	keydirtest.Write(t, filepath.Join(opts.Dirs[0], "laptop.json"), keydirtest.JWK(t, k))
	s := Load(opts)
	removed, err := s.Remove("laptop")
	var still *StillAuthorizedError
	if !errors.As(err, &still) || still.Entry.Name != "alice" || len(removed) != 1 {
		t.Fatalf("Remove(laptop) = %v, %v; want the laptop entry removed and *StillAuthorizedError naming alice", removed, err)
	}
	if e, err := s.LookupKey(k, netip.Addr{}); err != nil || e.Name != "alice" {
		t.Errorf("Lookup: %v, %v", e, err)
	}
}

// Unrevoke lifts every copy of a revocation.
func TestUnrevokeTakesEveryCopy(t *testing.T) {
	k := key(t, 1)
	home := t.TempDir()
	opts := HomeOptions(home)
	keydirtest.Write(t, filepath.Join(opts.Dirs[0], "alice.json"), keydirtest.JWK(t, k))
	keydirtest.Write(t, filepath.Join(opts.RevokedDirs[0], "one.json"), keydirtest.JWK(t, k))
	keydirtest.Write(t, filepath.Join(opts.RevokedDirs[0], "two.pem"), keydirtest.PEM(t, k))
	s := Load(opts)
	if _, err := s.Unrevoke(k.Thumbprint()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LookupKey(k, netip.Addr{}); err != nil {
		t.Errorf("Lookup after Unrevoke: %v", err)
	}
}

// Remove("") names nothing: unnamed entries (keys of a single file) have
// the empty name, and it used to remove every one of them.
func TestRemoveEmptyNameRemovesNothing(t *testing.T) {
	home := t.TempDir()
	opts := HomeOptions(home)
	keydirtest.Write(t, filepath.Join(home, "authorized_keys.json"), keydirtest.JWK(t, key(t, 1), key(t, 2)))
	s := Load(opts)
	if removed, err := s.Remove(""); !errors.As(err, new(*NotFoundError)) || len(removed) != 0 {
		t.Fatalf("Remove(\"\") = %v, %v; want *NotFoundError and nothing removed", removed, err)
	}
	if n := len(s.Entries()); n != 2 {
		t.Errorf("%d entries left, want 2", n)
	}
}
