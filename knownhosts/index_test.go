package knownhosts

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// indexFixture is a store's sources for the index tests: a single file,
// two directories, and a directory of revoked keys.
type indexFixture struct {
	file, dir1, dir2, revoked string
}

func newIndexFixture(t *testing.T) indexFixture {
	home := t.TempDir()
	f := indexFixture{
		file:    filepath.Join(home, "trusted_hosts.json"),
		dir1:    filepath.Join(home, "trusted_hosts.d"),
		dir2:    filepath.Join(home, "more_hosts.d"),
		revoked: filepath.Join(home, "revoked_keys.d"),
	}
	for _, d := range []string{f.dir1, f.dir2, f.revoked} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f indexFixture) options() Options {
	return Options{Files: []string{f.file}, Dirs: []string{f.dir1, f.dir2}, RevokedDirs: []string{f.revoked}, Rescan: -1}
}

// alikeOptions are options whose sources look alike: the first directory
// given twice (its entries are in two sources, with the same paths), and
// the file given as a pin source and as a revocation source. An entry's
// source is then told only by the index the loader hands convert.
func (f indexFixture) alikeOptions() Options {
	return Options{Files: []string{f.file}, Dirs: []string{f.dir1, f.dir2, f.dir1}, RevokedFiles: []string{f.file},
		RevokedDirs: []string{f.revoked}, Rescan: -1}
}

// The pools the randomized test draws from: patterns that share
// addresses (so that lists hold pins of several files), wildcards,
// negations, ports and none, IPv4 and IPv6; purposes; and the addresses
// asked about.
var (
	poolPatterns = []string{
		"h1.example", "h1.example:443", "h2.example:443", "h2.example", "10.0.0.1", "10.0.0.1:22",
		"[2001:db8::1]:443", "2001:db8::1", "*.example", "*.example:443", "h?.example:22", "10.0.0.*",
		"!h2.example:443", "!h1.example:22", "!10.0.0.1:443", "!*.example:22",
	}
	poolPurposes = [][]string{nil, nil, {"ldap"}, {"web", "ldap"}}
	poolAsked    = []string{
		"h1.example", "h1.example:443", "h1.example:22", "h2.example:443", "h2.example:22", "hx.example:443",
		"10.0.0.1:22", "10.0.0.1:443", "10.0.0.2:22", "[2001:db8::1]:443", "[2001:db8::1]:80", "other.test:443",
	}
	askedPurposes = []string{"", "ldap", "web"}
)

const poolKeys = 10

// randomPin is a key of the pool with random addresses (none, now and
// then: a key pinned for any address its certificate names) and
// purposes.
func randomPin(t *testing.T, r *rand.Rand) *jwk.Key {
	k := key(t, r.IntN(poolKeys)).PublicKey()
	k.Attrs = jwk.Attributes{}
	if r.IntN(6) > 0 {
		var addrs []string
		for range 1 + r.IntN(3) {
			addrs = append(addrs, poolPatterns[r.IntN(len(poolPatterns))])
		}
		k.Attrs.SetList(jwk.AttrAddress, addrs)
	}
	if p := poolPurposes[r.IntN(len(poolPurposes))]; p != nil {
		k.Attrs.SetList(jwk.AttrPurpose, p)
	}
	return k
}

// randomChange changes one file of f at random: a pin file written
// (one to three pins, or now and then one that does not load), a
// revoked key, or a file removed. It returns the path.
func randomChange(t *testing.T, r *rand.Rand, f indexFixture) string {
	var path string
	switch n := r.IntN(10); {
	case n == 0:
		path = f.file
	case n == 1:
		path = filepath.Join(f.revoked, fmt.Sprintf("r%d.json", r.IntN(2)))
	case n < 6:
		path = filepath.Join(f.dir1, fmt.Sprintf("p%d.json", r.IntN(8)))
	default:
		path = filepath.Join(f.dir2, fmt.Sprintf("q%d.json", r.IntN(4)))
	}
	switch n := r.IntN(12); {
	case n < 3:
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	case n == 3:
		keydirtest.Put(t, path, []byte("{not json"))
	case strings.HasPrefix(filepath.Base(path), "r"):
		keydirtest.Put(t, path, keydirtest.JWK(t, key(t, r.IntN(poolKeys))))
	default:
		var keys []*jwk.Key
		for range 1 + r.IntN(3) {
			keys = append(keys, randomPin(t, r))
		}
		keydirtest.Put(t, path, keydirtest.JWK(t, keys...))
	}
	return path
}

