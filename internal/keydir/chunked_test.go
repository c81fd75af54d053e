package keydir

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// byKey orders a list of ints held in the D parts by the key k (chunked.search).
func byKey(k int) func(*int, int) int { return func(_ *int, d int) int { return cmp.Compare(d, k) } }

// marked is an element of the tests' lists whose H parts are marks: D
// its key, H its mark (0 for most).
type marked struct{ mark, key int }

// flatMarked returns the elements of c.
func flatMarked(c chunked[int, int]) []marked {
	var out []marked
	for h, d := range c.all {
		out = append(out, marked{h, d})
	}
	return out
}

// editAlike makes one edit to ed and the same to ref, sorted by key: the
// element of key k removed if there is one and remove says so, else
// given mark, or inserted with it. It returns ref and where the element
// was or went.
func editAlike(ed *editor[int, int], ref []marked, k, mark int, remove func() bool) ([]marked, at) {
	p, found := ed.c.search(byKey(k))
	i, _ := slices.BinarySearchFunc(ref, k, func(e marked, k int) int { return cmp.Compare(e.key, k) })
	switch {
	case found && remove():
		ed.remove(p)
		return slices.Delete(ref, i, i+1), p
	case found:
		ed.set(p, mark, k)
		ref[i].mark = mark
		return ref, p
	}
	ed.insert(p, mark, k)
	return slices.Insert(ref, i, marked{mark, k}), p
}

// TestChunked edits a sorted list by random inserts, removals and
// replacements, several per version as a reload makes them, and checks
// after each version that it holds what a plain slice edited alike holds,
// that every earlier version is unchanged (snapshots still being read
// share its chunks), and that its chunks stay within bounds. An element's
// D part (outside the heap) is its H part plus one and must move with it.
func TestChunked(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	byInt := func(k int) func(*int, int) int {
		return func(e *int, d int) int {
			if d != *e+1 {
				t.Fatalf("search gave %d the D part %d", *e, d)
			}
			return cmp.Compare(*e, k)
		}
	}
	var ref []int
	const n = chunkLen + chunkLen/2 // two chunks to start with
	for i := range n {
		ref = append(ref, 2*i)
	}
	c := chunksOf(len(ref), func(i int) (int, int) { return ref[i], ref[i] + 1 })
	type version struct {
		c    chunked[int, int]
		want []int
	}
	var versions []version
	for step := range 400 {
		versions = append(versions, version{c, slices.Clone(ref)})
		ed := c.edit()
		for range 1 + rng.IntN(20) {
			k := rng.IntN(n * 8 / 3)
			p, found := ed.c.search(byInt(k))
			i, inRef := slices.BinarySearch(ref, k)
			if found != inRef {
				t.Fatalf("step %d: search %d: found %v, want %v", step, k, found, inRef)
			}
			switch {
			case found && rng.IntN(2) == 0:
				ed.remove(p)
				ref = slices.Delete(ref, i, i+1)
			case found:
				ed.set(p, k, k+1) // the same key: the position must hold
				ref[i] = k
			default:
				ed.insert(p, k, k+1)
				ref = slices.Insert(ref, i, k)
			}
		}
		c = ed.done()
		if !holds(c, ref) || c.n != len(ref) {
			t.Fatalf("step %d: %d elements, want %d (equal: %v)", step, c.n, len(ref), holds(c, ref))
		}
		for _, ch := range c.chunks {
			if ch.len() == 0 || ch.len() > chunkLen || ch.d.Len() < ch.len() {
				t.Fatalf("step %d: a chunk of %d (room %d)", step, ch.len(), ch.d.Len())
			}
		}
	}
	for i, v := range versions {
		if !holds(v.c, v.want) {
			t.Fatalf("version %d changed after later edits", i)
		}
	}
	// Emptied, and filled again from nothing.
	ed := c.edit()
	for c.n > 0 {
		p, _ := ed.c.search(byInt(-1))
		ed.remove(p)
		c = ed.c
	}
	if c = ed.done(); c.n != 0 || len(c.chunks) != 0 {
		t.Fatalf("emptied: %d elements in %d chunks", c.n, len(c.chunks))
	}
	ed = c.edit()
	for k := range 3 {
		p, _ := ed.c.search(byInt(k))
		ed.insert(p, k, k+1)
	}
	if got := ed.done(); !holds(got, []int{0, 1, 2}) {
		h, d := got.flat()
		t.Fatalf("refilled: %v %v", h, d)
	}
}

// holds reports whether c's H parts are want and each D part its H + 1.
func holds(c chunked[int, int], want []int) bool {
	h, d := c.flat()
	for i := range d {
		d[i]--
	}
	return slices.Equal(h, want) && slices.Equal(d, want)
}

