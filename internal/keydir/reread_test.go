package keydir

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/internal/trustfile"
	"github.com/keytool/keytool/jwk"
)

// TestRereadFollowsTheRule: the admin paths that read a loaded file again
// — EditFile (authorize/revoke --remove, trust-host --remove), Find by a
// fingerprint the entries do not hold (a thumbprint) — read it under the
// rule its source is loaded with, as a reload would now: a file made
// writable by others since the load, or replaced by a link into a
// directory others may write, or by a link to nothing (a problem, never a
// file gone), is refused with the rule's error naming the file, and
// nothing is written. They read it with trustfile.Read,
// which checks neither owner, nor mode, nor a link's directories: a file
// changed between a command's load and its edit was rewritten — mode
// 0666 kept, a link replaced by a file — and matched (found by review).
func TestRereadFollowsTheRule(t *testing.T) {
	a, b := key(t, 1), key(t, 2)
	drop := func(k *jwk.Key) *jwk.Key {
		if k.Equal(a) {
			return nil
		}
		return k
	}
	spki := spkiOf
	all := func(int) bool { return true }
	thumb, err := jwk.ParseFingerprint(a.Thumbprint())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		spoil    func(t *testing.T, file string)
		link     bool // file is a link once spoiled
		dangling bool // ... to nothing: a *trustfile.LinkError
	}{
		{"mode 0666", func(t *testing.T, file string) {
			if err := os.Chmod(file, 0o666); err != nil {
				t.Fatal(err)
			}
		}, false, false},
		{"link to a directory others may write", func(t *testing.T, file string) {
			open := t.TempDir()
			if err := os.Chmod(open, 0o777); err != nil {
				t.Fatal(err)
			}
			there := filepath.Join(open, "keys.json")
			keydirtest.Write(t, there, keydirtest.JWK(t, a, b))
			if err := os.Remove(file); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(there, file); err != nil {
				t.Fatal(err)
			}
		}, true, false},
		{"dangling link", func(t *testing.T, file string) {
			if err := os.Remove(file); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join(filepath.Dir(file), "gone.json"), file); err != nil {
				t.Fatal(err)
			}
		}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			dir := filepath.Join(home, "authorized_keys.d")
			file := filepath.Join(dir, "keys.json")
			keydirtest.Write(t, file, keydirtest.JWK(t, a, b))
			l := newSPKILoader(home, Source{Path: dir, Dir: true})
			snap := l.Reload()
			if len(snap.Problems) != 0 || len(snap.Files()) != 1 {
				t.Fatalf("load: %v", snap.Problems)
			}
			tc.spoil(t, file)
			before, _ := os.ReadFile(file) // nil for a dangling link
			refused := func(what string, err error) {
				t.Helper()
				var pe *trustfile.PermissionError
				var le *trustfile.LinkError
				switch {
				case tc.dangling && !errors.As(err, &le):
					t.Errorf("%s: %v, want a *trustfile.LinkError", what, err)
				case !tc.dangling && !errors.As(err, &pe):
					t.Errorf("%s: %v, want a *trustfile.PermissionError", what, err)
				case !strings.Contains(err.Error(), file):
					t.Errorf("%s: %q does not name %s", what, err, file)
				}
			}

			found, err := l.Find(snap, thumb, spki, all)
			refused("Find by thumbprint", err)
			if len(found) != 0 {
				t.Errorf("Find by thumbprint matched %d entries of a file the rule refuses", len(found))
			}
			_, err = l.EditFile(file, drop)
			refused("EditFile", err)
			if after, _ := os.ReadFile(file); !bytes.Equal(after, before) {
				t.Errorf("EditFile refused, yet the file changed")
			}
			if lfi, err := os.Lstat(file); err != nil || (lfi.Mode()&os.ModeSymlink != 0) != tc.link {
				t.Errorf("EditFile refused, yet the link was replaced (%v)", err)
			}
		})
	}
}

// TestFindInAFileWithASkippedEntry: Find by a thumbprint matches the keys
// of a file one of whose entries was skipped — the loader trusts the
// file's other entries (a Problem with Entry set), so a removal must see
// them. Find parsed the file whole (jwk.ParseAnyUse), failed on the bad
// entry and passed the file over: "authorize --remove THUMBPRINT" said
// not found of a key the file authorizes (found by review).
func TestFindInAFileWithASkippedEntry(t *testing.T) {
	home := t.TempDir()
	dir := filepath.Join(home, "authorized_keys.d")
	a := key(t, 1)
	set := `{"keys":[` + string(keydirtest.JWK(t, a)) + `,{"kty":"OKP","crv":"Ed25519","x":"bad"}]}`
	keydirtest.Write(t, filepath.Join(dir, "team.json"), []byte(set))
	l := newSPKILoader(home, Source{Path: dir, Dir: true})
	snap := l.Reload()
	if len(snap.Files()) != 1 || len(snap.Problems) != 1 || !snap.Problems[0].Entry {
		t.Fatalf("load: %d files, problems %v; want the file loaded and its second entry skipped", len(snap.Files()), snap.Problems)
	}
	thumb, err := jwk.ParseFingerprint(a.Thumbprint())
	if err != nil {
		t.Fatal(err)
	}
	found, err := l.Find(snap, thumb, func(s *[32]byte) [32]byte { return *s }, func(int) bool { return true })
	if err != nil || len(found) != 1 {
		t.Fatalf("Find by thumbprint: %d found, %v; want the file's good entry", len(found), err)
	}
}

