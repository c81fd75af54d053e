package authkeys

import (
	"encoding/binary"
	"math/bits"
	"slices"
)

// index maps SPKI hashes to items: an open-addressing table with linear
// probing, at most half full. An SPKI hash is already a uniformly
// distributed SHA-256 output, so its first eight bytes are the slot: no
// hashing, no allocation, and the same few instructions at one key or at a
// million (a Go map hashes the 32-byte key again and walks a directory of
// tables that grows with the map). Only admins choose which keys are in
// the table, so nobody can crowd a slot on purpose.
//
// A published index is never written again: a reload that changes a few
// files clones the table (a memory copy, far cheaper than re-inserting
// every key) and edits the clone.
type index struct {
	slots []*item
	mask  uint64
	n     int
}

func newIndex(n int) index {
	size := uint64(8)
	if n > 2 {
		size = max(size, 1<<bits.Len64(uint64(2*n-1)))
	}
	return index{slots: make([]*item, size), mask: size - 1}
}

func (x *index) clone() index {
	return index{slots: slices.Clone(x.slots), mask: x.mask, n: x.n}
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

// insert adds e unless its key is already present; it reports whether it
// did. The table must have been sized for every insert.
func (x *index) insert(e *item) bool {
	i := slotOf(&e.sum, x.mask)
	for {
		s := x.slots[i]
		if s == nil {
			x.slots[i] = e
			x.n++
			return true
		}
		if s.sum == e.sum {
			return false
		}
		i = (i + 1) & x.mask
	}
}

// remove deletes e itself (not another entry with its key) and reports
// whether it was there. The entries after it in its probe run move back,
// so that no lookup ever needs a tombstone (Knuth's algorithm R).
func (x *index) remove(e *item) bool {
	i := slotOf(&e.sum, x.mask)
	for x.slots[i] != e {
		if x.slots[i] == nil {
			return false
		}
		i = (i + 1) & x.mask
	}
	for j := i; ; {
		j = (j + 1) & x.mask
		s := x.slots[j]
		if s == nil {
			break
		}
		// s may fill the hole at i only if its home slot is not
		// cyclically within (i, j]: otherwise a lookup for it would stop
		// at the hole.
		h := slotOf(&s.sum, x.mask)
		if (j-h)&x.mask >= (j-i)&x.mask {
			x.slots[i] = s
			i = j
		}
	}
	x.slots[i] = nil
	x.n--
	return true
}

// get returns the entry for sum, or nil.
func (x *index) get(sum *[32]byte) *item {
	if x.n == 0 {
		return nil
	}
	i := slotOf(sum, x.mask)
	for {
		s := x.slots[i]
		if s == nil || s.sum == *sum {
			return s
		}
		i = (i + 1) & x.mask
	}
}