// TestEditedSnapshot changes a few files at a time in a directory of
// files — new files, removed ones, rewritten ones, broken ones and fixed
// ones — reloading the changed names, as events do. After each reload the snapshot, which the loader
// assembled by editing the previous one when it could, must equal one
// assembled whole from the same states, and a fresh load of the
// sources; Diff must agree with comparing the lists whole; and the
// previous snapshot must be unchanged. A single-file source beside the
// directory changes the same ways, and its changes edit the snapshot
// too (Loader.examineFile).
func TestEditedSnapshot(t *testing.T) {
	home := t.TempDir()
	dir, single := filepath.Join(home, "authorized_keys.d"), filepath.Join(home, "authorized_keys")
	name := func(i int) string { return fmt.Sprintf("k%04d.json", i) }
	for i := 0; i < 1400; i += 2 {
		keydirtest.Write(t, filepath.Join(dir, name(i)), keydirtest.JWK(t, key(t, i)))
	}
	srcs := []Source{{Path: dir, Dir: true}, {Path: single}}
	l := newLoader(srcs...)
	l.Reload()
	rng := rand.New(rand.NewPCG(8, 9))
	edited, editedSingle := 0, 0
	for step := range 150 {
		prev := l.Snapshot()
		prevFiles := slices.Clone(prev.Files())
		var paths []string
		touchedSingle := false
		for range 1 + rng.IntN(4) {
			i := rng.IntN(1600)
			path := filepath.Join(dir, name(i))
			if i >= 1500 {
				if touchedSingle {
					continue // one change of it a reload, as one event
				}
				path, touchedSingle = single, true
			}
			paths = append(paths, path)
			switch rng.IntN(5) {
			case 0:
				os.Remove(path)
			case 1:
				keydirtest.Replace(t, path, []byte("{not json"))
			default:
				keydirtest.Replace(t, path, keydirtest.JWK(t, key(t, 10_000+rng.IntN(3000))))
			}
		}
		next := l.Reload(paths...)
		if next.diffed {
			edited++
			if touchedSingle && next.Generation != prev.Generation {
				editedSingle++
			}
		}
		whole := l.wholeSnapshot()
		whole.numbers = next.numbers // as publish gives them: the same rows, numbered alike
		fresh := Load(Config[string]{Sources: srcs, Convert: fpConvert})
		for _, other := range []*Snapshot[string]{whole, fresh} {
			if !sameSnapshot(next, other) {
				t.Fatalf("step %d: the snapshot differs from one assembled whole", step)
			}
		}
		gone, came := Diff(prev, next)
		wantGone, wantCame := DiffFiles(prev.Files(), next.Files())
		if !slices.Equal(gone, wantGone) || !slices.Equal(came, wantCame) {
			t.Fatalf("step %d: Diff gave %d gone, %d came; comparing whole, %d and %d", step, len(gone), len(came), len(wantGone), len(wantCame))
		}
		if !slices.Equal(prev.Files(), prevFiles) {
			t.Fatalf("step %d: the previous snapshot changed", step)
		}
	}
	if edited < 30 || editedSingle < 5 {
		t.Fatalf("only %d of 150 reloads edited the previous snapshot, %d of them changing the single file", edited, editedSingle)
	}
}

// sameSnapshot reports whether two snapshots hold the same files with
// the same keys, and the same problems.
func sameSnapshot(a, b *Snapshot[string]) bool {
	fa, fb := a.Files(), b.Files()
	if len(fa) != len(fb) || len(a.Problems) != len(b.Problems) || (a.RevocationErr == nil) != (b.RevocationErr == nil) {
		return false
	}
	for i := range fa {
		if fa[i].Path() != fb[i].Path() || fa[i].Source() != fb[i].Source() || !slices.Equal(fa[i].Items(), fb[i].Items()) {
			return false
		}
	}
	for i := range a.Problems {
		if a.Problems[i].Error() != b.Problems[i].Error() {
			return false
		}
	}
	return true
}

