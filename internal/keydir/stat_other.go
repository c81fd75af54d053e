//go:build !linux

package keydir

import "io/fs"

// statKey is what decides whether a file may have changed since it was last
// read. Outside Linux only the portable fields are used; the content hash
// still catches a rewrite of the same size within one mtime tick at the
// next periodic rescan that sees a different mtime.
type statKey struct {
	size  int64
	mtime int64
	mode  fs.FileMode
	uid   uint32
}

// noUID marks an owner that could not be determined; the ownership check is
// then skipped.
func keyOf(fi fs.FileInfo) statKey {
	return statKey{size: fi.Size(), mtime: fi.ModTime().UnixNano(), mode: fi.Mode(), uid: ^uint32(0)}
}
