package knownhosts

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// RemoveAll of several addresses of one pin, and of another key of its
// file, rewrites the file once, so that a watching client reloads it
// once, where each removal rewrote it (200 addresses of a pin of 20,000
// took 8 s); each query still gets what Removes one after the other
// would: an address given twice is not pinned the second time.
func TestRemoveAllRewritesAPinOnce(t *testing.T) {
	opts := HomeOptions(t.TempDir())
	d := opts.Dirs[0]
	file := filepath.Join(d, "fleet.json")
	other := pinnedFor(t, 2, "other.example:443")
	keydirtest.Write(t, file, keydirtest.JWK(t,
		pinnedFor(t, 1, "a1.example:443", "a2.example:443", "a3.example:443", "a4.example:443"), other))
	s := Load(opts)

	queries := []string{"a1.example:443", "a3.example:443", "a1.example:443", other.Fingerprint()}
	var got []Removal
	placed := keydirtest.TimesPlaced(t, file, func() { got = s.RemoveAll(queries) })
	if placed != 1 {
		t.Errorf("the file was placed %d times, want once for all the queries", placed)
	}

	for i, want := range []string{"a1.example:443", "a3.example:443"} {
		if got[i].Err != nil || len(got[i].Removed) != 1 || got[i].Removed[0].Addr != want {
			t.Errorf("query %q: removed %v, %v; want %s unpinned", queries[i], got[i].Removed, got[i].Err, want)
		}
	}
	if !errors.As(got[2].Err, new(*NotFoundError)) || len(got[2].Removed) != 0 {
		t.Errorf("%q again: removed %v, %v; want *NotFoundError", queries[2], got[2].Removed, got[2].Err)
	}
	if got[3].Err != nil || len(got[3].Removed) != 1 || got[3].Removed[0].Addr != "" {
		t.Errorf("the other key: removed %v, %v; want its pin removed", got[3].Removed, got[3].Err)
	}
	want := []string{"fleet.json " + key(t, 1).Fingerprint() + " a2.example:443,a4.example:443"}
	if left := pinnedState(opts); !slices.Equal(left, want) {
		t.Errorf("left %v, want %v", left, want)
	}
}

// A pin whose last address but negations one removal takes goes (as
// dropAddresses has it): a removal of its key after it, in the same
// RemoveAll, finds nothing, as it would after that removal was written.
func TestRemoveAllAfterAPinsLastAddress(t *testing.T) {
	opts := HomeOptions(t.TempDir())
	d := opts.Dirs[0]
	k := key(t, 1)
	keydirtest.Write(t, filepath.Join(d, "wild.json"), keydirtest.JWK(t,
		pinnedFor(t, 1, "*.example:443", "!bad.example:443"), pinnedFor(t, 2, "x.example:443")))
	got := Load(opts).RemoveAll([]string{"*.example:443", k.Fingerprint()})
	if got[0].Err != nil || len(got[0].Removed) != 1 {
		t.Errorf("*.example:443: removed %v, %v; want its pin", got[0].Removed, got[0].Err)
	}
	if !errors.As(got[1].Err, new(*NotFoundError)) || len(got[1].Removed) != 0 {
		t.Errorf("the key after its last address: removed %v, %v; want *NotFoundError", got[1].Removed, got[1].Err)
	}
	if left := pinnedState(opts); len(left) != 1 || !strings.Contains(left[0], "x.example:443") {
		t.Errorf("left %v, want x.example:443's pin alone", left)
	}
}

// Where a file cannot be rewritten (an OpenSSH file of several keys), a
// removal in the same step that found nothing only because an earlier
// one was to take the key out of that file is made again, on the store
// as written: it fails with that file's error, as it would after the
// earlier removal, and is not "not pinned" while the key is. (Off a
// local file system a narrowed store has one step: no second step
// matches it again.)
func TestRemoveAllRedoesWhatCountedOnAFailedWrite(t *testing.T) {
	oldMin, oldRacy, oldLocal := keydir.IndexMinFiles, keydir.StampRacy, keydir.LocalStamps
	keydir.IndexMinFiles, keydir.StampRacy = 0, 0
	keydir.LocalStamps = func(string) bool { return false }
	t.Cleanup(func() { keydir.IndexMinFiles, keydir.StampRacy, keydir.LocalStamps = oldMin, oldRacy, oldLocal })
	opts, d := pinnedHome(t, 3)
	k := key(t, 1)
	keydirtest.Write(t, filepath.Join(d, "ops.pub"), keydirtest.SSH(t, key(t, 50), k))
	keydirtest.Write(t, filepath.Join(d, "k1.json"), keydirtest.JWK(t, k))
	_, finish := LoadFor(opts, Lookups{})
	finish()
	queries := []string{k.Fingerprint(), k.Fingerprint()}
	s, finish := LoadFor(opts, removalLookups(queries))
	got := s.RemoveAll(queries)
	finish()
	for i := range queries {
		if got[i].Err == nil || !strings.Contains(got[i].Err.Error(), "ops.pub") {
			t.Errorf("query %d: %v, want the error of rewriting ops.pub", i, got[i].Err)
		}
	}
	if len(got[0].Removed) != 1 || filepath.Base(got[0].Removed[0].File) != "k1.json" {
		t.Errorf("the first removed %v, want k1.json's copy", got[0].Removed)
	}
}

