//go:build unix

package keydir

import (
	"os"
	"syscall"
)

// lockDir takes an exclusive advisory lock on directory dir, waiting for
// it, and returns the function that releases it. keytool's rewrites of
// key files hold it, so that two processes editing the same file one after
// the other each see the other's result: without it, both would read the
// same old content and the second rename would undo the first edit — a
// removed key coming back.
func lockDir(dir string) (unlock func(), err error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, &os.PathError{Op: "flock", Path: dir, Err: err}
	}
	return func() { f.Close() }, nil // closing the descriptor releases the lock
}
