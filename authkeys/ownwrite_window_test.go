package authkeys

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
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
	opts := revocationsIndexed(t)
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
	s, finish := LoadFor(opts, Lookups{Keys: [][32]byte{key(t, 41).SPKIHash()}})
	defer finish()
	if _, err := s.Add(key(t, 41), "k41", AddNew); !errors.As(err, new(*RevokedError)) {
		t.Fatalf("authorize of a key whose revocation was copied in during revoke's directory sync: %v, want *RevokedError", err)
	}
}

// TestLoadForRevokeAllRecordsItsWritesAlone: RevokeAll of many keys
// writes them all at once (keydir.CreateFiles), each change of the
// directory's names bracketed as a single write's are. Its own writes
// keep the index current — a LoadFor after it reads only the
// revocation it looks up — and a revocation another writer copies in
// between them (while their data syncs, or after the last is placed)
// breaks the chain: authorize of the copied key is refused.
func TestLoadForRevokeAllRecordsItsWritesAlone(t *testing.T) {
	revokeMany := func(t *testing.T, opts Options, from int, copyAt func(step, path string) bool) {
		t.Helper()
		var keys []*jwk.Key
		for i := range 300 { // more than a round of atomicfile.CreateAll
			keys = append(keys, key(t, from+i))
		}
		admin, finish := LoadFor(opts, Lookups{})
		var once sync.Once
		old := atomicfile.Hook
		atomicfile.Hook = func(step, path string) {
			if copyAt != nil && copyAt(step, path) {
				once.Do(func() {
					keydirtest.Write(t, filepath.Join(opts.RevokedDirs[0], "copied.json"), keydirtest.JWK(t, key(t, 41)))
				})
			}
		}
		defer func() { atomicfile.Hook = old }()
		revs, err := admin.RevokeAll(keys)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range revs {
			if r.Err != nil || r.File == "" {
				t.Fatalf("key %d: %v", from+i, r.Err)
			}
		}
		atomicfile.Hook = old
		finish()
	}

	t.Run("own writes", func(t *testing.T) {
		opts := revocationsIndexed(t)
		revokeMany(t, opts, 100, nil)
		s, finish := LoadFor(opts, Lookups{Keys: [][32]byte{key(t, 250).SPKIHash()}})
		defer finish()
		if n := loadedFiles(s); n > 2 {
			t.Errorf("LoadFor of one key after RevokeAll read %d files, want its revocation alone: the index was left stale", n)
		}
		if _, err := s.Add(key(t, 250), "k250", AddNew); !errors.As(err, new(*RevokedError)) {
			t.Errorf("authorize of a key RevokeAll revoked: %v, want *RevokedError", err)
		}
	})
	for _, tc := range []struct {
		name   string
		copyAt func(step, path string) bool
	}{
		{"while their data syncs", func(step, _ string) bool { return step == atomicfile.StepFilled }},
		{"after the last is placed", func() func(step, path string) bool {
			placed := 0
			return func(step, _ string) bool {
				if step == atomicfile.StepPlaced {
					placed++
				}
				return placed == 300
			}
		}()},
	} {
		t.Run("a copy "+tc.name, func(t *testing.T) {
			opts := revocationsIndexed(t)
			revokeMany(t, opts, 100, tc.copyAt)
			s, finish := LoadFor(opts, Lookups{Keys: [][32]byte{key(t, 41).SPKIHash()}})
			defer finish()
			if _, err := s.Add(key(t, 41), "k41", AddNew); !errors.As(err, new(*RevokedError)) {
				t.Fatalf("authorize of a key whose revocation was copied in during RevokeAll: %v, want *RevokedError", err)
			}
		})
	}
}

// revocationsIndexed is a home of 10 authorized keys and a revocation
// (of key 39), the admin index made of both.
func revocationsIndexed(t *testing.T) Options {
	t.Helper()
	opts := fillHome(t, 10)
	s, finish := LoadFor(opts, Lookups{})
	if _, err := s.Revoke(key(t, 39)); err != nil {
		t.Fatal(err)
	}
	finish()
	_, finish = LoadFor(opts, Lookups{})
	finish()
	return opts
}
