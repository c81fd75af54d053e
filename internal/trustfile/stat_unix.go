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
