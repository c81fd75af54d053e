//go:build unix

package atomicfile

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// RemoveStale removes what killed writes of a path left — its temporary
// names, regular files of the user's, unwritten for StaleAge, a second
// name of the file itself included — and nothing else: not a temporary
// still fresh, nor another file's, nor a name that only looks like one,
// nor a link, a directory or another user's file under such a name.
// (Built for unix: elsewhere the system says no owner, and RemoveStale
// removes nothing.)
func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key.json")
	if err := Write(path, []byte("the key"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-StaleAge - time.Minute)
	put := func(name string, mtime time.Time) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("a copy"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stale := []string{put(".key.json.123.tmp", old), put(".key.json.4294967295.tmp", old), put(".key.json.0.tmp", old)}
	// Create killed between its link and the removal of the temporary
	// name: the name is the key's own file.
	linked := filepath.Join(dir, ".key.json.77.tmp")
	if err := os.Link(path, linked); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	stale = append(stale, linked)
	kept := []string{
		put(".key.json.456.tmp", time.Now()), // a write under way
		put(".key.json.123.tmp~", old),       // not the name
		put(".key.json.12a.tmp", old),        // not digits
		put(".key.json.0123.tmp", old),       // not CreateTemp's spelling
		put(".key.json.4294967296.tmp", old), // past a uint32
		put(".key.json..tmp", old),           // no digits
		put(".other.json.123.tmp", old),      // another file's
		put(".key.json.pub.123.tmp", old),    // another file's
		put("key.json.123.tmp", old),         // not a dotfile
		put("target", old),                   // what the link below names
	}
	link := filepath.Join(dir, ".key.json.500.tmp")
	if err := os.Symlink(kept[len(kept)-1], link); err != nil {
		t.Fatal(err)
	}
	ts := []unix.Timespec{unix.NsecToTimespec(old.UnixNano()), unix.NsecToTimespec(old.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, link, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Fatal(err) // the link itself as old as the rest
	}
	sub := filepath.Join(dir, ".key.json.501.tmp")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(sub, old, old); err != nil {
		t.Fatal(err)
	}
	kept = append(kept, link, sub)
	if os.Geteuid() == 0 {
		other := put(".key.json.502.tmp", old)
		if err := os.Chown(other, 12345, 12345); err != nil {
			t.Fatal(err)
		}
		kept = append(kept, other)
	} else {
		t.Log("not root: the file of another user is not tried")
	}

	removed := RemoveStale(path)
	slices.Sort(removed)
	slices.Sort(stale)
	if !slices.Equal(removed, stale) {
		t.Errorf("removed %q, want %q", removed, stale)
	}
	for _, p := range stale {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s is still there (%v)", filepath.Base(p), err)
		}
	}
	for _, p := range append(kept, path) {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
	if data, err := os.ReadFile(path); err != nil || string(data) != "the key" {
		t.Errorf("the key's file after its second name went: %q, %v", data, err)
	}
}