// answers is everything a store says about the pool: each decision (for
// each address, key and purpose) with its error in full, and the entries.
func answers(t *testing.T, s *Store) []string {
	var out []string
	for _, e := range s.Entries() {
		out = append(out, fmt.Sprintf("entry %s %s %q %q", e.File, e.Fingerprint, e.Addresses, e.Purposes))
	}
	for k := range poolKeys {
		kk := key(t, k)
		out = append(out, fmt.Sprintf("addresses of %d: %q", k, s.AddressesOf(kk.SPKIHash())))
		for _, addr := range poolAsked {
			for _, purpose := range askedPurposes {
				d := s.DecidePurpose(addr, purpose, kk.SPKIHash())
				var ce *KeyChangedError
				want := ""
				if errors.As(d.Err, &ce) {
					want = fmt.Sprintf(" %+v", ce.Want)
				}
				out = append(out, fmt.Sprintf("%s %q key %d: %v %v%s", addr, purpose, k, d.Verdict, d.Err, want))
			}
			err := s.Check(addr, kk)
			out = append(out, fmt.Sprintf("Check %s key %d: %v", addr, k, err))
		}
	}
	return out
}

// TestIncrementalIndexMatchesFullBuild changes the files of a store at
// random — pins added, rewritten (other addresses, purposes, negations,
// wildcards, none), removed, revoked, broken — and after each change
// compares everything the store reloaded as a file event reloads it (its
// index derived from the previous one: updateIndex) says with what a
// store loaded afresh says: every decision, error, entry and address.
// With sources that look alike (alikeOptions), an entry attributed to
// the wrong source would be merged out of file order, or make the reload
// build the index whole.
func TestIncrementalIndexMatchesFullBuild(t *testing.T) {
	steps := 300
	if testing.Short() {
		steps = 100
	}
	for seed := range uint64(4) {
		alike := seed == 3
		t.Run(fmt.Sprint("seed=", seed, ",alike=", alike), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 19))
			f := newIndexFixture(t)
			options := f.options
			if alike {
				options = f.alikeOptions
			}
			s := Load(options())
			for step := range steps {
				path := randomChange(t, r, f)
				if r.IntN(8) == 0 {
					s.Reload() // a rescan: the loader's snapshots compared whole (keydir.Diff)
				} else {
					s.Loader().Reload(path)
				}
				got, want := answers(t, s), answers(t, Load(options()))
				if !reflect.DeepEqual(got, want) {
					for i := range min(len(got), len(want)) {
						if got[i] != want[i] {
							t.Fatalf("step %d (%s): the reloaded store says\n\t%s\na fresh one\n\t%s", step, path, got[i], want[i])
						}
					}
					t.Fatalf("step %d (%s): %d answers, a fresh store %d", step, path, len(got), len(want))
				}
			}
			// Every reload changed a few entries: each that published a
			// snapshot (not those that found nothing changed) must have
			// derived the index; only the first load built it.
			if u, b := s.updates.Load(), s.rebuilds.Load(); b != 1 || u < int64(steps)/2 {
				t.Errorf("%d reloads derived the index, %d built it: the test did not test updateIndex", u, b)
			}
		})
	}
}