// A file keytool cannot rewrite (OpenSSH key lines, here the first file
// pinning the key) fails the removal with its error, but does not stop
// it: the key's other copies are removed all the same (the safe side),
// and returned with the error.
func TestRemoveGoesPastAFileItCannotRewrite(t *testing.T) {
	opts := HomeOptions(t.TempDir())
	d := opts.Dirs[0]
	k := key(t, 1)
	keydirtest.Write(t, filepath.Join(d, "a-ops.pub"), keydirtest.SSH(t, key(t, 50), k))
	keydirtest.Write(t, filepath.Join(d, "k1.json"), keydirtest.JWK(t, pinnedFor(t, 1, "k1.example:443")))
	removed, err := Load(opts).Remove(k.Fingerprint())
	if err == nil || !strings.Contains(err.Error(), "a-ops.pub") {
		t.Fatalf("Remove: %v, want the error of rewriting a-ops.pub", err)
	}
	if len(removed) != 1 || filepath.Base(removed[0].File) != "k1.json" {
		t.Errorf("removed %v with the error, want k1.json's pin", removed)
	}
	if left := pinnedState(opts); slices.ContainsFunc(left, func(s string) bool { return strings.HasPrefix(s, "k1.json") }) {
		t.Errorf("left %v, want k1.json's pin gone", left)
	}
}

// A thumbprint (a form the admin index does not keep) that matches, in
// the first step, only a copy another query's read brought in (team.json,
// for key 1's query) takes the key's other copies too (k2.json), which
// the index names by the key: else they stayed pinned while the removal
// said nothing went wrong (found by review; also before removals were
// batched).
func TestRemoveAllReadsTheOtherCopiesOfAKeyItTook(t *testing.T) {
	oldMin, oldRacy := keydir.IndexMinFiles, keydir.StampRacy
	keydir.IndexMinFiles, keydir.StampRacy = 0, 0
	t.Cleanup(func() { keydir.IndexMinFiles, keydir.StampRacy = oldMin, oldRacy })
	opts, d := pinnedHome(t, 3)
	keydirtest.Write(t, filepath.Join(d, "wild.json"), keydirtest.JWK(t, pinnedFor(t, 1, "*.example:443")))
	keydirtest.Write(t, filepath.Join(d, "team.json"), keydirtest.JWK(t, pinnedFor(t, 1, "a.example:443"), pinnedFor(t, 2, "b.example:443")))
	keydirtest.Write(t, filepath.Join(d, "k2.json"), keydirtest.JWK(t, pinnedFor(t, 2, "k2.example:443")))
	_, finish := LoadFor(opts, Lookups{})
	finish()
	queries := []string{key(t, 1).Thumbprint(), key(t, 2).Thumbprint()}
	s, finish := LoadFor(opts, removalLookups(queries))
	got := s.RemoveAll(queries)
	finish()
	for i, r := range got {
		if r.Err != nil {
			t.Errorf("query %d: %v", i, r.Err)
		}
	}
	if left := pinnedState(opts); len(left) != 3 {
		t.Errorf("left %v, want the 3 pins of pinnedHome alone", left)
	}
}

// A file it cannot rewrite in the first step does not end the removal:
// the copies the proof then finds (here one written in place into
// h1.json) go too, and the file's error is its outcome (found by
// review).
func TestRemoveGoesOnToTheCopiesTheProofFinds(t *testing.T) {
	oldMin, oldRacy := keydir.IndexMinFiles, keydir.StampRacy
	keydir.IndexMinFiles, keydir.StampRacy = 0, 0
	t.Cleanup(func() { keydir.IndexMinFiles, keydir.StampRacy = oldMin, oldRacy })
	opts, d := pinnedHome(t, 3)
	k := key(t, 1)
	keydirtest.Write(t, filepath.Join(d, "a-ops.pub"), keydirtest.SSH(t, key(t, 50), k))
	_, finish := LoadFor(opts, Lookups{})
	finish()
	keydirtest.WriteInPlace(t, filepath.Join(d, "h1.json"), keydirtest.JWK(t, pinnedFor(t, 101, "h1.example:443"), pinnedFor(t, 1, "x.example:443")))
	s, finish := LoadFor(opts, removalLookups([]string{k.Fingerprint()}))
	removed, err := s.Remove(k.Fingerprint())
	finish()
	if err == nil || !strings.Contains(err.Error(), "a-ops.pub") {
		t.Fatalf("Remove: %v, want the error of rewriting a-ops.pub", err)
	}
	if !slices.ContainsFunc(removed, func(r Removed) bool { return filepath.Base(r.File) == "h1.json" }) {
		t.Errorf("removed %v with the error, want h1.json's copy among them", removed)
	}
	for _, p := range pinnedState(opts) {
		if strings.Contains(p, k.Fingerprint()) && !strings.HasPrefix(p, "a-ops.pub ") {
			t.Errorf("%s: still pins the key", p)
		}
	}
}

