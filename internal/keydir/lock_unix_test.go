//go:build linux || darwin || dragonfly || freebsd || illumos || netbsd || openbsd

package keydir

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/internal/trustfile"
	"github.com/keytool/keytool/jwk"
)

// On a file system without locks (NFS without lockd: ENOLCK), an edit
// still goes ahead unlocked, but the admin index is not used: two
// commands could fold one log into the shards one after the other, and
// an entry applied again could hide a key's copy (found by review).
func TestIndexUnusedWithoutALock(t *testing.T) {
	dir := t.TempDir()
	l := New(Config[string]{Sources: []Source{{Path: filepath.Join(dir, "authorized_keys.d"), Dir: true}}, Index: filepath.Join(dir, ".index")})
	unlock, ok := l.lockIndex(true, lockWait)
	if !ok {
		t.Fatal("no index with flock(2) working")
	}
	unlock()

	old := flock
	flock = func(int, int) error { return syscall.ENOLCK }
	t.Cleanup(func() { flock = old })
	if _, ok := l.lockIndex(true, lockWait); ok {
		t.Error("the index is used without its lock")
	}
	unlock, held, why, err := lockDir(dir)
	if err != nil || held {
		t.Fatalf("an edit without a lock: held %v, err %v; want it to go ahead unlocked", held, err)
	}
	unlock()
	if why == nil || why.Reason != LockNoFlock || !errors.Is(why, syscall.ENOLCK) {
		t.Errorf("why an edit without flock(2) is unlocked: %v; want LockNoFlock, ENOLCK", why)
	}
}