// TestIndexRebuildBoundary walks a store across the points where a
// reload stops deriving the index and builds it from every file: a table
// grown past four times the square of its shards (plus 64), and a reload
// changing more than a quarter of the entries (plus 64). On each side of
// each boundary the store must answer as one loaded afresh does, and
// the index must have been derived or built as the rule says.
func TestIndexRebuildBoundary(t *testing.T) {
	f := newIndexFixture(t)
	write := func(i int) string {
		path := filepath.Join(f.dir1, fmt.Sprintf("h%04d.json", i))
		keydirtest.Put(t, path, keydirtest.JWK(t, pinned(t, i, fmt.Sprintf("h%d.example:443", i))))
		return path
	}
	same := func(t *testing.T, s *Store, pins int) {
		t.Helper()
		fresh := Load(f.options())
		for _, i := range []int{0, pins / 2, pins - 1, pins} {
			addr := fmt.Sprintf("h%d.example:443", i)
			for _, k := range []int{i, pins + 7} {
				if got, want := s.Decide(addr, key(t, k).SPKIHash()), fresh.Decide(addr, key(t, k).SPKIHash()); got.Verdict != want.Verdict || fmt.Sprint(got.Err) != fmt.Sprint(want.Err) {
					t.Fatalf("%s key %d: %v %v, a fresh store %v %v", addr, k, got.Verdict, got.Err, want.Verdict, want.Err)
				}
			}
		}
		if got, want := len(s.Entries()), len(fresh.Entries()); got != want || got != pins {
			t.Fatalf("%d entries, a fresh store %d, want %d", got, want, pins)
		}
	}
	write(0)
	s := Load(f.options())
	if got := len(s.snap.Load().pins.exact.shards); got != 1 {
		t.Fatalf("one pin: %d shards", got)
	}
	// One shard holds up to 4·1²+64 = 68 addresses: the 69th pin, added
	// as a file event adds it, rebuilds the index with more shards.
	for i := 1; i < 80; i++ {
		rebuilds := s.rebuilds.Load()
		s.Loader().Reload(write(i))
		same(t, s, i+1)
		rebuilt := s.rebuilds.Load() > rebuilds
		if want := i+1 == 69; rebuilt != want {
			t.Fatalf("pin %d: rebuilt %v, want %v (%d addresses in %d shards)", i+1, rebuilt, want, s.snap.Load().pins.exact.n, len(s.snap.Load().pins.exact.shards))
		}
	}
	if got := len(s.snap.Load().pins.exact.shards); got != shardsFor(69) {
		t.Fatalf("after the rebuild: %d shards, want %d", got, shardsFor(69))
	}
	// 80 entries: a reload may change up to 80/4+64 = 84 of them and
	// derive the index; one more builds it.
	for _, c := range []struct {
		changed int
		rebuild bool
	}{{84, false}, {85, true}} {
		t.Run(fmt.Sprint("changed=", c.changed), func(t *testing.T) {
			for i := 80; i < 80+c.changed; i++ {
				write(i)
			}
			rebuilds := s.rebuilds.Load()
			s.Reload()
			same(t, s, 80+c.changed)
			if rebuilt := s.rebuilds.Load() > rebuilds; rebuilt != c.rebuild {
				t.Fatalf("rebuilt %v, want %v", rebuilt, c.rebuild)
			}
			for i := 80; i < 80+c.changed; i++ {
				if err := os.Remove(filepath.Join(f.dir1, fmt.Sprintf("h%04d.json", i))); err != nil {
					t.Fatal(err)
				}
			}
			s.Reload()
			same(t, s, 80)
		})
	}
}

// dumpTable is a table's contents as sorted text.
func dumpTable[K comparable](t *table[K]) []string {
	var out []string
	for i, m := range t.shards {
		for k, list := range m {
			var files []string
			for _, e := range list {
				files = append(files, e.File+" "+e.Fingerprint)
			}
			out = append(out, fmt.Sprintf("%d %v %q", i, k, files))
		}
	}
	slices.Sort(out)
	return append(out, fmt.Sprint(t.n))
}

func dumpIndex(x *pinIndex) []string {
	return slices.Concat(dumpTable(&x.exact), dumpTable(&x.named), dumpTable(&x.wild), []string{fmt.Sprint(x.n)})
}

// TestPublishedIndexNeverChanges: a reload derives its index from the
// last one, which handshakes may still be reading; it must leave it as
// it was. Readers decide all along (go test -race sees any write to what
// they read), and after each reload the previous index is compared with
// what it held before.
func TestPublishedIndexNeverChanges(t *testing.T) {
	f := newIndexFixture(t)
	r := rand.New(rand.NewPCG(7, 19))
	for range 12 {
		randomChange(t, r, f)
	}
	s := Load(f.options())
	stop := keydirtest.Repeat(2, func() {
		for k := range poolKeys {
			for _, addr := range poolAsked {
				s.Decide(addr, key(t, k).SPKIHash())
			}
		}
	})
	for step := range 100 {
		old := s.snap.Load()
		before := dumpIndex(&old.pins)
		s.Loader().Reload(randomChange(t, r, f))
		if after := dumpIndex(&old.pins); !slices.Equal(before, after) {
			t.Fatalf("step %d: the reload changed the index it was derived from", step)
		}
	}
	stop()
}
