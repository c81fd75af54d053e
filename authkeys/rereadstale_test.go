package authkeys

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// A file that was briefly out of place (a non-atomic rewrite, a rename
// away and back) when the first step read it again for a thumbprint, and
// is back with the content the store loaded by the proof, keeps its
// number and generation across the proof's reload (same content sum):
// the Finder's read in the first step (no keys) must not be used
// for it — the key is loaded, authorized, and the removal must take it,
// not say "not found".
func TestRemoveByThumbprintAfterAFileCameBackUnchanged(t *testing.T) {
	recordStamps(t)
	k := key(t, 3)
	opts := fillHome(t, 3) // k0..k2: key 3 is in ops.json only
	ops := filepath.Join(opts.Dirs[0], "ops.json")
	away := filepath.Join(t.TempDir(), "ops.json")
	keydirtest.Write(t, ops, keydirtest.JWK(t, key(t, 50), k))
	for _, narrowed := range []bool{false, true} {
		var s *Store
		finish := func() {}
		if narrowed {
			_, f := LoadFor(opts, Lookups{})
			f()
			s, finish = LoadFor(opts, lookupsOf([]string{k.Thumbprint()}))
		} else {
			s = Load(opts)
		}
		if err := os.Rename(ops, away); err != nil { // out of place as the command starts
			t.Fatal(err)
		}
		removeBeforeProof = func() {
			if err := os.Rename(away, ops); err != nil { // back, as loaded
				t.Fatal(err)
			}
		}
		got := s.RemoveAll([]string{k.Thumbprint()})
		removeBeforeProof = nil
		finish()
		if _, err := Load(opts).LookupKey(k, netip.Addr{}); err == nil {
			t.Errorf("narrowed %v: RemoveAll said %v (removed %d), and the key is still authorized in ops.json", narrowed, got[0].Err, len(got[0].Removed))
			if errors.As(got[0].Err, new(*NotFoundError)) {
				t.Errorf("narrowed %v: \"not found\" of a key the proved store holds", narrowed)
			}
		}
		if _, err := os.Stat(ops); err != nil {
			keydirtest.Write(t, ops, keydirtest.JWK(t, key(t, 50), k))
		}
	}
}

// A file the removal could not rewrite because the rule refuses it now
// (made writable by others since the load) still holds the key: the
// reload after the failed write leaves it out of the snapshot as a
// Problem, and keepFailed's rematch, not seeing it, must not take its
// refusal off the query's error and say "not found" (before 65f22600:
// the refusal).
func TestRemoveAllKeepsTheRefusalOfAFileLeftOutAsAProblem(t *testing.T) {
	recordStamps(t)
	k := key(t, 3)
	opts := fillHome(t, 3)
	ops := filepath.Join(opts.Dirs[0], "ops.json")
	keydirtest.Write(t, ops, keydirtest.JWK(t, key(t, 50), k))
	s := Load(opts)
	if err := os.Chmod(ops, 0o666); err != nil {
		t.Fatal(err)
	}
	got := s.RemoveAll([]string{k.Fingerprint()})
	if got[0].Err == nil || errors.As(got[0].Err, new(*NotFoundError)) {
		t.Errorf("RemoveAll: %v; want ops.json's refusal: it still holds the key", got[0].Err)
	}
}
