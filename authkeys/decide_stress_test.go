package authkeys

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// TestDecideBesideReloads: entries are written, renamed, removed and
// given other entries' names, and keys revoked and unrevoked, reloaded
// by path or in full, while handshakes decide every key and list the
// shared names on snapshots old and new (the race detector watches what
// a reload writes: rows, items, the sets of names). After each reload the
// store must say what the files say: a revoked key is Revoked, a key held
// by a file Authorized, any other Unknown, and a name held by two
// entries is shared.
func TestDecideBesideReloads(t *testing.T) {
	opts := HomeOptions(t.TempDir())
	dir, revDir := opts.Dirs[0], opts.RevokedDirs[0]
	for _, d := range []string{dir, revDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	const nkeys = 6
	keys := make([]*jwk.Key, nkeys)
	for i := range keys {
		keys[i] = key(t, i+1)
	}
	s := Load(opts)
	defer s.Close()
	stop := keydirtest.Repeat(2, func() {
		for _, k := range keys {
			s.Decide(k.SPKIHash(), netip.Addr{})
		}
		s.SharedNames()
	})
	defer stop()

	// files: file name (without .json) → key index and the name attribute
	// ("": named after the file); revoked: key indexes.
	type entry struct {
		k    int
		name string
	}
	files := map[string]entry{}
	revoked := map[int]bool{}
	names := []string{"alice", "bob", "carol", "dave", "eve", "frank", "x\xffy", "é"}
	rng := rand.New(rand.NewPCG(9, 4))
	holder := func(k int) (string, bool) {
		for f, e := range files {
			if e.k == k {
				return f, true
			}
		}
		return "", false
	}
	for step := range 400 {
		var touched []string
		switch op := rng.IntN(6); {
		case op <= 2: // write an entry (a key in one file only)
			f, k := names[rng.IntN(len(names))], rng.IntN(nkeys)
			if h, held := holder(k); held && h != f {
				break
			}
			e := entry{k: k}
			data := keydirtest.JWK(t, keys[k])
			if rng.IntN(3) == 0 {
				e.name = names[rng.IntN(6)] // valid UTF-8: JSON would not keep the others
				data = keydirtest.JWK(t, keydirtest.WithAttrs(keys[k], "name", e.name))
			}
			keydirtest.Put(t, filepath.Join(dir, f+".json"), data)
			files[f] = e
			touched = append(touched, filepath.Join(dir, f+".json"))
		case op == 3: // a rename, over another entry or not
			from, to := names[rng.IntN(len(names))], names[rng.IntN(len(names))]
			if e, ok := files[from]; ok && from != to {
				if err := os.Rename(filepath.Join(dir, from+".json"), filepath.Join(dir, to+".json")); err != nil {
					t.Fatal(err)
				}
				delete(files, from)
				files[to] = e
				touched = append(touched, filepath.Join(dir, from+".json"), filepath.Join(dir, to+".json"))
			}
		case op == 4:
			f := names[rng.IntN(len(names))]
			if _, ok := files[f]; ok {
				if err := os.Remove(filepath.Join(dir, f+".json")); err != nil {
					t.Fatal(err)
				}
				delete(files, f)
				touched = append(touched, filepath.Join(dir, f+".json"))
			}
		default: // revoke or unrevoke
			k := rng.IntN(nkeys)
			path := filepath.Join(revDir, fmt.Sprintf("r%d.json", k))
			if revoked[k] {
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
			} else {
				keydirtest.Put(t, path, keydirtest.JWK(t, keys[k]))
			}
			revoked[k] = !revoked[k]
			touched = append(touched, path)
		}
		if rng.IntN(4) == 0 {
			s.Loader().Reload()
		} else {
			s.Loader().Reload(touched...)
		}
		for k := range keys {
			want := Unknown
			if _, held := holder(k); held {
				want = Authorized
			}
			if revoked[k] {
				want = Revoked
			}
			if d := s.Decide(keys[k].SPKIHash(), netip.Addr{}); d.Verdict != want {
				t.Fatalf("step %d: key %d: %v, want %v (files %v, revoked %v)", step, k, d.Verdict, want, files, revoked)
			}
		}
		// The names held by two entries (each key is in one file: every
		// entry is in effect; a revoked key's entry holds its name too).
		count := map[string]int{}
		for f, e := range files {
			count[cmp.Or(e.name, f)]++
		}
		var want, got []string
		for n, c := range count {
			if c >= 2 {
				want = append(want, n)
			}
		}
		slices.Sort(want)
		for _, sh := range s.SharedNames() {
			got = append(got, sh.Name)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("step %d: shared names %q, want %q (files %v, revoked %v)", step, got, want, files, revoked)
		}
	}
}
