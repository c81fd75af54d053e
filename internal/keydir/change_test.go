package keydir

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// TestOnChange: each reload reports the keys that came and went, by kind
// (trust or revocation), the keys held and the files skipped; a file
// rewritten with one key swapped counts one key each way, not all of
// them; and a reload of one file among many looks only at that file's
// keys.
func TestOnChange(t *testing.T) {
	home := t.TempDir()
	dir, revDir := filepath.Join(home, "authorized_keys.d"), filepath.Join(home, "revoked_keys.d")
	const many = 300
	for i := 0; i < many; i++ {
		keydirtest.Write(t, filepath.Join(dir, fmt.Sprintf("k%03d.json", i)), keydirtest.JWK(t, key(t, i)))
	}
	var keyed atomic.Int64
	l := New(Config[string]{
		Sources: []Source{{Path: dir, Dir: true}, {Path: revDir, Dir: true, Revocation: true}},
		Home:    home, Convert: fpConvert,
		KeyOf: func(s *string) [32]byte { keyed.Add(1); return sha256.Sum256([]byte(*s)) },
	})
	var got []Change
	stop := l.OnChange(func(c Change) { got = append(got, c) })
	reload := func(what string, want Change, paths ...string) {
		t.Helper()
		got = nil
		keyed.Store(0)
		l.Reload(paths...)
		if len(got) != 1 {
			t.Fatalf("%s: %d changes reported, want 1", what, len(got))
		}
		c := got[0]
		if c.Generation != l.Snapshot().Generation {
			t.Errorf("%s: generation %d, snapshot %d", what, c.Generation, l.Snapshot().Generation)
		}
		c.Generation, c.Took = 0, 0
		if c != want {
			t.Errorf("%s: %+v, want %+v", what, c, want)
		}
	}
	reload("first load", Change{Added: many, Keys: many})

	set := filepath.Join(dir, "set.jwk")
	keydirtest.Write(t, set, keydirtest.JWK(t, key(t, 1000), key(t, 1001), key(t, 1002)))
	reload("a file of three keys", Change{Added: 3, Keys: many + 3}, set)
	if n := keyed.Load(); n != 0 {
		t.Errorf("a new file: the keys of %d entries compared, want none", n)
	}
	keydirtest.Replace(t, set, keydirtest.JWK(t, key(t, 1000), key(t, 1001), key(t, 1003)))
	reload("one key of three swapped", Change{Added: 1, Removed: 1, Keys: many + 3}, set)
	if n := keyed.Load(); n != 6 {
		t.Errorf("one file of three keys changed among %d: the keys of %d entries compared, want 6", many, n)
	}
	keydirtest.Write(t, filepath.Join(revDir, "r.json"), keydirtest.JWK(t, key(t, 7)))
	reload("a key revoked", Change{Revoked: 1, Keys: many + 3})
	if err := os.Remove(filepath.Join(dir, "k000.json")); err != nil {
		t.Fatal(err)
	}
	reload("a file removed", Change{Removed: 1, Keys: many + 2})
	if err := os.Chmod(set, 0o666); err != nil {
		t.Fatal(err)
	}
	reload("a file others may write", Change{Removed: 3, Keys: many - 1, Skipped: 1})
	if err := os.Remove(filepath.Join(revDir, "r.json")); err != nil {
		t.Fatal(err)
	}
	reload("a key unrevoked", Change{Unrevoked: 1, Keys: many - 1, Skipped: 1})

	stop()
	keydirtest.Write(t, filepath.Join(dir, "late.json"), keydirtest.JWK(t, key(t, 2000)))
	got = nil
	l.Reload()
	if len(got) != 0 {
		t.Errorf("a change reported after stop: %+v", got)
	}
}