// A file the first step could not rewrite (OpenSSH lines of two keys)
// that the admin mends before the proof (the other key's line gone) is
// rewritten by the second: the removal then succeeds, with no error of a
// file it did rewrite in the end, where it said the first attempt's.
func TestRemoveSaysNothingOfAFileItRewroteInTheEnd(t *testing.T) {
	oldMin, oldRacy := keydir.IndexMinFiles, keydir.StampRacy
	keydir.IndexMinFiles, keydir.StampRacy = 0, 0
	t.Cleanup(func() { keydir.IndexMinFiles, keydir.StampRacy = oldMin, oldRacy })
	opts, d := pinnedHome(t, 3)
	k := key(t, 1)
	ops := filepath.Join(d, "a-ops.pub")
	keydirtest.Write(t, ops, keydirtest.SSH(t, key(t, 50), k))
	keydirtest.Write(t, filepath.Join(d, "k1.json"), keydirtest.JWK(t, pinnedFor(t, 1, "k1.example:443")))
	_, finish := LoadFor(opts, Lookups{})
	finish()
	mended := false
	removeBeforeProof = func() {
		keydirtest.WriteInPlace(t, ops, keydirtest.SSH(t, k))
		mended = true
	}
	t.Cleanup(func() { removeBeforeProof = nil })
	s, finish := LoadFor(opts, removalLookups([]string{k.Fingerprint()}))
	removed, err := s.Remove(k.Fingerprint())
	finish()
	if !mended {
		t.Fatal("no proof ran")
	}
	if err != nil {
		t.Errorf("Remove: %v, want no error: a-ops.pub was rewritten after the admin mended it", err)
	}
	var files []string
	for _, r := range removed {
		files = append(files, filepath.Base(r.File))
	}
	if !slices.Equal(files, []string{"k1.json", "a-ops.pub"}) {
		t.Errorf("removed from %v, want k1.json then a-ops.pub", files)
	}
	for _, p := range pinnedState(opts) {
		if strings.Contains(p, k.Fingerprint()) {
			t.Errorf("%s: still pins the key", p)
		}
	}
}

// Where the file the first step could not rewrite no longer holds the
// key by the end (the admin took the key out of it, or mended it and the
// second step rewrote it for another query that set the copy aside), no
// query names it: the removal went through, or found nothing, as
// commands one after the other say (found by review).
func TestRemoveAllSaysNothingOfAFileThatNoLongerHoldsTheKey(t *testing.T) {
	oldMin, oldRacy := keydir.IndexMinFiles, keydir.StampRacy
	keydir.IndexMinFiles, keydir.StampRacy = 0, 0
	t.Cleanup(func() { keydir.IndexMinFiles, keydir.StampRacy = oldMin, oldRacy })
	k := key(t, 1)
	for _, tc := range []struct {
		name    string
		mended  []*jwk.Key
		queries []string
		notOf   []bool // the queries that find nothing
	}{
		{"the key taken out of it", []*jwk.Key{key(t, 50)}, []string{k.Fingerprint()}, []bool{false}},
		{"mended, rewritten for the first query", []*jwk.Key{k}, []string{k.Fingerprint(), k.KeyID()}, []bool{false, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts, d := pinnedHome(t, 3)
			ops := filepath.Join(d, "a-ops.pub")
			keydirtest.Write(t, ops, keydirtest.SSH(t, key(t, 50), k))
			keydirtest.Write(t, filepath.Join(d, "k1.json"), keydirtest.JWK(t, pinnedFor(t, 1, "k1.example:443")))
			_, finish := LoadFor(opts, Lookups{})
			finish()
			removeBeforeProof = func() { keydirtest.WriteInPlace(t, ops, keydirtest.SSH(t, tc.mended...)) }
			t.Cleanup(func() { removeBeforeProof = nil })
			s, finish := LoadFor(opts, removalLookups(tc.queries))
			got := s.RemoveAll(tc.queries)
			finish()
			for i, r := range got {
				nf := errors.As(r.Err, new(*NotFoundError))
				if r.Err != nil && !nf || nf != tc.notOf[i] {
					t.Errorf("query %d: %v, want %s: a-ops.pub no longer holds the key", i, r.Err, map[bool]string{false: "nil", true: "not found"}[tc.notOf[i]])
				}
			}
			for _, p := range pinnedState(opts) {
				if strings.Contains(p, k.Fingerprint()) {
					t.Errorf("%s: still pins the key", p)
				}
			}
		})
	}
}
