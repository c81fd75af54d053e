package authkeys

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// A removal whose file is gone but whose directory cannot be synced
// says so (*keydir.UnsyncedError): not "not found", not success with
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
	if !errors.As(err, new(*keydir.UnsyncedError)) || !strings.Contains(err.Error(), "the disk is gone") {
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
	if !errors.As(err, new(*keydir.UnsyncedError)) || !strings.Contains(err.Error(), "the disk is gone") {
		t.Errorf("Unrevoke with a failed directory sync: removed %d, err %v; want the sync's error", len(removed), err)
	}
}