// A lock file of the admin index that cannot be had (here one group and
// others may open) turns the index off — nothing is written unlocked —
// and says so, once, as an edit's lock says why it was not had: without
// it every admin command is as slow as a whole load, silently, for as
// long as the file stays. The index's reason is told apart (Index), so
// that the command line does not warn of an edit undone.
func TestIndexLockFileUnusableSaysWhy(t *testing.T) {
	dir := t.TempDir()
	index := filepath.Join(dir, ".index")
	l := New(Config[string]{Sources: []Source{{Path: filepath.Join(dir, "authorized_keys.d"), Dir: true}}, Index: index})
	unlock, ok := l.lockIndex(true, lockWait)
	if !ok {
		t.Fatal("no index with flock(2) working")
	}
	unlock()
	if u := l.Unlocked(); len(u) != 0 {
		t.Fatalf("a usable index lock reported: %v", u)
	}
	lockFile := filepath.Join(index, lockName)
	if err := os.Chmod(lockFile, 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, ok := l.lockIndex(false, lockWait); ok {
			t.Fatal("the index is used without its lock")
		}
	}
	u := l.Unlocked()
	if len(u) != 1 || !u[0].Index || u[0].Reason != LockOpenToOthers || u[0].Path != lockFile {
		t.Fatalf("Unlocked = %v; want the index's lock file, once, open to others", u)
	}
	want := "keydir: lock file " + lockFile + " may be opened by group or others (mode 0644): the admin index " + index + " is not used, and each command reads every file instead (slow with many entries)"
	if got := u[0].Error(); got != want {
		t.Errorf("message %q\nwant %q", got, want)
	}
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

// lockedByAnother reports whether path's flock is held by a descriptor
// other than one of the caller's: a try of its own fails.
func lockedByAnother(t *testing.T, path string) bool {
	t.Helper()
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	err = syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
	if err != nil && !errors.Is(err, syscall.EWOULDBLOCK) {
		t.Fatal(err)
	}
	return err != nil
}

// boundWait sets lockWait to a minute for the test: a bound on a hang,
// which lockDir reaches only where it waits for a lock it must not.
func boundWait(t *testing.T, d time.Duration) {
	old := lockWait
	lockWait = d
	t.Cleanup(func() { lockWait = old })
}

// The directory's own lock held by someone who may only read the
// directory (flock on a descriptor opened for reading, which any user
// who may read it can take; or an older keytool): lockDir does not wait
// for it at all — it takes the lock file, which excludes keytool's
// writers — but says held false, so that the admin index, which an older
// keytool folds under the directory's lock, is not used meanwhile. While
// lockDir holds, an older keytool's try of the directory's lock fails.
// Before (review of 2026-12-03): the lock was the directory's, and
// lockDir waited for it, first without end, then for lockWait (10 s).
func TestLockDirNotHeldByAReader(t *testing.T) {
	dir := t.TempDir()
	boundWait(t, time.Minute)
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(fd, syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	unlock, held, _, err := lockDir(dir)
	if err != nil || held {
		t.Fatalf("lockDir with the directory's own lock held: held %v, err %v; want the lock file's lock, held false", held, err)
	}
	lock := filepath.Join(dir, lockName)
	if !lockedByAnother(t, lock) {
		t.Error("the lock file is not locked")
	}
	unlock()
	syscall.Close(fd)
	fi, err := os.Lstat(lock)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Fatalf("lock file: %v, %v; want a regular file, mode 0600", fi, err)
	}

	unlock, held, _, err = lockDir(dir)
	if err != nil || !held {
		t.Fatalf("lockDir, nothing held: held %v, err %v", held, err)
	}
	if !lockedByAnother(t, dir) {
		t.Error("an older keytool's lock of the directory is not excluded")
	}
	unlock()
	if lockedByAnother(t, dir) || lockedByAnother(t, lock) {
		t.Error("still locked after unlock")
	}
}

// asNobody is a command run as uid and gid 65534 (root only), for what
// another local user does; reachable makes the test's directories above
// path (its own, under os.TempDir) searchable by them.
func asNobody(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	return cmd
}

func reachable(t *testing.T, path string) {
	t.Helper()
	top := filepath.Clean(os.TempDir())
	for d := path; strings.HasPrefix(d, top+string(filepath.Separator)); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// Another local user who may read the directory (0755, as
// authorized_keys.d under /etc/keytool, docs/deploy.md) cannot open its
// lock file, and holds the directory's own lock with util-linux flock(1)
// as the review did: a writer takes the lock file at once, without
// waiting for lockWait (a minute here: lockDir would come back without
// the lock). (Needs root to be another user; CI runs as root.)
func TestLockDirNotHeldByAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		return // another user needs root (tests never skip in CI, which is root)
	}
	dir := t.TempDir()
	reachable(t, dir)
	boundWait(t, time.Minute)
	unlock, _, _, err := lockDir(dir) // makes the lock file
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	lock := filepath.Join(dir, lockName)
	out, err := asNobody("flock", "--nonblock", lock, "true").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Permission denied") {
		t.Fatalf("flock(1) of the lock file as another user: %v, %s; want permission denied", err, out)
	}
	hold := asNobody("flock", dir, "sh", "-c", "echo held; exec cat")
	in, err := hold.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := hold.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := hold.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { in.Close(); hold.Wait() }()
	line := make([]byte, 5)
	if _, err := io.ReadFull(stdout, line); err != nil || string(line) != "held\n" {
		t.Fatalf("the other user's flock(1) of the directory: %q, %v", line, err)
	}
	if !lockedByAnother(t, dir) {
		t.Fatal("the other user does not hold the directory's lock")
	}
	unlock, _, _, err = lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if !lockedByAnother(t, lock) {
		t.Error("lockDir went ahead without the lock file's lock")
	}
}

