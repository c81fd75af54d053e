package authkeys

import (
	"encoding/binary"
	"math/bits"
	"slices"

	"github.com/keytool/keytool/internal/keydir"
)

// index maps SPKI hashes to items: an open-addressing table with linear
// probing, at most half full. An SPKI hash is already a uniformly
// distributed SHA-256 output, so its first eight bytes are the slot: no
// hashing, no allocation, and the same few instructions at one key or at a
// million (a Go map hashes the 32-byte key again and walks a directory of
// tables that grows with the map). Only admins choose which keys are in
// the table, so nobody can crowd a slot on purpose.
//
// A slot holds no pointer: it is a file's number in files and the item's
// position in that file's Items, so that the garbage collector, which
// reads every pointer of the heap at each collection, never reads the
// table (docs/design.md, "Memory of a loaded store"). files holds one
// pointer per file, not per key.
//
// A published index is never written again: a reload that changes a few
// files clones the table (a memory copy, far cheaper than re-inserting
// every key) and edits the clone.
type index struct {
	slots []ref
	files []*keydir.File[item] // by number; nil: a number free for reuse
	free  []uint32             // the free numbers of files
	mask  uint64
	n     int
}

// ref is an item of the index: 1 + its file's number (0: an empty slot),
// and its position in the file's Items.
type ref struct{ file, pos uint32 }

func newIndex(n int) index {
	size := uint64(8)
	if n > 2 {
		size = max(size, 1<<bits.Len64(uint64(2*n-1)))
	}
	return index{slots: make([]ref, size), mask: size - 1}
}

func (x *index) clone() index {
	return index{slots: slices.Clone(x.slots), files: slices.Clone(x.files), free: slices.Clone(x.free), mask: x.mask, n: x.n}
}

// oversized reports whether the table has more than 8 slots per entry
// (and is big enough for that to matter): after many removals, a rebuild
// gives a smaller table to copy on every reload.
func (x *index) oversized() bool { return len(x.slots) > 4096 && len(x.slots) > 8*x.n }

// roomFor reports whether k more entries keep the table at most half full.
func (x *index) roomFor(k int) bool { return 2*(x.n+k) <= len(x.slots) }

func slotOf(sum *[32]byte, mask uint64) uint64 {
	return binary.LittleEndian.Uint64(sum[:8]) & mask
}

// at returns the item and the file a full slot names.
func (x *index) at(r ref) (*item, *keydir.File[item]) {
	f := x.files[r.file-1]
	return &f.Items[r.pos], f
}

// addFile gives f a number and returns it (as a ref's file: 1 + it).
func (x *index) addFile(f *keydir.File[item]) uint32 {
	if k := len(x.free); k > 0 {
		num := x.free[k-1]
		x.free = x.free[:k-1]
		x.files[num] = f
		return num + 1
	}
	x.files = append(x.files, f)
	return uint32(len(x.files))
}

// insertFile adds the items of f whose keys are not present yet, calls
// dup with each one whose key is, and reports whether there was none. The
// table must have been sized for every insert.
func (x *index) insertFile(f *keydir.File[item], dup func(*item)) bool {
	if len(f.Items) == 0 {
		return true
	}
	num, added, all := x.addFile(f), false, true
	for pos := range f.Items {
		if x.insert(ref{num, uint32(pos)}) {
			added = true
			continue
		}
		all = false
		if dup != nil {
			dup(&f.Items[pos])
		}
	}
	if !added {
		x.files[num-1] = nil
		x.free = append(x.free, num-1)
	}
	return all
}

// insert adds r unless its key is already present; it reports whether it
// did.
func (x *index) insert(r ref) bool {
	it, _ := x.at(r)
	i := slotOf(&it.sum, x.mask)
	for {
		s := x.slots[i]
		if s.file == 0 {
			x.slots[i] = r
			x.n++
			return true
		}
		if o, _ := x.at(s); o.sum == it.sum {
			return false
		}
		i = (i + 1) & x.mask
	}
}

// removeFile deletes the items of f from the table and frees its number;
// it reports false if one of them was not there (its key is held by an
// entry of another file).
func (x *index) removeFile(f *keydir.File[item]) bool {
	var num uint32
	for pos := range f.Items {
		n, ok := x.remove(f, pos)
		if !ok {
			return false
		}
		num = n
	}
	if num != 0 {
		x.files[num-1] = nil
		x.free = append(x.free, num-1)
	}
	return true
}

// remove deletes the item at pos of f itself (not another entry with its
// key) and reports whether it was there, with f's number. The entries
// after it in its probe run move back, so that no lookup ever needs a
// tombstone (Knuth's algorithm R).
func (x *index) remove(f *keydir.File[item], pos int) (uint32, bool) {
	want := &f.Items[pos]
	i := slotOf(&want.sum, x.mask)
	for {
		s := x.slots[i]
		if s.file == 0 {
			return 0, false
		}
		if it, _ := x.at(s); it == want {
			break
		}
		i = (i + 1) & x.mask
	}
	num := x.slots[i].file
	for j := i; ; {
		j = (j + 1) & x.mask
		s := x.slots[j]
		if s.file == 0 {
			break
		}
		// s may fill the hole at i only if its home slot is not
		// cyclically within (i, j]: otherwise a lookup for it would stop
		// at the hole.
		it, _ := x.at(s)
		h := slotOf(&it.sum, x.mask)
		if (j-h)&x.mask >= (j-i)&x.mask {
			x.slots[i] = s
			i = j
		}
	}
	x.slots[i] = ref{}
	x.n--
	return num, true
}

// has reports whether it is the item the table holds for its key.
func (x *index) has(it *item) bool {
	got, _ := x.get(&it.sum)
	return got == it
}

// get returns the item for sum and its file, or nil.
func (x *index) get(sum *[32]byte) (*item, *keydir.File[item]) {
	if x.n == 0 {
		return nil, nil
	}
	i := slotOf(sum, x.mask)
	for {
		s := x.slots[i]
		if s.file == 0 {
			return nil, nil
		}
		if it, f := x.at(s); it.sum == *sum {
			return it, f
		}
		i = (i + 1) & x.mask
	}
}
