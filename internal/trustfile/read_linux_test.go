//go:build linux

package trustfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestReadInfoIsStat checks that the information Read gives from its
// bare descriptor (read_linux.go) is what os.Stat gives: the strict-mode
// rule and the loader's stamps read its mode, owner, size, times and
// inode.
func TestReadInfoIsStat(t *testing.T) {
	dir := t.TempDir()
	plain := write(t, filepath.Join(dir, "plain.json"), "{}", 0o644)
	special := write(t, filepath.Join(dir, "special"), "x", 0o640)
	if err := os.Chmod(special, 0o640|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(plain, link); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{plain, special, fifo, link, dir, "/dev/null"} {
		f, err := openFile(path, 0)
		if err != nil {
			t.Fatal(err)
		}
		got, err := f.Stat()
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got.Name() != want.Name() || got.Size() != want.Size() || got.Mode() != want.Mode() ||
			!got.ModTime().Equal(want.ModTime()) || got.IsDir() != want.IsDir() ||
			*got.Sys().(*syscall.Stat_t) != *want.Sys().(*syscall.Stat_t) {
			t.Errorf("%s: Read's information %v %d %v %v, os.Stat's %v %d %v %v", path,
				got.Name(), got.Size(), got.Mode(), got.ModTime(), want.Name(), want.Size(), want.Mode(), want.ModTime())
		}
		if StampOf(got) != StampOf(want) {
			t.Errorf("%s: stamps differ", path)
		}
	}
}

// TestReadErrorsAreOS checks that Read's errors from the bare descriptor
// read as os's do: a *fs.PathError that errors.Is tells apart.
func TestReadErrorsAreOS(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.json")
	_, _, err := Read(missing)
	_, osErr := os.Open(missing)
	if !errors.Is(err, fs.ErrNotExist) || err.Error() != osErr.Error() {
		t.Errorf("missing file: %v, want %v", err, osErr)
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Op != "open" || pe.Path != missing {
		t.Errorf("missing file: %#v, want a *fs.PathError of open", err)
	}
	if os.Geteuid() != 0 {
		locked := write(t, filepath.Join(t.TempDir(), "locked.json"), "{}", 0o000)
		if _, _, err := Read(locked); !errors.Is(err, fs.ErrPermission) {
			t.Errorf("unreadable file: %v, want fs.ErrPermission", err)
		}
	}
}

// Stamps prove a file unchanged only where a stat answers from the inode:
// not on procfs (a file system not named), nor for a directory that is
// not there.
func TestLocalStamps(t *testing.T) {
	if LocalStamps("/proc") {
		t.Error("LocalStamps(/proc) = true, want false")
	}
	if LocalStamps(filepath.Join(t.TempDir(), "missing")) {
		t.Error("LocalStamps of a missing directory = true, want false")
	}
}

// TestReadListed checks that ReadListed reads a regular file as Read
// does, refuses a symbolic link in its place with a *ChangedError that
// names the path (not reading through it), and fails as Read fails
// otherwise.
func TestReadListed(t *testing.T) {
	dir := t.TempDir()
	plain := write(t, filepath.Join(dir, "plain.json"), `{"k":1}`, 0o644)
	data, fi, err := ReadListed(plain)
	want, wantFi, wantErr := Read(plain)
	if err != nil || wantErr != nil || string(data) != string(want) || !sameFile(fi, wantFi) {
		t.Errorf("ReadListed(%s) = %q, %v; Read: %q, %v", plain, data, err, want, wantErr)
	}
	link := filepath.Join(dir, "link.json")
	if err := os.Symlink(plain, link); err != nil {
		t.Fatal(err)
	}
	var ce *ChangedError
	if data, _, err := ReadListed(link); !errors.As(err, &ce) || ce.Path != link || ce.Err != nil || data != nil {
		t.Errorf("ReadListed of a link: %q, %v; want a *ChangedError naming %s", data, err, link)
	}
	missing := filepath.Join(dir, "missing.json")
	var pe *fs.PathError
	if _, _, err := ReadListed(missing); !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe) || pe.Path != missing {
		t.Errorf("ReadListed of a missing file: %v, want fs.ErrNotExist naming %s", err, missing)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadListed(fifo); !errors.Is(err, ErrNotRegular) {
		t.Errorf("ReadListed of a FIFO: %v, want ErrNotRegular", err)
	}
}