// Two writers of a directory are serialised by its lock file: while one
// holds it, another that may not wait does not get it; one that waits
// gets it once it is released.
func TestLockDirWritersSerialised(t *testing.T) {
	dir := t.TempDir()
	boundWait(t, 0) // try once
	unlock, held, _, err := lockDir(dir)
	if err != nil || !held {
		t.Fatalf("first writer: held %v, err %v", held, err)
	}
	if _, held, why, err := lockDir(dir); err != nil || held || why == nil || why.Reason != LockHeld {
		t.Fatalf("second writer while the first holds: held %v, why %v, err %v; want no lock, LockHeld", held, why, err)
	}
	unlock()

	lockWait = time.Minute // a bound on a hang
	first, _, _, _ := lockDir(dir)
	released := make(chan struct{})
	go func() {
		time.Sleep(20 * time.Millisecond)
		first()
		close(released)
	}()
	unlock, held, _, err = lockDir(dir)
	if err != nil || !held {
		t.Fatalf("second writer once the first releases: held %v, err %v; want it held", held, err)
	}
	unlock()
	<-released
}

// A directory this user may not write, or on a read-only file system (a
// Kubernetes volume), has no lock file to make: lockDir goes ahead
// unlocked at once, as where flock(2) cannot be had, and an edit with
// it; a missing directory is an error, as before.
func TestLockDirWithoutALockFile(t *testing.T) {
	dir := t.TempDir()
	boundWait(t, time.Minute)
	real := openLockFile
	t.Cleanup(func() { openLockFile = real })
	openLockFile = func(path string, flags int, perm uint32) (int, error) {
		if flags&syscall.O_CREAT != 0 {
			return -1, syscall.EROFS
		}
		return real(path, flags, perm)
	}
	// No reason: nothing can race where nothing can be written (the
	// edit's own write fails too), and there is nothing to fix.
	unlock, held, why, err := lockDir(dir)
	if err != nil || held || why != nil {
		t.Fatalf("lockDir on a read-only file system: held %v, why %v, err %v; want it to go ahead unlocked, no reason", held, why, err)
	}
	unlock()
	openLockFile = real

	if _, _, _, err := lockDir(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lockDir of a missing directory: %v; want not exist", err)
	}
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
		unlock, held, why, err = lockDir(dir)
		if err != nil || held || why != nil {
			t.Fatalf("lockDir of a directory this user may not write: held %v, why %v, err %v; want unlocked, no reason", held, why, err)
		}
		unlock()
		return
	}
	openLockFile = func(path string, flags int, perm uint32) (int, error) {
		if flags&syscall.O_CREAT != 0 {
			return -1, syscall.EACCES // root may write any directory: as another user
		}
		return real(path, flags, perm)
	}
	unlock, held, why, err = lockDir(dir)
	if err != nil || held || why != nil {
		t.Fatalf("lockDir of a directory this user may not write: held %v, why %v, err %v; want unlocked, no reason", held, why, err)
	}
	unlock()
}

