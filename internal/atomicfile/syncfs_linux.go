package atomicfile

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// syncFS syncs the file system dir is on (syncfs(2)): ok true if done.
func syncFS(dir string) (ok bool, err error) {
	d, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return false, fmt.Errorf("syncing the file system of %s: %w", dir, err)
	}
	return true, nil
}
