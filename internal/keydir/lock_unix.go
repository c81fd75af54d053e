//go:build linux || darwin || dragonfly || freebsd || illumos || netbsd || openbsd

package keydir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
// The lock is flock(2) of the file lockName in dir (openLock), which only
// the directory's writers may open: mode 0600, made by the first writer
// and given to the directory's owner. flock needs no more than a
// descriptor, so a lock on the directory itself — as keytool took before —
// could be taken and kept by anyone who may read the directory
// (docs/design.md, "Concurrent writers"). The directory itself is flocked
// too, without waiting, so that an older keytool, which locks only the
// directory, waits for this one; held is false when that lock is not had
// (an older keytool holds it — or a reader, which the lock file does not
// wait for), and the admin index is then not used (lockIndex).
//
// Where the lock file cannot be had — a read-only file system (a
// Kubernetes volume), a directory this user may not write, a lock file
// that is not a regular file of the directory's writers (openLock), a
// file system without flock(2) (some NFS, CIFS and FUSE mounts) — or not
// within lockWait, held is false and unlock does nothing: an edit goes
// ahead unlocked, as it would on a system without flock (refusing to
// remove a key would be worse than the race); the admin index is not
// used, since its log folded by two commands at once could hide a key's
// copy. why says what kept the lock file from being had
// (*UnlockedError), unless nothing can race: a read-only file system,
// or a directory this user may not write (a user who is not its admin
// running keytool), where the edit's own write — a file created,
// renamed in or removed — fails as well, and the warning would only
// blur its error. A directory missing, or not a directory, is an error.
func lockDir(dir string) (unlock func(), held bool, why *UnlockedError, err error) {
	return lockDirWithin(dir, lockWait)
}

// lockDirWithin is lockDir waiting at most wait for the lock file.
func lockDirWithin(dir string, wait time.Duration) (unlock func(), held bool, why *UnlockedError, err error) {
	fd, why, err := lockFD(dir, wait)
	if fd < 0 {
		if why != nil && !mayWrite(dir) {
			why = nil
		}
		return func() {}, false, why, err
	}
	// The older keytool's lock, never waited for: a reader may hold it.
	dfd, derr := trustfile.OpenDirFD(dir)
	if derr == nil && flockRetried(dfd, syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		syscall.Close(dfd)
		derr = syscall.EWOULDBLOCK
	}
	return func() { // closing the descriptors releases the locks
		// The directory's own lock first: the next holder of the lock
		// file, who may take it the moment fd closes, then finds it free,
		// where it found it still held and went ahead without it (and
		// an admin command without the index).
		if derr == nil {
			syscall.Close(dfd)
		}
		syscall.Close(fd)
	}, derr == nil, nil, nil
}

// lockFD takes the lock file of directory dir (openLock) and flocks it,
// waiting at most wait: fd is its descriptor, or -1 where the lock is
// not had, with why saying why (lockDir), and err set only for a
// directory missing or not a directory. The lock is kept only if the
// name still names the file locked (sameFile): a lock file removed
// meanwhile (config management purging what it does not manage, rm by
// hand) and made again by another writer, which locks the new one, would
// give two holders.
func lockFD(dir string, wait time.Duration) (fd int, why *UnlockedError, err error) {
	path := filepath.Join(dir, lockName)
	for range lockTries {
		fd, why, err := openLock(path)
		if fd < 0 {
			return -1, why, err
		}
		err = flockWithin(fd, wait)
		if err != nil {
			syscall.Close(fd)
			switch {
			case noLocks(err):
				return -1, &UnlockedError{Path: path, Reason: LockNoFlock, Err: err}, nil
			case errors.Is(err, syscall.EWOULDBLOCK):
				return -1, &UnlockedError{Path: path, Reason: LockHeld, Wait: wait}, nil
			}
			return -1, nil, &os.PathError{Op: "flock", Path: path, Err: err}
		}
		if sameFile(fd, path) {
			return fd, nil, nil
		}
		syscall.Close(fd)
	}
	return -1, &UnlockedError{Path: path, Reason: LockReplaced}, nil // go ahead unlocked
}

// unlockedWhy says why lockDirWithin(dir) held no lock where it gave no
// UnlockedError: this user may not write dir (another user's, or a
// read-only file system), or another process holds its lock — a keytool
// command, or a reader holding the directory's own lock (lockDir).
func unlockedWhy(dir string) error {
	if err := writable(dir); err != nil {
		return err
	}
	return fmt.Errorf("another process holds the lock of %s (a keytool command, or a reader holding the directory's own lock)", dir)
}

// writable says why this user may not write directory dir (access(2):
// another user's, a read-only file system), nil where it may.
func writable(dir string) error {
	if mayWrite(dir) {
		return nil
	}
	err := syscall.Access(dir, 2 /* W_OK */) // again, for its reason
	if err == nil {
		err = syscall.EACCES // a test's mayWrite
	}
	return &fs.PathError{Op: "write", Path: dir, Err: err}
}

// mayWrite reports whether this user may write directory dir: access(2)
// (a test makes it say no, as for another user than root).
var mayWrite = func(dir string) bool { return syscall.Access(dir, 2 /* W_OK */) == nil }

// sameFile reports whether path still names the file open on fd — not
// removed, nor replaced by another (a lock's holder checks it after its
// flock: lockFD, Lock.Held).
func sameFile(fd int, path string) bool {
	var open, named syscall.Stat_t
	return syscall.Fstat(fd, &open) == nil && syscall.Lstat(path, &named) == nil &&
		open.Dev == named.Dev && open.Ino == named.Ino
}

