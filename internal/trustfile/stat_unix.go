//go:build unix

package trustfile

import (
	"errors"
	"io/fs"
	"syscall"
)

// openFlags keep an open of a FIFO from waiting for a writer, and an
// open of a terminal from making it the controlling terminal of a
// session leader that has none (a daemon: its hangup would signal it).
const openFlags = syscall.O_NONBLOCK | syscall.O_NOCTTY

// noFollow makes an open refuse a symbolic link (ReadListed).
const noFollow = syscall.O_NOFOLLOW

// isLinkRefused reports whether an open with noFollow failed because the
// path is a symbolic link: ELOOP, or EMLINK on FreeBSD and NetBSD.
func isLinkRefused(err error) bool {
	return errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.EMLINK)
}

// Owner returns the uid that owns the file, when the system says (on
// unix; never elsewhere).
func Owner(fi fs.FileInfo) (int, bool) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), true
	}
	return 0, false
}

// ModeOf is the fs.FileMode of a stat's st_mode, as os.Stat makes it
// (syscall.Stat_t.Mode, which is not a uint32 on every system: convert it).
func ModeOf(mode uint32) fs.FileMode {
	m := fs.FileMode(mode & 0o777)
	switch mode & syscall.S_IFMT {
	case syscall.S_IFBLK:
		m |= fs.ModeDevice
	case syscall.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFDIR:
		m |= fs.ModeDir
	case syscall.S_IFIFO:
		m |= fs.ModeNamedPipe
	case syscall.S_IFLNK:
		m |= fs.ModeSymlink
	case syscall.S_IFSOCK:
		m |= fs.ModeSocket
	}
	if mode&syscall.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if mode&syscall.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if mode&syscall.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}
