package keydir

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestChunkedVersionsShareNoHParts edits a list as reloads do, many
// edits a version clustered in a few chunks (so that an editor grows the
// chunk it copied, again and again, and splits it), H parts zero for most
// elements and not for some, compacting each version, and checks that
// every version before is unchanged: its chunks share their H parts
// (chunk.h, behind a pointer) with the versions after only where neither
// writes them. Where same says two versions are one list, they hold the
// same elements.
func TestChunkedVersionsShareNoHParts(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	var ref []marked
	for i := range 50 {
		ref = append(ref, marked{0, 1000 * i})
	}
	c := chunksOf(len(ref), func(i int) (int, int) { return ref[i].mark, ref[i].key })
	type version struct {
		c    chunked[int, int]
		want []marked
	}
	var versions []version
	grown := 0
	for step := range 250 {
		versions = append(versions, version{c, slices.Clone(ref)})
		ed := c.edit()
		if rng.IntN(5) > 0 { // else: no edit, a version the same as the last
			around := rng.IntN(50_000)
			for range 1 + rng.IntN(200) {
				k := around + rng.IntN(3000) - 1500
				mark := 0
				if rng.IntN(3) == 0 {
					mark = k + 1_000_000
				}
				room := 0 // of the chunk an insert goes in
				if p, found := ed.c.search(byKey(k)); !found && len(ed.c.chunks) > 0 {
					room = ed.c.chunks[p.ci].d.Len()
				}
				var p at
				ref, p = editAlike(ed, ref, k, mark, func() bool { return rng.IntN(3) == 0 })
				if room > 0 && p.ci < len(ed.c.chunks) && ed.c.chunks[p.ci].d.Len() > room {
					grown++
				}
			}
		}
		c = ed.done()
		c.compact()
		if got := flatMarked(c); !slices.Equal(got, ref) {
			t.Fatalf("step %d: the list holds %d elements, not the %d it should", step, len(got), len(ref))
		}
		for i := max(0, len(versions)-4); i < len(versions); i++ {
			v := versions[i]
			if got := flatMarked(v.c); !slices.Equal(got, v.want) {
				t.Fatalf("step %d: version %d changed", step, i)
			}
			if v.c.same(c) && !slices.Equal(v.want, ref) {
				t.Fatalf("step %d: version %d is the same list by same, with other elements", step, i)
			}
		}
	}
	for i, v := range versions {
		if got := flatMarked(v.c); !slices.Equal(got, v.want) {
			t.Fatalf("version %d changed after later edits", i)
		}
	}
	if grown == 0 || len(c.chunks) < 3 {
		t.Fatalf("%d chunks, %d grown in place of one copied: the test does not reach them", len(c.chunks), grown)
	}
}

// TestChunkedSplitSharesNoHParts: an edit whose first write is an insert
// into a full chunk of the version before splits it, and the halves are
// the editor's, H parts too: writing them (set, insert, remove) leaves
// the version before as it was.
func TestChunkedSplitSharesNoHParts(t *testing.T) {
	n := 2 * chunkLen
	c := chunksOf(n, func(i int) (int, int) { return 2*i + 1, 2 * i })
	want, _ := c.flat()
	ed := c.edit()
	for _, k := range []int{1, 2*n - 3} { // into each full chunk: both split
		p, _ := ed.c.search(byKey(k))
		ed.insert(p, -k, k)
	}
	for i := 0; i < n; i += 97 { // every half written
		p, found := ed.c.search(byKey(2 * i))
		if !found {
			t.Fatalf("key %d not found", 2*i)
		}
		if i%3 == 0 {
			ed.remove(p)
		} else {
			ed.set(p, -i, 2*i)
		}
	}
	if got := ed.done(); len(got.chunks) != 4 {
		t.Fatalf("%d chunks, want the two split in four", len(got.chunks))
	}
	if got, _ := c.flat(); !slices.Equal(got, want) {
		t.Fatal("the version before the edit changed")
	}
}
