package keydir

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestNumbersVersions gives and frees numbers over several pages, as
// reloads do, cloning the numbers at each "publish" and checking after
// every step that each version published before still reads as it did:
// the version written copies each page it did not make before writing it
// — its heap part too, which in lean numbers only pages with a long name
// (or a File) have, so that the list of heap parts ends before the last
// pages (numbers.pages, count) and grows as a late page needs one. Files
// of one item with short names, long names (packed on the heap) and
// Files are mixed, in lean numbers and in numbers without (every file a
// File). Some steps write nothing, so that the next clone is a clone of a
// clone, sharing the same lists (numbers.listsShared); and some are
// cloned halfway through their writes, as the rescan's compare clones
// the loader's numbers, the half before kept as a version.
func TestNumbersVersions(t *testing.T) {
	for _, lean := range []bool{true, false} {
		t.Run(fmt.Sprintf("lean=%v", lean), func(t *testing.T) {
			src := &fileSource{prefix: "/d/", index: 0, dir: true}
			var ns numbers[[32]byte]
			if lean {
				ns = leanNumbers[[32]byte]([]*fileSource{src})
			}
			rng := rand.New(rand.NewPCG(21, uint64(len(fmt.Sprint(lean)))))
			// want is what each live number reads: its name and item.
			type file struct {
				name string
				item byte
				gen  uint32
			}
			want := map[uint32]file{}
			type version struct {
				ns   numbers[[32]byte]
				want map[uint32]file
			}
			var versions []version
			check := func(step int, v *numbers[[32]byte], w map[uint32]file, what string) {
				t.Helper()
				for num := uint32(1); num <= v.n+pageLen; num++ {
					f, ok := w[num]
					if v.has(num) != ok {
						t.Fatalf("step %d, %s: number %d has a file: %v, want %v", step, what, num, v.has(num), ok)
					}
					if !ok {
						continue
					}
					got := v.at(num)
					if got.Name() != f.name || got.Items()[0][0] != f.item || v.name(num) != f.name || v.genAt(num) != f.gen {
						t.Fatalf("step %d, %s: number %d reads %q item %d gen %d, want %q item %d gen %d", step, what, num, got.Name(), got.Items()[0][0], v.genAt(num), f.name, f.item, f.gen)
					}
				}
				if lean && len(v.pages) > v.count() {
					t.Fatalf("step %d, %s: %d heap parts for %d pages", step, what, len(v.pages), v.count())
				}
			}
			var freed []uint32
			for step := range 120 {
				k := 1 + rng.IntN(300)
				switch {
				case step < 3:
					k = pageLen // the first versions: pages of short names only
				case rng.IntN(8) == 0:
					k = 0 // a reload that writes nothing
				}
				for i := range k {
					if i == k/2 && step >= 3 && rng.IntN(4) == 0 {
						// compare: the numbers so far kept, the loader
						// writing on in a clone of them
						versions = append(versions, version{ns, maps.Clone(want)})
						ns = ns.clone()
					}
					if len(want) > 0 && rng.IntN(3) == 0 {
						// free a number: as release does, after the adds
						for num := range want {
							if !slices.Contains(freed, num) {
								freed = append(freed, num)
							}
							break
						}
						continue
					}
					item := byte(rng.IntN(256))
					var name string
					switch r := rng.IntN(10); {
					case step < 3 || r < 6:
						name = fmt.Sprintf("s%d.json", rng.IntN(1e6))
					case r < 8:
						name = strings.Repeat("l", nameCap+1+rng.IntN(10)) + fmt.Sprint(rng.IntN(1e6))
					default:
						name = "f" + fmt.Sprint(rng.IntN(1e6))
					}
					var p parsed[[32]byte]
					if !lean || strings.HasPrefix(name, "f") {
						p.file = makeFile(src, name, [][32]byte{{item}})
					} else {
						p.item, p.src = [32]byte{item}, 1
					}
					reused := len(ns.free) > 0
					num := ns.add(p, name)
					if _, dup := want[num]; dup {
						t.Fatalf("step %d: number %d given while a file's", step, num)
					}
					gen := uint32(0)
					if reused {
						gen = ns.genAt(num)
					}
					want[num] = file{name, item, gen}
				}
				if lean && step < 3 && len(ns.pages) != 0 {
					t.Fatalf("step %d: %d heap parts where no page needs one", step, len(ns.pages))
				}
				ns.release(freed)
				for _, num := range freed {
					delete(want, num)
				}
				freed = nil
				// publish: this version is never written again
				versions = append(versions, version{ns, want})
				ns, want = ns.clone(), maps.Clone(want)
				for i := max(0, len(versions)-3); i < len(versions); i++ {
					check(step, &versions[i].ns, versions[i].want, fmt.Sprintf("version %d", i))
				}
				check(step, &ns, want, "the clone")
			}
			for i := range versions {
				check(-1, &versions[i].ns, versions[i].want, fmt.Sprintf("version %d", i))
			}
			if lean {
				last := versions[len(versions)-1].ns
				if last.count() < 4 || len(last.pages) == 0 {
					t.Fatalf("%d pages, %d heap parts: the test does not reach late pages", last.count(), len(last.pages))
				}
			}
		})
	}
}
