package authkeys

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// syncedDirs records the directories synced for removals
// (atomicfile.SyncDir) from now on, and fails the test if one of
// the files gone is still in a directory when it is synced.
func syncedDirs(t *testing.T, gone ...string) *[]string {
	t.Helper()
	var synced []string
	old := atomicfile.SyncDir
	t.Cleanup(func() { atomicfile.SyncDir = old })
	atomicfile.SyncDir = func(dir string) error {
		synced = append(synced, dir)
		for _, f := range gone {
			if _, err := os.Lstat(f); err == nil && filepath.Dir(f) == dir {
				t.Errorf("%s synced while %s is still there", dir, f)
			}
		}
		return old(dir)
	}
	return &synced
}

// A removal that deletes a file — an authorized key by name, several by
// name at once, a revocation lifted — syncs its directory after the
// deletion, before it returns: else a power loss seconds later could
// bring the file back, and the key with it.
func TestRemovalsAreDurable(t *testing.T) {
	opts := HomeOptions(t.TempDir())
	d, r := opts.Dirs[0], opts.RevokedDirs[0]
	files := map[string]string{}
	for i, name := range []string{"a", "b", "c"} {
		files[name] = filepath.Join(d, name+".json")
		keydirtest.Write(t, files[name], keydirtest.JWK(t, keydirtest.WithAttrs(key(t, i), "name", name)))
	}
	s := Load(opts)
	defer s.Close()

	synced := syncedDirs(t, files["a"])
	if _, err := s.Remove("a"); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(*synced, []string{d}) {
		t.Errorf("Remove of a file's key synced %v, want %s", *synced, d)
	}
	synced = syncedDirs(t, files["b"], files["c"])
	for _, rm := range s.RemoveAll([]string{"b", "c"}) {
		if rm.Err != nil {
			t.Fatal(rm.Err)
		}
	}
	if !slices.Equal(*synced, []string{d}) {
		t.Errorf("RemoveAll of two files' keys synced %v, want %s once", *synced, d)
	}

	file, err := s.Revoke(key(t, 5))
	if err != nil {
		t.Fatal(err)
	}
	synced = syncedDirs(t, file)
	if _, err := s.Unrevoke(key(t, 5).Fingerprint()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(*synced, []string{r}) {
		t.Errorf("Unrevoke synced %v, want %s", *synced, r)
	}
}
