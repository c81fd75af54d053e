package knownhosts

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// removalAddrs are the addresses of removalHome's pins beside each
// file's own: pinned by several keys, with a port and without, patterns.
var removalAddrs = []string{"db.example:443", "db.example", "h3.example:443", "web.example:8443", "*.example:443", "*.example", "x.example:443"}

// pinnedFor is key n pinned for addrs (patterns and negations as
// written).
func pinnedFor(t *testing.T, n int, addrs ...string) *jwk.Key {
	k := key(t, n).PublicKey()
	k.Attrs = jwk.Attributes{}
	k.Attrs.SetList(jwk.AttrAddress, addrs)
	return k
}

// removalHome is an indexed home whose files' stamps are recorded: 20
// files pinning key 100+i for hI.example:443; files the index knows with
// keys of several addresses, wildcards and a negation, a key pinned in
// several files, an OpenSSH file of one key (removing it deletes the
// file), the single trusted_hosts.json, a revoked copy of a pinned key;
// and pins written in place (chosen by rng) that the index does not
// know. (No OpenSSH file of several keys, which keytool cannot rewrite:
// queries that together take every key out of one delete it, where each
// alone fails — RemoveAll's and separate commands' differ there, by
// design.)
func removalHome(t *testing.T, rng *rand.Rand) Options {
	t.Helper()
	opts, d := pinnedHome(t, 20)
	keydirtest.Write(t, filepath.Join(d, "team.json"), keydirtest.JWK(t,
		keydirtest.WithAttrs(key(t, 103), "address", "db.example:443"),
		keydirtest.WithAttrs(key(t, 125), "address", "db.example"),
		keydirtest.WithAttrs(key(t, 107), "address", "web.example:8443")))
	keydirtest.Write(t, filepath.Join(d, "wild.json"), keydirtest.JWK(t,
		pinnedFor(t, 130, "*.example:443", "!bad.example:443"),
		pinnedFor(t, 131, "*.example", "db.example:443"),
		pinnedFor(t, 104, "x.example:443", "*.example:443")))
	keydirtest.Write(t, filepath.Join(d, "lone.json"), keydirtest.JWK(t, pinnedFor(t, 132, "x.example:443")))
	keydirtest.Write(t, filepath.Join(d, "one.pub"), keydirtest.SSH(t, key(t, 135)))
	keydirtest.Write(t, filepath.Join(d, "spare.json"), keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 140), "address", "spare.example:443")))
	keydirtest.Write(t, filepath.Join(opts.RevokedDirs[0], "r.json"), keydirtest.JWK(t, key(t, 105)))
	keydirtest.Write(t, opts.Files[0], keydirtest.JWK(t,
		pinnedFor(t, 106, "db.example:443", "x.example:443"),
		pinnedFor(t, 131, "db.example")))
	_, finish := LoadFor(opts, Lookups{})
	finish()
	// In place, after the index: pins only the proof finds.
	for range 3 {
		f := rng.IntN(20)
		pins := []*jwk.Key{keydirtest.WithAttrs(key(t, 100+f), "address", "h"+strconv.Itoa(f)+".example:443")}
		for range 1 + rng.IntN(2) {
			pins = append(pins, keydirtest.WithAttrs(key(t, removalKey(rng)), "address", removalAddrs[rng.IntN(len(removalAddrs))]))
		}
		keydirtest.WriteInPlace(t, filepath.Join(d, "h"+strconv.Itoa(f)+".json"), keydirtest.JWK(t, pins...))
	}
	return opts
}

// removalKey is the number of a key of removalHome, chosen by rng.
func removalKey(rng *rand.Rand) int {
	if rng.IntN(3) == 0 {
		return 130 + rng.IntN(6)
	}
	return 100 + rng.IntN(26)
}

// randomRemovalQuery is what trust-host --remove is given, chosen by rng:
// an address (a file's own, a shared one, a pattern as written, a
// negation, one nobody pins), a key's fingerprint in a form the index
// keeps or in one it does not, or neither.
func randomRemovalQuery(t *testing.T, rng *rand.Rand) string {
	k := key(t, removalKey(rng))
	ssh, _ := k.SSHFingerprint() // a form the index does not keep
	switch rng.IntN(10) {
	case 0:
		return "h" + strconv.Itoa(rng.IntN(22)) + ".example:443"
	case 1, 2:
		return removalAddrs[rng.IntN(len(removalAddrs))]
	case 3:
		return k.Fingerprint()
	case 4:
		return ssh
	case 5:
		return k.Thumbprint()
	case 6:
		return k.KeyID()
	case 7:
		return []string{"!bad.example:443", "bad.example:443", "h3.example", "nobody"}[rng.IntN(4)]
	case 8:
		return "sha256//" + strings.TrimPrefix(ssh, "SHA256:")
	}
	return "nobody.example:443"
}

// removalLookups is what trust-host --remove loads for queries.
func removalLookups(queries []string) Lookups {
	l := Lookups{Addrs: queries}
	for _, q := range queries {
		if fp, err := jwk.ParseFingerprint(q); err == nil {
			l.Fingerprints = append(l.Fingerprints, fp)
		}
	}
	return l
}

// pinnedState is what a full load pins: file, key and addresses, sorted.
func pinnedState(opts Options) []string {
	var out []string
	for _, e := range Load(opts).Entries() {
		out = append(out, filepath.Base(e.File)+" "+e.Fingerprint+" "+strings.Join(e.Addresses, ","))
	}
	slices.Sort(out)
	return out
}

