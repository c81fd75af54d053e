//go:build unix

package trustfile

import (
	"io/fs"
	"syscall"
)

// openFlags keep an open of a FIFO from waiting for a writer.
const openFlags = syscall.O_NONBLOCK

// ownerOf returns the uid that owns the file, when the system says.
func ownerOf(fi fs.FileInfo) (int, bool) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), true
	}
	return 0, false
}
