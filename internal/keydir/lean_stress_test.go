package keydir

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// TestLeanNumbersAcrossReloadsAndCollections (review, 2026-12-06): a
// directory of more than a page of single-key files (so that the numbers'
// mapped parts are mapped outside the heap in a build without -race) is
// changed at random — files removed, added, rewritten with one key or
// two and back, renamed, their names short enough for the numbers'
// mapped part or one byte too long (nameCap) — and reloaded, in full
// and by path, while readers read old snapshots and the collector runs
// without pause. Every
// snapshot held must read as it did when published (RefAt, ItemAt,
// FileAt, Refs), and a number and generation must name one file in every
// snapshot of the loader (what authkeys' made Entries rely on).
func TestLeanNumbersAcrossReloadsAndCollections(t *testing.T) {
	steps := 60
	if testing.Short() || raceEnabled {
		// Under -race the arrays are on the heap, where the detector
		// watches a published page written; the package's -race run is
		// near its ten minutes already.
		steps = 15
	}
	home := t.TempDir()
	dir, rev := filepath.Join(home, "keys.d"), filepath.Join(home, "revoked.d")
	must(t, os.MkdirAll(dir, 0o755))
	must(t, os.MkdirAll(rev, 0o755))
	next := 0
	fresh := func() *jwk.Key { next++; return key(t, next) }
	model := map[string][][32]byte{} // keys.d's files
	put := func(name string, n int) {
		ks := make([]*jwk.Key, n)
		sums := make([][32]byte, n)
		for i := range ks {
			ks[i] = fresh()
			sums[i] = ks[i].SPKIHash()
		}
		keydirtest.Put(t, filepath.Join(dir, name), keydirtest.JWK(t, ks...))
		model[name] = sums
	}
	// Most names fit in a number's mapped part; some do not (nameCap),
	// and are packed on the heap, so that a page holds both and a number
	// goes from one kind to the other when it is given again.
	nameOf := func(base string, long bool) string {
		if long {
			return base + "-" + strings.Repeat("l", nameCap-len(base)-len(".json")) + ".json" // nameCap+1
		}
		return base + ".json"
	}
	const n = pageLen + 700
	for i := range n {
		put(nameOf(fmt.Sprintf("k%05d", i), i%37 == 0), 1)
	}
	keydirtest.Put(t, filepath.Join(rev, "r.json"), keydirtest.JWK(t, fresh()))
	l := newLeanLoader(Source{Path: dir, Dir: true}, Source{Path: rev, Dir: true, Revocation: true})

	type rec struct {
		src      int
		name     string
		num, gen uint32
		items    [][32]byte
		lean     bool
	}
	digest := func(s *Snapshot[[32]byte]) []rec {
		var out []rec
		for r := range s.Refs {
			out = append(out, rec{src: r.Source(), name: r.Name(), num: r.Num(), gen: r.Gen(), items: slices.Clone(r.Items()), lean: isLean(s, r.Num())})
		}
		return out
	}
	type held struct {
		s    *Snapshot[[32]byte]
		want []rec
	}
	var (
		mu    sync.Mutex
		holds []held
		bad   atomic.Value
	)
	fail := func(format string, args ...any) { bad.CompareAndSwap(nil, fmt.Sprintf(format, args...)) }
	verify := func(h held, full bool) {
		for _, w := range h.want {
			r, ok := h.s.RefAt(w.num)
			if !ok || r.Name() != w.name || r.Gen() != w.gen || r.Len() != len(w.items) || isLean(h.s, w.num) != w.lean {
				fail("generation %d: number %d reads %v %q gen %d, want %q gen %d", h.s.Generation, w.num, ok, r.Name(), r.Gen(), w.name, w.gen)
				return
			}
			for pos, it := range w.items {
				if h.s.ItemAt(w.num, pos) != it || r.Item(pos) != it {
					fail("generation %d: number %d (%q) item %d reads otherwise", h.s.Generation, w.num, w.name, pos)
					return
				}
			}
			if full {
				if f := h.s.FileAt(w.num); f.Name() != w.name || !slices.Equal(f.Items(), w.items) {
					fail("generation %d: FileAt(%d) reads %q", h.s.Generation, w.num, f.Name())
					return
				}
			}
		}
		if full {
			if got := digest(h.s); len(got) != len(h.want) {
				fail("generation %d: %d files, published with %d", h.s.Generation, len(got), len(h.want))
			}
		}
	}
	// ids is every (number, generation) of every snapshot published, and
	// the file it named.
	ids := map[[2]uint32]string{}
	record := func(s *Snapshot[[32]byte]) []rec {
		want := digest(s)
		for _, w := range want {
			id := fmt.Sprintf("%d %q %x", w.src, w.name, w.items)
			if was, ok := ids[[2]uint32{w.num, w.gen}]; ok && was != id {
				t.Fatalf("generation %d: number %d of generation %d names %s, and named %s before", s.Generation, w.num, w.gen, id, was)
			}
			ids[[2]uint32{w.num, w.gen}] = id
		}
		return want
	}

	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				hs := slices.Clone(holds)
				mu.Unlock()
				for _, h := range hs {
					verify(h, false)
				}
			}
		})
	}
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				runtime.GC()
			}
		}
	})
	defer func() {
		close(stop)
		wg.Wait()
	}()

	rng := rand.New(rand.NewPCG(5, 42))
	s := l.Reload()
	mu.Lock()
	holds = append(holds, held{s, record(s)})
	mu.Unlock()
	for step := range steps {
		var h hints
		names := slices.Sorted(func(yield func(string) bool) {
			for name := range model {
				if !yield(name) {
					return
				}
			}
		})
		for range 1 + rng.IntN(40) {
			name := names[rng.IntN(len(names))]
			if _, ok := model[name]; !ok {
				continue
			}
			path := filepath.Join(dir, name)
			switch rng.IntN(5) {
			case 0:
				must(t, os.Remove(path))
				delete(model, name)
			case 1:
				to := nameOf(fmt.Sprintf("n%05d", step*100+rng.IntN(100)), rng.IntN(3) == 0)
				if _, taken := model[to]; !taken {
					must(t, os.Rename(path, filepath.Join(dir, to)))
					model[to] = model[name]
					delete(model, name)
					h.add(filepath.Join(dir, to))
				}
			case 2:
				put(name, 2)
			default:
				put(name, 1)
			}
			h.add(path)
		}
		for range rng.IntN(20) {
			name := nameOf(fmt.Sprintf("a%05d", step*100+rng.IntN(100)), rng.IntN(3) == 0)
			put(name, 1)
			h.add(filepath.Join(dir, name))
		}
		if step%7 == 3 { // a revocation source's files keep their Files
			keydirtest.Put(t, filepath.Join(rev, "r.json"), keydirtest.JWK(t, fresh()))
			h.add(filepath.Join(rev, "r.json"))
		}
		if step%20 == 10 {
			// The directory goes and comes back: its rows are dropped
			// and every number of its files freed, then given again.
			away := dir + ".away"
			must(t, os.Rename(dir, away))
			l.reload(hints{all: true})
			if s := l.Snapshot(); s.numFiles() != 1 { // the revocation file
				t.Fatalf("step %d: %d files with keys.d gone", step, s.numFiles())
			}
			mu.Lock()
			holds = append(holds[:min(len(holds), 7)], held{l.Snapshot(), record(l.Snapshot())})
			mu.Unlock()
			must(t, os.Rename(away, dir))
		}
		if rng.IntN(3) == 0 || step%20 == 10 {
			l.reload(hints{all: true})
		} else {
			l.reload(h)
		}
		s := l.Snapshot()
		want := record(s)
		var got []string
		for _, w := range want {
			if w.src == 0 {
				got = append(got, fmt.Sprintf("%q %x", w.name, w.items))
			}
		}
		var exp []string
		for _, name := range slices.Sorted(func(yield func(string) bool) {
			for name := range model {
				if !yield(name) {
					return
				}
			}
		}) {
			exp = append(exp, fmt.Sprintf("%q %x", name, model[name]))
		}
		if !slices.Equal(got, exp) {
			t.Fatalf("step %d: the snapshot holds %d files of keys.d, the directory %d", step, len(got), len(exp))
		}
		mu.Lock()
		if len(holds) < 8 {
			holds = append(holds, held{s, want})
		} else {
			holds[1+rng.IntN(len(holds)-1)] = held{s, want} // the first load is held throughout
		}
		hs := slices.Clone(holds)
		mu.Unlock()
		runtime.GC()
		for _, h := range hs {
			verify(h, true)
		}
		if b := bad.Load(); b != nil {
			t.Fatalf("step %d: %s", step, b)
		}
	}
}
