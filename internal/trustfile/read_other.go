//go:build !linux

package trustfile

import "os"

func openFile(path string) (openedFile, error) {
	return os.OpenFile(path, os.O_RDONLY|openFlags, 0)
}

func sameFile(a, b os.FileInfo) bool { return os.SameFile(a, b) }
