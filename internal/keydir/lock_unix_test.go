//go:build linux || darwin || dragonfly || freebsd || illumos || netbsd || openbsd

package keydir

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// On a file system without locks (NFS without lockd: ENOLCK), an edit
// still goes ahead unlocked, but the admin index is not used: two
// commands could fold one log into the shards one after the other, and
// an entry applied again could hide a key's copy (found by review).
func TestIndexUnusedWithoutALock(t *testing.T) {
	dir := t.TempDir()
	l := New(Config[string]{Sources: []Source{{Path: filepath.Join(dir, "authorized_keys.d"), Dir: true}}, Index: filepath.Join(dir, ".index")})
	unlock, ok := l.lockIndex(true)
	if !ok {
		t.Fatal("no index with flock(2) working")
	}
	unlock()

	old := flock
	flock = func(int, int) error { return syscall.ENOLCK }
	t.Cleanup(func() { flock = old })
	if _, ok := l.lockIndex(true); ok {
		t.Error("the index is used without its lock")
	}
	unlock, held, err := lockDir(dir)
	if err != nil || held {
		t.Fatalf("an edit without a lock: held %v, err %v; want it to go ahead unlocked", held, err)
	}
	unlock()
}

// A lock file removed between TryLock's open and its flock, and made and
// locked again by another process (rm -r of the --store mirror while a
// second command starts), is not "the" lock: TryLock's flock of the
// removed file succeeds, and without the check of the name after it two
// commands held the mirror at once. TryLock tries the file the name now
// gives, which the other holds.
func TestTryLockNotOnAReplacedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	real := flock
	t.Cleanup(func() { flock = real })
	var other *Lock
	flock = func(fd, how int) error {
		if other == nil {
			flock = real // the other process's own lock
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			l, ok := TryLock(path)
			if !ok {
				t.Fatal("the other process could not lock the new file")
			}
			other = l
		}
		return real(fd, how)
	}
	l, ok := TryLock(path)
	if other == nil {
		t.Fatal("the file was not replaced between the open and the flock")
	}
	defer other.Unlock()
	if ok {
		l.Unlock()
		t.Fatal("TryLock held a removed lock file while another process held the file at its path")
	}
	other.Unlock()
	l, ok = TryLock(path)
	if !ok {
		t.Fatal("TryLock failed on a free lock file")
	}
	l.Unlock()
}

// A Lock is held while its path names the file locked: removed (rm -r
// of the directory), or removed and made again by another process, it
// is not.
func TestLockHeld(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	l, ok := TryLock(path)
	if !ok {
		t.Fatal("no lock")
	}
	defer l.Unlock()
	if !l.Held() {
		t.Fatal("a lock just taken is not held")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if l.Held() {
		t.Error("held with its file removed")
	}
	other, ok := TryLock(path)
	if !ok {
		t.Fatal("the file made in its place could not be locked")
	}
	defer other.Unlock()
	if l.Held() || !other.Held() {
		t.Errorf("after another process locked the new file: first held %v, other held %v; want false, true", l.Held(), other.Held())
	}
}

// A lock file replaced at every try leaves LockFile without a lock and
// with ErrLockReplaced, not holding a file no one else finds.
func TestLockFileReplacedEveryTime(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	real := flock
	t.Cleanup(func() { flock = real })
	flock = func(fd, how int) error {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		return real(fd, how)
	}
	_, held, err := LockFile(path)
	if !errors.Is(err, ErrLockReplaced) || held {
		t.Fatalf("LockFile: held %v, err %v; want ErrLockReplaced", held, err)
	}
}

// A directory's lock held by someone who only reads the directory (flock
// on a descriptor opened for reading, which any user who may read it can
// take) and keeps it: lockDir goes ahead unlocked once lockWait has
// passed, and the admin index is not used; a lock released within it —
// another keytool writer's — is waited for and taken (review of
// 2026-12-03: before, lockDir waited as long as it was held).
func TestLockDirNotHeldForEver(t *testing.T) {
	dir := t.TempDir()
	l := New(Config[string]{Sources: []Source{{Path: filepath.Join(dir, "authorized_keys.d"), Dir: true}}, Index: filepath.Join(dir, ".index")})
	unlock, ok := l.lockIndex(true)
	if !ok {
		t.Fatal("no index with flock(2) working")
	}
	unlock()
	old := lockWait
	lockWait = 50 * time.Millisecond
	t.Cleanup(func() { lockWait = old })

	hold := func(path string) int {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Flock(fd, syscall.LOCK_EX); err != nil {
			t.Fatal(err)
		}
		return fd
	}
	fd := hold(dir)
	unlock, held, err := lockDir(dir)
	if err != nil || held {
		t.Fatalf("lockDir of a directory another holds for ever: held %v, err %v; want it to go ahead unlocked", held, err)
	}
	unlock()
	syscall.Close(fd)
	fd = hold(filepath.Join(dir, ".index"))
	if _, ok := l.lockIndex(false); ok {
		t.Error("the index is used without its lock")
	}
	syscall.Close(fd)

	lockWait = time.Minute // a bound on a hang
	fd = hold(dir)
	released := make(chan struct{})
	go func() {
		time.Sleep(20 * time.Millisecond)
		syscall.Close(fd)
		close(released)
	}()
	unlock, held, err = lockDir(dir)
	if err != nil || !held {
		t.Fatalf("lockDir of a directory whose lock is released: held %v, err %v; want it held", held, err)
	}
	unlock()
	<-released
}
