package keydir

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// sortByName orders a listing as one sort of the whole would, at every
// length around the one from which it sorts two halves at once and
// merges them, and keeps each name with its type.
func TestSortByName(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, parallelSort - 1, parallelSort, parallelSort + 1, 3*parallelSort + 7} {
		list := make([]dirEntry, n)
		for i := range list {
			// Names that share long prefixes and differ in length and in
			// bytes above 0x7f, as a directory's may.
			name := fmt.Sprintf("k%0*d", rng.IntN(8)+1, rng.IntN(n+1)) + strings.Repeat("\xe9", rng.IntN(3)) + fmt.Sprint(i)
			list[i] = dirEntry{name: name, typ: typeOf(name)}
		}
		want := slices.Clone(list)
		slices.SortFunc(want, func(a, b dirEntry) int { return strings.Compare(a.name, b.name) })
		got := sortByName(list)
		if !slices.Equal(got, want) {
			t.Fatalf("%d names: not in order", n)
		}
		for _, e := range got {
			if e.typ != typeOf(e.name) {
				t.Fatalf("%d names: %q lost its type", n, e.name)
			}
		}
	}
}

// typeOf gives each name of TestSortByName a type of its own to keep.
func typeOf(name string) fs.FileMode {
	if len(name)%2 == 0 {
		return fs.ModeSymlink
	}
	return 0
}
