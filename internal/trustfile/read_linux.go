//go:build linux

package trustfile

import (
	"io"
	"io/fs"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// On Linux, Read reads through the bare file descriptor: open, fstat,
// read, close — four system calls for a key file. Through an os.File it
// made six (os.File tries to register every descriptor with the runtime's
// poller, which refuses regular files, and a last read returned 0 for the
// end of the file); os.ReadFile makes ten (it also switches the
// descriptor to non-blocking mode and back). Reading 100,000 key files is
// most of a server's cold start (docs/benchmarks.md, "Cold start to the
// first admitted handshake").

// fdFile is an open file descriptor.
type fdFile struct {
	fd   int
	path string
}

func openFile(path string, flags int) (openedFile, error) {
	return openFileAt(unix.AT_FDCWD, path, path, flags)
}

// openFileAt opens the file name relative to the directory descriptor
// dir (path names it in errors).
func openFileAt(dir int, name, path string, flags int) (*fdFile, error) {
	for {
		fd, err := syscall.Openat(dir, name, syscall.O_RDONLY|syscall.O_CLOEXEC|openFlags|flags, 0)
		switch err {
		case nil:
			return &fdFile{fd: fd, path: path}, nil
		case syscall.EINTR:
			continue
		}
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
}

// dirHandle is a Dir's open directory: a bare descriptor (OpenDirFD).
type dirHandle int

func openDirHandle(path string) (dirHandle, fs.FileInfo, error) {
	fd, err := OpenDirFD(path)
	if err != nil {
		return -1, nil, err
	}
	f := &fdFile{fd: fd, path: path}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return -1, nil, err
	}
	return dirHandle(f.fd), fi, nil
}

func (h dirHandle) close() error { return syscall.Close(int(h)) }

// openAt opens the file name of the open directory, not following a
// symbolic link (path names it in errors).
func (h dirHandle) openAt(name, path string) (openedFile, error) {
	return openFileAt(int(h), name, path, syscall.O_NOFOLLOW)
}

func (f *fdFile) Read(b []byte) (int, error) {
	for {
		n, err := syscall.Read(f.fd, b)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return 0, &fs.PathError{Op: "read", Path: f.path, Err: err}
		case n == 0 && len(b) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

func (f *fdFile) Close() error { return syscall.Close(f.fd) }

func (f *fdFile) Stat() (fs.FileInfo, error) {
	fi := &fileInfo{name: filepath.Base(f.path)}
	for {
		err := syscall.Fstat(f.fd, &fi.sys)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "stat", Path: f.path, Err: err}
		}
		return fi, nil
	}
}

// fileInfo is the fs.FileInfo of a stat, with the same fields and mode
// bits as the one os.File.Stat makes (Sys is the *syscall.Stat_t).
type fileInfo struct {
	name string
	sys  syscall.Stat_t
}

func (fi *fileInfo) Name() string       { return fi.name }
func (fi *fileInfo) Size() int64        { return fi.sys.Size }
func (fi *fileInfo) ModTime() time.Time { return time.Unix(fi.sys.Mtim.Unix()) }
func (fi *fileInfo) IsDir() bool        { return fi.Mode().IsDir() }
func (fi *fileInfo) Sys() any           { return &fi.sys }

func (fi *fileInfo) Mode() fs.FileMode { return ModeOf(fi.sys.Mode) }

// sameFile is os.SameFile for information from os.Stat and from Read.
func sameFile(a, b fs.FileInfo) bool {
	sa, ok1 := a.Sys().(*syscall.Stat_t)
	sb, ok2 := b.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && sa.Dev == sb.Dev && sa.Ino == sb.Ino
}
