//go:build linux

package keydir

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// TestIndexAfterStampsAreTheRecords proves that the stamps a server's
// IndexAfter writes are those of the snapshot its records come from (found
// by review, 2026-12-05). The write takes its snapshot, then waits up to
// lockWait for the index's lock (an admin command holds it); it took the
// stamps from the loader's rows at the write, so a reload meanwhile that
// read a file anew whose new content has an old ctime — a key file that
// is a link into a release directory whose "current" link is flipped (no
// change in the trust directory, the target written long before) — left
// the new stamp beside the old records. Marking the head stale did not
// help: the next proof trusted the stamps, and a removal of the key the
// file now holds did not read it (`authorize --remove` says gone, every
// server still admits it). Fails without stampsOf reading snap's rows.
// "after": the same flip once the write is done is found by the proof.
func TestIndexAfterStampsAreTheRecords(t *testing.T) {
	t.Run("during", func(t *testing.T) { indexAfterThenFlip(t, true) })
	t.Run("after", func(t *testing.T) { indexAfterThenFlip(t, false) })
}

func indexAfterThenFlip(t *testing.T, during bool) {
	old := StampRacy
	StampRacy = 0 // the release's files were written more than 2 s before
	t.Cleanup(func() { StampRacy = old })
	srcs, index := indexedDirs(t, 1, 10)
	home := filepath.Dir(index)
	rel := filepath.Join(home, "rel")
	keydirtest.Write(t, filepath.Join(rel, "r1", "f.json"), keydirtest.JWK(t, key(t, 50)))
	keydirtest.Write(t, filepath.Join(rel, "r2", "f.json"), keydirtest.JWK(t, key(t, 51)))
	if err := os.Symlink("r1", filepath.Join(rel, "current")); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(srcs[0], "f.json")
	if err := os.Symlink(filepath.Join(rel, "current", "f.json"), f); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	l := indexedLoader(t, srcs, index)
	write := l.IndexAfter(nil)
	l.Reload()
	// An admin command holds the index's lock for a moment.
	if err := os.MkdirAll(index, 0o700); err != nil {
		t.Fatal(err)
	}
	unlock, held, _, err := lockDir(index)
	if err != nil || !held {
		t.Fatal("lock", err, held)
	}
	done := make(chan error, 1)
	if during {
		go func() { done <- write() }()
		time.Sleep(200 * time.Millisecond)
	} else {
		unlock()
		done <- write()
		unlock = func() {}
	}
	// The deploy flips current to r2; the server's rescan reads f anew.
	tmp := filepath.Join(rel, "current.tmp")
	if err := os.Symlink("r2", tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(rel, "current")); err != nil {
		t.Fatal(err)
	}
	l.Reload(f)
	unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// An admin removal of key 51: a loader narrowed by the index, proved
	// complete from the stamps (ReloadComplete).
	q := Query{Terms: []Term{KeyTerm(sha256.Sum256([]byte(key(t, 51).Fingerprint())))}}
	a := indexedLoader(t, srcs, index)
	fin := a.LoadFor(q)
	defer fin()
	snap := a.ReloadComplete()
	var got []string
	for _, file := range snap.Files() {
		got = append(got, file.Items()...)
	}
	full := indexedLoader(t, srcs, index)
	var all []string
	for _, file := range full.Reload().Files() {
		all = append(all, file.Items()...)
	}
	if slices.Contains(all, key(t, 51).Fingerprint()) && !slices.Contains(got, key(t, 51).Fingerprint()) {
		t.Fatalf("key 51 is authorized (f.json, full load) but the proved load for it does not read it: %d files read", len(snap.Files()))
	}
}
