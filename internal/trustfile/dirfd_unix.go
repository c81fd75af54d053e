//go:build unix

package trustfile

import (
	"io/fs"
	"syscall"
)

// OpenDirFD opens the directory path read-only as a bare file descriptor
// (close-on-exec; a symbolic link to a directory is followed, as open(2)
// does): for what needs a descriptor and no os.File — a Dir's openat(2),
// keydir's flock(2) — since an os.File would make four fcntl and an
// epoll_ctl more. The caller closes it with syscall.Close.
func OpenDirFD(path string) (int, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_DIRECTORY|openFlags, 0)
		switch err {
		case nil:
			return fd, nil
		case syscall.EINTR:
			continue
		}
		return -1, &fs.PathError{Op: "open", Path: path, Err: err}
	}
}