// removedState is what a removal says it took away, sorted.
func removedState(removed []Removed) []string {
	var out []string
	for _, r := range removed {
		out = append(out, filepath.Base(r.File)+" "+r.Fingerprint+" "+r.Addr)
	}
	slices.Sort(out)
	return out
}

// RemoveAll of several queries against Remove of each in its own command,
// on two identical homes, 100 random cases (25 with -short): addresses
// and patterns, fingerprints in kept and unkept forms, nobody's, a query
// twice, off a
// local file system, another writer between the steps. One proof for
// all of them; the same pins are left, each query says it removed the
// same pins and fails as it would alone (the same error, "not found" for
// the same ones),
// no pin is left holding an address one named (read from the files),
// the index is never left stale, and a narrowed load after it finds
// every copy a full one does. (A first version of RemoveAll read the
// store during its first step's writes: the index was left stale, and a
// query given twice said it removed what the first had.)
func TestRemoveAllIsRemovesInTurn(t *testing.T) {
	oldMin, oldRacy := keydir.IndexMinFiles, keydir.StampRacy
	keydir.IndexMinFiles, keydir.StampRacy = 0, 0 // every directory indexed, its files' stamps recorded
	t.Cleanup(func() { keydir.IndexMinFiles, keydir.StampRacy = oldMin, oldRacy })
	cases := 100
	if testing.Short() {
		cases = 25
	}
	for seed := range cases {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			mk := func() Options { return removalHome(t, rand.New(rand.NewPCG(uint64(seed), 1))) }
			a, b := mk(), mk()
			if !slices.Equal(pinnedState(a), pinnedState(b)) {
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
			between := keydirtest.WithAttrs(key(t, removalKey(rng)), "address", removalAddrs[rng.IntN(len(removalAddrs))])
			proofs := 0
			hook := func(o Options) func() {
				done := false
				return func() {
					proofs++
					if hooked && !done {
						done = true
						spare := keydirtest.WithAttrs(key(t, 140), "address", "spare.example:443")
						keydirtest.WriteInPlace(t, filepath.Join(o.Dirs[0], "spare.json"), keydirtest.JWK(t, spare, between))
					}
				}
			}
			removeBeforeProof = hook(a)
			t.Cleanup(func() { removeBeforeProof = nil })
			s, finish := LoadFor(a, removalLookups(queries))
			got := s.RemoveAll(queries)
			finish()
			if proofs > 1 {
				t.Errorf("queries %q: %d proofs, want one for all", queries, proofs)
			}
			removeBeforeProof = hook(b)
			var want []Removal
			for _, q := range queries {
				s, finish := LoadFor(b, removalLookups([]string{q}))
				removed, err := s.Remove(q)
				finish()
				want = append(want, Removal{removed, err})
			}
			if sa, sb := pinnedState(a), pinnedState(b); !slices.Equal(sa, sb) {
				t.Errorf("queries %q: RemoveAll left\n%v\nRemoves left\n%v", queries, sa, sb)
			}
			for i, q := range queries {
				if ga, wa := removedState(got[i].Removed), removedState(want[i].Removed); !slices.Equal(ga, wa) {
					t.Errorf("query %d %q: RemoveAll removed\n%v\nRemove\n%v", i, q, ga, wa)
				}
				if ge, we := errorIn(got[i].Err, a), errorIn(want[i].Err, b); ge != we {
					t.Errorf("query %d %q: RemoveAll %s, Remove %s", i, q, ge, we)
				}
			}
			// Against a reading of the files, not another removal: where
			// every query went through, no pin is left holding an
			// address one named (the index's lists of an address
			// hold every pin of it).
			failed := slices.ContainsFunc(got, func(r Removal) bool {
				return r.Err != nil && !errors.As(r.Err, new(*NotFoundError))
			})
			for _, q := range queries {
				norm, err := NormalizeAddr(q)
				if err != nil || failed {
					continue
				}
				for _, e := range Load(a).Entries() {
					if slices.Contains(e.Addresses, norm) {
						t.Errorf("queries %q: %s still pins %s", queries, filepath.Base(e.File), norm)
					}
				}
			}
			if keydirtest.IndexLeftStale(t, a.Index) {
				t.Errorf("queries %q: RemoveAll left the index stale", queries)
			}
			if offLocal {
				return // a narrowed load there does not see in-place writes (by design)
			}
			// The index after it names every copy: each key left is
			// found by a narrowed load.
			full := Load(a).Entries()
			for _, e := range full {
				s, finish := LoadFor(a, Lookups{Keys: [][32]byte{e.SPKIHash}})
				n := 0
				for _, f := range s.Entries() {
					if f.SPKIHash == e.SPKIHash {
						n++
					}
				}
				finish()
				all := 0
				for _, f := range full {
					if f.SPKIHash == e.SPKIHash {
						all++
					}
				}
				if n != all {
					t.Errorf("queries %q: after RemoveAll a narrowed load finds %d copies of %s, a full one %d", queries, n, e.Fingerprint, all)
				}
			}
		})
	}
}

// errorIn is err's type and text, its home's path taken out.
func errorIn(err error, opts Options) string {
	if err == nil {
		return "nil"
	}
	return fmt.Sprintf("%T %s", err, strings.ReplaceAll(err.Error(), filepath.Dir(opts.Dirs[0]), "HOME"))
}
