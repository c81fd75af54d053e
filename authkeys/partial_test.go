package authkeys

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	// The skipped entry's key is known (key 2): key 4 cannot be in it,
	// and its refusal names no skipped input.
	var na *NotAuthorizedError
	if d := s.Decide(key(t, 4).SPKIHash(), remote); !errors.As(d.Err, &na) || na.First != nil || na.Skipped != 0 {
		t.Errorf("key 4: %v; want a plain *NotAuthorizedError", d.Err)
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

// A key in no file that loaded, while files whose keys are not known were
// skipped, is refused naming the first of them: it may be in one, and
// "not authorized" alone sends the administrator looking for an entry
// where a whole file is missing. The error unwraps to the file's problem.
func TestNotAuthorizedNamesSkippedFiles(t *testing.T) {
	home := t.TempDir()
	dir := filepath.Join(home, "authorized_keys.d")
	keydirtest.Write(t, filepath.Join(dir, "alice.jwk"), keydirtest.JWK(t, key(t, 1)))
	bad := filepath.Join(dir, "bob.jwk")
	keydirtest.Write(t, bad, []byte("{not json"))
	s := Load(HomeOptions(home))
	remote := netip.MustParseAddr("10.0.0.1")
	if d := s.Decide(key(t, 1).SPKIHash(), remote); d.Verdict != Authorized {
		t.Fatalf("alice: %v (%v), want authorized", d.Verdict, d.Err)
	}
	d := s.Decide(key(t, 2).SPKIHash(), remote)
	var na *NotAuthorizedError
	var p Problem
	if d.Verdict != Unknown || !d.Incomplete || !errors.As(d.Err, &na) || na.Skipped != 1 || na.First == nil || na.First.Path != bad ||
		!errors.As(d.Err, &p) || p.Path != bad {
		t.Fatalf("a key while %s is skipped: %v, incomplete %v, %#v; want unknown, incomplete, naming the file", bad, d.Verdict, d.Incomplete, d.Err)
	}
	if msg := d.Err.Error(); !strings.Contains(msg, "is not authorized by the inputs that loaded; it may be in the one skipped, "+bad+":") {
		t.Errorf("message %q", msg)
	}

	keydirtest.Write(t, filepath.Join(dir, "carol.jwk"), []byte("[]"))
	s.Reload()
	d = s.Decide(key(t, 2).SPKIHash(), remote)
	if !errors.As(d.Err, &na) || na.Skipped != 2 || !strings.Contains(d.Err.Error(), "it may be in one of 2 skipped (files, feeds, entries), the first "+bad+":") {
		t.Errorf("two files skipped: %v", d.Err)
	}

	for _, f := range []string{bad, filepath.Join(dir, "carol.jwk")} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	s.Reload()
	if d := s.Decide(key(t, 2).SPKIHash(), remote); d.Incomplete || !errors.As(d.Err, &na) || na.First != nil || d.Err.Error() != "authkeys: key "+key(t, 2).Fingerprint()+" is not authorized" {
		t.Errorf("no file skipped: %v, incomplete %v", d.Err, d.Incomplete)
	}
}
