package authkeys

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// A removal whose file is gone but whose directory cannot be synced
// says so (*atomicfile.UnsyncedError): not "not found", not success with
// nothing removed (found by review).
func TestRemoveSaysItsDirectoryWasNotSynced(t *testing.T) {
	opts := HomeOptions(t.TempDir())
	d := opts.Dirs[0]
	f := filepath.Join(d, "a.json")
	keydirtest.Write(t, f, keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 1), "name", "a")))
	s := Load(opts)
	defer s.Close()
	old := atomicfile.SyncDir
	t.Cleanup(func() { atomicfile.SyncDir = old })
	atomicfile.SyncDir = func(string) error { return errors.New("the disk is gone") }
	removed, err := s.Remove("a")
	if !errors.As(err, new(*atomicfile.UnsyncedError)) || !strings.Contains(err.Error(), "the disk is gone") {
		t.Errorf("Remove with a failed directory sync: removed %d, err %v; want the sync's error", len(removed), err)
	}
}

// The same of a revocation lifted.
func TestUnrevokeSaysItsDirectoryWasNotSynced(t *testing.T) {
	opts := HomeOptions(t.TempDir())
	s := Load(opts)
	defer s.Close()
	if _, err := s.Revoke(key(t, 5)); err != nil {
		t.Fatal(err)
	}
	old := atomicfile.SyncDir
	t.Cleanup(func() { atomicfile.SyncDir = old })
	atomicfile.SyncDir = func(string) error { return errors.New("the disk is gone") }
	removed, err := s.Unrevoke(key(t, 5).Fingerprint())
	if !errors.As(err, new(*atomicfile.UnsyncedError)) || !strings.Contains(err.Error(), "the disk is gone") {
		t.Errorf("Unrevoke with a failed directory sync: removed %d, err %v; want the sync's error", len(removed), err)
	}
}

// Revocations written whose directory cannot be synced: each says so
// (*atomicfile.UnsyncedError) with its file, and the keys are refused.
func TestRevokeAllSaysItsDirectoryWasNotSynced(t *testing.T) {
	opts := HomeOptions(t.TempDir())
	s := Load(opts)
	defer s.Close()
	if _, err := s.Revoke(key(t, 1)); err != nil { // the directory made
		t.Fatal(err)
	}
	old := atomicfile.SyncDir
	t.Cleanup(func() { atomicfile.SyncDir = old })
	atomicfile.SyncDir = func(string) error { return errors.New("the disk is gone") }
	revs, err := s.RevokeAll([]*jwk.Key{key(t, 2), key(t, 3)})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range revs {
		if r.File == "" || !errors.As(r.Err, new(*atomicfile.UnsyncedError)) {
			t.Errorf("key %d: %+v, want its file and an *atomicfile.UnsyncedError", i+2, r)
		}
		if _, ok := s.snap.Load().revoked.Lookup(key(t, i+2).SPKIHash()); !ok {
			t.Errorf("key %d is not refused", i+2)
		}
	}
}

// The same of an entry whose file keeps another (a JWK Set rewritten,
// not removed: the write's own sync fails; found by review).
func TestRemoveFromASetSaysItsDirectoryWasNotSynced(t *testing.T) {
	opts := HomeOptions(t.TempDir())
	f := filepath.Join(opts.Dirs[0], "set.json")
	keydirtest.Write(t, f, keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 1), "name", "a"), keydirtest.WithAttrs(key(t, 2), "name", "b")))
	s := Load(opts)
	defer s.Close()
	old := atomicfile.SyncDir
	t.Cleanup(func() { atomicfile.SyncDir = old })
	atomicfile.SyncDir = func(string) error { return errors.New("the disk is gone") }
	if _, err := s.Remove("a"); !errors.As(err, new(*atomicfile.UnsyncedError)) || !strings.Contains(err.Error(), "the disk is gone") {
		t.Errorf("Remove(a), its set rewritten, the directory not synced: %v, want an *atomicfile.UnsyncedError", err)
	}
}

// A key given twice to RevokeAll, the directory not synced: both say
// so (found by review: the second, fs.ErrExist, said nothing).
func TestRevokeAllTwiceSaysItsDirectoryWasNotSynced(t *testing.T) {
	opts := HomeOptions(t.TempDir())
	s := Load(opts)
	defer s.Close()
	if _, err := s.Revoke(key(t, 1)); err != nil {
		t.Fatal(err)
	}
	old := atomicfile.SyncDir
	t.Cleanup(func() { atomicfile.SyncDir = old })
	atomicfile.SyncDir = func(string) error { return errors.New("the disk is gone") }
	revs, err := s.RevokeAll([]*jwk.Key{key(t, 2), key(t, 2)})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range revs {
		if r.File == "" || !errors.As(r.Err, new(*atomicfile.UnsyncedError)) {
			t.Errorf("revocation %d: %+v, want its file and an *atomicfile.UnsyncedError", i, r)
		}
	}
}
