//go:build linux || darwin || dragonfly || freebsd || illumos || netbsd || openbsd

package keydir

import (
	"path/filepath"
	"syscall"
	"testing"
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
