package cli

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/internal/keydir"
)

// TestDirWatcherNames: the watcher for names reports a file made, one
// replaced as keytool replaces files (a new one renamed over it), one
// renamed away and one removed, each by its path, and the removal of the
// directory watched itself; once closed, its channels are.
func TestDirWatcherNames(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"old.json", "moved.json", "gone.json"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w, err := newDirWatcher()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add(dir); err != nil {
		t.Fatal(err)
	}
	path := func(name string) string { return filepath.Join(dir, name) }
	if err := os.WriteFile(path("new.json"), []byte("n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.Write(path("old.json"), []byte("y"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path("moved.json"), filepath.Join(filepath.Dir(dir), "away.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path("gone.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	want := map[string]fsnotify.Op{path("new.json"): fsnotify.Create, path("old.json"): fsnotify.Create,
		path("moved.json"): fsnotify.Rename, path("gone.json"): fsnotify.Remove, dir: fsnotify.Remove}
	got := map[string]fsnotify.Op{}
	deadline := time.After(10 * time.Second)
	for len(got) < len(want) || got[dir] == 0 {
		select {
		case ev := <-w.Events():
			if keydir.Ignored(filepath.Base(ev.Name)) {
				continue
			}
			got[ev.Name] |= ev.Op
		case err := <-w.Errors():
			t.Fatal(err)
		case <-deadline:
			t.Fatalf("events %v; want %v", got, want)
		}
	}
	for p, op := range want {
		if !got[p].Has(op) {
			t.Errorf("%s: %v, want %v", p, got[p], op)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for range w.Events() {
	}
	if _, ok := <-w.Errors(); ok {
		t.Fatal("errors still open after Close")
	}
}
