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

// dirHandle is a Dir's open directory: an os.File, not a bare descriptor
// (OpenDirFD), since openAt here goes by the path and never through the
// descriptor, and this build includes systems without one.
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
	lfi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if lfi.Mode()&fs.ModeSymlink != 0 {
		return nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrInvalid}
	}
	// A link put in the file's place after the Lstat: refused by
	// O_NOFOLLOW where there is one, and by the comparison everywhere.
	f, err := os.OpenFile(path, os.O_RDONLY|openFlags|noFollow, 0)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !os.SameFile(fi, lfi) {
		f.Close()
		return nil, &ChangedError{Path: path, Err: err}
	}
	return f, nil
}
