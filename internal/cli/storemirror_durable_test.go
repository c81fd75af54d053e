package cli

import (
	"os"
	"path/filepath"
	"testing"
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
		if err := os.Remove(filepath.Join(dir, StoreAuthorized+".d", "n.json")); err != nil {
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
