package authkeys

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// indexEveryDirectory gives every directory an index, however small,
// for the test.
func indexEveryDirectory(t *testing.T) {
	old := keydir.IndexMinFiles
	keydir.IndexMinFiles = 0
	t.Cleanup(func() { keydir.IndexMinFiles = old })
}

// loadedFiles is the number of files a store read.
func loadedFiles(s *Store) int { return len(s.Loader().Snapshot().Files()) }

// fillHome writes n authorized keys, one file each (k0.json …), and
// returns the options of the home.
func fillHome(t *testing.T, n int) Options {
	t.Helper()
	indexEveryDirectory(t)
	home := t.TempDir()
	opts := HomeOptions(home)
	for i := range n {
		keydirtest.Write(t, filepath.Join(opts.Dirs[0], "k"+strconv.Itoa(i)+".json"), keydirtest.JWK(t, key(t, i)))
	}
	return opts
}

// LoadFor reads only the files the index names once the index is
// current; the first load (no index) reads everything and makes it.
func TestLoadForReadsOnlyWhatItNeeds(t *testing.T) {
	opts := fillHome(t, 20)
	q := Lookups{Keys: [][32]byte{key(t, 3).SPKIHash()}, Names: []string{"k7"}}
	s, finish := LoadFor(opts, q)
	finish()
	if n := loadedFiles(s); n != 20 {
		t.Fatalf("first LoadFor (no index yet) read %d files, want all 20", n)
	}
	s, finish = LoadFor(opts, q)
	defer finish()
	if n := loadedFiles(s); n != 2 {
		t.Fatalf("LoadFor with a current index read %d files, want 2 (k3 by key, k7 by name)", n)
	}
	if _, err := s.LookupKey(key(t, 3), netip.Addr{}); err != nil {
		t.Errorf("k3: %v", err)
	}
	if _, err := s.LookupKey(key(t, 7), netip.Addr{}); err != nil {
		t.Errorf("k7: %v", err)
	}
}

// The commands' own changes keep the index current: a key added, then
// removed by name from another command, then by fingerprint, without a
// full load in between.
func TestLoadForFollowsItsOwnChanges(t *testing.T) {
	opts := fillHome(t, 10)
	_, finish := LoadFor(opts, Lookups{})
	finish()
	k := key(t, 50)
	s, finish := LoadFor(opts, Lookups{Keys: [][32]byte{k.SPKIHash()}, Names: []string{"new"}})
	if _, err := s.Add(k, "new", AddNew); err != nil {
		t.Fatal(err)
	}
	finish()
	s, finish = LoadFor(opts, Lookups{Names: []string{"new"}})
	if n := loadedFiles(s); n != 1 {
		t.Fatalf("after Add, LoadFor of the name read %d files, want 1", n)
	}
	// A second copy under another name: Remove by name must say so.
	if _, err := s.Add(k, "again", Replace); err != nil {
		t.Fatal(err)
	}
	finish()
	s, finish = LoadFor(opts, Lookups{Names: []string{"new"}})
	_, err := s.Remove("new")
	var still *StillAuthorizedError
	if !errors.As(err, &still) || still.Entry.Name != "again" {
		t.Fatalf("Remove(new) with a copy as \"again\": %v, want *StillAuthorizedError naming again", err)
	}
	finish()
	fp, _ := jwk.ParseFingerprint(k.KeyID())
	s, finish = LoadFor(opts, Lookups{Fingerprints: []jwk.Fingerprint{fp}})
	if n := loadedFiles(s); n != 1 {
		t.Errorf("LoadFor of a key ID read %d files, want 1 (again.json)", n)
	}
	if _, err := s.Remove(k.KeyID()); err != nil {
		t.Fatal(err)
	}
	finish()
	if _, err := Load(opts).LookupKey(k, netip.Addr{}); err == nil {
		t.Error("the key is still authorized after Remove")
	}
}

// Changes made by others — a file renamed in by config management, a
// Kubernetes ..data swap, a file deleted — change the directory's stamp:
// the index is stale, the next LoadFor reads everything and rebuilds it.
func TestLoadForRebuildsWhenStale(t *testing.T) {
	opts := fillHome(t, 5)
	d := opts.Dirs[0]
	_, finish := LoadFor(opts, Lookups{})
	finish()
	k := key(t, 40)
	keydirtest.Replace(t, filepath.Join(d, "byhand.json"), keydirtest.JWK(t, keydirtest.WithAttrs(k, "name", "other")))
	s, finish := LoadFor(opts, Lookups{Keys: [][32]byte{k.SPKIHash()}})
	finish()
	if n := loadedFiles(s); n != 6 {
		t.Fatalf("stale index: LoadFor read %d files, want all 6", n)
	}
	// Rebuilt: the hand-made file is found by its name attribute.
	s, finish = LoadFor(opts, Lookups{Names: []string{"other"}})
	defer finish()
	if n := loadedFiles(s); n != 1 || s.Entries()[0].File != filepath.Join(d, "byhand.json") {
		t.Fatalf("after the rebuild, LoadFor(name other) read %d files, want byhand.json", n)
	}
	// An add by hand is seen at once too: same key under another name.
	if _, err := s.Add(k, "mine", AddNew); !errors.As(err, new(*AlreadyAuthorizedError)) {
		t.Errorf("Add of a key authorized by hand: %v, want *AlreadyAuthorizedError", err)
	}
}