// A Finder reads a file again once for all its fingerprints and walks
// (5,000 fingerprints removed from a store of 20,000 read 25 million
// files): a walk of a later snapshot goes by that read, here one from
// before the file was made writable by others — the command's own load,
// as a removal's proof, reads a changed file anew — and a version of the
// file a reload read anew is read again, whatever number the loader gives
// it: its refusal then counts.
func TestFinderReadsAFileOnceForEachVersion(t *testing.T) {
	a, b := key(t, 1), key(t, 2)
	spki := spkiOf
	all := func(int) bool { return true }
	thumbA, _ := jwk.ParseFingerprint(a.Thumbprint())
	thumbB, _ := jwk.ParseFingerprint(b.Thumbprint())
	home := t.TempDir()
	dir := filepath.Join(home, "authorized_keys.d")
	fileA, fileB := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	keydirtest.Write(t, fileA, keydirtest.JWK(t, a))
	keydirtest.Write(t, fileB, keydirtest.JWK(t, b))
	l := newSPKILoader(home, Source{Path: dir, Dir: true})
	snap := l.Reload()
	finder := l.NewFinder([]jwk.Fingerprint{thumbA, thumbB}, spki, all)
	for _, fp := range []jwk.Fingerprint{thumbA, thumbB} {
		found, err := finder.Find(snap, fp)
		if err != nil || len(found) != 1 {
			t.Fatalf("Find(%s): %d found, %v; want 1", fp, len(found), err)
		}
	}
	keydirtest.Write(t, fileB, keydirtest.JWK(t, b, key(t, 3))) // a new snapshot, a.json in it as it was
	if snap = l.Reload(); len(snap.Problems) != 0 {
		t.Fatalf("reload: %v", snap.Problems)
	}
	if err := os.Chmod(fileA, 0o666); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Find(snap, thumbA, spki, all); err == nil {
		t.Fatal("Loader.Find: no refusal of a.json, made writable by others")
	}
	if found, err := finder.Find(snap, thumbA); err != nil || len(found) != 1 {
		t.Errorf("the Finder's Find on the new snapshot: %d found, %v; want a.json's copy, as read before", len(found), err)
	}
	if err := os.Chmod(fileA, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, keys := range [][]*jwk.Key{{a, b}, {b, a}} { // twice: a number freed is given again
		keydirtest.WriteInPlace(t, fileA, keydirtest.JWK(t, keys...))
		if snap = l.Reload(); len(snap.Problems) != 0 {
			t.Fatalf("reload: %v", snap.Problems)
		}
	}
	if err := os.Chmod(fileA, 0o666); err != nil { // after the reload read it
		t.Fatal(err)
	}
	if found, err := finder.Find(snap, thumbB); err == nil {
		t.Errorf("Find after a reload: %d found, no refusal of a.json's new version", len(found))
	}
}

// A read of a file that did not hold the loaded content (rewritten in
// place, not yet whole) must not stand for the version the loader keeps
// when the file comes back with that content: the reload keeps its
// number and generation (same content sum), and a Finder must find its
// copy as Loader.Find does.
func TestFinderAfterAFileCameBackUnchanged(t *testing.T) {
	a := key(t, 1)
	spki := spkiOf
	all := func(int) bool { return true }
	thumbA, _ := jwk.ParseFingerprint(a.Thumbprint())
	home := t.TempDir()
	dir := filepath.Join(home, "authorized_keys.d")
	fileA := filepath.Join(dir, "a.json")
	content := keydirtest.JWK(t, a)
	keydirtest.Write(t, fileA, content)
	l := newSPKILoader(home, Source{Path: dir, Dir: true})
	snap := l.Reload()
	finder := l.NewFinder([]jwk.Fingerprint{thumbA}, spki, all)
	keydirtest.WriteInPlace(t, fileA, nil) // truncated: the writer not done yet
	if found, err := finder.Find(snap, thumbA); err != nil || len(found) != 0 {
		t.Fatalf("Find of the truncated file: %d found, %v", len(found), err)
	}
	keydirtest.WriteInPlace(t, fileA, content) // done: the content the loader holds
	snap = l.Reload()
	if found, err := l.Find(snap, thumbA, spki, all); err != nil || len(found) != 1 {
		t.Fatalf("Find: %d found, %v; want 1", len(found), err)
	}
	if found, err := finder.Find(snap, thumbA); err != nil || len(found) != 1 {
		t.Errorf("the Finder's Find after the reload: %d found, %v; want a.json's copy (the truncated read stood for it)", len(found), err)
	}
}
