package authkeys

import "slices"

// hashSet is a set of 64-bit hashes that costs about 8 bytes a member
// when it is large: a sorted array, with the members added and removed
// since it was last merged kept in two small maps. A Go map of 100,000
// hashes cost 23 bytes each (its slots, at a load the map's growth
// leaves between half and seven eighths), for the names of a directory
// of single-key files (nameCounts.own); docs/design.md, "Memory of a
// loaded store". The zero value is empty.
type hashSet struct {
	sorted         []uint64 // ascending, without the members of removed
	added, removed map[uint64]struct{}
}

// has reports whether h is a member.
func (s *hashSet) has(h uint64) bool {
	if _, ok := s.added[h]; ok {
		return true
	}
	if _, ok := s.removed[h]; ok {
		return false
	}
	_, ok := slices.BinarySearch(s.sorted, h)
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
// eighth of its size (and some): each merge copies the array, so that a
// set grown from empty (a store's first load) is copied some 80 times at
// 100,000 members, a few milliseconds, while the maps stay small.
func (s *hashSet) merge() {
	if len(s.added)+len(s.removed) <= len(s.sorted)/8+64 {
		return
	}
	add := make([]uint64, 0, len(s.added))
	for h := range s.added {
		add = append(add, h)
	}
	slices.Sort(add)
	out := make([]uint64, 0, len(s.sorted)-len(s.removed)+len(add))
	for _, h := range s.sorted {
		if _, gone := s.removed[h]; gone {
			continue
		}
		for len(add) > 0 && add[0] < h {
			out, add = append(out, add[0]), add[1:]
		}
		out = append(out, h)
	}
	s.sorted, s.added, s.removed = append(out, add...), nil, nil
}
