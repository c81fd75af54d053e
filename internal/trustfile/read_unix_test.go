//go:build unix

package trustfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Read never waits on a FIFO and never reads more than MaxSize.
func TestReadRefusesWhatCouldHang(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, _, err := Read(fifo); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotRegular) {
			t.Errorf("FIFO: %v, want ErrNotRegular", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read blocks on a FIFO")
	}
	if _, _, err := Read("/dev/zero"); !errors.Is(err, ErrNotRegular) {
		t.Errorf("/dev/zero: %v, want ErrNotRegular", err)
	}
	if _, _, err := Read(dir); !errors.Is(err, ErrNotRegular) {
		t.Errorf("a directory: %v, want ErrNotRegular", err)
	}
	huge := filepath.Join(dir, "huge")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(MaxSize + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, _, err := Read(huge); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a file over MaxSize: %v, want ErrTooLarge", err)
	}
	ok := write(t, filepath.Join(dir, "ok"), "data", 0o644)
	if data, fi, err := Read(ok); err != nil || string(data) != "data" || fi.Size() != 4 {
		t.Errorf("a regular file: %q, %v", data, err)
	}
}
