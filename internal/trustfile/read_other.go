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

// dirHandle is a Dir's open directory.
type dirHandle struct{ f *os.File }

func openDirHandle(path string) (dirHandle, fs.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return dirHandle{}, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return dirHandle{}, nil, err
	}
	return dirHandle{f}, fi, nil
}

func (h dirHandle) close() error { return h.f.Close() }

// openAt opens the file name of the directory (at path), refusing a
// symbolic link.
func (h dirHandle) openAt(_, path string) (openedFile, error) {
	if fi, err := os.Lstat(path); err != nil {
		return nil, err
	} else if fi.Mode()&fs.ModeSymlink != 0 {
		return nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrInvalid}
	}
	return os.OpenFile(path, os.O_RDONLY|openFlags, 0)
}
