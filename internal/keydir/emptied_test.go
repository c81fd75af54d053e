package keydir

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// TestChangeAfterEveryFileRemoved: a Change counts what came from the
// new snapshot when the one before holds no file (change, as for a cold
// load): a store emptied (one file with a problem stays), then given
// files again, by a reload of their names and by a full one, reports
// each change, and the snapshot's count of files is its Refs'.
func TestChangeAfterEveryFileRemoved(t *testing.T) {
	home := t.TempDir()
	dir, revDir := filepath.Join(home, "authorized_keys.d"), filepath.Join(home, "revoked_keys.d")
	for i := range 5 {
		keydirtest.Write(t, filepath.Join(dir, fmt.Sprintf("k%d.json", i)), keydirtest.JWK(t, key(t, i)))
	}
	bad := filepath.Join(dir, "bad.json")
	keydirtest.Write(t, bad, []byte("not json"))
	l := New(Config[string]{
		Sources: []Source{{Path: dir, Dir: true}, {Path: revDir, Dir: true, Revocation: true}},
		Home:    home, Convert: fpConvert,
		KeyOf: func(s *string) [32]byte { return sha256.Sum256([]byte(*s)) },
	})
	var got []Change
	l.OnChange(func(c Change) { got = append(got, c) })
	reload := func(what string, want Change, paths ...string) {
		t.Helper()
		got = nil
		l.Reload(paths...)
		if len(got) != 1 {
			t.Fatalf("%s: %d changes, want 1", what, len(got))
		}
		c := got[0]
		c.Generation, c.Took, c.RevocationFailed = 0, 0, false
		if c != want {
			t.Errorf("%s: %+v, want %+v", what, c, want)
		}
		n := 0
		for range l.Snapshot().Refs {
			n++
		}
		if n != l.Snapshot().numFiles() {
			t.Errorf("%s: numFiles %d, Refs %d", what, l.Snapshot().numFiles(), n)
		}
	}
	reload("first", Change{Added: 5, Keys: 5, Skipped: 1})
	for i := range 5 {
		os.Remove(filepath.Join(dir, fmt.Sprintf("k%d.json", i)))
	}
	reload("all removed", Change{Removed: 5, Keys: 0, Skipped: 1})
	a := filepath.Join(dir, "a.json")
	keydirtest.Write(t, a, keydirtest.JWK(t, key(t, 10), key(t, 11)))
	reload("one back, by name", Change{Added: 2, Keys: 2, Skipped: 1}, a)
	os.Remove(a)
	reload("gone, by name", Change{Removed: 2, Keys: 0, Skipped: 1}, a)
	keydirtest.Write(t, a, keydirtest.JWK(t, key(t, 12)))
	r := filepath.Join(revDir, "r.json")
	keydirtest.Write(t, r, keydirtest.JWK(t, key(t, 12)))
	reload("back, full", Change{Added: 1, Revoked: 1, Keys: 1, Skipped: 1})
	os.Remove(a)
	os.Remove(r)
	reload("all gone again", Change{Removed: 1, Unrevoked: 1, Keys: 0, Skipped: 1})
	keydirtest.Replace(t, bad, keydirtest.JWK(t, key(t, 13)))
	reload("the problem file fixed", Change{Added: 1, Keys: 1}, bad)
}
