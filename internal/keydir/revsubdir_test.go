//go:build unix

package keydir

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// A directory inside a revocation directory fails closed: the loader
// reads no subdirectory, so revocations put in one would silently not be
// in effect (found by review of session 37). One inside a key directory
// is still skipped, and one named with a dot is ignored in both.
func TestRevocationSubdirectoryFailsClosed(t *testing.T) {
	home := t.TempDir()
	keys, rev := filepath.Join(home, "authorized_keys.d"), filepath.Join(home, "revoked_keys.d")
	keydirtest.Write(t, filepath.Join(keys, "a.json"), keydirtest.JWK(t, key(t, 1)))
	keydirtest.Write(t, filepath.Join(rev, "r.json"), keydirtest.JWK(t, key(t, 2)))
	for _, d := range []string{filepath.Join(keys, "sub"), filepath.Join(rev, ".hidden"), filepath.Join(home, "elsewhere")} {
		keydirtest.Write(t, filepath.Join(d, "x.json"), keydirtest.JWK(t, key(t, 3)))
	}
	l := newLoader(Source{Path: keys, Dir: true}, Source{Path: rev, Dir: true, Revocation: true})
	defer l.Close()
	if s := l.Reload(); s.RevocationErr != nil || len(s.Problems) != 0 {
		t.Fatalf("a key directory's subdirectory and a dotted one: RevocationErr %v, problems %v", s.RevocationErr, s.Problems)
	}
	failsClosed := func(what, name string) {
		t.Helper()
		s := l.Reload()
		if !errors.Is(s.RevocationErr, ErrRevocationSubdirectory) {
			t.Fatalf("%s: RevocationErr = %v, want ErrRevocationSubdirectory", what, s.RevocationErr)
		}
		want := filepath.Join(rev, name)
		if len(s.Problems) != 1 || s.Problems[0].Path != want {
			t.Fatalf("%s: problems %v, want one naming %s", what, s.Problems, want)
		}
		var sub *RevocationSubdirectoryError
		if !errors.As(s.RevocationErr, &sub) || sub.Path != want {
			t.Fatalf("%s: RevocationErr %v names no *RevocationSubdirectoryError of %s", what, s.RevocationErr, want)
		}
	}
	sub := filepath.Join(rev, "old")
	keydirtest.Write(t, filepath.Join(sub, "x.json"), keydirtest.JWK(t, key(t, 1)))
	failsClosed("a subdirectory", "old")
	if err := os.RemoveAll(sub); err != nil {
		t.Fatal(err)
	}
	if s := l.Reload(); s.RevocationErr != nil {
		t.Fatalf("the subdirectory removed: %v", s.RevocationErr)
	}
	if err := os.Symlink(filepath.Join(home, "elsewhere"), filepath.Join(rev, "linked")); err != nil {
		t.Fatal(err)
	}
	failsClosed("a link to a directory", "linked")
}
