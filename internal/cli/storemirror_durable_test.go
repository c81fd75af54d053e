package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/keydir"
)

// TestStoreMirrorKeptAfterRemovingWhatTheDeltaBrought: a command that
// removes an entry the mirror's delta wrote moments before (another admin
// authorized it; this one removes it) leaves the manifest in place. The
// sync before the manifest once failed on the file the command had
// removed, dropped the manifest, and the next command rebuilt the mirror
// whole (found by review).
func TestStoreMirrorKeptAfterRemovingWhatTheDeltaBrought(t *testing.T) {
	h := t.TempDir()
	st := newMemStore(StoreEntry{Kind: StoreAuthorized, Name: "a.json", Value: []byte("A")})
	mirrorEdit(t, h, st, nil)
	st.put(StoreAuthorized, "n.json", []byte("N")) // another admin
	changes, _ := mirrorEdit(t, h, st, func(dir string) {
		if err := keydir.RemoveFile(filepath.Join(dir, StoreAuthorized+".d", "n.json")); err != nil {
			t.Fatal(err)
		}
	})
	if len(changes) != 1 || changes[0].Name != "n.json" || changes[0].Value != nil {
		t.Fatalf("changes %+v, want n.json removed", changes)
	}
	if _, kept := mirrorEdit(t, h, st, nil); !kept {
		t.Error("the command after it rebuilt the mirror: the manifest was dropped")
	}
}

// restore makes st as it was at revision backup, its later revisions
// gone (etcd restored from a backup without --bump-revision: the
// revisions after it are given to other writes).
func (s *memStore) restore(backup int64) {
	for r := backup + 1; r <= s.revision; r++ {
		delete(s.at, r)
	}
	s.revision = backup
}

// TestStoreMirrorTellsARestoreThatLostARemoval: a removal leaves no
// revision on an entry, so neither Top nor the witness tells a history
// that lost the mirror's own removal; the count of keys at the mirror's
// revision does, once the store has moved past it. Without it the mirror
// lacked an entry the store had: a second --remove of it said there was
// none (found by review, on a real etcd).
func TestStoreMirrorTellsARestoreThatLostARemoval(t *testing.T) {
	h := t.TempDir()
	st := newMemStore(
		StoreEntry{Kind: StoreAuthorized, Name: "a.json", Value: []byte("A")},
		StoreEntry{Kind: StoreTrusted, Name: "p.json", Value: []byte("P")})
	mirrorEdit(t, h, st, nil)
	backup := st.revision
	mirrorEdit(t, h, st, func(dir string) {
		if err := keydir.RemoveFile(filepath.Join(dir, StoreTrusted+".d", "p.json")); err != nil {
			t.Fatal(err)
		}
	})
	if _, ok := st.find(st.revision, StoreTrusted, "p.json"); ok {
		t.Fatal("p.json was not removed from the store")
	}
	st.restore(backup)
	st.write(nil) // elsewhere in the cluster, at the removal's revision
	st.write(nil)
	if _, kept := mirrorEdit(t, h, st, nil); kept {
		t.Error("the mirror was kept over a history that lost its removal")
	}
	if _, err := os.Lstat(mirrorFile(t, h, StoreTrusted, "p.json")); err != nil {
		t.Errorf("the mirror lacks p.json, which the restored store has: %v", err)
	}
}

// TestStoreMirrorTellsARestoreAfterItsWitnessWent: the mirror's own
// removal of the entry it wrote last takes its witness; a restore to
// before both, whose new history writes an entry at a revision not above
// Top, is then told by the count (found by review).
func TestStoreMirrorTellsARestoreAfterItsWitnessWent(t *testing.T) {
	h := t.TempDir()
	st := newMemStore(StoreEntry{Kind: StoreAuthorized, Name: "a.json", Value: []byte("A")})
	mirrorEdit(t, h, st, nil)
	backup := st.revision
	n1 := func(dir string) string { return filepath.Join(dir, StoreAuthorized+".d", "n1.json") }
	mirrorEdit(t, h, st, func(dir string) {
		if err := os.WriteFile(n1(dir), []byte("N1"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	mirrorEdit(t, h, st, func(dir string) {
		if err := keydir.RemoveFile(n1(dir)); err != nil {
			t.Fatal(err)
		}
	})
	st.restore(backup)
	st.put(StoreRevoked, "other.json", []byte("O")) // at n1's old revision, not above Top
	st.write(nil)                                   // elsewhere
	st.put(StoreAuthorized, "later.json", []byte("L"))
	mirrorEdit(t, h, st, nil)
	if _, err := os.Lstat(mirrorFile(t, h, StoreRevoked, "other.json")); err != nil {
		t.Errorf("the mirror lacks the revocation other.json, which the restored store has: %v", err)
	}
}

// TestStoreMirrorWitnessOfAnotherKind: an entry the mirror does not hold
// (a kind of a later keytool) written last raises Top but is no witness,
// which the manifest could not name: the manifest stays readable and the
// mirror is kept (found by review: it was rebuilt).
func TestStoreMirrorWitnessOfAnotherKind(t *testing.T) {
	h := t.TempDir()
	st := newMemStore(StoreEntry{Kind: StoreAuthorized, Name: "a.json", Value: []byte("A")})
	mirrorEdit(t, h, st, nil)
	st.put("future_kind", "x.json", []byte("X"))
	mirrorEdit(t, h, st, nil)
	if _, kept := mirrorEdit(t, h, st, nil); !kept {
		t.Error("the mirror was rebuilt after an entry of another kind was the last write")
	}
}

// TestStoreMirrorCompactedDuringTheCommand: the store compacting the
// mirror's revision while a command runs fails the command with what to
// do — nothing was written, run it again — and the next command rebuilds
// the mirror (found by review: the error named only etcd's revision).
func TestStoreMirrorCompactedDuringTheCommand(t *testing.T) {
	h := t.TempDir()
	st := newMemStore(StoreEntry{Kind: StoreAuthorized, Name: "a.json", Value: []byte("A")})
	mirrorEdit(t, h, st, nil)
	m := syncedMirror(t, h, st)
	o := m.observe()
	if err := os.WriteFile(filepath.Join(m.dir, StoreAuthorized+".d", "n.json"), []byte("N"), 0o644); err != nil {
		t.Fatal(err)
	}
	st.write(nil)
	st.compacted = st.revision
	_, err := m.changes(context.Background(), st, o)
	m.settle(err == nil)
	m.close()
	if !errors.Is(err, ErrStoreCompacted) || !strings.Contains(err.Error(), "nothing was written to it: run the command again") {
		t.Fatalf("compacted during the command: %v; want ErrStoreCompacted saying to run it again", err)
	}
	if _, kept := mirrorEdit(t, h, st, nil); kept {
		t.Error("the mirror was kept after a command that could not compare its files")
	}
}
