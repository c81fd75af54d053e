//go:build !(linux || darwin || dragonfly || freebsd || illumos || netbsd || openbsd)

package keydir

import (
	"errors"
	"time"
)

// lockDir does nothing where flock(2) is not available: concurrent edits
// of the same key file by several processes are then not serialised, and
// the admin index is not used (held is false). No reason is given
// (why is nil): no edit on such a system is ever locked, and there is
// nothing to fix.
func lockDir(dir string) (unlock func(), held bool, why *UnlockedError, err error) {
	return func() {}, false, nil, nil
}

// unlockedWhy says why lockDirWithin held no lock: none is ever had.
func unlockedWhy(string) error { return errors.New("flock(2) is not available on this system") }

// writable is nil: whether this user may write a directory is learnt by
// writing.
func writable(string) error { return nil }

// lockDirWithin is lockDir.
func lockDirWithin(dir string, _ time.Duration) (unlock func(), held bool, why *UnlockedError, err error) {
	return lockDir(dir)
}

// TryLock never locks where flock(2) is not available: ok is false, and
// the caller does without what the lock guards.
func TryLock(path string) (l *Lock, ok bool) { return nil, false }

// A Lock is never had where flock(2) is not available.
type Lock struct{}

func (*Lock) Unlock()    {}
func (*Lock) Held() bool { return false }

// LockFile never locks where flock(2) is not available: held is false,
// and the caller goes ahead unlocked.
func LockFile(path string) (unlock func(), held bool, err error) { return func() {}, false, nil }
