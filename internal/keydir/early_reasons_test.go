//go:build linux

package keydir

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/internal/trustfile"
)

// indexedDirs makes a home of dirs directories of files single-key files
// each (d0, d1, …), IndexMinFiles 5 for the test, and returns them with
// the home's index directory (not made).
func indexedDirs(t *testing.T, dirs, files int) (srcs []string, index string) {
	t.Helper()
	old := IndexMinFiles
	IndexMinFiles = 5
	t.Cleanup(func() { IndexMinFiles = old })
	home := t.TempDir()
	for d := range dirs {
		src := filepath.Join(home, "d"+strconv.Itoa(d))
		for i := range files {
			keydirtest.Write(t, filepath.Join(src, "k"+strconv.Itoa(i)+".json"), keydirtest.JWK(t, key(t, d*100+i)))
		}
		srcs = append(srcs, src)
	}
	return srcs, filepath.Join(home, ".index")
}

// indexedLoader is a loader of srcs with an admin index in index.
func indexedLoader(t *testing.T, srcs []string, index string) *Loader[string] {
	var ss []Source
	for _, s := range srcs {
		ss = append(ss, Source{Path: s, Dir: true})
	}
	l := New(Config[string]{Sources: ss, Index: index, Home: filepath.Dir(index), Convert: fpConvert, Rescan: -1,
		Terms: func(f *File[string], i int) []Term { return []Term{KeyTerm(sha256.Sum256([]byte(f.Items()[i])))} }})
	t.Cleanup(func() { l.Close() })
	return l
}

// indexDirOf is the directory of src's index in index.
func indexDirOf(index, src string) string {
	h := sha256.Sum256([]byte(src))
	return filepath.Join(index, hex.EncodeToString(h[:8]))
}

// An index directory this user may not write (another user's, a
// read-only file system): LoadProved says so, not that another process
// held the lock (found by review: every lock not had was said held past
// the wait, where none was waited for).
func TestLoadProvedSaysWhyNotLocked(t *testing.T) {
	srcs, index := indexedDirs(t, 1, 10)
	if err := os.Mkdir(index, 0o700); err != nil {
		t.Fatal(err)
	}
	open, may := openLockFile, mayWrite
	t.Cleanup(func() { openLockFile, mayWrite = open, may })
	openLockFile = func(string, int, uint32) (int, error) { return -1, syscall.EACCES }
	mayWrite = func(string) bool { return false }
	err := indexedLoader(t, srcs, index).LoadProved(Query{})
	var np *NotProvedError
	if !errors.As(err, &np) || !np.Large || !strings.Contains(err.Error(), "could not be locked: write "+index+": permission denied") || strings.Contains(err.Error(), "holds the lock") {
		t.Fatalf("got %v", err)
	}
}

// A directory whose index cannot be written does not keep the next from
// getting its own (found by review).
func TestIndexAfterGoesOnToTheNextDirectory(t *testing.T) {
	srcs, index := indexedDirs(t, 2, 10)
	keydirtest.Write(t, indexDirOf(index, srcs[0]), []byte("in the way\n"))
	l := indexedLoader(t, srcs, index)
	write := l.IndexAfter(nil)
	l.Reload()
	err := write()
	var nw *IndexNotWrittenError
	if !errors.As(err, &nw) || nw.Dir != srcs[0] {
		t.Errorf("write: %v, want an *IndexNotWrittenError for %s", err, srcs[0])
	}
	if newSourceIndex(index, srcs[1], trustfile.Rule{Top: filepath.Dir(index)}).head() == nil {
		t.Errorf("%s got no index because %s's failed", srcs[1], srcs[0])
	}
}

// An index directory that exists, whose lock is not had (a reader holds
// the directory's own lock): IndexAfter writes nothing, says nothing
// (LoadProved said why at the start), and reads nothing of the index
// without its lock — it left a descriptor open at each call (review).
func TestIndexAfterNotLockedIsQuiet(t *testing.T) {
	srcs, index := indexedDirs(t, 1, 10)
	l := indexedLoader(t, srcs, index)
	write := l.IndexAfter(nil)
	l.Reload()
	if err := write(); err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Open(index, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Flock(fd, syscall.LOCK_SH); err != nil {
		t.Fatal(err)
	}
	xdir := indexDirOf(index, srcs[0])
	before := fdsOn(t, xdir)
	for range 5 {
		if err := l.IndexAfter(nil)(); err != nil {
			t.Fatal(err)
		}
	}
	if after := fdsOn(t, xdir); after != before {
		t.Errorf("descriptors open on %s: %d before, %d after five IndexAfter writes that could not lock", xdir, before, after)
	}
}

// fdsOn counts this process's descriptors open on dir.
func fdsOn(t *testing.T, dir string) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if p, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && p == dir {
			n++
		}
	}
	return n
}
