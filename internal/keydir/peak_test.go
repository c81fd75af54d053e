package keydir

import (
	"fmt"
	"testing"
)

// TestNumbersPageMadeWhole: a page of numbers past the first is made
// whole, its heap and mapped parts pageLen long from its first number,
// and keeps its mapped part while its numbers are given, where it grew
// from 8 by doubling and left each smaller mapped part mapped until the
// collector ran its cleanup — at the end of a cold load, where its peak
// is (docs/design.md, "Memory of a loaded store", step 6). The first page
// still starts at 8, so that a store of a few files keeps a small one.
func TestNumbersPageMadeWhole(t *testing.T) {
	src := &fileSource{prefix: "/d/", index: 0, dir: true}
	ns := leanNumbers[[32]byte]([]*fileSource{src})
	if ns.lean == nil {
		t.Fatal("[32]byte is pointer-free: its numbers should keep a file of one item without a File")
	}
	give := func(i int) uint32 {
		return ns.add(parsed[[32]byte]{name: packName(fmt.Sprintf("k%05d.json", i)), one: oneItem[[32]byte]{item: [32]byte{byte(i)}, src: 1}})
	}
	give(0)
	if len(ns.pages[0]) != 8 || ns.ones[0].Len() != 8 {
		t.Fatalf("the first page after one number: %d places, %d mapped, want 8 and 8", len(ns.pages[0]), ns.ones[0].Len())
	}
	for i := 1; i <= pageLen; i++ {
		give(i)
	}
	if len(ns.pages) != 2 || len(ns.pages[1]) != pageLen || ns.ones[1].Len() != pageLen {
		t.Fatalf("after %d numbers the second page has %d places, %d mapped, want %d and %d", pageLen+1, len(ns.pages[1]), ns.ones[1].Len(), pageLen, pageLen)
	}
	ones := ns.ones[1]
	for i := pageLen + 1; i < 2*pageLen; i++ {
		give(i)
	}
	if ns.ones[1] != ones {
		t.Fatal("the second page's mapped part was replaced while its numbers were given: made whole, it never needs to grow")
	}
	for _, num := range []uint32{1, pageLen + 1, 2 * pageLen} {
		if it := ns.item(num); it[0] != byte(num-1) {
			t.Errorf("number %d holds item %d, want %d", num, it[0], byte(num-1))
		}
	}
}
