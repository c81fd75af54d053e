package keydirtest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// TimesPlaced runs do and returns how many times it placed the file at
// path (created it, or renamed a file onto it): how many changes of it a
// watching server or client sees. It watches path's directory, and
// counts the events up to a file it writes there after do (inotify keeps
// their order), then removes.
func TimesPlaced(tb testing.TB, path string, do func()) int {
	tb.Helper()
	dir := filepath.Dir(path)
	w, err := fsnotify.NewWatcher()
	if err != nil {
		tb.Fatal(err)
	}
	defer w.Close()
	if err := w.Add(dir); err != nil {
		tb.Fatal(err)
	}
	do()
	done := filepath.Join(dir, ".placed-done")
	Write(tb, done, nil)
	defer os.Remove(done)
	placed := 0
	for timeout := time.After(10 * time.Second); ; {
		select {
		case ev := <-w.Events:
			if ev.Name == path && ev.Has(fsnotify.Create) {
				placed++
			}
			if ev.Name == done {
				return placed
			}
		case err := <-w.Errors:
			tb.Fatal(err)
		case <-timeout:
			tb.Fatalf("no event for %s, written after the change", done)
		}
	}
}