// A lock file planted by someone who could write the directory — a link
// (to a file of theirs, or to one that does not exist yet), a FIFO, a
// file others may open, another user's file — is neither followed, nor
// blocked on, nor locked: lockDir goes ahead unlocked at once, leaves
// it as it is, and says why (reason: the command line's warning).
func TestLockDirPlantedLockFile(t *testing.T) {
	boundWait(t, time.Minute)
	for _, c := range []struct {
		why    string
		plant  func(lock, other string) error
		root   bool
		reason UnlockedReason
		mode   fs.FileMode // of the lock file, as the reason gives it
	}{
		{"a link to a file", func(lock, other string) error {
			if err := os.WriteFile(other, nil, 0o600); err != nil {
				return err
			}
			return os.Symlink(other, lock)
		}, false, LockNotRegular, fs.ModeSymlink | 0o777},
		{"a link to no file", func(lock, other string) error { return os.Symlink(other, lock) }, false, LockNotRegular, fs.ModeSymlink | 0o777},
		{"a FIFO", func(lock, _ string) error { return unix.Mkfifo(lock, 0o600) }, false, LockNotRegular, fs.ModeNamedPipe | 0o600},
		{"a directory", func(lock, _ string) error { return os.Mkdir(lock, 0o700) }, false, LockNotRegular, fs.ModeDir | 0o700},
		{"a file others may read", func(lock, _ string) error {
			if err := os.WriteFile(lock, nil, 0o600); err != nil {
				return err
			}
			return os.Chmod(lock, 0o644)
		}, false, LockOpenToOthers, 0o644},
		{"a file its group may write", func(lock, _ string) error {
			if err := os.WriteFile(lock, nil, 0o600); err != nil {
				return err
			}
			return os.Chmod(lock, 0o620)
		}, false, LockOpenToOthers, 0o620},
		{"another user's file", func(lock, _ string) error {
			if err := os.WriteFile(lock, nil, 0o600); err != nil {
				return err
			}
			return os.Chown(lock, 65534, 65534)
		}, true, LockOtherOwner, 0o600},
	} {
		if c.root && os.Geteuid() != 0 {
			continue // chown needs root (CI is root)
		}
		dir, other := t.TempDir(), filepath.Join(t.TempDir(), "theirs")
		lock := filepath.Join(dir, lockName)
		if err := c.plant(lock, other); err != nil {
			t.Fatal(err)
		}
		before, err := os.Lstat(lock)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			unlock, held, why, err := lockDir(dir)
			if err == nil && held {
				err = errors.New("held")
			}
			if err == nil && (why == nil || why.Reason != c.reason || why.Path != lock || why.Mode != c.mode || why.UID != int(uid(before))) {
				err = fmt.Errorf("why %+v; want reason %d, path %s, mode %v, uid %d", why, c.reason, lock, c.mode, uid(before))
			}
			if err == nil && before.Mode().IsRegular() && lockedByAnother(t, lock) {
				err = errors.New("the planted file is locked")
			}
			if err == nil && before.Mode()&fs.ModeSymlink != 0 {
				if fi, serr := os.Stat(other); serr == nil && (fi.Size() != 0 || lockedByAnother(t, other)) {
					err = errors.New("the link's target was written or locked")
				} else if errors.Is(serr, fs.ErrNotExist) == (c.why == "a link to a file") {
					err = fmt.Errorf("the link's target: %v", serr)
				}
			}
			if unlock != nil {
				unlock()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s as the lock file: %v; want lockDir to go ahead unlocked, leaving it", c.why, err)
			}
		case <-time.After(time.Minute): // a bound on a hang
			t.Fatalf("%s as the lock file: lockDir blocked", c.why)
		}
		after, err := os.Lstat(lock)
		if err != nil || after.Mode() != before.Mode() || !os.SameFile(before, after) {
			t.Errorf("%s as the lock file: now %v, %v", c.why, after, err)
		}
	}
}

// uid is the owner of the file of fi.
func uid(fi fs.FileInfo) uint32 { return fi.Sys().(*syscall.Stat_t).Uid }

// A lock file another user owns, which this user may not open: in a
// directory two users may write, the one that did not make it (strict
// modes refuse such a directory, but a writer goes ahead there all the
// same), or this user's own file without write permission. lockDir goes
// ahead unlocked and says whose file it is. (Root opens any file: as
// root, the open's EACCES is the kernel's answer to another user, given
// by the test.)
func TestLockDirLockFileNotPermitted(t *testing.T) {
	dir := t.TempDir()
	boundWait(t, time.Minute)
	lock := filepath.Join(dir, lockName)
	if err := os.WriteFile(lock, nil, 0o400); err != nil {
		t.Fatal(err)
	}
	owner := os.Geteuid()
	if owner == 0 {
		owner = 65534
		if err := os.Chown(lock, owner, owner); err != nil {
			t.Fatal(err)
		}
		real := openLockFile
		t.Cleanup(func() { openLockFile = real })
		openLockFile = func(path string, flags int, perm uint32) (int, error) {
			if path == lock {
				return -1, syscall.EACCES
			}
			return real(path, flags, perm)
		}
	}
	unlock, held, why, err := lockDir(dir)
	if err != nil || held {
		t.Fatalf("held %v, err %v; want unlocked", held, err)
	}
	unlock()
	if why == nil || why.Reason != LockNotPermitted || why.UID != owner || why.Mode != 0o400 || why.Path != lock {
		t.Fatalf("why: %+v; want LockNotPermitted, uid %d, mode 0400", why, owner)
	}
	want := fmt.Sprintf("keydir: lock file %s is uid %d's (mode 0400), and this user may not open it: edits of %s go ahead unlocked", lock, owner, dir)
	if why.Error() != want {
		t.Errorf("message:\n%s\nwant\n%s", why, want)
	}
}