// TestChunkedCompact edits a list whose H parts are mostly zero, as a
// directory's rows are (a row's only pointer is its rare part, which
// most files lack), compacting each version as a reload does: a chunk
// keeps its H parts exactly when one of them is not zero; writing a
// part that is not zero into a compact chunk gives it its H parts back
// (writing zero parts leaves it compact); the versions before are
// unchanged; and putting a non-zero H part in place into a compact chunk
// (which fold never does) panics rather than write nowhere.
func TestChunkedCompact(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	// Marks: 0 for most, else key+1.
	// Six chunks' worth, marks in every other chunk only: chunks with H
	// parts and chunks without, before and after the edits.
	n := 6 * chunkLen
	var ref []marked
	for i := range n {
		mark := 0
		if i%(2*chunkLen) == 0 {
			mark = 2*i + 1
		}
		ref = append(ref, marked{mark, 2 * i})
	}
	same := func(c chunked[int, int], want []marked) bool { return slices.Equal(flatMarked(c), want) }
	c := chunksOf(len(ref), func(i int) (int, int) { return ref[i].mark, ref[i].key })
	type version struct {
		c    chunked[int, int]
		want []marked
	}
	var versions []version
	for step := range 300 {
		versions = append(versions, version{c, slices.Clone(ref)})
		ed := c.edit()
		for range 1 + rng.IntN(10) {
			k := rng.IntN(2*n + 1000)
			mark := 0
			if rng.IntN(4) == 0 {
				mark = k + 1
			}
			ref, _ = editAlike(ed, ref, k, mark, func() bool { return rng.IntN(2) == 0 })
		}
		c = ed.done()
		c.compact()
		if !same(c, ref) {
			t.Fatalf("step %d: the list is not what it should hold", step)
		}
		for ci, ch := range c.chunks {
			marked := false
			for k := range ch.len() {
				marked = marked || ch.head(k) != 0
			}
			if (ch.h != nil) != marked || ch.h != nil && len(ch.hs()) != ch.len() {
				t.Fatalf("step %d: chunk %d keeps H parts: %v (%d of %d), one not zero: %v", step, ci, ch.h != nil, len(ch.hs()), ch.len(), marked)
			}
		}
	}
	compacted := 0
	for i, v := range versions {
		if !same(v.c, v.want) {
			t.Fatalf("version %d changed after later edits", i)
		}
		for _, ch := range v.c.chunks {
			if ch.h == nil {
				compacted++
			}
		}
	}
	if compacted == 0 {
		t.Fatal("no chunk was compact: the test does not test compaction")
	}
	var ch chunk[int, int] // a compact chunk of the first version
	for _, x := range versions[0].c.chunks {
		if x.h == nil {
			ch = x
			break
		}
	}
	if ch.d == nil {
		t.Fatal("the first version has no compact chunk")
	}
	x := ch.data(0)
	ch.put(0, 0, x) // zero: allowed
	defer func() {
		if recover() == nil {
			t.Fatal("a non-zero H part put into a compact chunk did not panic")
		}
	}()
	ch.put(0, 1, x)
}

// TestEditKeepsCompactChunksCompact: an edit that writes only zero H
// parts (a row without a rare part, as most are) leaves a compact chunk
// without H parts, before any compact: no heap slice of H parts is made
// for it; the first part that is not zero gives its chunk H parts, all
// zero but that one, and no other chunk.
func TestEditKeepsCompactChunksCompact(t *testing.T) {
	// The first element of an empty list makes its first chunk: compact
	// where its H part is zero, with it where not.
	for _, h := range []int{0, 7} {
		var empty chunked[int, int]
		ed := empty.edit()
		p, _ := ed.c.search(byKey(4))
		ed.insert(p, h, 4)
		first := ed.done()
		if len(first.chunks) != 1 || first.n != 1 || (first.chunks[0].h == nil) != (h == 0) {
			t.Fatalf("a first element with H part %d: %d chunks, %d elements, H parts kept: %v", h, len(first.chunks), first.n, first.chunks[0].h != nil)
		}
		if got := first.chunks[0].head(0); got != h || first.chunks[0].data(0) != 4 {
			t.Fatalf("a first element with H part %d reads back as %d, %d", h, got, first.chunks[0].data(0))
		}
	}
	// ... and a compact one makes no slice of H parts to drop.
	firstInsert := func(h int) float64 {
		return testing.AllocsPerRun(20, func() {
			var empty chunked[int, int]
			ed := empty.edit()
			ed.insert(at{}, h, 4)
		})
	}
	if zero, marked := firstInsert(0), firstInsert(7); zero >= marked {
		t.Fatalf("a first element with a zero H part allocates %v times, one with H part 7 %v: no fewer", zero, marked)
	}
	n := 3 * chunkLen
	c := chunksOf(n, func(i int) (int, int) { return 0, 2 * i })
	ed := c.edit()
	for _, k := range []int{2 * 5, 2 * chunkLen, 2*n - 2} { // one of each chunk rewritten
		p, found := ed.c.search(byKey(k))
		if !found {
			t.Fatalf("key %d not found", k)
		}
		ed.set(p, 0, k)
	}
	for _, k := range []int{3, 2*chunkLen + 1} { // into the first two: both full, they split
		p, _ := ed.c.search(byKey(k))
		ed.insert(p, 0, k)
	}
	p, _ := ed.c.search(byKey(2 * (2*chunkLen + 7))) // removed from the last
	ed.remove(p)
	for ci := 2; ci < chunkLen; ci++ { // into the first chunk's halves
		p, _ := ed.c.search(byKey(2*ci + 1))
		ed.insert(p, 0, 2*ci+1)
	}
	got := ed.done()
	for ci, ch := range got.chunks {
		if ch.h != nil {
			t.Fatalf("chunk %d of %d has H parts after edits of zero H parts only", ci, len(got.chunks))
		}
	}
	if want := n + 2 - 1 + chunkLen - 2; got.n != want || len(got.chunks) != 5 {
		t.Fatalf("%d elements in %d chunks, want %d in 5 (the first two split)", got.n, len(got.chunks), want)
	}
	prev := -1
	for h, d := range got.all {
		if h != 0 || d <= prev {
			t.Fatalf("element %d after %d (H part %d): not in order", d, prev, h)
		}
		prev = d
	}
	ed = got.edit()
	p, _ = ed.c.search(byKey(2 * (chunkLen + 9)))
	ed.set(p, 42, 2*(chunkLen+9))
	marked := ed.done()
	withHeads := 0
	for _, ch := range marked.chunks {
		if ch.h != nil {
			withHeads++
		}
	}
	if withHeads != 1 {
		t.Fatalf("%d chunks with H parts after one part that is not zero, want 1", withHeads)
	}
	if _, d := marked.get(p); d != 2*(chunkLen+9) {
		t.Fatalf("the element set reads %d", d)
	}
	if h, _ := marked.get(p); h != 42 {
		t.Fatalf("the element set has H part %d, want 42", h)
	}
	for _, ch := range got.chunks {
		if ch.h != nil {
			t.Fatal("the version before the edit has H parts now")
		}
	}
}

