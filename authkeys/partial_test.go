package authkeys

import (
	"net/netip"
	"path/filepath"
	"slices"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// An authorized-keys set with one bad entry (an "expires" that is not a
// time): the other keys are authorized, the bad entry's key is not, and
// the store is incomplete — no unknown key may enroll and no CA may admit
// one in its place, since the skipped entry may have limited it. A
// revocation set with one bad entry still refuses every key.
func TestSetWithOneBadEntry(t *testing.T) {
	home := t.TempDir()
	bad := keydirtest.WithAttrs(key(t, 2), "expires", "tomorrow")
	path := filepath.Join(home, "authorized_keys.json")
	keydirtest.Write(t, path, keydirtest.JWK(t, key(t, 1), bad, key(t, 3)))
	s := Load(HomeOptions(home))
	remote := netip.MustParseAddr("10.0.0.1")
	for _, n := range []int{1, 3} {
		if d := s.Decide(key(t, n).SPKIHash(), remote); d.Verdict != Authorized {
			t.Errorf("key %d: %v (%v), want authorized", n, d.Verdict, d.Err)
		}
	}
	for _, n := range []int{2, 4} {
		if d := s.Decide(key(t, n).SPKIHash(), remote); d.Verdict != Unknown || !d.Incomplete {
			t.Errorf("key %d: %v, incomplete %v; want unknown and incomplete", n, d.Verdict, d.Incomplete)
		}
	}
	p := s.Problems()
	if len(p) != 1 || p[0].Path != path || p[0].Member != "keys[1].expires" || !p[0].Entry {
		t.Fatalf("problems %+v", p)
	}

	rev := filepath.Join(home, "revoked_keys.json")
	keydirtest.Write(t, rev, keydirtest.JWK(t, key(t, 5), keydirtest.WithAttrs(key(t, 6), "expires", "tomorrow")))
	s.Reload()
	for _, n := range []int{1, 3} {
		if d := s.Decide(key(t, n).SPKIHash(), remote); d.Verdict != Revoked {
			t.Errorf("key %d with a bad revocation entry: %v, want revoked", n, d.Verdict)
		}
	}
	if i := slices.IndexFunc(s.Problems(), func(p Problem) bool { return p.Path == rev }); i < 0 || s.Problems()[i].Entry {
		t.Errorf("problems %+v: want the revocation file as a whole", s.Problems())
	}
}
