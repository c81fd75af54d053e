package authkeys

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// removalHome is a stamped home of 20 single-key files, a shared file the
// index knows, and copies written in place (chosen by rng) that it does
// not.
func removalHome(t *testing.T, rng *rand.Rand) Options {
	t.Helper()
	opts := fillHome(t, 20)
	d := opts.Dirs[0]
	keydirtest.Write(t, filepath.Join(d, "team.json"), keydirtest.JWK(t, key(t, 3), key(t, 25), key(t, 7)))
	keydirtest.Write(t, filepath.Join(d, "spare.json"), keydirtest.JWK(t, key(t, 40)))
	// A set whose members have names of their own, one of them shared,
	// one key a copy of team's: the queries of a RemoveAll meet in one
	// file, which it rewrites once for all of them.
	keydirtest.Write(t, filepath.Join(d, "crew.json"), keydirtest.JWK(t,
		keydirtest.WithAttrs(key(t, 26), "name", "m0"), keydirtest.WithAttrs(key(t, 27), "name", "m1"),
		keydirtest.WithAttrs(key(t, 7), "name", "m2"), keydirtest.WithAttrs(key(t, 28), "name", "m1")))
	_, finish := LoadFor(opts, Lookups{})
	finish()
	// In place, after the index: copies only the proof finds.
	for range 3 {
		f := rng.IntN(20)
		ks := []*jwk.Key{key(t, f)}
		for range 1 + rng.IntN(2) {
			ks = append(ks, key(t, rng.IntN(26)))
		}
		keydirtest.WriteInPlace(t, filepath.Join(d, "k"+strconv.Itoa(f)+".json"), keydirtest.JWK(t, ks...))
	}
	return opts
}

// randomRemovalQuery is a query of a removal, chosen by rng: an entry's
// name (or one that no entry has), a key's fingerprint in a form the
// index keeps or in one it does not.
func randomRemovalQuery(t *testing.T, rng *rand.Rand) string {
	k := key(t, rng.IntN(29))
	switch rng.IntN(7) {
	case 0:
		return "k" + strconv.Itoa(rng.IntN(22))
	case 1:
		return "team"
	case 5:
		return "m" + strconv.Itoa(rng.IntN(3))
	case 2:
		return k.Fingerprint()
	case 3:
		fp, _ := k.SSHFingerprint() // a form the index does not keep
		return fp
	case 4:
		return k.Thumbprint()
	}
	return "nobody"
}

// lookupsOf is what an admin command loads for queries.
func lookupsOf(queries []string) Lookups {
	var l Lookups
	for _, q := range queries {
		l.Names = append(l.Names, q)
		if fp, err := jwk.ParseFingerprint(q); err == nil {
			l.Fingerprints = append(l.Fingerprints, fp)
		}
	}
	return l
}

// authorizedState is every authorized copy a full load holds, file,
// name and key, sorted: Entries lists a key's first copy only, which
// would miss a copy left in a later file (found by review).
func authorizedState(opts Options) []string {
	s := Load(opts)
	var out []string
	for f, at := range s.authorizedItems(s.Loader().Snapshot()) {
		e := entryOf(f, int(at.pos))
		out = append(out, filepath.Base(e.File)+" "+e.Name+" "+e.Fingerprint)
	}
	slices.Sort(out)
	return out
}

