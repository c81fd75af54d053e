package cli

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/internal/atomicfile"
)

// TestSyncRemovalIsDurable: the file of an entry gone from the store is
// removed durably — its directory synced once it is gone — before sync
// forgets it: brought back by a power loss, it would be a file sync no
// longer owns, and the key would stay authorized.
func TestSyncRemovalIsDurable(t *testing.T) {
	dir := t.TempDir()
	s, _, _ := testSyncer(t, dir)
	p := filepath.Join(dir, "k")
	writePublicKey(t, p, nil)
	if _, err := s.mirror([]StoreEntry{{Kind: StoreAuthorized, Name: "old.json", Value: readFile(t, p)}}, syncAt{}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(string(s.home), "authorized_keys.d", "old.json")
	synced := false
	old := atomicfile.SyncDir
	t.Cleanup(func() { atomicfile.SyncDir = old })
	atomicfile.SyncDir = func(d string) error {
		if d == filepath.Dir(file) {
			if _, err := os.Lstat(file); err == nil {
				t.Errorf("%s synced while %s is still there", d, file)
			}
			synced = true
		}
		return old(d)
	}
	if _, err := s.mirror(nil, syncAt{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(file); !os.IsNotExist(err) {
		t.Fatalf("%s not removed: %v", file, err)
	}
	if !synced {
		t.Errorf("%s removed, its directory not synced", file)
	}
}
