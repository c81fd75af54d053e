//go:build !linux

package trustfile

import (
	"encoding/binary"
	"io/fs"
)

// Stamp is what tells a reader that a trust file may have changed since
// it was read. Outside Linux only the portable fields are used; a reader
// that compares the strict-modes verdict too still catches a change of
// owner or mode.
type Stamp struct {
	size  int64
	mtime int64
	mode  fs.FileMode
}

// StampOf returns the stamp of a file's information (from stat).
func StampOf(fi fs.FileInfo) Stamp {
	return Stamp{size: fi.Size(), mtime: fi.ModTime().UnixNano(), mode: fi.Mode()}
}

// SameFile reports whether two stamps may be of the same file. Without
// inode numbers it cannot tell, and says they may.
func (s Stamp) SameFile(Stamp) bool { return true }

// AppendBinary appends the stamp's fixed-size encoding to b, for a cache
// that must tell later whether a file or directory changed since.
func (s Stamp) AppendBinary(b []byte) ([]byte, error) {
	for _, v := range []uint64{uint64(s.size), uint64(s.mtime), uint64(s.mode)} {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return b, nil
}