// A Kubernetes volume: the visible names are links into ..data, which
// the kubelet swaps by renaming a new link over it.
func TestLoadForKubernetesSwap(t *testing.T) {
	indexEveryDirectory(t)
	home := t.TempDir()
	opts := HomeOptions(home)
	d := opts.Dirs[0]
	write := func(ts string, keys ...int) {
		for _, i := range keys {
			keydirtest.Write(t, filepath.Join(d, ts, "k"+strconv.Itoa(i)+".json"), keydirtest.JWK(t, key(t, i)))
		}
		if err := os.Symlink(ts, filepath.Join(d, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(d, "..data_tmp"), filepath.Join(d, "..data")); err != nil {
			t.Fatal(err)
		}
		for _, i := range keys {
			name := "k" + strconv.Itoa(i) + ".json"
			if _, err := os.Lstat(filepath.Join(d, name)); err != nil {
				if err := os.Symlink(filepath.Join("..data", name), filepath.Join(d, name)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	write("..2026_01", 1, 2)
	_, finish := LoadFor(opts, Lookups{})
	finish()
	// The new version adds key 3 to k1.json: only ..data changed.
	if err := os.MkdirAll(filepath.Join(d, "..2026_02"), 0o755); err != nil {
		t.Fatal(err)
	}
	keydirtest.Write(t, filepath.Join(d, "..2026_02", "k1.json"), keydirtest.JWK(t, key(t, 1), key(t, 3)))
	keydirtest.Write(t, filepath.Join(d, "..2026_02", "k2.json"), keydirtest.JWK(t, key(t, 2)))
	if err := os.Symlink("..2026_02", filepath.Join(d, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(d, "..data_tmp"), filepath.Join(d, "..data")); err != nil {
		t.Fatal(err)
	}
	s, finish := LoadFor(opts, Lookups{Keys: [][32]byte{key(t, 3).SPKIHash()}})
	defer finish()
	if _, err := s.LookupKey(key(t, 3), netip.Addr{}); err != nil {
		t.Errorf("key 3, added by a ..data swap: %v", err)
	}
}

// The index never grants: a key no file holds is not authorized, and an
// index file that fails the trust-file rule is not used at all.
func TestLoadForIndexNeverGrants(t *testing.T) {
	opts := fillHome(t, 3)
	_, finish := LoadFor(opts, Lookups{})
	finish()
	k9 := key(t, 9)
	s, finish := LoadFor(opts, Lookups{Keys: [][32]byte{k9.SPKIHash()}})
	finish()
	if _, err := s.LookupKey(k9, netip.Addr{}); err == nil {
		t.Fatal("a key no file holds is authorized")
	}
	// A shard writable by others is not read: the store loads in full.
	dirs, _ := filepath.Glob(filepath.Join(opts.Index, "*", "head"))
	for _, h := range dirs {
		if err := os.Chmod(h, 0o666); err != nil {
			t.Fatal(err)
		}
	}
	s, finish = LoadFor(opts, Lookups{Keys: [][32]byte{key(t, 1).SPKIHash()}})
	finish()
	if n := loadedFiles(s); n != 3 {
		t.Errorf("with an index head writable by others, LoadFor read %d files, want all 3", n)
	}
}

// A file that was skipped is read by every LoadFor: a store knows its
// skipped files, which make decisions stricter.
func TestLoadForReadsSkippedFiles(t *testing.T) {
	opts := fillHome(t, 3)
	keydirtest.Write(t, filepath.Join(opts.Dirs[0], "bad.json"), []byte(`{"kty":"EC"`))
	_, finish := LoadFor(opts, Lookups{})
	finish()
	s, finish := LoadFor(opts, Lookups{Names: []string{"k1"}})
	defer finish()
	if p := s.Problems(); len(p) != 1 || filepath.Base(p[0].Path) != "bad.json" {
		t.Errorf("problems of a focused load: %v, want bad.json", p)
	}
}

// A fingerprint in a form the index does not keep (ssh-keygen's, an RFC
// 7638 thumbprint) is found by reading everything.
func TestLoadForWidensForOtherForms(t *testing.T) {
	opts := fillHome(t, 4)
	_, finish := LoadFor(opts, Lookups{})
	finish()
	k := key(t, 2)
	fp, _ := jwk.ParseFingerprint(k.Thumbprint())
	s, finish := LoadFor(opts, Lookups{Fingerprints: []jwk.Fingerprint{fp}})
	removed, err := s.Remove(k.Thumbprint())
	finish()
	if err != nil || len(removed) != 1 {
		t.Fatalf("Remove by thumbprint: %v, %v", removed, err)
	}
	s, finish = LoadFor(opts, Lookups{Keys: [][32]byte{k.SPKIHash()}})
	defer finish()
	if n := loadedFiles(s); n != 0 {
		t.Errorf("after the removal, the index still leads to %d files for the key", n)
	}
}

// A small directory gets no index: a full load costs what an index saves,
// and the home stays as it was.
func TestLoadForSmallDirectoryHasNoIndex(t *testing.T) {
	home := t.TempDir()
	opts := HomeOptions(home)
	keydirtest.Write(t, filepath.Join(opts.Dirs[0], "a.json"), keydirtest.JWK(t, key(t, 1)))
	for range 2 {
		s, finish := LoadFor(opts, Lookups{Names: []string{"a"}})
		finish()
		if n := loadedFiles(s); n != 1 {
			t.Fatalf("LoadFor read %d files, want 1", n)
		}
	}
	if _, err := os.Stat(opts.Index); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("index directory of a one-file home: %v, want none", err)
	}
}

// A key copied into another file in place (no rename: the directory's
// stamp, and so the index, does not change) is still found by a removal:
// Remove by fingerprint takes that copy too, and Remove by name says the
// key is still authorized there. Removals must be complete; the index may
// not know the copy (docs/design.md, "The admin index").
//
// Files written moments ago have no stamp (keydir.StampRacy): every
// removal reads them. With the stamps recorded, a removal reads the files
// the index names and those whose stamp changed (k5.json), not all 30.
func TestLoadForRemoveSeesInPlaceEdits(t *testing.T) {
	t.Run("racy", func(t *testing.T) { removeSeesInPlaceEdits(t, false) })
	t.Run("stamped", func(t *testing.T) {
		recordStamps(t)
		removeSeesInPlaceEdits(t, true)
	})
}

func removeSeesInPlaceEdits(t *testing.T, stamped bool) {
	opts := fillHome(t, 30)
	d := opts.Dirs[0]
	_, finish := LoadFor(opts, Lookups{})
	finish()
	k := key(t, 3)
	keydirtest.WriteInPlace(t, filepath.Join(d, "k5.json"), keydirtest.JWK(t, k))

	s, finish := LoadFor(opts, Lookups{Names: []string{"k3"}})
	_, err := s.Remove("k3")
	finish()
	var still *StillAuthorizedError
	if !errors.As(err, &still) || still.Entry.File != filepath.Join(d, "k5.json") {
		t.Fatalf("Remove(k3) with a copy written in place into k5.json: %v, want *StillAuthorizedError naming k5.json", err)
	}
	if n := loadedFiles(s); stamped && n > 2 {
		t.Errorf("the removal read %d files, want k3.json (deleted) and k5.json", n)
	}

	fp, _ := jwk.ParseFingerprint(k.Fingerprint())
	s, finish = LoadFor(opts, Lookups{Fingerprints: []jwk.Fingerprint{fp}})
	removed, err := s.Remove(k.Fingerprint())
	finish()
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0].File != filepath.Join(d, "k5.json") {
		t.Errorf("Remove by fingerprint removed %v, want the copy in k5.json", removed)
	}
	if n := loadedFiles(s); stamped && n != 0 {
		// k5.json's new stamp was recorded by the first removal: this one
		// read only it (by the index), and deleted it.
		t.Errorf("after removing its only copy, %d files are loaded, want none", n)
	}
	if _, err := Load(opts).LookupKey(k, netip.Addr{}); err == nil {
		t.Error("the key is still authorized after Remove by fingerprint")
	}
}

// A removal takes the copies its load holds (those the admin index
// names) before it proves the index complete by a stat of every file, so
// that a watching server refuses the key a few milliseconds into the
// command rather than after the proof; the copy written in place, which
// only the proof finds, goes after it. Both are said removed, and the
// index is current after: the proof took in the first change, the
// command's end records the second. (docs/design.md, "The admin index":
// enforce first.)
func TestLoadForRemoveEnforcesFirst(t *testing.T) {
	opts, d := stampedHome(t, 30)
	k := key(t, 3)
	keydirtest.WriteInPlace(t, filepath.Join(d, "k5.json"), keydirtest.JWK(t, k, key(t, 5)))
	proofs := 0
	removeBeforeProof = func() {
		proofs++
		e, err := Load(opts).LookupKey(k, netip.Addr{})
		if err != nil || e.File != filepath.Join(d, "k5.json") {
			t.Errorf("before the proof: %v, %v; want k3 authorized by k5.json only (k3.json removed)", e, err)
		}
	}
	t.Cleanup(func() { removeBeforeProof = nil })
	fp, _ := jwk.ParseFingerprint(k.Fingerprint())
	s, finish := LoadFor(opts, Lookups{Fingerprints: []jwk.Fingerprint{fp}})
	removed, err := s.Remove(k.Fingerprint())
	finish()
	if err != nil || proofs != 1 {
		t.Fatalf("Remove: %v (%d proofs)", err, proofs)
	}
	var files []string
	for _, e := range removed {
		files = append(files, filepath.Base(e.File))
	}
	if !slices.Equal(files, []string{"k3.json", "k5.json"}) {
		t.Errorf("removed from %v, want k3.json then k5.json", files)
	}
	if _, err := Load(opts).LookupKey(k, netip.Addr{}); err == nil {
		t.Error("the key is still authorized after the removal")
	}
	if _, err := Load(opts).LookupKey(key(t, 5), netip.Addr{}); err != nil {
		t.Errorf("k5, beside the removed copy in k5.json: %v", err)
	}
	if keydirtest.IndexLeftStale(t, opts.Index) {
		t.Error("the removal left the admin index stale: the next admin command stats every file (review of 9fcc5b4)")
	}
	s, finish = LoadFor(opts, Lookups{Keys: [][32]byte{key(t, 5).SPKIHash()}})
	defer finish()
	if n := loadedFiles(s); n != 1 {
		t.Errorf("the next command read %d files for k5, want 1: the index is not current", n)
	}
}

// Off a local file system (NFS, SMB, FUSE: keydir.LocalStamps false) a
// removal's proof reads every file; a write before it would leave the
// index's head behind a directory that moved, and every admin command
// after would load in full and rebuild. So there the removal writes
// after its proof, and the next command reads only what it needs (review
// of 9fcc5b4).
func TestLoadForRemoveOffLocalFileSystemsKeepsTheIndex(t *testing.T) {
	opts, _ := stampedHome(t, 30)
	old := keydir.LocalStamps
	keydir.LocalStamps = func(string) bool { return false }
	t.Cleanup(func() { keydir.LocalStamps = old })
	k := key(t, 3)
	s, finish := LoadFor(opts, Lookups{Keys: [][32]byte{k.SPKIHash()}})
	if _, err := s.Remove(k.Fingerprint()); err != nil {
		t.Fatal(err)
	}
	finish()
	s, finish = LoadFor(opts, Lookups{Keys: [][32]byte{key(t, 4).SPKIHash()}})
	defer finish()
	if n := loadedFiles(s); n != 1 {
		t.Errorf("the admin command after the removal read %d files, want 1: the removal left the index unusable", n)
	}
}

// RemoveAll proves the store once for all its queries: the copies the
// load holds go first for each, then one proof, then what it brought in
// (a copy written in place); a query that finds nothing is said so, and
// the others are removed all the same; a query whose entries an earlier
// one removed finds nothing, as in Removes one after the other.
func TestLoadForRemoveAllProvesOnce(t *testing.T) {
	opts, d := stampedHome(t, 30)
	keydirtest.WriteInPlace(t, filepath.Join(d, "k5.json"), keydirtest.JWK(t, key(t, 7), key(t, 5)))
	proofs := 0
	removeBeforeProof = func() { proofs++ }
	t.Cleanup(func() { removeBeforeProof = nil })
	queries := []string{"k3", "nobody", key(t, 7).Fingerprint(), "k9", key(t, 3).Fingerprint()}
	var fps []jwk.Fingerprint
	for _, q := range queries {
		if fp, err := jwk.ParseFingerprint(q); err == nil {
			fps = append(fps, fp)
		}
	}
	s, finish := LoadFor(opts, Lookups{Names: queries, Fingerprints: fps})
	got := s.RemoveAll(queries)
	finish()
	if proofs != 1 {
		t.Errorf("%d proofs for %d queries, want 1", proofs, len(queries))
	}
	files := func(r Removal) (out []string) {
		for _, e := range r.Removed {
			out = append(out, filepath.Base(e.File))
		}
		return out
	}
	for i, want := range [][]string{{"k3.json"}, nil, {"k7.json", "k5.json"}, {"k9.json"}, nil} {
		if !slices.Equal(files(got[i]), want) {
			t.Errorf("%s: removed from %v, want %v", queries[i], files(got[i]), want)
		}
	}
	for i, nf := range []bool{false, true, false, false, true} {
		if _, isNF := got[i].Err.(*NotFoundError); isNF != nf || !nf && got[i].Err != nil {
			t.Errorf("%s: %v, not found: want %v", queries[i], got[i].Err, nf)
		}
	}
	full := Load(opts)
	for _, n := range []int{3, 7, 9} {
		if _, err := full.LookupKey(key(t, n), netip.Addr{}); err == nil {
			t.Errorf("k%d still authorized", n)
		}
	}
	if _, err := full.LookupKey(key(t, 5), netip.Addr{}); err != nil {
		t.Errorf("k5, beside the copy of k7 in k5.json: %v", err)
	}
	if keydirtest.IndexLeftStale(t, opts.Index) {
		t.Error("RemoveAll left the admin index stale")
	}
}

// Where a removal finds a copy it cannot take out (an OpenSSH file,
// which keytool does not rewrite), Remove returns what it removed before
// — the copy in k3.json — with the error, for the command to say both:
// whether ops.pub held the key when the index was made (both copies go
// in one step, k3.json's first; review of 9fcc5b4: nothing was returned)
// or got it in place after (the proof finds it, after k3.json's went).
func TestLoadForRemoveSaysWhatWentBeforeAFailure(t *testing.T) {
	for _, inPlace := range []bool{false, true} {
		t.Run(fmt.Sprintf("in-place=%v", inPlace), func(t *testing.T) {
			recordStamps(t)
			opts := fillHome(t, 30)
			d := opts.Dirs[0]
			k := key(t, 3)
			ops, before := filepath.Join(d, "ops.pub"), keydirtest.SSH(t, key(t, 50), k)
			if inPlace {
				before = keydirtest.SSH(t, key(t, 50))
			}
			keydirtest.Write(t, ops, before)
			_, finish := LoadFor(opts, Lookups{})
			finish()
			if inPlace {
				keydirtest.WriteInPlace(t, ops, keydirtest.SSH(t, key(t, 50), k))
			}
			s, finish := LoadFor(opts, Lookups{Keys: [][32]byte{k.SPKIHash()}})
			removed, err := s.Remove(k.Fingerprint())
			finish()
			if err == nil || !strings.Contains(err.Error(), "ops.pub") {
				t.Fatalf("Remove: %v, want the error of rewriting ops.pub", err)
			}
			if len(removed) != 1 || removed[0].File != filepath.Join(d, "k3.json") {
				t.Errorf("removed %v with the error, want k3.json's copy", removed)
			}
			if _, err := os.Lstat(filepath.Join(d, "k3.json")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("k3.json: %v, want it deleted", err)
			}
		})
	}
}

// stampedHome is fillHome with the admin index made, and the stamps of
// its files recorded; it returns the options and the directory.
func stampedHome(t *testing.T, n int) (Options, string) {
	t.Helper()
	recordStamps(t)
	opts := fillHome(t, n)
	_, finish := LoadFor(opts, Lookups{})
	finish()
	return opts, opts.Dirs[0]
}

// keyFiles are the base names of the files s holds copies of k in.
func keyFiles(s *Store, k *jwk.Key) map[string]bool {
	fp, _ := jwk.ParseFingerprint(k.Fingerprint())
	files := map[string]bool{}
	for _, e := range s.FindKeys(fp, false) {
		files[filepath.Base(e.File)] = true
	}
	return files
}

// recordStamps lets the admin index record the stamps of files written
// moments ago (keydir.StampRacy), as it does for files older than that.
func recordStamps(t *testing.T) {
	old := keydir.StampRacy
	keydir.StampRacy = 0
	t.Cleanup(func() { keydir.StampRacy = old })
}

// What a stamp catches: a line appended in place (>>) with the mtime put
// back to the same second, and a rewrite of the same size with the mtime
// forged back to the nanosecond (touch -d): the size or the ctime, which
// no user can set, differs.
func TestLoadForRemoveSeesForgedStamps(t *testing.T) {
	recordStamps(t)
	for _, tc := range []struct {
		name  string
		write func(t *testing.T, path string)
	}{
		{"appended, same mtime second", func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(keydirtest.SSH(t, key(t, 3))); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		}},
		{"same size, mtime forged back", func(t *testing.T, path string) {
			keydirtest.WriteInPlace(t, path, keydirtest.SSH(t, key(t, 3)))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			indexEveryDirectory(t)
			opts := HomeOptions(t.TempDir())
			d := opts.Dirs[0]
			for i := range 20 {
				keydirtest.Write(t, filepath.Join(d, "k"+strconv.Itoa(i)+".pub"), keydirtest.SSH(t, key(t, i)))
			}
			_, finish := LoadFor(opts, Lookups{})
			finish()
			path := filepath.Join(d, "k5.pub")
			before, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Millisecond) // a ctime of its own, on any clock
			tc.write(t, path)
			if err := os.Chtimes(path, before.ModTime(), before.ModTime()); err != nil {
				t.Fatal(err)
			}
			after, err := os.Stat(path)
			if err != nil || !after.ModTime().Equal(before.ModTime()) {
				t.Fatalf("mtime not put back: %v", err)
			}
			fp, _ := jwk.ParseFingerprint(key(t, 3).Fingerprint())
			s, finish := LoadFor(opts, Lookups{Fingerprints: []jwk.Fingerprint{fp}})
			defer finish()
			s.Loader().ReloadComplete() // what Remove reads first
			files := keyFiles(s, key(t, 3))
			if !files["k3.pub"] || !files["k5.pub"] || len(files) != 2 {
				t.Errorf("copies of the key a removal sees: %v, want k3.pub and k5.pub", files)
			}
			if n := loadedFiles(s); n != 2 {
				t.Errorf("the removal read %d files, want 2 (by the index and by the stamp)", n)
			}
		})
	}
}

// Without stamps to prove the index complete (a stamp file lost or
// damaged), a removal reads every file, and is complete all the same.
func TestLoadForRemoveWithoutStampsReadsAll(t *testing.T) {
	opts, d := stampedHome(t, 12)
	stamps, _ := filepath.Glob(filepath.Join(opts.Index, "*", "s0000"))
	if len(stamps) == 0 {
		t.Fatal("no stamp file in the index")
	}
	for _, p := range stamps {
		if err := os.WriteFile(p, []byte("damaged"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := removeK3WithACopyInK5(t, opts, d)
	if n := loadedFiles(s); n != 11 {
		t.Errorf("the removal read %d files, want every one (11 left)", n)
	}
}

// A directory changed by others (a file renamed in, one deleted, one
// rewritten in place) no longer costs a full load: LoadFor brings the
// index up to date from the files' stamps, reading only the files that
// changed, and finds what they hold.
func TestLoadForRefreshesFromStamps(t *testing.T) {
	opts, d := stampedHome(t, 30)
	k := key(t, 40)
	keydirtest.Replace(t, filepath.Join(d, "byhand.json"), keydirtest.JWK(t, keydirtest.WithAttrs(k, "name", "other")))
	keydirtest.WriteInPlace(t, filepath.Join(d, "k5.json"), keydirtest.JWK(t, k))
	if err := os.Remove(filepath.Join(d, "k7.json")); err != nil {
		t.Fatal(err)
	}
	s, finish := LoadFor(opts, Lookups{Keys: [][32]byte{k.SPKIHash()}})
	finish()
	if n := loadedFiles(s); n != 2 {
		t.Errorf("LoadFor after changes by others read %d files, want the 2 that changed", n)
	}
	if files := keyFiles(s, k); !files["byhand.json"] || !files["k5.json"] {
		t.Errorf("copies of the key found: %v, want byhand.json and k5.json", files)
	}
	// The index is current again: a lookup reads only what it names.
	s, finish = LoadFor(opts, Lookups{Names: []string{"other"}})
	defer finish()
	if n := loadedFiles(s); n != 1 {
		t.Errorf("the next LoadFor(name other) read %d files, want byhand.json", n)
	}
	if _, err := s.Remove("k7"); !errors.As(err, new(*NotFoundError)) {
		t.Errorf("Remove(k7) of a file deleted by hand: %v, want *NotFoundError", err)
	}
}

// An index whose files are mostly unstamped (written moments before it
// was made) cannot prove itself complete: the removal reads every file,
// and writes the index anew with their stamps, so that the next removal
// reads only what it needs instead of every file again.
func TestLoadForRemoveRestampsAfterReadingAll(t *testing.T) {
	opts := fillHome(t, 300)
	// Files too recent to stamp: every one, however long the load takes
	// (at 2 s, a load slowed by other jobs stamped the files it reached
	// late, and the removal then had fewer to read).
	old := keydir.StampRacy
	keydir.StampRacy = time.Hour
	_, finish := LoadFor(opts, Lookups{})
	finish()
	keydir.StampRacy = old
	recordStamps(t) // as if they were older now
	s, finish := LoadFor(opts, Lookups{Names: []string{"k3"}})
	if _, err := s.Remove("k3"); err != nil {
		t.Fatal(err)
	}
	finish()
	if n := loadedFiles(s); n != 299 {
		t.Fatalf("the first removal read %d files, want every one (299 left)", n)
	}
	s, finish = LoadFor(opts, Lookups{Names: []string{"k4"}})
	defer finish()
	if _, err := s.Remove("k4"); err != nil {
		t.Fatal(err)
	}
	if n := loadedFiles(s); n != 0 {
		t.Errorf("the next removal left %d files loaded, want none (it read only k4.json)", n)
	}
}

// On a file system whose stat may answer from a cache (NFS, SMB, FUSE),
// a stamp proves nothing: a removal reads every file.
func TestLoadForRemoveReadsAllOffLocalFileSystems(t *testing.T) {
	opts, d := stampedHome(t, 30)
	old := keydir.LocalStamps
	keydir.LocalStamps = func(string) bool { return false }
	t.Cleanup(func() { keydir.LocalStamps = old })
	s := removeK3WithACopyInK5(t, opts, d)
	if n := loadedFiles(s); n != 29 {
		t.Errorf("the removal read %d files, want every one (29 left)", n)
	}
}

// removeK3WithACopyInK5 writes k3's key into k5.json in place (the
// directory's stamp stays), removes k3 by name, and checks that the
// removal found the copy: *StillAuthorizedError. It returns the store,
// whose loaded files tell what the removal read.
func removeK3WithACopyInK5(t *testing.T, opts Options, d string) *Store {
	t.Helper()
	keydirtest.WriteInPlace(t, filepath.Join(d, "k5.json"), keydirtest.JWK(t, key(t, 3)))
	s, finish := LoadFor(opts, Lookups{Names: []string{"k3"}})
	_, err := s.Remove("k3")
	finish()
	if !errors.As(err, new(*StillAuthorizedError)) {
		t.Fatalf("Remove(k3) with a copy in k5.json: %v, want *StillAuthorizedError", err)
	}
	return s
}

// indexFiles are the files named name in the home's index directories.
func indexFiles(t *testing.T, opts Options, name string) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(opts.Index, "*", name))
	return files
}

// checkStamps runs a removal that finds nothing: it checks every file's
// stamp first, reading again and recording the stamps of those that
// changed, and changes no file (so that its end adds nothing to the log).
func checkStamps(t *testing.T, opts Options) {
	t.Helper()
	s, finish := LoadFor(opts, Lookups{Names: []string{"nosuch"}})
	defer finish()
	if _, err := s.Remove("nosuch"); !errors.As(err, new(*NotFoundError)) {
		t.Fatalf("Remove(nosuch): %v, want *NotFoundError", err)
	}
}

// removeEveryCopy removes k by fingerprint through a store that LoadFor
// focused on q, and fails if a full load still authorizes k: the removal
// missed a copy.
func removeEveryCopy(t *testing.T, opts Options, q Lookups, k *jwk.Key) {
	t.Helper()
	s, finish := LoadFor(opts, q)
	removed, err := s.Remove(k.Fingerprint())
	finish()
	if err != nil {
		t.Fatal(err)
	}
	if e, err := Load(opts).LookupKey(k, netip.Addr{}); err == nil {
		t.Fatalf("after Remove by fingerprint (removed %d copies), the key is still authorized in %s", len(removed), e.File)
	}
}

// A command records its change in the index by appending to its log, not
// by rewriting the head and the shards (docs/design.md, "The admin
// index"); the log is read with the head, a torn entry at its end leaves
// the index stale for that change only, and past keydir.IndexLogLimit the
// log is folded into the shards and a new head written.
func TestLoadForAppendsItsChangesToALog(t *testing.T) {
	opts := fillHome(t, 10)
	_, finish := LoadFor(opts, Lookups{})
	finish()
	heads := map[string]os.FileInfo{}
	for _, h := range indexFiles(t, opts, "head") {
		fi, err := os.Stat(h)
		if err != nil {
			t.Fatal(err)
		}
		heads[h] = fi
	}
	add := func(i int, name string) {
		t.Helper()
		s, finish := LoadFor(opts, Lookups{Keys: [][32]byte{key(t, i).SPKIHash()}, Names: []string{name}})
		defer finish()
		if _, err := s.Add(key(t, i), name, AddNew); err != nil {
			t.Fatal(err)
		}
	}
	find := func(i int, name string, wantRead int) {
		t.Helper()
		s, finish := LoadFor(opts, Lookups{Names: []string{name}})
		defer finish()
		if n := loadedFiles(s); wantRead > 0 && n != wantRead {
			t.Errorf("LoadFor(name %s) read %d files, want %d", name, n, wantRead)
		}
		if e, err := s.LookupKey(key(t, i), netip.Addr{}); err != nil || e.Name != name {
			t.Errorf("LoadFor(name %s): %v, want the key found", name, err)
		}
	}
	for i, name := range []string{"a", "b", "c"} {
		add(50+i, name)
	}
	for h, before := range heads {
		if now, err := os.Stat(h); err != nil || !os.SameFile(before, now) {
			t.Errorf("%s was written again (%v): the changes belong in the log", h, err)
		}
	}
	logs := indexFiles(t, opts, "log")
	if len(logs) != 1 {
		t.Fatalf("index logs: %v, want one (authorized_keys.d's)", logs)
	}
	for i, name := range []string{"a", "b", "c"} {
		find(50+i, name, 1)
	}
	// Past the limit, the log goes into the shards and a new head.
	old := keydir.IndexLogLimit
	keydir.IndexLogLimit = 0
	add(53, "d")
	keydir.IndexLogLimit = old
	if logs := indexFiles(t, opts, "log"); len(logs) != 0 {
		t.Errorf("index logs after a change past the limit: %v, want none", logs)
	}
	for i, name := range []string{"a", "b", "c", "d"} {
		find(50+i, name, 1)
	}
	// A crash during an append: its entry ends torn.
	add(54, "e")
	logs = indexFiles(t, opts, "log")
	if len(logs) != 1 {
		t.Fatalf("index logs: %v, want one", logs)
	}
	fi, err := os.Stat(logs[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(logs[0], fi.Size()-1); err != nil {
		t.Fatal(err)
	}
	find(54, "e", 0) // stale for e: found by the check of the stamps
	find(50, "a", 1)
	// A crash on ext4 (delayed allocation) may leave an append's entry
	// at its length but all NULs: a torn end too, which neither fails the
	// next commands nor hides the key (keydir's TestIndexLogNULTail).
	add(55, "f")
	logs = indexFiles(t, opts, "log")
	if len(logs) != 1 {
		t.Fatalf("index logs: %v, want one", logs)
	}
	if fi, err = os.Stat(logs[0]); err != nil {
		t.Fatal(err)
	}
	add(56, "g")
	data, err := os.ReadFile(logs[0])
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(data)) <= fi.Size() {
		t.Fatalf("the log is %d bytes after g's change, %d before: g's entry is not in it", len(data), fi.Size())
	}
	clear(data[fi.Size():])
	if err := os.WriteFile(logs[0], data, 0o600); err != nil {
		t.Fatal(err)
	}
	find(56, "g", 0)
	add(57, "h")
	for i, name := range map[int]string{50: "a", 54: "e", 55: "f", 56: "g", 57: "h"} {
		find(i, name, 1)
	}
}

// A key removed from a file that stays (the log says the file no longer
// holds it), then written back into that file in place: the next
// removal's check reads the file again, and from then on the index names
// it for the key — the log's entry, applied again over what the check
// wrote, would hide the copy from a later removal, which would leave it
// authorized. (The first removal finds k by its check of the stamps, k
// having come into pair.json in place: one the index named would go
// before the check, which then writes the head, and no log.)
func TestLoadForLogThenInPlaceCopy(t *testing.T) {
	opts, d := stampedHome(t, 30)
	k, other := key(t, 40), key(t, 41)
	pair := filepath.Join(d, "pair.json")
	keydirtest.Replace(t, pair, keydirtest.JWK(t, other))
	checkStamps(t, opts)
	keydirtest.WriteInPlace(t, pair, keydirtest.JWK(t, k, other))
	s, finish := LoadFor(opts, Lookups{Keys: [][32]byte{k.SPKIHash()}})
	if _, err := s.Remove(k.Fingerprint()); err != nil {
		t.Fatal(err)
	}
	finish()
	if logs := indexFiles(t, opts, "log"); len(logs) != 1 {
		t.Fatalf("index logs: %v, want the removal's change in one", logs)
	}
	s, finish = LoadFor(opts, Lookups{Keys: [][32]byte{k.SPKIHash()}, Names: []string{"k40"}})
	if _, err := s.Add(k, "k40", AddNew); err != nil {
		t.Fatal(err)
	}
	finish()
	keydirtest.WriteInPlace(t, pair, keydirtest.JWK(t, k, other))
	checkStamps(t, opts) // reads pair.json again, and records its stamp
	removeEveryCopy(t, opts, Lookups{Keys: [][32]byte{k.SPKIHash()}}, k)
}

// A command's end records in the index only what it read as it still is.
// Command C loaded pair.json (k3 in it) and re-read it after an in-place
// edit dropped k3; k3 was then written back in place, and another
// command's removal check (D) stamped pair.json with k3 in it without
// writing a new head (the directory had not changed). C's end, once the
// directory changed, appended a log entry whose "gone" held (k3,
// pair.json): applied over D's shards, it hid the copy D's stamp vouches
// for, and a removal of k3 left it authorized (found by review). Now C
// sees pair.json is no longer as it read it and records nothing.
func TestFinishRecordsOnlyWhatItReadAsItIs(t *testing.T) {
	opts, d := stampedHome(t, 30)
	k := key(t, 3)
	pair := filepath.Join(d, "pair.json")
	keydirtest.Replace(t, pair, keydirtest.JWK(t, k, key(t, 41)))
	checkStamps(t, opts) // index and stamps current, pair.json included

	// C: a command that looks up k3 (e.g. trust-host/authorize waiting).
	c, finishC := LoadFor(opts, Lookups{Keys: [][32]byte{k.SPKIHash()}})
	if !keyFiles(c, k)["pair.json"] {
		t.Fatal("setup: C did not load pair.json")
	}
	keydirtest.WriteInPlace(t, pair, keydirtest.JWK(t, key(t, 41)))    // k3 dropped in place
	c.Loader().Reload()                                                // C re-reads its files (as Extend does)
	keydirtest.WriteInPlace(t, pair, keydirtest.JWK(t, k, key(t, 41))) // k3 back in place

	checkStamps(t, opts) // D: another command's removal check stamps pair.json (with k3)

	// The directory changes (C's own write, or anyone's), then C ends.
	keydirtest.Put(t, filepath.Join(d, "z.json"), keydirtest.JWK(t, key(t, 42)))
	finishC()

	fp, _ := jwk.ParseFingerprint(k.Fingerprint())
	removeEveryCopy(t, opts, Lookups{Fingerprints: []jwk.Fingerprint{fp}}, k)
}

// The directory's lock file (keydir's .keytool.lock), made by the first
// writer that locks the directory, is that command's own change: the
// admin index stays current after a removal or an Add that made it, so
// the next command reads only what it looks for — not every file, as for
// a change by another writer. And it is no key file.
func TestLoadForLockFileMadeByTheCommand(t *testing.T) {
	for _, first := range []string{"remove", "add"} {
		opts := fillHome(t, 10)
		_, finish := LoadFor(opts, Lookups{})
		finish()
		lock := filepath.Join(opts.Dirs[0], ".keytool.lock")
		if _, err := os.Lstat(lock); !os.IsNotExist(err) {
			t.Fatalf("a lock file before any writer: %v", err)
		}
		s, finish := LoadFor(opts, Lookups{Names: []string{"k3", "new"}})
		var err error
		if first == "remove" {
			_, err = s.Remove("k3")
		} else {
			_, err = s.Add(key(t, 50), "new", AddNew)
		}
		if err != nil {
			t.Fatal(err)
		}
		finish()
		if _, err := os.Lstat(lock); err != nil {
			t.Fatalf("%s: no lock file: %v", first, err)
		}
		s, finish = LoadFor(opts, Lookups{Names: []string{"k5"}})
		if n := loadedFiles(s); n != 1 {
			t.Errorf("after the first %s, LoadFor of one name read %d files, want 1", first, n)
		}
		finish()
		if p := Load(opts).Loader().Snapshot().Problems; len(p) != 0 {
			t.Errorf("problems with the lock file there: %v", p)
		}
	}
}

// Where every query of a RemoveAll failed in its first step (here the
// empty name, which no removal takes), no proof is made: it would stat
// every file for nothing.
func TestLoadForRemoveAllFailedProvesNothing(t *testing.T) {
	opts, _ := stampedHome(t, 30)
	proofs := 0
	removeBeforeProof = func() { proofs++ }
	t.Cleanup(func() { removeBeforeProof = nil })
	s, finish := LoadFor(opts, Lookups{Names: []string{""}})
	got := s.RemoveAll([]string{"", ""})
	finish()
	if proofs != 0 {
		t.Errorf("%d proofs, want none", proofs)
	}
	for i, r := range got {
		if _, nf := r.Err.(*NotFoundError); !nf {
			t.Errorf("query %d: %v, want not found", i, r.Err)
		}
	}
}
