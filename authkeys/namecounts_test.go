package authkeys

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"testing"

	"github.com/keytool/keytool/internal/keydir"
)

// TestNameCountsAgainstAMap checks nameCounts, whose names held once are
// hashSets (merged in place; counted anew, sorted, by a rebuild:
// recount), against a plain
// map of counts by name, through entries that come and go in random
// order — files named after their entry, members naming theirs, rotation
// files beside a name — with a rebuild now and then, as a store's reloads
// and full rebuilds make them. A count read wrong is a name held twice not
// seen as shared (Add would give a second key the name) or one still seen
// held after its entries went.
func TestNameCountsAgainstAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	nc := nameCounts{seed: maphash.MakeSeed()}
	nc.recount(0, func(func(keydir.FileRef[item], ref) bool) {})
	type entry struct {
		f  *keydir.File[item]
		it *item
	}
	var live []entry
	want := map[string]nameCount{}
	count := func(e entry, delta int) {
		nc.add(keydir.RefOf(e.f), 0, delta)
		if name, kind := nameKind(keydir.RefOf(e.f), 0); kind != 0 {
			c := want[name]
			c.add(kind, uint32(delta))
			if c == (nameCount{}) {
				delete(want, name)
			} else {
				want[name] = c
			}
		}
	}
	// Enough names that the sets merge many times (a merge waits for 64
	// changes and more), few enough that names are often held twice.
	names := make([]string, 3000)
	for i := range names {
		names[i] = fmt.Sprintf("client-%d", i)
	}
	newEntry := func() entry {
		var sum [32]byte
		sum[0], sum[1] = byte(rng.IntN(256)), byte(rng.IntN(4))
		name := names[rng.IntN(len(names))]
		file, rare := name+".json", []any(nil) // named after its file
		switch rng.IntN(4) {
		case 0: // a member of a set, named by its member
			file, rare = "set.json", []any{&itemMore{name: name}}
		case 1: // a rotation file beside the name's own
			file, rare = besideName(name, sum)+".json", []any{&itemMore{name: name}}
		}
		f := keydir.NewDirFile("/keys", file, 0, []item{{sum: sum}}, rare)
		return entry{f, &f.Items()[0]}
	}
	check := func(step int, name string) {
		t.Helper()
		h := maphash.String(nc.seed, name)
		if got := nc.get(h); got != want[name] {
			t.Fatalf("step %d: %q counts %+v, want %+v", step, name, got, want[name])
		}
		got, shared := nc.shared[h]
		if w := want[name].shared(); shared != w {
			t.Fatalf("step %d: %q shared %v, want %v (%+v)", step, name, shared, w, want[name])
		}
		if shared && got != name {
			t.Fatalf("step %d: %q shared under the name %q", step, name, got)
		}
	}
	merged := [2]int{} // the most names each set's array held
	for step := range 60_000 {
		grow := step%20_000 < 12_000 // up to some 2,000 entries, then mostly down
		var e entry
		if len(live) > 0 && rng.IntN(3) > 0 != grow {
			k := rng.IntN(len(live))
			e = live[k]
			live[k] = live[len(live)-1]
			live = live[:len(live)-1]
			count(e, -1)
		} else {
			e = newEntry()
			live = append(live, e)
			count(e, +1)
		}
		merged = [2]int{max(merged[0], nc.own.n), max(merged[1], nc.member.n)}
		name, _ := nameKind(keydir.RefOf(e.f), 0)
		check(step, name)
		check(step, names[rng.IntN(len(names))])
		if step%5_000 == 4_999 { // a rebuild: counted anew
			nc.recount(len(live), func(yield func(keydir.FileRef[item], ref) bool) {
				for _, e := range live {
					if !yield(keydir.RefOf(e.f), ref{}) { // each file holds its one entry, at 0
						return
					}
				}
			})
			for _, n := range names {
				check(step, n)
			}
		}
	}
	if merged[0] < 100 || merged[1] < 100 {
		t.Fatalf("the sets' arrays held %d and %d names at most: the test does not reach them", merged[0], merged[1])
	}
}
