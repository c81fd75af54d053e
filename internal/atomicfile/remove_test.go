package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestRemove: Remove removes the files that exist, skips those that do
// not, and stops at a removal that fails, naming its file and leaving the
// files after it.
func TestRemove(t *testing.T) {
	dir := t.TempDir()
	a, gone, b := filepath.Join(dir, "a"), filepath.Join(dir, "gone"), filepath.Join(dir, "b")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := Remove([]string{a, gone, b})
	if err != nil || !slices.Equal(removed, []string{a, b}) {
		t.Fatalf("Remove: %v, %v; want [a b], nil", removed, err)
	}
	for _, p := range []string{a, b} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is still there: %v", p, err)
		}
	}

	full, c := filepath.Join(dir, "full"), filepath.Join(dir, "c")
	if err := os.MkdirAll(filepath.Join(full, "in"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	removed, err = Remove([]string{full, c})
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Path != full || len(removed) != 0 {
		t.Fatalf("Remove of a directory that is not empty: %v, %v; want an error naming it", removed, err)
	}
	if _, err := os.Lstat(c); err != nil {
		t.Errorf("the file after the failed removal is gone: %v", err)
	}
}
