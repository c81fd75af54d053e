//go:build unix

package trustfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// OpenDirFD opens a directory, or a link to one, as a close-on-exec
// descriptor, and refuses anything else at once: a file, a FIFO (without
// waiting for a writer), a missing name — each error naming the path.
func TestOpenDirFD(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "file"), "x", 0o600)
	if err := unix.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dir, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "link"} {
		fd, err := OpenDirFD(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("OpenDirFD(%q): %v", name, err)
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		syscall.Close(fd)
		if err != nil || flags&unix.FD_CLOEXEC == 0 {
			t.Errorf("OpenDirFD(%q): descriptor flags %#x, %v; want close-on-exec", name, flags, err)
		}
	}
	for name, want := range map[string]error{"file": syscall.ENOTDIR, "fifo": syscall.ENOTDIR, "missing": fs.ErrNotExist} {
		path := filepath.Join(dir, name)
		fd, err := OpenDirFD(path)
		var pe *fs.PathError
		if !errors.Is(err, want) || !errors.As(err, &pe) || pe.Path != path {
			t.Errorf("OpenDirFD(%q) = %d, %v; want a PathError naming it, %v", name, fd, err, want)
		}
	}
}
