package keydir

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"time"
)

// UnlockedError says why an edit of a directory went ahead without the
// directory's lock (lockDir: the lock file Path, .keytool.lock): another
// keytool editing the same file at the same moment may then undo the
// edit — a removed key coming back. It is no failure: the edit is made
// all the same, since refusing to remove a key would be worse than the
// race (docs/design.md, "Concurrent writers"); Loader.Unlocked returns
// those a loader's edits met, for the command line to warn of, with the
// fix.
//
// Where no edit can race, there is none: a read-only file system, or a
// directory this user may not write, where the lock file cannot be made
// — the edit's own write fails there too.
type UnlockedError struct {
	Path   string // the lock file
	Reason UnlockedReason
	// Mode is the lock file's type and permissions, UID its owner, as
	// found: set for LockNotRegular, LockOpenToOthers, LockOtherOwner and
	// LockNotPermitted.
	Mode fs.FileMode
	UID  int
	Wait time.Duration // LockHeld: how long it was waited for
	Err  error         // LockNoFlock, LockOpenFailed: what the system said
	// Index: the lock file is the admin index's (Config.Index). Nothing
	// goes ahead unlocked then: the index is not used, and a command
	// reads every file of its directories instead — as correct, and as
	// slow with many entries as without an index (docs/design.md, "The
	// admin index").
	Index bool
}

// UnlockedReason is why a directory's lock file was not had
// (UnlockedError).
type UnlockedReason int

const (
	// LockNotRegular: a directory, a link, a FIFO… (Mode), left as it is.
	LockNotRegular UnlockedReason = iota + 1
	// LockOpenToOthers: group or others have access to it (Mode): a lock
	// they may open is a lock they may keep.
	LockOpenToOthers
	// LockOtherOwner: owned by UID, neither this user, root nor the
	// directory's owner.
	LockOtherOwner
	// LockNotPermitted: this user may not open it for writing (UID,
	// Mode): another user's, in a directory both may write.
	LockNotPermitted
	// LockNoFlock: its file system has no flock(2) (some NFS, CIFS and
	// FUSE mounts).
	LockNoFlock
	// LockHeld: another writer held it longer than Wait.
	LockHeld
	// LockReplaced: it was removed or replaced between its open and its
	// flock at every try.
	LockReplaced
	// LockOpenFailed: it could not be opened for another reason (Err).
	LockOpenFailed
)

func (e *UnlockedError) Error() string {
	var why string
	switch e.Reason {
	case LockNotRegular:
		why = "is " + fileKind(e.Mode) + ", not a regular file"
	case LockOpenToOthers:
		why = fmt.Sprintf("may be opened by group or others (mode %04o)", e.Mode.Perm())
	case LockOtherOwner:
		why = fmt.Sprintf("is owned by uid %d, neither this user, root nor the directory's owner", e.UID)
	case LockNotPermitted:
		why = fmt.Sprintf("is uid %d's (mode %04o), and this user may not open it", e.UID, e.Mode.Perm())
	case LockNoFlock:
		why = fmt.Sprintf("cannot be locked: its file system has no flock(2) (%v)", e.Err)
	case LockHeld:
		why = fmt.Sprintf("was held by another writer longer than %v", e.Wait)
	case LockReplaced:
		why = "was replaced between its open and its flock at every try"
	default:
		why = fmt.Sprintf("cannot be opened: %v", e.Err)
	}
	if e.Index {
		return fmt.Sprintf("keydir: lock file %s %s: the admin index %s is not used, and each command reads every file instead (slow with many entries)", e.Path, why, filepath.Dir(e.Path))
	}
	return fmt.Sprintf("keydir: lock file %s %s: edits of %s go ahead unlocked", e.Path, why, filepath.Dir(e.Path))
}

func (e *UnlockedError) Unwrap() error { return e.Err }

// fileKind names the type of a file of mode m, with its article.
func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeDir != 0:
		return "a directory"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "a special file"
}

// LockDir takes the lock EditFile takes on directory dir (an exclusive
// flock(2) of its lock file, .keytool.lock, which only the directory's
// writers may open; waiting for it at most 10 s), for a writer whose
// check and write must be one step against every keytool writer of the
// directory: authkeys.Store.Add (docs/design.md, "Concurrent writers").
// Where no lock can be had (a file system without flock(2), a read-only
// one, a directory this user may not write, a lock file that is not a
// regular file of the directory's writers, a lock held past the wait)
// held is false and unlock does nothing: the caller goes ahead unlocked,
// as EditFile does, and why is kept for Unlocked; held is false too
// where an older keytool, or a reader, holds the directory's own lock
// (lockDir). The caller must not edit a file of dir (EditFile) while it
// holds the lock: a second lock of the directory in one process waits
// for the first.
func (l *Loader[T]) LockDir(dir string) (unlock func(), held bool, err error) {
	unlock, held, why, err := lockDir(dir)
	if why != nil {
		l.noteUnlocked(why)
	}
	return unlock, held, err
}

// LockWriters takes the lock of directory dir's writers that EditFile
// takes (lockDir: .keytool.lock in dir, flocked, waited for at most
// 10 s), for writers of files that are no trust directory's key files:
// the home's identity (key.*, pub_key.*, key.next.*), whose private key
// and public halves gen and rotate must write together, never
// interleaved with another writer's (internal/cli gen,
// tlsbridge.RotateHome; docs/design.md, "Concurrent writers"). Where the
// lock cannot be had, unlock does nothing and the caller goes ahead
// unlocked, as EditFile does: why says why, for the caller to warn of
// with the fix (nil where nothing can race: a read-only file system, a
// directory this user may not write, a system without flock(2)). err is
// dir missing or not a directory. A lock of dir already held in this
// process is waited for like another process's: the caller must not
// take it twice, nor edit a file of dir (EditFile) while it holds it.
func LockWriters(dir string) (unlock func(), why *UnlockedError, err error) {
	unlock, _, why, err = lockDir(dir)
	return unlock, why, err
}

// noteUnlocked keeps why for Unlocked, once for each lock file and
// reason. It is not logged here: the caller says it, once (the command
// line as a warning with its fix, enroll's server in its log), and a
// command's store may log its problems to the same standard error.
func (l *Loader[T]) noteUnlocked(why *UnlockedError) {
	l.unlockedMu.Lock()
	defer l.unlockedMu.Unlock()
	for _, u := range l.unlocked {
		if u.Path == why.Path && u.Reason == why.Reason {
			return
		}
	}
	l.unlocked = append(l.unlocked, why)
}

// Unlocked returns why the loader's edits (EditFile, LockDir) went ahead
// without their directory's lock, each lock file and reason once, in
// the order met; none where every edit was locked, or could race no one
// (UnlockedError).
func (l *Loader[T]) Unlocked() []*UnlockedError {
	l.unlockedMu.Lock()
	defer l.unlockedMu.Unlock()
	return append([]*UnlockedError(nil), l.unlocked...)
}

// lockWait bounds lockDir's wait for a directory's lock file, a last
// resort: only the directory's writers may open it, and keytool's hold it
// for one edit, milliseconds; a writer that hangs, or a process of the
// directory's owner that keeps it, must not hold every removal back — a
// key to be removed staying authorized, its connections open. (Before
// the lock file, the lock was the directory's own, which any reader could
// keep: found by review, 2026-12-03,
// internal/cli.TestRemovalNotStoppedByAReaderOfTheDirectory.) (A variable
// for tests.)
var lockWait = 10 * time.Second
