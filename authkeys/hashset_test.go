package authkeys

import (
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestHashSetIsASet checks hashSet against a map through adds and
// removes, repeated ones included, over enough members that the maps are
// merged into the sorted array many times (and made anew from its
// members, as a rebuild makes it: sortedHashSet), and back down to empty.
func TestHashSetIsASet(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var s hashSet
	want := map[uint64]bool{}
	check := func(step int, h uint64) {
		t.Helper()
		if got := s.has(h); got != want[h] {
			t.Fatalf("step %d: has(%d) = %v, want %v", step, h, got, want[h])
		}
	}
	// Members from a small range, so that adds and removes hit members
	// of the array, of the maps, and non-members alike.
	const span = 20_000
	for step := range 200_000 {
		h := rng.Uint64N(span)
		switch grow := step < 120_000; {
		case rng.IntN(3) > 0 == grow:
			s.add(h)
			want[h] = true
		default:
			s.remove(h)
			delete(want, h)
		}
		if step%40_000 == 39_999 { // as a rebuild makes it
			s = sortedHashSet(slices.Sorted(maps.Keys(want)))
			if s.mem != nil && s.mem.Len() != s.n {
				t.Fatalf("step %d: a set made whole keeps room: %d of %d", step, s.n, s.mem.Len())
			}
		}
		check(step, h)
		check(step, rng.Uint64N(span))
		if step == 119_999 && s.n < len(want)/2 {
			t.Fatalf("%d members, %d of them in the sorted array: the test does not merge", len(want), s.n)
		}
	}
	for h := range uint64(span) {
		check(-1, h)
		s.remove(h)
	}
	for h := range uint64(span) {
		if s.has(h) {
			t.Fatalf("%d is a member of an emptied set", h)
		}
	}
}
