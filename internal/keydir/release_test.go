//go:build linux

package keydir

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/trustfile"
)

// countReleases counts the calls to releaseMemory for the test, with
// returnBytes and releaseFiles set to its figures.
func countReleases(t *testing.T, bytes int64, files int) *releases {
	t.Helper()
	calls := &releases{}
	release, rb, rf := releaseMemory, returnBytes, releaseFiles
	t.Cleanup(func() { releaseMemory, returnBytes, releaseFiles = release, rb, rf })
	releaseMemory = func() { calls.n.Add(1) }
	returnBytes, releaseFiles = bytes, files
	return calls
}

type releases struct{ n atomic.Int32 }

func (r *releases) count() int { return int(r.n.Load()) }

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
		if calls.count() != c.want {
			t.Errorf("returnBytes %d: %d releases after a load of 10 files and a reload of none, want %d", c.bytes, calls.count(), c.want)
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
		if calls.count() != c.want {
			t.Errorf("releaseFiles %d: %d releases after writing the index of 2 directories of 10 files, want %d", c.files, calls.count(), c.want)
		}
		if head := newSourceIndex(index, srcs[1], trustfile.Rule{Top: filepath.Dir(index)}).head(); head == nil {
			t.Fatalf("no index written for %s", srcs[1])
		}
		if err := l.IndexAfter(nil)(); err != nil || calls.count() != c.want {
			t.Errorf("releaseFiles %d: an index that exists: %v, %d releases, want %d", c.files, err, calls.count(), c.want)
		}
		if err := os.RemoveAll(index); err != nil {
			t.Fatal(err)
		}
	}
}

// A watching loader's periodic rescan of releaseFiles files or more gives
// the memory of its listing and stats back once it is applied; a smaller
// one does not.
func TestRescanReleasesAfterLargeListing(t *testing.T) {
	srcs, index := indexedDirs(t, 1, 10)
	for _, c := range []struct {
		files int
		want  bool
	}{{11, false}, {10, true}} {
		calls := countReleases(t, 1<<40, c.files)
		l := indexedLoader(t, srcs, index)
		l.cfg.Rescan = 10 * time.Millisecond
		rescans := make(chan struct{}, 100)
		l.rescanCompared = func(hints) { rescans <- struct{}{} }
		l.Watch(context.Background())
		for range 3 {
			select {
			case <-rescans:
			case <-time.After(10 * time.Second):
				t.Fatal("no rescan")
			}
		}
		l.Close() // waits for the releases begun beside the watch
		if got := calls.count() > 0; got != c.want {
			t.Errorf("releaseFiles %d: %d releases after three rescans of 10 files, want some: %v", c.files, calls.count(), c.want)
		}
	}
}
