package keydir

import (
	"hash/maphash"
	"math/bits"
	"runtime"
	"sort"
)

// rowsByName finds a source's rows by name in a table of its own, where
// lookupRow searches the sorted list: a search's twenty steps at a
// million rows each read a name from a random place in the numbers'
// pages, some 3 µs a lookup, and an index rebuild looks up every file's
// stamp (stampsOf), in the order of a listing: 3.3 s of CPU at a million
// files, a third of the write (docs/benchmarks.md, "The index written").
// The table holds a row's position in the list, 4 bytes in a table at
// most half full (8 to 16 bytes a row while it lives); a lookup reads
// one row's name, two when two names share a slot's run.
type rowsByName[T any] struct {
	files  rowList[T]
	ns     *numbers[T]
	nameAt int
	seed   maphash.Seed
	slots  []uint32 // a row's position in files, plus one; 0: empty
	starts []int    // the position of each chunk's first row
}

// newRowsByName makes the table of the rows of files, a source's list
// whose names begin at nameAt, its files numbered by ns.
func newRowsByName[T any](files rowList[T], ns *numbers[T], nameAt int) *rowsByName[T] {
	t := &rowsByName[T]{files: files, ns: ns, nameAt: nameAt, seed: maphash.MakeSeed()}
	t.slots = make([]uint32, max(2, 1<<bits.Len(uint(2*files.n))))
	t.starts = make([]int, len(files.chunks))
	pos := 0
	for ci, ch := range files.chunks {
		t.starts[ci] = pos
		for k := range ch.n {
			r := rowAt(files, at{ci, k})
			if r.num == 0 {
				t.put(r.rare.path[nameAt:], uint32(pos+1))
			} else {
				name, page := ns.nameView(r.num)
				t.put(name, uint32(pos+1))
				runtime.KeepAlive(page)
			}
			pos++
		}
	}
	return t
}

func (t *rowsByName[T]) put(name string, v uint32) {
	mask := uint64(len(t.slots) - 1)
	for k := maphash.String(t.seed, name) & mask; ; k = (k + 1) & mask {
		if t.slots[k] == 0 {
			t.slots[k] = v
			return
		}
	}
}

// lookup returns a copy of the row named name, nil if there is none: as
// lookupRow.
func (t *rowsByName[T]) lookup(name string) *fileRow[T] {
	mask := uint64(len(t.slots) - 1)
	for k := maphash.String(t.seed, name) & mask; t.slots[k] != 0; k = (k + 1) & mask {
		pos := int(t.slots[k] - 1)
		ci := sort.Search(len(t.starts), func(c int) bool { return t.starts[c] > pos }) - 1
		r := rowAt(t.files, at{ci, pos - t.starts[ci]})
		if r.compareName(t.ns, t.nameAt, name) == 0 {
			return &r
		}
	}
	return nil
}
