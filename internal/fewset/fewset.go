// Package fewset is a set that keeps its members in order, in a list,
// and looks them up in that list while it holds at most Max of them, in
// a map past that. Most sets made for one file or one entry hold one or
// two things (a file's keys, a pin's addresses), for which a map costs
// more to make than a search of the list; a few hold thousands (a JWK
// Set's keys, a pin of 20,000 addresses), for which a search for each
// would be quadratic.
package fewset

import "slices"

// Max is how many members a Set looks up in its list before it makes
// its map.
const Max = 16

// Set is a set of T. Its zero value is empty; New reuses a list's memory.
type Set[T comparable] struct {
	list  []T
	index map[T]struct{} // past Max members
}

// New returns an empty Set that appends its members to buf[:0].
func New[T comparable](buf []T) Set[T] { return Set[T]{list: buf[:0]} }

// Add adds x, and reports whether it was not there yet.
func (s *Set[T]) Add(x T) bool {
	switch {
	case s.index != nil:
		if _, ok := s.index[x]; ok {
			return false
		}
		s.index[x] = struct{}{}
	case slices.Contains(s.list, x):
		return false
	case len(s.list) == Max:
		s.index = make(map[T]struct{}, 2*Max)
		for _, y := range s.list {
			s.index[y] = struct{}{}
		}
		s.index[x] = struct{}{}
	}
	s.list = append(s.list, x)
	return true
}

// Members are the members of s, in the order they were added.
func (s *Set[T]) Members() []T { return s.list }
