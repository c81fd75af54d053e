//go:build !linux

package tlsbridge

import "io/fs"

// statKey is what tells PKI mode that a file may have changed. Outside
// Linux only the portable fields are used; the strict-modes verdict,
// compared too, still catches a change of owner or mode.
type statKey struct {
	size  int64
	mtime int64
	mode  fs.FileMode
}

func keyOf(fi fs.FileInfo) statKey {
	return statKey{size: fi.Size(), mtime: fi.ModTime().UnixNano(), mode: fi.Mode()}
}
