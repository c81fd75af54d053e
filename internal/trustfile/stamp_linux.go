//go:build linux

package trustfile

import (
	"encoding/binary"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Stamp is what tells a reader that a trust file may have changed since
// it was read: its content (size, mtime, and the inode and ctime, which
// catch a rename over the file and a rewrite of the same size within one
// mtime tick) or who may change it (mode, owner: chmod and chown change
// only the ctime). Equal stamps mean the file need not be read again.
type Stamp struct {
	size  int64
	mtime int64
	ctime int64
	ino   uint64
	dev   uint64
	mode  fs.FileMode
	uid   uint32
}

// StampOf returns the stamp of a file's information (from stat).
func StampOf(fi fs.FileInfo) Stamp {
	k := Stamp{size: fi.Size(), mtime: fi.ModTime().UnixNano(), mode: fi.Mode(), uid: ^uint32(0)}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		k.ctime = st.Ctim.Nano()
		k.ino = st.Ino
		k.dev = uint64(st.Dev) //nolint:unconvert // uint64 on most, not all, architectures
		k.uid = st.Uid
	}
	return k
}

// StampFile is what a Stamp holds of a file's own (size, mtime, ctime,
// inode), and StampDir the rest (device, mode, owner), which the files of
// one directory mostly share: a loader keeping the stamps of many files
// keeps each StampDir once for all of them (Split, Join).
type StampFile struct {
	size  int64
	mtime int64
	ctime int64
	ino   uint64
}

// StampDir is the part of a Stamp that files of one directory share
// (StampFile).
type StampDir struct {
	dev  uint64
	mode fs.FileMode
	uid  uint32
}

// Split returns the two parts of s; Join makes s from them again.
func (s Stamp) Split() (StampFile, StampDir) {
	return StampFile{size: s.size, mtime: s.mtime, ctime: s.ctime, ino: s.ino}, StampDir{dev: s.dev, mode: s.mode, uid: s.uid}
}

// Join is the Stamp that Split made f and d of.
func (f StampFile) Join(d StampDir) Stamp {
	return Stamp{size: f.size, mtime: f.mtime, ctime: f.ctime, ino: f.ino, dev: d.dev, mode: d.mode, uid: d.uid}
}

// SameFile reports whether two stamps are of the same file (device and
// inode), whatever its content: a file replaced by another is not.
func (s Stamp) SameFile(o Stamp) bool { return s.dev == o.dev && s.ino == o.ino }

// Device is the number of the file system holding the file.
func (s Stamp) Device() uint64 { return s.dev }

// AppendBinary appends the stamp's fixed-size encoding to b, for a cache
// that must tell later whether a file or directory changed since (the
// admin commands' index, docs/design.md "The admin index").
func (s Stamp) AppendBinary(b []byte) ([]byte, error) {
	for _, v := range []uint64{uint64(s.size), uint64(s.mtime), uint64(s.ctime), s.ino, s.dev, uint64(s.mode), uint64(s.uid)} {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return b, nil
}

// Changed is the time of the file's last change of content or
// attributes (its ctime), which no user can set.
func (s Stamp) Changed() time.Time { return time.Unix(0, s.ctime) }

// StampAt returns the stamp of the file name in the open directory dir,
// following a symbolic link as the loaders' stat does, its mode and its
// number of hard links: one fstatat relative to the directory, for a
// check of every file of a large directory (the admin index's,
// docs/design.md "The admin index").
func StampAt(dir *os.File, name string) (Stamp, fs.FileMode, uint64, error) {
	var st unix.Stat_t
	for {
		err := unix.Fstatat(int(dir.Fd()), name, &st, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return Stamp{}, 0, 0, &fs.PathError{Op: "stat", Path: filepath.Join(dir.Name(), name), Err: err}
		}
		break
	}
	mode := ModeOf(st.Mode)
	return Stamp{
		size: st.Size, mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(), ino: st.Ino,
		dev: uint64(st.Dev), mode: mode, uid: st.Uid, //nolint:unconvert // as StampOf
	}, mode, uint64(st.Nlink), nil //nolint:unconvert // uint32 on some architectures
}

// LocalStamps reports whether the file system holding dir answers a
// stat from the file's own inode, so that a stamp shows every write,
// wherever it was made: ext4, XFS, Btrfs, bcachefs, F2FS, ZFS, tmpfs,
// overlayfs. NFS, SMB, FUSE and other network or user-space file
// systems may answer from an attribute cache (NFS for up to a minute by
// default), in which a write from another machine is not seen yet; so
// does any file system not named here.
func LocalStamps(dir string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false
	}
	switch uint64(st.Type) { //nolint:unconvert // int64 or uint32 by architecture
	case unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC, unix.BCACHEFS_SUPER_MAGIC,
		unix.F2FS_SUPER_MAGIC, unix.TMPFS_MAGIC, unix.OVERLAYFS_SUPER_MAGIC, zfsSuperMagic:
		return true
	}
	return false
}

// zfsSuperMagic is OpenZFS's f_type (not in the kernel's headers).
const zfsSuperMagic = 0x2fc12fc1

// Links returns the number of names the file of fi has (its st_nlink):
// more than one, and it may be written through another directory than
// the one it was found in.
func Links(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink) //nolint:unconvert // uint32 on some architectures
	}
	return 1
}