// RemoveAll of several queries against Remove of each in its own
// command, on two identical homes, 100 random cases (25 with -short)
// (names, fingerprints in kept and unkept forms, "nobody", a query
// twice, off a local file system, another writer between the steps):
// the same entries left, "not found" for the same queries,
// StillAuthorizedError where a key removed is still authorized, no copy
// left of a name or fingerprint a query that went through named (read
// from the files), the index never left stale, and a narrowed load
// after finding every copy a full one does (review of dbe4b9a, which
// wrote it).
func TestRemoveAllIsRemovesInTurn(t *testing.T) {
	recordStamps(t)
	cases := 100
	if testing.Short() {
		cases = 25 // under the race detector: about 0.5 s a case
	}
	for seed := range cases {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			mk := func() Options { return removalHome(t, rand.New(rand.NewPCG(uint64(seed), 1))) }
			a, b := mk(), mk()
			if sa, sb := authorizedState(a), authorizedState(b); !slices.Equal(sa, sb) {
				t.Fatalf("fixtures differ")
			}
			rng := rand.New(rand.NewPCG(uint64(seed), 2))
			var queries []string
			for range 2 + rng.IntN(5) {
				queries = append(queries, randomRemovalQuery(t, rng))
			}
			if rng.IntN(3) == 0 {
				queries = append(queries, queries[rng.IntN(len(queries))])
			}
			offLocal := rng.IntN(3) == 0
			if offLocal {
				old := keydir.LocalStamps
				keydir.LocalStamps = func(string) bool { return false }
				t.Cleanup(func() { keydir.LocalStamps = old })
			}
			hooked := rng.IntN(2) == 0
			between := key(t, rng.IntN(26))
			hook := func(o Options) func() {
				done := false
				return func() {
					if hooked && !done {
						done = true
						keydirtest.WriteInPlace(t, filepath.Join(o.Dirs[0], "spare.json"), keydirtest.JWK(t, key(t, 40), between))
					}
				}
			}
			removeBeforeProof = hook(a)
			t.Cleanup(func() { removeBeforeProof = nil })
			s, finish := LoadFor(a, lookupsOf(queries))
			got := s.RemoveAll(queries)
			finish()
			removeBeforeProof = hook(b)
			var want []error
			for _, q := range queries {
				s, finish := LoadFor(b, lookupsOf([]string{q}))
				_, err := s.Remove(q)
				finish()
				want = append(want, err)
			}
			sa, sb := authorizedState(a), authorizedState(b)
			if !slices.Equal(sa, sb) {
				t.Errorf("queries %q: RemoveAll left\n%v\nRemoves left\n%v", queries, sa, sb)
			}
			for i, q := range queries {
				nfA, nfB := errors.As(got[i].Err, new(*NotFoundError)), errors.As(want[i], new(*NotFoundError))
				if nfA != nfB {
					t.Errorf("query %d %q: RemoveAll %v, Remove %v", i, q, got[i].Err, want[i])
				}
				still := errors.As(got[i].Err, new(*StillAuthorizedError))
				if got[i].Err == nil || still {
					left := false
					for _, e := range got[i].Removed {
						for _, f := range Load(a).Entries() {
							left = left || f.SPKIHash == e.SPKIHash
						}
					}
					if left != still {
						t.Errorf("query %d %q: %v, but a key it removed is still authorized: %v", i, q, got[i].Err, left)
					}
				}
				if got[i].Err == nil || errors.As(got[i].Err, new(*NotFoundError)) {
					// Against the files: no copy of that name, or of
					// that fingerprint as the files give it, is left.
					for _, c := range sa {
						if f := strings.SplitN(c, " ", 3); f[1] == q || f[2] == q {
							t.Errorf("query %d %q: %v, but %s is left", i, q, got[i].Err, c)
						}
					}
				}
			}
			if keydirtest.IndexLeftStale(t, a.Index) {
				t.Errorf("queries %q: RemoveAll left the index stale", queries)
			}
			// The index after it names every copy: each key left is
			// found by a narrowed load.
			for _, e := range Load(a).Entries() {
				if offLocal {
					break // a narrowed load there does not see in-place writes (by design)
				}
				s, finish := LoadFor(a, Lookups{Keys: [][32]byte{e.SPKIHash}})
				n := 0
				for _, f := range s.Entries() {
					if f.SPKIHash == e.SPKIHash {
						n++
					}
				}
				finish()
				full := 0
				for _, f := range Load(a).Entries() {
					if f.SPKIHash == e.SPKIHash {
						full++
					}
				}
				if n != full {
					t.Errorf("queries %q: after RemoveAll a narrowed load finds %d copies of %s, a full one %d", queries, n, e.Fingerprint, full)
				}
			}
		})
	}
}

// Where the proof cannot go by the stamps (a damaged stamp file) it reads
// every file and writes the index anew (rebuild), after the first step's
// writes: the chain of own writes starts again there, as after verify,
// so that the second step's writes are recorded and the index rebuilt is
// not left stale (review of dbe4b9a).
func TestLoadForRemoveRebuildKeepsTheIndexCurrent(t *testing.T) {
	opts, d := stampedHome(t, 12)
	stamps, _ := filepath.Glob(filepath.Join(opts.Index, "*", "s0000"))
	for _, p := range stamps {
		if err := os.WriteFile(p, []byte("damaged"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	keydirtest.WriteInPlace(t, filepath.Join(d, "k5.json"), keydirtest.JWK(t, key(t, 5), key(t, 3)))
	k := key(t, 3)
	s, finish := LoadFor(opts, Lookups{Keys: [][32]byte{k.SPKIHash()}})
	removed, err := s.Remove(k.Fingerprint())
	finish()
	if err != nil || len(removed) != 2 {
		t.Fatalf("Remove: %v, %v", removed, err)
	}
	if keydirtest.IndexLeftStale(t, opts.Index) {
		t.Error("the removal rebuilt the index, then left it stale")
	}
}
