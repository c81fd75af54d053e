package knownhosts

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/jwk"
)

// A removal that deletes a pin's file — by address, by fingerprint —
// syncs its directory after the deletion, before it returns, and once
// for all the files one command deletes: else a power loss seconds later
// could bring the pin back. A pin rewritten (another address left) is
// synced by its write (atomicfile's, through the same SyncDir).
func TestRemovalsAreDurable(t *testing.T) {
	s, opts := load(t, map[string]*jwk.Key{
		"a.json":    pinned(t, 1, "a.example:1"),
		"b.json":    pinned(t, 2, "b.example:1"),
		"c.json":    pinned(t, 3, "c.example:1"),
		"both.json": pinned(t, 4, "d.example:1", "e.example:1"),
	})
	d := opts.Dirs[0]
	var synced []string
	var gone []string
	old := atomicfile.SyncDir
	t.Cleanup(func() { atomicfile.SyncDir = old })
	atomicfile.SyncDir = func(dir string) error {
		synced = append(synced, dir)
		for _, f := range gone {
			if _, err := os.Lstat(filepath.Join(d, f)); err == nil {
				t.Errorf("%s synced while %s is still there", dir, f)
			}
		}
		return old(dir)
	}
	for _, tc := range []struct {
		what   string
		remove []string
		gone   []string
		synced []string
	}{
		{"by address", []string{"a.example:1"}, []string{"a.json"}, []string{d}},
		{"two, by address and fingerprint", []string{"b.example:1", key(t, 3).Fingerprint()}, []string{"b.json", "c.json"}, []string{d}},
		{"an address of two: the pin rewritten, synced by its write", []string{"d.example:1"}, nil, []string{d}},
	} {
		synced, gone = nil, tc.gone
		for _, r := range s.RemoveAll(tc.remove) {
			if r.Err != nil {
				t.Fatalf("%s: %v", tc.what, r.Err)
			}
		}
		if !slices.Equal(synced, tc.synced) {
			t.Errorf("%s: synced %v, want %v", tc.what, synced, tc.synced)
		}
	}
}
