package keydir

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestNumbersClonesKeepEarlierVersions: numbers cloned at publish and,
// as the rescan's compare does, in the middle of a reload's writes, and
// reloads that write nothing (the clone of a clone shares the same lists:
// listsShared), leave every earlier version reading as it did. It fails
// without writable's copy of the shared lists.
func TestNumbersClonesKeepEarlierVersions(t *testing.T) {
	for _, lean := range []bool{true, false} {
		for seed := range uint64(2) {
			t.Run(fmt.Sprintf("lean=%v/seed=%d", lean, seed), func(t *testing.T) {
				src := &fileSource{prefix: "/d/", index: 0, dir: true}
				var ns numbers[[32]byte]
				if lean {
					ns = leanNumbers[[32]byte]([]*fileSource{src})
				}
				rng := rand.New(rand.NewPCG(seed, 99))
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
				check := func(v *numbers[[32]byte], w map[uint32]file, what string) {
					t.Helper()
					for num := uint32(1); num <= v.n+pageLen; num++ {
						f, ok := w[num]
						if v.has(num) != ok {
							t.Fatalf("%s: number %d has: %v want %v", what, num, v.has(num), ok)
						}
						if !ok {
							continue
						}
						got := v.at(num)
						if got.Name() != f.name || got.Items()[0][0] != f.item || v.genAt(num) != f.gen {
							t.Fatalf("%s: number %d reads %q %d gen %d, want %q %d gen %d", what, num, got.Name(), got.Items()[0][0], v.genAt(num), f.name, f.item, f.gen)
						}
					}
				}
				keep := func() {
					versions = append(versions, version{ns, maps.Clone(want)})
					ns = ns.clone()
				}
				steps := 150
				if raceEnabled {
					// One goroutine: nothing for the race detector to find,
					// and the arrays on the heap (internal/offheap).
					steps = 20
				}
				for step := range steps {
					var freed []uint32
					k := rng.IntN(4) * rng.IntN(700)
					for i := range k {
						if i == k/2 && rng.IntN(3) == 0 {
							keep() // compare: ns := l.numbers; l.numbers = ns.clone()
						}
						if len(want) > len(freed) && rng.IntN(3) == 0 {
							for num := range want {
								dup := false
								for _, f := range freed {
									dup = dup || f == num
								}
								if !dup {
									freed = append(freed, num)
									break
								}
							}
							continue
						}
						item := byte(rng.IntN(256))
						var name string
						switch r := rng.IntN(10); {
						case r < 6:
							name = fmt.Sprintf("s%d", rng.IntN(1e6))
						case r < 8:
							name = strings.Repeat("l", nameCap+2) + fmt.Sprint(rng.IntN(1e6))
						default:
							name = "f" + fmt.Sprint(rng.IntN(1e6))
						}
						var p parsed[[32]byte]
						if !lean || strings.HasPrefix(name, "f") {
							p.file = makeFile(src, name, [][32]byte{{item}})
						} else {
							p.name, p.one = name, oneItem[[32]byte]{item: [32]byte{item}, src: 1}
						}
						reused := len(ns.free) > 0
						num := ns.add(p)
						gen := uint32(0)
						if reused {
							gen = ns.genAt(num)
						}
						want[num] = file{name, item, gen}
					}
					ns.release(freed)
					for _, num := range freed {
						delete(want, num)
					}
					keep() // publish
					for i := max(0, len(versions)-4); i < len(versions); i++ {
						check(&versions[i].ns, versions[i].want, fmt.Sprintf("step %d version %d", step, i))
					}
					check(&ns, want, "loader")
				}
				for i := range versions {
					check(&versions[i].ns, versions[i].want, fmt.Sprintf("end, version %d", i))
				}
			})
		}
	}
}
