package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/atomicfile"
)

// TestSyncRemovalIsDurable: the files of entries gone from the store are
// removed durably — their directory synced once they are all gone, once
// for all of them, not once a file — before sync's manifest lets them
// go: brought back by a power loss, a file the manifest no longer names
// would be one sync does not own, and its key would stay authorized.
// Where the directory cannot be synced, the manifest keeps them (the
// next pass finds them gone) and sync says so.
func TestSyncRemovalIsDurable(t *testing.T) {
	dir := t.TempDir()
	s, _, errOut := testSyncer(t, dir)
	var entries []StoreEntry
	var files []string
	for i := range 5 {
		p := filepath.Join(dir, fmt.Sprint("k", i))
		writePublicKey(t, p, nil)
		name := fmt.Sprintf("old%d.json", i)
		entries = append(entries, StoreEntry{Kind: StoreAuthorized, Name: name, Value: readFile(t, p)})
		files = append(files, filepath.Join(string(s.home), "authorized_keys.d", name))
	}
	if _, err := s.mirror(entries, syncAt{}); err != nil {
		t.Fatal(err)
	}
	syncs := 0
	var failed error
	old := atomicfile.SyncDir
	t.Cleanup(func() { atomicfile.SyncDir = old })
	atomicfile.SyncDir = func(d string) error {
		if d == filepath.Dir(files[0]) {
			syncs++
			for _, f := range files[:2] {
				if _, err := os.Lstat(f); err == nil {
					t.Errorf("%s synced while %s is still there", d, f)
				}
			}
			if failed != nil {
				return failed
			}
		}
		return old(d)
	}

	// Two go, and the directory cannot be synced: both kept in the
	// manifest, said, counted.
	failed = errors.New("the disk is gone")
	kept, err := s.mirror(entries[2:], syncAt{})
	if err != nil {
		t.Fatal(err)
	}
	if kept != 2 || !strings.Contains(errOut.String(), "may not survive a power loss") {
		t.Errorf("kept %d, stderr %q; want both removals said not durable", kept, errOut)
	}
	m, err := s.loadManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files[:2] {
		if rel, _ := filepath.Rel(string(s.home), f); m.Files[rel] == "" {
			t.Errorf("%s removed, its directory not synced, and the manifest let it go", rel)
		}
	}

	// The rest go, the directory synced: once, and the manifest lets
	// every file go (the two of before: found gone).
	failed, syncs = nil, 0
	if _, err := s.mirror(nil, syncAt{}); err != nil {
		t.Fatal(err)
	}
	if syncs != 1 {
		t.Errorf("the directory synced %d times for three removals, want once", syncs)
	}
	if m, err = s.loadManifest(); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, err := os.Lstat(f); !os.IsNotExist(err) {
			t.Errorf("%s not removed: %v", f, err)
		}
		if rel, _ := filepath.Rel(string(s.home), f); m.Files[rel] != "" {
			t.Errorf("%s still in the manifest", rel)
		}
	}
}
