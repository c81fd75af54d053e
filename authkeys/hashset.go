package authkeys

import (
	"runtime"
	"slices"

	"github.com/keytool/keytool/internal/offheap"
)

// hashSet is a set of 64-bit hashes that costs about 8 bytes a member
// when it is large: a sorted array, with the members added and removed
// since it was last merged kept in two small maps. A Go map of 100,000
// hashes cost 23 bytes each (its slots, at a load the map's growth
// leaves between half and seven eighths), for the names of a directory
// of single-key files (nameCounts.own); docs/design.md, "Memory of a
// loaded store". A large array is mapped outside the Go heap
// (internal/offheap): resident once, not twice. The zero value is empty.
type hashSet struct {
	mem            *offheap.Array[uint64] // its first n members ascending, without those of removed; nil: none
	n              int
	added, removed map[uint64]struct{}
}

// sorted returns the sorted members, valid while s.mem is: each caller
// keeps s.mem alive past its last use (runtime.KeepAlive), as offheap
// asks.
func (s *hashSet) sorted() []uint64 {
	if s.mem == nil {
		return nil
	}
	return s.mem.View()[:s.n]
}

// sortedHashSet returns the set of the members of sorted, which must be
// ascending and distinct, with no room to grow (as seal leaves a set).
func sortedHashSet(sorted []uint64) hashSet {
	if len(sorted) == 0 {
		return hashSet{}
	}
	mem := offheap.New[uint64](len(sorted))
	copy(mem.View(), sorted)
	return hashSet{mem: mem, n: len(sorted)}
}

// has reports whether h is a member.
func (s *hashSet) has(h uint64) bool {
	if _, ok := s.added[h]; ok {
		return true
	}
	if _, ok := s.removed[h]; ok {
		return false
	}
	_, ok := slices.BinarySearch(s.sorted(), h)
	runtime.KeepAlive(s.mem)
	return ok
}

// add makes h a member.
func (s *hashSet) add(h uint64) {
	if _, ok := s.removed[h]; ok {
		delete(s.removed, h) // back in sorted
		return
	}
	if s.has(h) {
		return
	}
	if s.added == nil {
		s.added = map[uint64]struct{}{}
	}
	s.added[h] = struct{}{}
	s.merge()
}

// remove makes h no member.
func (s *hashSet) remove(h uint64) {
	if _, ok := s.added[h]; ok {
		delete(s.added, h)
		return
	}
	if !s.has(h) {
		return
	}
	if s.removed == nil {
		s.removed = map[uint64]struct{}{}
	}
	s.removed[h] = struct{}{}
	s.merge()
}

// merge folds the maps into the sorted array once they hold more than an
// eighth of its size (and some), in place: the array grows by half when
// it must, and the maps are cleared, not dropped, so that a set grown
// from empty (a store's first load, some 60 merges at 100,000 members)
// leaves little garbage — a new array and a new map at each merge made
// 11 MB of it at 100,000 members, which raised the load's peak. A
// rebuild makes its sets whole (sortedHashSet), with no room to spare.
func (s *hashSet) merge() {
	if len(s.added)+len(s.removed) > s.n/8+64 {
		s.fold()
	}
}

// fold puts the members of the maps into the sorted array (merge).
func (s *hashSet) fold() {
	sorted := s.sorted()
	if len(s.removed) > 0 {
		kept := sorted[:0]
		for _, h := range sorted {
			if _, gone := s.removed[h]; !gone {
				kept = append(kept, h)
			}
		}
		sorted = kept
	}
	add := make([]uint64, 0, len(s.added))
	for h := range s.added {
		add = append(add, h)
	}
	slices.Sort(add)
	n := len(sorted) + len(add)
	if s.mem == nil || n > s.mem.Len() {
		mem := offheap.New[uint64](n + n/2)
		sorted = mem.View()[:copy(mem.View(), sorted)]
		runtime.KeepAlive(s.mem)
		s.mem = mem
	}
	// From the back, so that nothing is overwritten before it is read.
	i, j := len(sorted)-1, len(add)-1
	sorted = sorted[:n]
	for k := n - 1; j >= 0; k-- {
		if i >= 0 && sorted[i] > add[j] {
			sorted[k], i = sorted[i], i-1
		} else {
			sorted[k], j = add[j], j-1
		}
	}
	s.n = n
	runtime.KeepAlive(s.mem)
	clear(s.added)
	clear(s.removed)
}
