//go:build linux || darwin || dragonfly || freebsd || illumos || netbsd || openbsd

package keydir

import (
	"errors"
	"os"
	"syscall"
	"time"

	"github.com/keytool/keytool/internal/trustfile"
)

// lockDir takes an exclusive advisory lock on directory dir, waiting for
// it, and returns the function that releases it. keytool's rewrites of
// key files hold it, so that two processes editing the same file one after
// the other each see the other's result: without it, both would read the
// same old content and the second rename would undo the first edit — a
// removed key coming back.
//
// Where the lock cannot be had at all — a directory this user may not
// read, a file system without flock(2) (some NFS, CIFS and FUSE mounts) —
// or not within lockWait, held is false and unlock does nothing: an edit
// goes ahead unlocked, as it would on a system without flock (refusing to
// remove a key would be worse than the race); the admin index is not
// used (lockIndex), since its log folded by two commands at once could
// hide a key's copy.
func lockDir(dir string) (unlock func(), held bool, err error) {
	// A bare descriptor: an os.File would make four fcntl and an
	// epoll_ctl more for each lock (the admin commands take several).
	fd, err := trustfile.OpenDirFD(dir)
	if errors.Is(err, os.ErrPermission) {
		return func() {}, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	err = flockWithin(fd, lockWait)
	switch {
	case err == nil:
		return func() { syscall.Close(fd) }, true, nil // closing the descriptor releases the lock
	case noLocks(err), errors.Is(err, syscall.EWOULDBLOCK):
		syscall.Close(fd)
		return func() {}, false, nil
	}
	syscall.Close(fd)
	return nil, false, &os.PathError{Op: "flock", Path: dir, Err: err}
}

// lockWait bounds lockDir's wait for a directory's lock. flock(2) on a
// directory needs only a descriptor opened for reading, so any user who
// may read it — authorized_keys.d is 0755 under a home of 0755 in
// docs/deploy.md — can take the lock and keep it: waiting for it without
// end, every keytool writer of the directory (authorize, authorize
// --remove, trust-host --remove) waited as long, and a key to be removed
// stayed authorized, its connections open (found by review, 2026-12-03:
// internal/cli.TestRemovalNotStoppedByAReaderOfTheDirectory). keytool's
// own writers hold it for one edit, milliseconds. (A variable for tests.)
var lockWait = 10 * time.Second

// flockWithin takes an exclusive flock on fd, trying again until wait
// has passed (flock(2) has no timeout of its own); then it returns
// EWOULDBLOCK.
func flockWithin(fd int, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for pause := time.Millisecond; ; pause = min(2*pause, 50*time.Millisecond) {
		err := flockRetried(fd, syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EWOULDBLOCK) || !time.Now().Before(deadline) {
			return err
		}
		time.Sleep(pause)
	}
}

// flock is syscall.Flock; a test makes it fail as a file system without
// locks does.
var flock = syscall.Flock

// flockRetried is flock, again while a signal interrupts it.
func flockRetried(fd, how int) error {
	for {
		if err := flock(fd, how); err != syscall.EINTR {
			return err
		}
	}
}

// noLocks reports whether err says the file system has no flock(2) (some
// NFS, CIFS and FUSE mounts), where the callers go ahead unlocked.
func noLocks(err error) bool {
	return errors.Is(err, syscall.ENOLCK) || errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS)
}

// TryLock takes an exclusive advisory lock on the file path (created,
// mode 0600, if missing) without waiting: ok is false when another
// process holds it, or where flock(2) is not available. For caches that
// one process at a time may use, and that a second process does without
// (the --store mirror, docs/design.md).
func TryLock(path string) (l *Lock, ok bool) {
	f, err := lockFile(path, syscall.LOCK_EX|syscall.LOCK_NB)
	if err != nil {
		return nil, false
	}
	return &Lock{f: f, path: path}, true
}

// A Lock is a lock file this process holds (TryLock).
type Lock struct {
	f    *os.File
	path string
}

// Unlock releases the lock.
func (l *Lock) Unlock() { l.f.Close() } // closing the descriptor releases the lock

// Held reports whether the lock file's path still names the file locked.
// Once it was removed or replaced (rm -r of the directory holding it,
// another command's makePrivateDir), the lock excludes no one: another
// process may hold the file made in its place, and use what it guards.
func (l *Lock) Held() bool {
	locked, err := l.f.Stat()
	if err != nil {
		return false
	}
	named, err := os.Lstat(l.path)
	return err == nil && os.SameFile(locked, named)
}

// LockFile takes an exclusive advisory lock on the file path (created,
// mode 0600, if missing), waiting for it: for a record that two processes
// must not rewrite at once (keytool sync's manifest). Where flock(2) is
// not available held is false and unlock does nothing: the caller goes
// ahead unlocked, as before the lock.
func LockFile(path string) (unlock func(), held bool, err error) {
	f, err := lockFile(path, syscall.LOCK_EX)
	switch {
	case err == nil:
		return func() { f.Close() }, true, nil // closing the descriptor releases the lock
	case noLocks(err):
		return func() {}, false, nil
	}
	return nil, false, err
}

// lockFile opens path (never through a link) and flocks it with how.
//
// The lock is kept only if path still names the file locked: the file
// may be removed between the open and the flock (rm -r of the cache it
// is in, a makePrivateDir of another command) and made again by another
// process, which locks the new file, while the flock here succeeds on the
// removed one — two holders of "the" lock. Then the new file is tried,
// as many as lockTries times.
func lockFile(path string, how int) (*os.File, error) {
	for range lockTries {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			return nil, err
		}
		if err := flockRetried(int(f.Fd()), how); err != nil {
			f.Close()
			return nil, &os.PathError{Op: "flock", Path: path, Err: err}
		}
		l := &Lock{f: f, path: path}
		if l.Held() {
			return f, nil
		}
		f.Close()
	}
	return nil, &os.PathError{Op: "flock", Path: path, Err: ErrLockReplaced}
}

// lockTries bounds lockFile's tries of a lock file replaced each time
// between its open and its flock.
const lockTries = 8

// ErrLockReplaced says that a lock file was replaced between its open
// and its flock as many times as lockFile tries: fail closed rather than
// hold a lock on a file no one else will find.
var ErrLockReplaced = errors.New("keydir: lock file replaced between its open and its flock at every try")
