package keydir

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// EditFiles edits each file as EditFile does, a file it cannot edit
// failing alone, and makes its removals durable: each directory a file
// was removed from is synced once, after the last removal from it — a
// directory where it only rewrote is synced by the write — and a sync
// that fails fails each file removed there, saying it was removed.
func TestEditFiles(t *testing.T) {
	home := t.TempDir()
	one, two := filepath.Join(home, "one.d"), filepath.Join(home, "two.d")
	l := New(Config[string]{Home: home, Sources: []Source{{Path: one, Dir: true}, {Path: two, Dir: true}}, Convert: fpConvert})
	a, b := key(t, 1), key(t, 2)
	files := []string{
		filepath.Join(one, "a.json"),   // removed
		filepath.Join(two, "set.json"), // rewritten: b taken out
		filepath.Join(one, "ssh"),      // cannot be rewritten
		filepath.Join(one, "b.json"),   // removed
		filepath.Join(two, "gone.json"),
	}
	keydirtest.Write(t, files[0], keydirtest.JWK(t, a))
	keydirtest.Write(t, files[1], keydirtest.JWK(t, a, b))
	keydirtest.Write(t, files[2], keydirtest.SSH(t, a, b))
	keydirtest.Write(t, files[3], keydirtest.JWK(t, b))
	dropB := func(k *jwk.Key) *jwk.Key {
		if k.Equal(b) {
			return nil
		}
		return k
	}
	var synced []string
	old := atomicfile.SyncDir
	t.Cleanup(func() { atomicfile.SyncDir = old })
	atomicfile.SyncDir = func(dir string) error {
		synced = append(synced, dir)
		for _, f := range []string{files[0], files[3]} {
			if filepath.Dir(f) == dir {
				if _, err := os.Lstat(f); err == nil {
					t.Errorf("%s synced before %s was removed", dir, f)
				}
			}
		}
		return old(dir)
	}
	failed := l.EditFiles(files, func(path string) func(*jwk.Key) *jwk.Key {
		if path == files[0] {
			return func(*jwk.Key) *jwk.Key { return nil }
		}
		return dropB
	})
	// two: set.json's rewrite, synced by its write; one: the removals,
	// once, after both.
	if !slices.Equal(synced, []string{two, one}) {
		t.Errorf("directories synced: %v, want %s (the rewrite) then %s once", synced, two, one)
	}
	if len(failed) != 2 || failed[files[2]] == nil || !errors.Is(failed[files[4]], os.ErrNotExist) {
		t.Errorf("failed: %v, want the OpenSSH file and the missing one", failed)
	}
	for _, f := range []string{files[0], files[3]} {
		if _, err := os.Lstat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s not removed: %v", f, err)
		}
	}
	if keys, err := jwk.ReadFile(files[1]); err != nil || len(keys) != 1 || !keys[0].Equal(a) {
		t.Errorf("%s: %v, %v; want a alone", files[1], keys, err)
	}

	// A directory that cannot be synced: the files removed from it fail.
	keydirtest.Write(t, files[0], keydirtest.JWK(t, a))
	atomicfile.SyncDir = func(string) error { return errors.New("the disk is gone") }
	failed = l.EditFiles(files[:1], func(string) func(*jwk.Key) *jwk.Key { return dropB })
	if len(failed) != 0 {
		t.Errorf("nothing removed, yet: %v", failed)
	}
	failed = l.EditFiles(files[:1], func(string) func(*jwk.Key) *jwk.Key { return func(*jwk.Key) *jwk.Key { return nil } })
	if err := failed[files[0]]; err == nil || !strings.Contains(err.Error(), "removed "+files[0]) || !strings.Contains(err.Error(), "the disk is gone") {
		t.Errorf("removed, its directory not synced: %v, want an error saying both", err)
	}
}
