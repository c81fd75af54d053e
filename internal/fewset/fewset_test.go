package fewset

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// A Set says each member new once and keeps them in the order added,
// below Max, at it and past it (where it looks them up in its map), as
// a search of the list would; New reuses the list it is given.
func TestSetAsAList(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, Max - 1, Max, Max + 1, 10 * Max} {
		var want []int
		s := New(make([]int, 3))
		for range 4 * n {
			x := rng.IntN(n + 1)
			if added := s.Add(x); added == slices.Contains(want, x) {
				t.Fatalf("n=%d: Add(%d) = %v with %v there", n, x, added, want)
			} else if added {
				want = append(want, x)
			}
		}
		if !slices.Equal(s.Members(), want) {
			t.Errorf("n=%d: members %v, want %v", n, s.Members(), want)
		}
	}
	var zero Set[string]
	if !zero.Add("a") || zero.Add("a") || !slices.Equal(zero.Members(), []string{"a"}) {
		t.Errorf("the zero Set: %v", zero.Members())
	}
}
