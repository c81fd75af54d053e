package keydir

import (
	"os"
	"path/filepath"
	"testing"
)

// A file system mounted inside a source directory (a file bind-mounted
// from elsewhere: written with no event in the directory) means no early
// decisions; one mounted on the directory itself, or above it (a
// Kubernetes volume), does not; a table of mounts that cannot be read
// means none either. Names with spaces come escaped (\040).
func TestMountedIn(t *testing.T) {
	top := t.TempDir()
	src := filepath.Join(top, "keys dir")
	if err := os.Mkdir(src, 0o700); err != nil {
		t.Fatal(err)
	}
	srcs := []Source{{Path: src, Dir: true}, {Path: filepath.Join(top, "single.json")}}
	table := filepath.Join(t.TempDir(), "mountinfo")
	old := mountInfo
	t.Cleanup(func() { mountInfo = old })
	mountInfo = table
	esc := func(p string) string { return filepath.Join(filepath.Dir(p), "keys\\040dir") }
	for _, c := range []struct {
		what, at string
		want     bool
	}{
		{"a file inside", esc(src) + "/a0.json", true},
		{"the directory itself", esc(src), false},
		{"above it", top, false},
		{"a single file's path", filepath.Join(top, "single.json"), false},
		{"a sibling with the same prefix", esc(src) + "2", false},
	} {
		line := "36 35 98:0 / " + c.at + " rw,noatime master:1 - ext4 /dev/root rw\n"
		if err := os.WriteFile(table, []byte("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"+line), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := mountedIn(srcs); got != c.want {
			t.Errorf("%s (%s): mountedIn %v, want %v", c.what, c.at, got, c.want)
		}
	}
	mountInfo = filepath.Join(top, "missing")
	if !mountedIn(srcs) {
		t.Error("an unreadable table of mounts: mountedIn false, want true (cannot tell)")
	}
}
