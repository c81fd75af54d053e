package authkeys

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// A name is one client's identity: Add refuses a name that an entry of
// another file already holds with another key — a "name" member in a
// file of another name, a member of a JWK Set in the single file — naming
// that file, in either mode, and writes nothing (found by review: only
// NAME.json was checked, so a second key could take a client's name).
func TestAddRefusesANameHeldElsewhere(t *testing.T) {
	home := t.TempDir()
	opts := HomeOptions(home)
	bob := filepath.Join(opts.Dirs[0], "bob.json")
	keydirtest.Write(t, bob, keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 1), "name", "alice")))
	set := opts.Files[0]
	keydirtest.Write(t, set, keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 2), "name", "carol"), keydirtest.WithAttrs(key(t, 3), "name", "dave")))
	s := Load(opts)
	for _, c := range []struct {
		name string
		file string
		held int
	}{{"alice", bob, 1}, {"dave", set, 3}} {
		for _, mode := range []AddMode{AddNew, Replace} {
			var ne *NameExistsError
			_, err := s.Add(key(t, 9), c.name, mode)
			if !errors.As(err, &ne) || ne.File != c.file || ne.Fingerprint != key(t, c.held).Fingerprint() {
				t.Fatalf("Add(%q, mode %d): got %v, want the name taken in %s", c.name, mode, err, c.file)
			}
		}
		if _, err := os.Lstat(filepath.Join(opts.Dirs[0], c.name+".json")); err == nil {
			t.Fatalf("%s.json was written", c.name)
		}
	}
	if _, err := s.LookupKey(key(t, 9), netip.Addr{}); err == nil {
		t.Fatal("the refused key was authorized")
	}
	// The client's next key beside its entry (rotation) shares the name
	// by design.
	if _, err := s.Add(key(t, 10), "alice", AddBeside); err != nil {
		t.Fatalf("AddBeside: %v", err)
	}
	// A name nobody holds is free.
	if _, err := s.Add(key(t, 9), "erin", AddNew); err != nil {
		t.Fatal(err)
	}
}

// An admin command's narrowed store (LoadFor) finds the file holding the
// name through the admin index's name term, without reading the rest of
// the store — also when the command did not look the name up (Extend).
func TestLoadForAddFindsTheNameThroughTheIndex(t *testing.T) {
	opts := fillHome(t, 50)
	bob := filepath.Join(opts.Dirs[0], "bob.json")
	keydirtest.Write(t, bob, keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 100), "name", "alice")))
	_, finish := LoadFor(opts, Lookups{}) // makes the index
	finish()
	for _, l := range []Lookups{
		{Keys: [][32]byte{key(t, 101).SPKIHash()}, Names: []string{"alice"}},
		{Keys: [][32]byte{key(t, 101).SPKIHash()}},
	} {
		s, finish := LoadFor(opts, l)
		var ne *NameExistsError
		if _, err := s.Add(key(t, 101), "alice", AddNew); !errors.As(err, &ne) || ne.File != bob {
			t.Fatalf("lookups %v: got %v, want the name taken in %s", l, err, bob)
		}
		if n := loadedFiles(s); n != 1 {
			t.Fatalf("lookups %v: read %d files, want 1 (bob.json, by its name)", l, n)
		}
		finish()
	}
}
