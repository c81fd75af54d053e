//go:build linux

package tlsbridge

import (
	"io/fs"
	"syscall"
)

// statKey is what tells PKI mode that a file may have changed: its
// content (size, times, inode — a rename over it, or a rewrite of the
// same size within one mtime tick) or who may change it (mode, owner;
// chmod and chown change only the ctime).
type statKey struct {
	size  int64
	mtime int64
	ctime int64
	ino   uint64
	dev   uint64
	mode  fs.FileMode
	uid   uint32
}

func keyOf(fi fs.FileInfo) statKey {
	k := statKey{size: fi.Size(), mtime: fi.ModTime().UnixNano(), mode: fi.Mode(), uid: ^uint32(0)}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		k.ctime = st.Ctim.Nano()
		k.ino = st.Ino
		k.dev = uint64(st.Dev) //nolint:unconvert // uint64 on most, not all, architectures
		k.uid = st.Uid
	}
	return k
}
