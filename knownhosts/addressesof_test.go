package knownhosts

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// TestAddressesOf: every positive address a key is pinned for, across
// files, in normal form and once each; negated patterns and other keys'
// addresses are left out, revoked keys' files are not pins, and a pin the
// store itself adds shows at once.
func TestAddressesOf(t *testing.T) {
	s, opts := load(t, map[string]*jwk.Key{
		"a.json": pinned(t, 1, "Web.Example.COM:443", "10.0.0.5:443", "*.lab.example", "!secret.lab.example"),
		"b.json": pinned(t, 1, "web.example.com:443", "[2001:DB8::1]:443"), // a duplicate, and one more
		"c.json": pinned(t, 2, "other.example:443"),
	})
	want := []string{"web.example.com:443", "10.0.0.5:443", "*.lab.example", "[2001:db8::1]:443"}
	got := s.AddressesOf(key(t, 1).SPKIHash())
	slices.Sort(got) // files load in name order; compare as sets, and check order below
	sorted := slices.Sorted(slices.Values(want))
	if !slices.Equal(got, sorted) {
		t.Fatalf("AddressesOf = %q, want %q", got, sorted)
	}
	if got := s.AddressesOf(key(t, 1).SPKIHash()); !slices.Equal(got[:3], want[:3]) {
		t.Errorf("not in file order: %q", got)
	}
	if got := s.AddressesOf(key(t, 3).SPKIHash()); got != nil {
		t.Errorf("an unpinned key: %q", got)
	}

	if _, err := s.Add("new.example:8443", key(t, 3)); err != nil {
		t.Fatal(err)
	}
	if got := s.AddressesOf(key(t, 3).SPKIHash()); !slices.Equal(got, []string{"new.example:8443"}) {
		t.Errorf("after Add: %q", got)
	}

	// A key listed only in a revocation file is pinned nowhere.
	keydirtest.Write(t, filepath.Join(opts.RevokedDirs[0], "k4.json"), keydirtest.JWK(t, key(t, 4).PublicKey()))
	if got := Load(opts).AddressesOf(key(t, 4).SPKIHash()); got != nil {
		t.Errorf("a revoked key: %q", got)
	}
}
