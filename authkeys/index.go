package authkeys

import (
	"encoding/binary"
	"math/bits"
)

// index maps SPKI hashes to entries: an open-addressing table with linear
// probing, at most half full. An SPKI hash is already a uniformly
// distributed SHA-256 output, so its first eight bytes are the slot: no
// hashing, no allocation, and the same few instructions at one key or at a
// million (a Go map hashes the 32-byte key again and walks a directory of
// tables that grows with the map). Only admins choose which keys are in
// the table, so nobody can crowd a slot on purpose.
type index struct {
	slots []*Entry
	mask  uint64
	n     int
}

func newIndex(n int) index {
	size := uint64(8)
	if n > 2 {
		size = max(size, 1<<bits.Len64(uint64(2*n-1)))
	}
	return index{slots: make([]*Entry, size), mask: size - 1}
}

// insert adds e unless its key is already present; it reports whether it
// did. The table must have been sized for every insert.
func (x *index) insert(e *Entry) bool {
	i := binary.LittleEndian.Uint64(e.SPKIHash[:8]) & x.mask
	for {
		s := x.slots[i]
		if s == nil {
			x.slots[i] = e
			x.n++
			return true
		}
		if s.SPKIHash == e.SPKIHash {
			return false
		}
		i = (i + 1) & x.mask
	}
}

// get returns the entry for sum, or nil.
func (x *index) get(sum *[32]byte) *Entry {
	if x.n == 0 {
		return nil
	}
	i := binary.LittleEndian.Uint64(sum[:8]) & x.mask
	for {
		s := x.slots[i]
		if s == nil || s.SPKIHash == *sum {
			return s
		}
		i = (i + 1) & x.mask
	}
}
