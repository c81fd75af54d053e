package authkeys

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// TestLoadForRecordLeavesOutAFileAddedDuringItsWrite proves that a file
// another writer (config management, cp) adds while an admin command's
// own write is between its temporary file and its placing — the fsync of
// the temporary file, milliseconds, not the "microseconds" docs/design.md
// granted — breaks the command's chain of own writes (found by review,
// 2026-12-05). The bracket's "before" was taken before the temporary file
// was made and "after" once it was placed and the directory synced, so
// the file was in the command's chain and recorded without its records:
// `authorize --name bob` of another key wrote a second key under the name
// the file holds. Fails without the bracket's stamps at the write's steps
// (ownwrites.go, atomicfile.WriteSteps).
func TestLoadForRecordLeavesOutAFileAddedDuringItsWrite(t *testing.T) {
	opts := fillHome(t, 10)
	_, finish := LoadFor(opts, Lookups{})
	finish()
	admin, finishAdmin := LoadFor(opts, Lookups{Keys: [][32]byte{key(t, 40).SPKIHash()}, Names: []string{"alice"}})
	var once sync.Once
	old := atomicfile.Hook
	atomicfile.Hook = func(step, path string) {
		if step == atomicfile.StepFilled && filepath.Base(path) == "alice.json" {
			once.Do(func() {
				// Config management, while authorize's temp file is synced.
				keydirtest.Write(t, filepath.Join(opts.Dirs[0], "team.json"), keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 41), "name", "bob")))
			})
		}
	}
	defer func() { atomicfile.Hook = old }()
	if _, err := admin.Add(key(t, 40), "alice", AddNew); err != nil {
		t.Fatal(err)
	}
	atomicfile.Hook = old
	finishAdmin()
	s, finish := LoadFor(opts, Lookups{Keys: [][32]byte{key(t, 42).SPKIHash()}, Names: []string{"bob"}})
	defer finish()
	if _, err := s.Add(key(t, 42), "bob", AddNew); !errors.As(err, new(*NameExistsError)) {
		t.Fatalf("a second key under the name a file copied in during authorize's write holds: %v, want *NameExistsError", err)
	}
}

// TestLoadForRevokeRecordLeavesOutAFileAddedDuringItsSync proves the same
// for a revocation copied in while revoke's own write of another key syncs
// the directory, once the file is placed (found by review, 2026-12-05):
// "after" was taken after that fsync, so the copy was in revoke's chain,
// and authorize of the copied key went ahead, saying it authorized a key
// every server refuses. Fails without "after" taken once the file is
// placed, before the directory's fsync.
func TestLoadForRevokeRecordLeavesOutAFileAddedDuringItsSync(t *testing.T) {
	opts := fillHome(t, 10)
	s, finish := LoadFor(opts, Lookups{})
	if _, err := s.Revoke(key(t, 39)); err != nil {
		t.Fatal(err)
	}
	finish()
	_, finish = LoadFor(opts, Lookups{})
	finish()
	admin, finishAdmin := LoadFor(opts, Lookups{Keys: [][32]byte{key(t, 40).SPKIHash()}})
	var once sync.Once
	old := atomicfile.Hook
	atomicfile.Hook = func(step, path string) {
		if step == atomicfile.StepPlaced && filepath.Dir(path) == opts.RevokedDirs[0] {
			once.Do(func() {
				keydirtest.Write(t, filepath.Join(opts.RevokedDirs[0], "copied.json"), keydirtest.JWK(t, key(t, 41)))
			})
		}
	}
	defer func() { atomicfile.Hook = old }()
	if _, err := admin.Revoke(key(t, 40)); err != nil {
		t.Fatal(err)
	}
	atomicfile.Hook = old
	finishAdmin()
	s, finish = LoadFor(opts, Lookups{Keys: [][32]byte{key(t, 41).SPKIHash()}})
	defer finish()
	if _, err := s.Add(key(t, 41), "k41", AddNew); !errors.As(err, new(*RevokedError)) {
		t.Fatalf("authorize of a key whose revocation was copied in during revoke's directory sync: %v, want *RevokedError", err)
	}
}
