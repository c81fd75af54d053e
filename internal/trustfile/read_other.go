//go:build !linux

package trustfile

import (
	"io/fs"
	"os"
)

func openFile(path string, flags int) (openedFile, error) {
	return os.OpenFile(path, os.O_RDONLY|openFlags|flags, 0)
}

func sameFile(a, b os.FileInfo) bool { return os.SameFile(a, b) }

// openAt opens the file name of the directory dir (at path), refusing a
// symbolic link.
func openAt(_ *os.File, _, path string) (openedFile, error) {
	if fi, err := os.Lstat(path); err != nil {
		return nil, err
	} else if fi.Mode()&fs.ModeSymlink != 0 {
		return nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrInvalid}
	}
	return os.OpenFile(path, os.O_RDONLY|openFlags, 0)
}