// A lock file this user may not open in a directory it may not write
// either (a user who is not the directory's admin running keytool) is
// no race to warn of: the edit's own write fails there too, with its own
// error. (As root, who may write any directory, access(2)'s answer to
// another user is given by the test.)
func TestLockDirNotPermittedNorWritable(t *testing.T) {
	dir := t.TempDir()
	boundWait(t, time.Minute)
	lock := filepath.Join(dir, lockName)
	if err := os.WriteFile(lock, nil, 0o400); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		real := openLockFile
		t.Cleanup(func() { openLockFile = real })
		openLockFile = func(path string, flags int, perm uint32) (int, error) { return -1, syscall.EACCES }
		old := mayWrite
		t.Cleanup(func() { mayWrite = old })
		mayWrite = func(string) bool { return false }
	} else {
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
	}
	unlock, held, why, err := lockDir(dir)
	if err != nil || held || why != nil {
		t.Fatalf("held %v, why %v, err %v; want unlocked, no reason", held, why, err)
	}
	unlock()
}

// A lock file replaced between the open and the flock at every try
// (something purging the directory as keytool takes it) leaves lockDir
// unlocked, saying so, rather than holding a file no one else finds;
// the check is the one Lock.Held makes (sameFile).
func TestLockDirReplacedEveryTime(t *testing.T) {
	dir := t.TempDir()
	boundWait(t, time.Minute)
	lock := filepath.Join(dir, lockName)
	real := flock
	t.Cleanup(func() { flock = real })
	tries := 0
	flock = func(fd, how int) error {
		var st syscall.Stat_t
		if err := syscall.Fstat(fd, &st); err == nil && st.Mode&syscall.S_IFMT == syscall.S_IFREG {
			tries++
			if err := os.Remove(lock); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(lock, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return real(fd, how)
	}
	unlock, held, why, err := lockDir(dir)
	if err != nil || held {
		t.Fatalf("held %v, err %v; want unlocked", held, err)
	}
	unlock()
	if why == nil || why.Reason != LockReplaced || tries != lockTries {
		t.Fatalf("why: %v after %d tries; want LockReplaced after %d", why, tries, lockTries)
	}
}

// EditFile goes ahead without the lock, and the loader says why, once
// for its lock file however many edits met it (Loader.Unlocked: what
// the command line warns of).
func TestEditFileUnlockedSaysWhy(t *testing.T) {
	dir := t.TempDir()
	boundWait(t, time.Minute)
	file := filepath.Join(dir, "a.json")
	keydirtest.Write(t, file, keydirtest.JWK(t, key(t, 1), key(t, 2), key(t, 3)))
	lock := filepath.Join(dir, lockName)
	if err := os.WriteFile(lock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(lock, 0o644); err != nil {
		t.Fatal(err)
	}
	l := New(Config[string]{Home: dir, Sources: []Source{{Path: dir, Dir: true}}, Convert: fpConvert})
	l.Reload()
	if u := l.Unlocked(); len(u) != 0 {
		t.Fatalf("before any edit: %v", u)
	}
	for range 2 {
		n := 0
		if _, err := l.EditFile(file, func(k *jwk.Key) *jwk.Key {
			if n++; n == 1 {
				return nil
			}
			return k
		}); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := jwk.ReadFile(file)
	if err != nil || len(keys) != 1 {
		t.Fatalf("after two edits each dropping a key: %d keys, %v; want 1", len(keys), err)
	}
	u := l.Unlocked()
	if len(u) != 1 || u[0].Reason != LockOpenToOthers || u[0].Path != lock || u[0].Mode != 0o644 {
		t.Fatalf("Unlocked: %v; want the lock file once, LockOpenToOthers, mode 0644", u)
	}
	if fi, err := os.Lstat(lock); err != nil || fi.Mode() != 0o644 {
		t.Errorf("lock file: %v, %v; want it left as it is", fi, err)
	}
}

// A lock file made by root in a directory another user owns (the
// service's user, under strict modes) is that user's, mode 0600, so
// that their own keytool (a server enrolling clients) may take it too;
// made by the directory's owner it is theirs, mode 0600 whatever the
// umask.
func TestLockFileOwner(t *testing.T) {
	dir := t.TempDir()
	old := syscall.Umask(0o077)
	unlock, _, _, err := lockDir(dir)
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	fi, err := os.Lstat(filepath.Join(dir, lockName))
	if err != nil || fi.Mode() != 0o600 {
		t.Fatalf("lock file: %v, %v; want mode 0600", fi, err)
	}
	if os.Geteuid() != 0 {
		return // chown needs root (CI is root)
	}
	dir = t.TempDir()
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	unlock, held, _, err := lockDir(dir)
	if err != nil || !held {
		t.Fatalf("held %v, err %v", held, err)
	}
	unlock()
	fi, err = os.Lstat(filepath.Join(dir, lockName))
	if err != nil {
		t.Fatal(err)
	}
	if uid, _ := trustfile.Owner(fi); uid != 65534 || fi.Mode() != 0o600 {
		t.Errorf("lock file made by root in a directory of uid 65534: uid %d, mode %v; want 65534, 0600", uid, fi.Mode())
	}
	unlock, held, _, err = lockDir(dir) // root takes the owner's
	if err != nil || !held {
		t.Fatalf("again: held %v, err %v", held, err)
	}
	unlock()
}

// The lock file is no key file, no problem and no change: a directory's
// load after a lock does not list it, and the first lock's making of it
// in an admin command's directory is the command's own write, which
// leaves the admin index current (bracket).
func TestLockFileNotLoaded(t *testing.T) {
	dir := t.TempDir()
	unlock, _, _, err := lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	l := New(Config[string]{Sources: []Source{{Path: dir, Dir: true}}})
	snap := l.Reload()
	if len(snap.Problems) != 0 || len(snap.Files()) != 0 {
		t.Errorf("a directory holding only its lock file loads %d files, problems %v", len(snap.Files()), snap.Problems)
	}
}

// A reader holding the admin index directory's own lock makes the index
// go unused (lockDir: held false), but the lock file, which lockDir did
// take, must be let go: kept, the process's next lock of the index
// waited for itself, and every other command for it, 10 s a time (a hung
// TestLoadForConcurrentProcesses: one process with two descriptors of
// the index's lock file, the other waiting).
func TestIndexLockLetGoWhenNotUsed(t *testing.T) {
	dir := t.TempDir()
	boundWait(t, time.Minute)
	index := filepath.Join(dir, ".index")
	l := New(Config[string]{Sources: []Source{{Path: filepath.Join(dir, "authorized_keys.d"), Dir: true}}, Index: index})
	fl := &focusedLoad[string]{l: l}
	unlock, ok := fl.lock(true)
	if !ok {
		t.Fatal("no index lock with nothing held")
	}
	unlock()
	fd, err := syscall.Open(index, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Flock(fd, syscall.LOCK_EX); err != nil { // a reader of the index directory
		t.Fatal(err)
	}
	if _, ok := fl.lock(false); ok {
		t.Fatal("the index used while a reader holds its directory's own lock")
	}
	if lockedByAnother(t, filepath.Join(index, lockName)) {
		t.Fatal("the index's lock file is still held after the index went unused")
	}
}
