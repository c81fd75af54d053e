//go:build !linux

package trustfile

import (
	"encoding/binary"
	"io/fs"
	"os"
	"path/filepath"
	"time"
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

// StampFile is what a Stamp holds of a file's own (size, mtime), and
// StampDir the rest (mode), which the files of one directory mostly
// share: a loader keeping the stamps of many files keeps each StampDir
// once for all of them (Split, Join).
type StampFile struct {
	size  int64
	mtime int64
}

// StampDir is the part of a Stamp that files of one directory share
// (StampFile).
type StampDir struct {
	mode fs.FileMode
}

// Split returns the two parts of s; Join makes s from them again.
func (s Stamp) Split() (StampFile, StampDir) {
	return StampFile{size: s.size, mtime: s.mtime}, StampDir{mode: s.mode}
}

// Join is the Stamp that Split made f and d of.
func (f StampFile) Join(d StampDir) Stamp {
	return Stamp{size: f.size, mtime: f.mtime, mode: d.mode}
}

// SameFile reports whether two stamps may be of the same file. Without
// inode numbers it cannot tell, and says they may.
func (s Stamp) SameFile(Stamp) bool { return true }

// Device is the number of the file system holding the file: 0 outside
// Linux, where LocalStamps says no and stamps prove nothing anyway.
func (s Stamp) Device() uint64 { return 0 }

// AppendBinary appends the stamp's fixed-size encoding to b, for a cache
// that must tell later whether a file or directory changed since.
func (s Stamp) AppendBinary(b []byte) ([]byte, error) {
	for _, v := range []uint64{uint64(s.size), uint64(s.mtime), uint64(s.mode)} {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return b, nil
}

// Changed is the time of the file's last change that the stamp can
// tell: outside Linux, its modification time.
func (s Stamp) Changed() time.Time { return time.Unix(0, s.mtime) }

// StampAt returns the stamp of the file name in the open directory dir,
// following a symbolic link as the loaders' stat does, its mode, and a
// number of hard links it cannot tell here (1).
func StampAt(dir *os.File, name string) (Stamp, fs.FileMode, uint64, error) {
	fi, err := os.Stat(filepath.Join(dir.Name(), name))
	if err != nil {
		return Stamp{}, 0, 0, err
	}
	return StampOf(fi), fi.Mode(), 1, nil
}

// LocalStamps reports whether the file system holding dir answers a
// stat from the file's own inode, so that a stamp shows every write.
// Outside Linux it cannot tell, and says no.
func LocalStamps(string) bool { return false }

// Links returns the number of names the file of fi has: 1, where the
// system does not say.
func Links(fs.FileInfo) uint64 { return 1 }
