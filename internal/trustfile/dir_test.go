package trustfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// A Dir is checked when it is opened (itself and the directories above it
// up to Top), and each file read in it is checked for its owner and mode;
// a symbolic link, a FIFO and a name that leaves the directory are
// refused.
func TestDirReadsItsOwnFilesOnly(t *testing.T) {
	top := t.TempDir()
	os.Chmod(top, 0o700)
	dir := filepath.Join(top, "index")
	write(t, filepath.Join(dir, "head"), "head", 0o600)
	write(t, filepath.Join(dir, "open"), "open", 0o666)
	write(t, filepath.Join(top, "outside"), "outside", 0o600)
	if err := os.Symlink(filepath.Join(top, "outside"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o700)
	r := Rule{Top: top}
	d, err := r.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if data, fi, err := d.ReadFile("head"); err != nil || string(data) != "head" || fi.Size() != 4 {
		t.Fatalf("ReadFile(head) = %q, %v; want its content", data, err)
	}
	var pe *PermissionError
	if _, _, err := d.ReadFile("open"); !errors.As(err, &pe) {
		t.Errorf("ReadFile of a file others may write: %v, want a PermissionError", err)
	}
	for _, name := range []string{"link", "../outside", "..", "", "missing"} {
		if data, _, err := d.ReadFile(name); err == nil {
			t.Errorf("ReadFile(%q) read %q, want an error", name, data)
		}
	}
	if _, err := (Rule{Off: true}).OpenDir(filepath.Join(dir, "head")); err == nil {
		t.Error("OpenDir of a file: no error")
	}
	if _, err := (Rule{Top: top}).OpenDir(filepath.Join(top, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenDir of a missing directory: %v, want fs.ErrNotExist", err)
	}
	os.Chmod(dir, 0o777)
	if _, err := r.OpenDir(dir); !errors.As(err, &pe) {
		t.Errorf("OpenDir of a directory others may write: %v, want a PermissionError", err)
	}
}
