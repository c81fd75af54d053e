package authkeys

import (
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

// TestIncrementalBuild changes a few files at a time — keys that appear
// in several files or twice in one, multi-key files, files moved between
// the authorized and revoked directories, many files added and then
// removed — and after every reload checks that the store, whose indexes
// are edited in a copy of the previous ones, agrees exactly with a full
// rebuild of the same files (the same entry wins for every key: the first
// file in order; the same lists), and that the snapshot it replaced, which
// lookups may still be reading, did not change.
func TestIncrementalBuild(t *testing.T) {
	home := t.TempDir()
	opts := HomeOptions(home)
	auth, revd := opts.Dirs[0], opts.RevokedDirs[0]
	for _, d := range []string{auth, revd} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pool := make([]*jwk.Key, 250)
	for i := range pool {
		pool[i] = key(t, 100+i)
	}
	// Enough files that most reloads take the incremental path.
	for i := range 300 {
		keydirtest.Write(t, filepath.Join(auth, fmt.Sprintf("base%03d.json", i)), keydirtest.JWK(t, key(t, 1000+i)))
	}
	s := Load(opts)
	reload := func(step string, paths ...string) {
		t.Helper()
		prev := s.snap.Load()
		keys, files := prev.keys.flat(), prev.keys.filesHeld()
		s.Loader().Reload(paths...)
		if !slices.Equal(prev.keys.flat(), keys) || !slices.Equal(prev.keys.filesHeld(), files) {
			t.Fatalf("%s: the previous snapshot's index was modified, or the numbers it reads", step)
		}
		if sn := s.snap.Load(); sn.keys.files != sn.files {
			t.Fatalf("%s: the index reads numbers of another snapshot than its own", step)
		}
		sn := s.snap.Load()
		ref := &snapshot{files: sn.files}
		s.rebuild(ref)
		if !sameIndex(sn.keys, ref.keys) {
			t.Fatalf("%s: the edited index differs from a rebuild", step)
		}
		// The revoked keys are the one revocation set of the snapshot:
		// every key of a revocation file, the first file's entry.
		want := map[[32]byte]string{}
		for _, f := range sn.files.Files() {
			for i := range f.Items() {
				e := &f.Items()[i]
				if _, seen := want[e.sum]; s.rev[f.Source()] && !seen {
					want[e.sum] = f.Path()
				}
			}
		}
		for sum, file := range want {
			if got, ok := sn.revoked.Lookup(sum); !ok || got.File.Path() != file {
				t.Fatalf("%s: revoked %x: %v, want %q", step, sum[:8], got.File, file)
			}
		}
		if len(sn.revoked.List()) != len(want) {
			t.Fatalf("%s: %d revoked keys listed, want %d", step, len(sn.revoked.List()), len(want))
		}
		if 2*sn.keys.n > sn.keys.size() {
			t.Fatalf("%s: %d entries in %d slots, more than half full", step, sn.keys.n, sn.keys.size())
		}
		if p := s.Problems(); len(p) > 0 {
			t.Fatalf("%s: %v", step, p)
		}
	}

	rng := rand.New(rand.NewPCG(7, 7))
	for step := range 400 {
		var changed []string
		for range 1 + rng.IntN(3) {
			dir := auth
			if rng.IntN(6) == 0 {
				dir = revd
			}
			path := filepath.Join(dir, fmt.Sprintf("f%02d.json", rng.IntN(25)))
			changed = append(changed, path)
			switch rng.IntN(3) {
			case 0:
				os.Remove(path)
			default:
				var keys []*jwk.Key
				for range 1 + rng.IntN(3) {
					keys = append(keys, pool[rng.IntN(len(pool))]) // now and then twice in one file
				}
				keydirtest.Replace(t, path, keydirtest.JWK(t, keys...))
			}
		}
		if step%50 == 49 {
			reload(fmt.Sprintf("step %d", step)) // a full rescan now and then
		} else {
			reload(fmt.Sprintf("step %d", step), changed...)
		}
	}
	if s.updates < 100 || s.rebuilds < 10 {
		t.Fatalf("%d reloads edited the index, %d rebuilt it: want both paths well exercised", s.updates, s.rebuilds)
	}

	// Growth, 20 files of 2 keys a reload: the table fills past half
	// and must be rebuilt larger. Then shrinking, 20 files a reload: the
	// table ends far too large and must be rebuilt smaller.
	const batches, per = 60, 20
	rebuilds := s.rebuilds
	var grown []string
	for b := range batches {
		var paths []string
		for i := range per {
			n := 10_000 + 2*(b*per+i)
			path := filepath.Join(auth, fmt.Sprintf("grow%05d.json", b*per+i))
			keydirtest.Write(t, path, keydirtest.JWK(t, key(t, n), key(t, n+1)))
			paths = append(paths, path)
		}
		grown = append(grown, paths...)
		reload(fmt.Sprintf("growth %d", b), paths...)
	}
	if s.rebuilds == rebuilds {
		t.Fatal("the table grew past half full without a rebuild")
	}
	size := s.snap.Load().keys.size()
	for len(grown) > 0 {
		paths := grown[:per]
		grown = grown[per:]
		for _, p := range paths {
			os.Remove(p)
		}
		reload("shrinking", paths...)
	}
	if now := s.snap.Load().keys.size(); now >= size {
		t.Fatalf("after removing most keys the table still has %d slots (had %d)", now, size)
	}

	// A fresh store reading the final files agrees too.
	fresh := Load(opts)
	for _, k := range append(pool, key(t, 1000)) {
		a, errA := s.LookupKey(k, netip.Addr{})
		b, errB := fresh.LookupKey(k, netip.Addr{})
		if (a == nil) != (b == nil) || a != nil && a.File != b.File || fmt.Sprint(errA) != fmt.Sprint(errB) {
			t.Fatalf("%s: store says %v %v, a fresh load %v %v", k.Fingerprint(), a, errA, b, errB)
		}
	}
	t.Logf("%d reloads edited the index, %d rebuilt it", s.updates, s.rebuilds)
}

// sameIndex reports whether two indexes hold the same entry for every key.
// filesHeld returns the file each slot names (nil: an empty slot), as x
// reads them.
// filesHeld is what the index's slots read in the snapshot it reads:
// each held entry's file (number, generation, path) and item, by value,
// since a file of one key has no File of its own to compare by pointer.
func (x *index) filesHeld() []heldEntry {
	var out []heldEntry
	for _, r := range x.flat() {
		if r.file == 0 {
			continue
		}
		f, ok := x.files.RefAt(r.file)
		if !ok {
			out = append(out, heldEntry{num: r.file})
			continue
		}
		out = append(out, heldEntry{r.file, f.Gen(), f.Path(), f.Item(int(r.pos))})
	}
	return out
}

type heldEntry struct {
	num, gen uint32
	path     string
	it       item
}

func sameIndex(a, b index) bool {
	if a.n != b.n {
		return false
	}
	for _, r := range a.flat() {
		if r.file == 0 {
			continue
		}
		if !b.holds(r) {
			return false
		}
	}
	return true
}

// A store of no key given many (a cold load) rebuilds without listing
// the files that came: it counts sn's entries until they pass what an
// update would take (update), where DiffRefs listed every file, 24 bytes
// each, at the end of the load, where its peak is.
func TestColdLoadUpdateListsNoFile(t *testing.T) {
	home := t.TempDir()
	empty, many := filepath.Join(home, "empty.d"), filepath.Join(home, "many.d")
	keydirtest.Write(t, filepath.Join(empty, "README"), nil)
	for i := range 100 {
		keydirtest.Write(t, filepath.Join(many, fmt.Sprintf("k%03d.json", i)), keydirtest.JWK(t, key(t, 100+i)))
	}
	s := Load(Options{Dirs: []string{empty}, Rescan: -1})
	defer s.Close()
	prev := s.snap.Load()
	o := Load(Options{Dirs: []string{many}, Rescan: -1})
	defer o.Close()
	sn := &snapshot{files: o.snap.Load().files}
	if _, _, _, ok := s.update(prev, sn); ok {
		t.Fatal("100 keys to a store of none: an update, want a rebuild")
	}
	if allocs := testing.AllocsPerRun(10, func() { s.update(prev, sn) }); allocs != 0 {
		t.Errorf("a cold load's update allocates %.0f times before it rebuilds, want none (a list of the files that came)", allocs)
	}
}
