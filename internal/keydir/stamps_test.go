package keydir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/trustfile"
)

// A check walks a stamp file along the listing: an unchanged directory
// meets every record at its place (no map, nothing to write); a new file
// is looked up and leaves the order; a file gone, or a listing in
// another order, has the stamp file written again.
func TestStampFileWalk(t *testing.T) {
	var body []byte
	for _, n := range []string{"c", "a", "b"} {
		body = appendStampRecord(body, n, "stamp-"+n)
	}
	walk := func(names ...string) (*stampFile, map[string]string) {
		sf := &stampFile{body: string(body)}
		got := map[string]string{}
		for _, n := range names {
			if st, ok := sf.stamp(n); ok {
				got[n] = st
			}
		}
		return sf, got
	}
	for _, tc := range []struct {
		name      string
		listing   []string
		found     int
		done, out bool
		mapped    bool
	}{
		{"unchanged", []string{"c", "a", "b"}, 3, true, false, false},
		{"a new file", []string{"c", "new", "a", "b"}, 3, true, false, true},
		{"a file gone", []string{"c", "b"}, 2, false, true, true},
		{"another order", []string{"a", "b", "c"}, 3, false, true, true},
	} {
		sf, got := walk(tc.listing...)
		if len(got) != tc.found || sf.done() != tc.done || sf.out != tc.out || (sf.m != nil) != tc.mapped {
			t.Errorf("%s: found %d, done %v, out %v, map %v; want %d, %v, %v, %v",
				tc.name, len(got), sf.done(), sf.out, sf.m != nil, tc.found, tc.done, tc.out, tc.mapped)
		}
		for n, st := range got {
			if st != "stamp-"+n {
				t.Errorf("%s: stamp of %s is %q", tc.name, n, st)
			}
		}
	}
}

// A file of the directory that is a link to (or a bind mount of) a file
// on another file system is judged by that file system: where its stat
// may answer from a cache (NFS), the check marks it to be read whatever
// its stamp says, although the directory itself is on a local disk.
func TestStatDirJudgesLinksByTheirFileSystem(t *testing.T) {
	dir := t.TempDir()
	// Another file system than the directory's (a tmpfs); the stub
	// below plays NFS for it.
	remote, err := os.MkdirTemp("/dev/shm", "keytool-remote-")
	if err != nil {
		t.Fatalf("a directory on another file system is needed: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(remote) })
	here, _ := os.Stat(dir)
	there, _ := os.Stat(remote)
	if trustfile.StampOf(here).Device() == trustfile.StampOf(there).Device() {
		t.Fatalf("/dev/shm is on the same file system as %s here; the test needs another", dir)
	}
	for _, f := range []string{filepath.Join(dir, "local.json"), filepath.Join(remote, "far.json")} {
		if err := os.WriteFile(f, []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(remote, "far.json"), filepath.Join(dir, "far.json")); err != nil {
		t.Fatal(err)
	}
	bad := func() map[string]bool {
		listed, err := statDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for e := range listed.all() {
			got[e.name] = e.bad
		}
		return got
	}
	if got := bad(); got["far.json"] || got["local.json"] {
		t.Fatalf("on local file systems both stamps prove the files (to be read: %v)", got)
	}
	old := LocalStamps
	LocalStamps = func(p string) bool {
		if r, err := filepath.EvalSymlinks(p); err == nil && strings.HasPrefix(r, remote+string(filepath.Separator)) {
			return false
		}
		return old(p)
	}
	t.Cleanup(func() { LocalStamps = old })
	if got := bad(); !got["far.json"] || got["local.json"] {
		t.Fatalf("with far.json's file system answering from a cache, want only it to be read; to be read: %v", got)
	}
}
