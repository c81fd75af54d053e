package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// CreateAll creates each file as Create would — its data, its mode, a
// file already there left as it was (fs.ErrExist), a path outside the
// first one's directory refused — with its data synced before any of
// them is placed and the directory synced once, when every temporary
// name is gone. 600 files: three rounds of createAllChunk, each synced
// before its files are placed, none placed before its round's sync.
func TestCreateAll(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	var data [][]byte
	for i := range 600 {
		paths = append(paths, filepath.Join(dir, fmt.Sprintf("k%03d.json", i)))
		data = append(data, []byte(fmt.Sprintf(`{"n":%d}`, i)))
	}
	if err := os.WriteFile(paths[7], []byte("there before"), 0o600); err != nil {
		t.Fatal(err)
	}
	paths[9] = filepath.Join(t.TempDir(), "elsewhere.json")

	var (
		mu    sync.Mutex
		steps = map[string][]string{}
	)
	t.Cleanup(func() { Hook = func(string, string) {} })
	Hook = func(step, path string) {
		mu.Lock()
		defer mu.Unlock()
		steps[path] = append(steps[path], step)
	}
	var rounds [][]string
	t.Cleanup(func() { syncCreated = syncData })
	syncCreated = func(fsDir string, files []string) (bool, error) {
		rounds = append(rounds, files)
		for _, tmp := range files {
			i := slices.IndexFunc(paths, func(p string) bool { return isTempOf(filepath.Base(tmp), filepath.Base(p)) })
			if i < 0 {
				t.Errorf("%s synced: not the temporary file of one of the paths", tmp)
				continue
			}
			if got, _ := os.ReadFile(tmp); string(got) != string(data[i]) {
				t.Errorf("%s, synced for %s, holds %q, want %q", tmp, paths[i], got, data[i])
			}
			if _, err := os.Lstat(paths[i]); err == nil && i != 7 {
				t.Errorf("%s is in place before its data is synced", paths[i])
			}
		}
		return syncData(fsDir, files)
	}
	dirSyncs := 0
	t.Cleanup(func() { SyncDir = syncDir })
	SyncDir = func(d string) error {
		dirSyncs++
		entries, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") {
				t.Errorf("%s is in the directory when it is synced", e.Name())
			}
		}
		return syncDir(d)
	}

	var changes []string
	var steps2 []string
	errs := CreateAll(paths, data, 0o640, func(path string, do func(at func(string)) error) error {
		changes = append(changes, path)
		return do(func(step string) { steps2 = append(steps2, step) })
	})

	// The first round has no file for the path outside the directory.
	if len(rounds) != 3 || len(rounds[0]) != createAllChunk-1 || len(rounds[1]) != createAllChunk || len(rounds[2]) != 600-2*createAllChunk {
		t.Errorf("the data synced in %d rounds, want 3 of %d, %d and %d files", len(rounds), createAllChunk-1, createAllChunk, 600-2*createAllChunk)
	}
	if dirSyncs != 1 {
		t.Errorf("the directory synced %d times, want once", dirSyncs)
	}
	// Each file but the one outside: made and filled (one change, with
	// its two steps), then placed (another; refused for the file already
	// there).
	if want := 2 * (600 - 1); len(changes) != want {
		t.Errorf("%d changes of the directory's names, want %d", len(changes), want)
	}
	if want := strings.Repeat("created,filled,", 599); strings.Join(steps2, ",")+"," != want {
		t.Errorf("the steps given to change: %d, want created and filled of each of the 599 files made", len(steps2))
	}
	for i, p := range paths {
		switch i {
		case 7:
			if !errors.Is(errs[i], fs.ErrExist) {
				t.Errorf("%s, a file already there: %v, want fs.ErrExist", p, errs[i])
			}
			if got, _ := os.ReadFile(p); string(got) != "there before" {
				t.Errorf("%s, a file already there, holds %q", p, got)
			}
			continue
		case 9:
			if errs[i] == nil || !strings.Contains(errs[i].Error(), "elsewhere.json") {
				t.Errorf("%s, in another directory: %v, want an error naming it", p, errs[i])
			}
			if _, err := os.Lstat(p); err == nil {
				t.Errorf("%s, in another directory, was written", p)
			}
			continue
		}
		if errs[i] != nil {
			t.Errorf("%s: %v", p, errs[i])
			continue
		}
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != 0o640 {
			t.Errorf("%s: %v, %v; want mode 0640", p, fi, err)
		}
		if got, _ := os.ReadFile(p); string(got) != string(data[i]) {
			t.Errorf("%s holds %q, want %q", p, got, data[i])
		}
		if s := strings.Join(steps[p], ","); s != "created,filled,placed" {
			t.Errorf("%s: steps %s, want created,filled,placed", p, s)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 599 {
		t.Errorf("the directory holds %d entries, want the 599 files (no temporary file left)", len(entries))
	}
}

// A file whose data cannot be synced is not placed, and says so; its
// temporary file is gone.
func TestCreateAllSyncFails(t *testing.T) {
	dir := t.TempDir()
	failed := errors.New("the disk is gone")
	t.Cleanup(func() { syncCreated = syncData })
	syncCreated = func(string, []string) (bool, error) { return false, failed }
	paths := []string{filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")}
	errs := CreateAll(paths, [][]byte{[]byte("a"), []byte("b")}, 0o644, nil)
	for i, p := range paths {
		if !errors.Is(errs[i], failed) || !strings.Contains(errs[i].Error(), p) {
			t.Errorf("%s: %v, want the sync's error naming the file", p, errs[i])
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the directory holds %d entries, want none", len(entries))
	}
}

// A file placed whose directory cannot be synced: an *UnsyncedError
// naming it, the file in place.
func TestCreateAllDirectorySyncFails(t *testing.T) {
	dir := t.TempDir()
	failed := errors.New("the disk is gone")
	t.Cleanup(func() { SyncDir = syncDir })
	SyncDir = func(string) error { return failed }
	path := filepath.Join(dir, "a.json")
	errs := CreateAll([]string{path}, [][]byte{[]byte("a")}, 0o644, nil)
	var u *UnsyncedError
	if !errors.As(errs[0], &u) || u.File != path || u.Op != "wrote" || !errors.Is(errs[0], failed) {
		t.Errorf("%s: %v, want an *UnsyncedError naming it", path, errs[0])
	}
	if got, _ := os.ReadFile(path); string(got) != "a" {
		t.Errorf("%s holds %q, want it in place", path, got)
	}
}

// SyncDirsOf syncs each directory of the files once, in the order the
// files first name it, and returns the error of each it could not sync.
func TestSyncDirsOf(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	var synced []string
	failed := errors.New("the disk is gone")
	t.Cleanup(func() { SyncDir = syncDir })
	SyncDir = func(d string) error {
		synced = append(synced, d)
		if d == b {
			return failed
		}
		return syncDir(d)
	}
	errs := SyncDirsOf([]string{filepath.Join(b, "x"), filepath.Join(a, "y"), filepath.Join(b, "z"), filepath.Join(a, "w")})
	if !slices.Equal(synced, []string{b, a}) {
		t.Errorf("synced %v, want %s then %s, once each", synced, b, a)
	}
	if len(errs) != 1 || !errors.Is(errs[b], failed) {
		t.Errorf("errors %v, want %s's alone", errs, b)
	}
	if errs := SyncDirsOf(nil); errs != nil {
		t.Errorf("no files: %v", errs)
	}
}