// openLock opens the lock file path of a directory for reading and
// writing, creating it (mode 0600) if missing, and returns its
// descriptor; -1 where there is no lock to take, with why saying why
// (nil where nothing can race: a read-only file system, a directory this
// user may not write), and err set only when the directory is missing
// or not a directory.
//
// It is never opened through a link (O_NOFOLLOW), nor blocked on (a FIFO:
// O_NONBLOCK), and is taken only if it is a regular file that group and
// others have no access to, owned by this user, root, or the directory's
// owner (unusable): a file others may open is a lock they may hold.
// (flock needs no access mode: opening it for writing makes it a file
// this user may write, and keeps out a read-only mount.) A file the
// checks refuse could only have been put there by a writer of the
// directory, who may replace the keys too; it is left as it is, and the
// edit goes ahead unlocked.
//
// Made by root in a directory another user owns (the service's, under
// strict modes), it is given to that user, so that the owner's own
// keytool (a server enrolling clients) may open it too. In a directory
// its group may write, the group's members other than its maker cannot
// open it and go ahead unlocked (LockNotPermitted): strict modes refuse
// such a directory anyway (trustfile.Rule), and a 0660 file would let a
// group lock it.
func openLock(path string) (int, *UnlockedError, error) {
	const flags = syscall.O_RDWR | syscall.O_CLOEXEC | syscall.O_NOFOLLOW | syscall.O_NONBLOCK | syscall.O_NOCTTY
	for range lockTries {
		fd, err := openRetried(path, flags, 0)
		made := false
		if err == syscall.ENOENT {
			made = true
			// Made under the admin index's bracket, so that a command's
			// own first lock is not taken for another writer's change of
			// the directory (ownwrites.go).
			err = bracket(path, func(func(string)) error {
				var err error
				fd, err = openRetried(path, flags|syscall.O_CREAT|syscall.O_EXCL, 0o600)
				if err == nil {
					madeLock(fd, filepath.Dir(path))
				}
				return err
			})
			if err == syscall.EEXIST { // made meanwhile by another writer
				continue
			}
		}
		switch {
		case err == syscall.ENOENT, err == syscall.ENOTDIR: // the directory
			return -1, nil, &os.PathError{Op: "open", Path: filepath.Dir(path), Err: err}
		case err == syscall.EROFS, made && (err == syscall.EACCES || err == syscall.EPERM):
			return -1, nil, nil // no write of this directory can race: none can be made
		case err != nil:
			return -1, unopened(path, err), nil
		}
		var st syscall.Stat_t
		if err := syscall.Fstat(fd, &st); err != nil {
			syscall.Close(fd)
			return -1, &UnlockedError{Path: path, Reason: LockOpenFailed, Err: err}, nil
		}
		if why := unusable(&st, path); why != nil {
			syscall.Close(fd)
			return -1, why, nil
		}
		return fd, nil, nil
	}
	return -1, &UnlockedError{Path: path, Reason: LockReplaced}, nil
}

// unopened says why the lock file path, which exists, could not be
// opened (err): another user's file this user may not open, a link or a
// directory as the checks of one opened would say (unusable), or err.
func unopened(path string, err error) *UnlockedError {
	var st syscall.Stat_t
	if syscall.Lstat(path, &st) == nil {
		if err == syscall.EACCES {
			return &UnlockedError{Path: path, Reason: LockNotPermitted, Mode: trustfile.ModeOf(uint32(st.Mode)), UID: int(st.Uid)}
		}
		if why := unusable(&st, path); why != nil {
			return why
		}
	}
	return &UnlockedError{Path: path, Reason: LockOpenFailed, Err: err}
}

// madeLock sets the lock file just made on fd to mode 0600 (whatever the
// umask left) and, made by root, gives it to the directory dir's owner.
func madeLock(fd int, dir string) {
	_ = syscall.Fchmod(fd, 0o600)
	var st syscall.Stat_t
	if os.Geteuid() == 0 && syscall.Stat(dir, &st) == nil && st.Uid != 0 {
		_ = syscall.Fchown(fd, int(st.Uid), int(st.Gid))
	}
}

// unusable says why the file of status st cannot be the lock file path
// of a directory (openLock), nil if it can: it must be a regular file no
// one but its owner may open, owned by this user, root, or the owner of
// the directory holding path.
func unusable(st *syscall.Stat_t, path string) *UnlockedError {
	why := &UnlockedError{Path: path, Mode: trustfile.ModeOf(uint32(st.Mode)), UID: int(st.Uid)}
	switch {
	case uint32(st.Mode)&syscall.S_IFMT != syscall.S_IFREG:
		why.Reason = LockNotRegular
	case st.Mode&0o077 != 0:
		why.Reason = LockOpenToOthers
	case int(st.Uid) == os.Geteuid() || st.Uid == 0:
		return nil
	default:
		var dst syscall.Stat_t
		if syscall.Stat(filepath.Dir(path), &dst) == nil && dst.Uid == st.Uid {
			return nil
		}
		why.Reason = LockOtherOwner
	}
	return why
}

// openLockFile is syscall.Open; a test makes it fail as a read-only
// file system does.
var openLockFile = syscall.Open

// openRetried is open(2), again while a signal interrupts it.
func openRetried(path string, flags int, perm uint32) (int, error) {
	for {
		fd, err := openLockFile(path, flags, perm)
		if err != syscall.EINTR {
			return fd, err
		}
	}
}

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
func (l *Lock) Held() bool { return sameFile(int(l.f.Fd()), l.path) }

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