// TestBuilder: a list made element by element (builder, scanDir's) holds
// what chunksOf makes of the same elements — every element in order, at
// the position add gave it, chunks of at most chunkLen, compact where
// their H parts are all zero — after writes in place (put) into chunks
// closed and still open; and chunks are sized to the elements that can
// still come, so that a listing of three files keeps no chunk of room
// for chunkLen. Fewer elements than the bound (a listing's directories
// and ignored names) leave the last chunk with room to spare, no more.
func TestBuilder(t *testing.T) {
	for _, c := range []struct{ n, max int }{{0, 0}, {3, 3}, {3, 10}, {chunkLen, chunkLen}, {chunkLen + 1, chunkLen + 1}, {3*chunkLen - 5, 3 * chunkLen}, {2*chunkLen + 7, 3*chunkLen + 1}} {
		b := newBuilder[int, int](c.max)
		var ref []marked
		var pos []at
		for i := range c.n {
			mark := 0
			if i%chunkLen < 2 { // some chunks keep H parts, for now
				mark = i + 1
			}
			ref = append(ref, marked{mark, i})
			pos = append(pos, b.add(mark, i))
			if i >= 1 && i%1000 == 1 { // the element before, in a chunk open or closed: its mark cleared
				ref[i-1].mark = 0
				b.put(pos[i-1], 0, i-1)
			}
		}
		for i := range c.n {
			if i%chunkLen == 1 && ref[i].mark != 0 { // into closed chunks too: each chunk's second element
				ref[i].mark = 0
				b.put(pos[i], 0, i)
			}
		}
		got := b.done()
		if w := chunksOf(len(ref), func(i int) (int, int) { return ref[i].mark, ref[i].key }); !slices.Equal(flatMarked(got), flatMarked(w)) || got.n != c.n {
			t.Fatalf("n=%d max=%d: the builder's list differs from chunksOf's (%d elements)", c.n, c.max, got.n)
		}
		for i, p := range pos {
			if h, d := got.get(p); d != i || h != ref[i].mark {
				t.Fatalf("n=%d max=%d: element %d at %v is (%d, %d)", c.n, c.max, i, p, h, d)
			}
		}
		for ci, ch := range got.chunks {
			if ch.n == 0 || ch.n > chunkLen || ch.d.Len() > chunkLen || ch.d.Len() > ch.n+c.max-c.n {
				t.Fatalf("n=%d max=%d: chunk %d holds %d with room for %d", c.n, c.max, ci, ch.n, ch.d.Len())
			}
			allZero := !slices.ContainsFunc(ref[ci*chunkLen:ci*chunkLen+ch.n], func(m marked) bool { return m.mark != 0 })
			if allZero != (ch.h == nil) {
				t.Fatalf("n=%d max=%d: chunk %d compact %v, its H parts all zero %v", c.n, c.max, ci, ch.h == nil, allZero)
			}
		}
	}
}
