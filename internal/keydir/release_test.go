//go:build linux

package keydir

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/internal/trustfile"
)

// countReleases counts the calls to releaseMemory for the test, with
// returnBytes and releaseFiles set to its figures.
func countReleases(t *testing.T, bytes int64, files int) *int {
	t.Helper()
	calls := 0
	release, rb, rf := releaseMemory, returnBytes, releaseFiles
	t.Cleanup(func() { releaseMemory, returnBytes, releaseFiles = release, rb, rf })
	releaseMemory = func() { calls++ }
	returnBytes, releaseFiles = bytes, files
	return &calls
}

// A load that read returnBytes or more gives its parsing's memory back
// at its end; a smaller one, and a reload that read nothing, do not.
func TestLoadReleasesAfterLargeRead(t *testing.T) {
	srcs, index := indexedDirs(t, 1, 10)
	for _, c := range []struct {
		bytes int64
		want  int
	}{{1, 1}, {1 << 30, 0}} {
		calls := countReleases(t, c.bytes, 1<<30)
		l := indexedLoader(t, srcs, index)
		l.Reload()
		l.Reload() // nothing changed: nothing read
		if *calls != c.want {
			t.Errorf("returnBytes %d: %d releases after a load of 10 files and a reload of none, want %d", c.bytes, *calls, c.want)
		}
	}
}

// IndexAfter's write of an index of releaseFiles files or more gives its
// memory back once (a first start's records and stamps, which would
// otherwise stay in the server's resident set until the runtime's next
// collection); a smaller write, and a write with nothing to do (the
// index exists), do not.
func TestIndexAfterReleasesAfterLargeWrite(t *testing.T) {
	srcs, index := indexedDirs(t, 2, 10)
	for _, c := range []struct {
		files, want int
	}{{25, 0}, {20, 1}} {
		calls := countReleases(t, 1<<40, c.files)
		l := indexedLoader(t, srcs, index)
		write := l.IndexAfter(nil)
		l.Reload()
		if err := write(); err != nil {
			t.Fatal(err)
		}
		if *calls != c.want {
			t.Errorf("releaseFiles %d: %d releases after writing the index of 2 directories of 10 files, want %d", c.files, *calls, c.want)
		}
		if head := newSourceIndex(index, srcs[1], trustfile.Rule{Top: filepath.Dir(index)}).head(); head == nil {
			t.Fatalf("no index written for %s", srcs[1])
		}
		if err := l.IndexAfter(nil)(); err != nil || *calls != c.want {
			t.Errorf("releaseFiles %d: an index that exists: %v, %d releases, want %d", c.files, err, *calls, c.want)
		}
		if err := os.RemoveAll(index); err != nil {
			t.Fatal(err)
		}
	}
}
