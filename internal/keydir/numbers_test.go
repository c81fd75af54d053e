package keydir

import (
	"reflect"
	"testing"
	"unsafe"
)

// followNumbers checks, at each snapshot l publishes, the files' numbers
// (numbers) against the snapshot published before it: each file of the
// new one is numbered once, by a number FileAt gives back; a file of both
// keeps its number; the snapshot before still reads as it did (its
// numbers are never written again: a store's index built from it may
// still be read); and no number is both a file's that went and one's
// that came (DiffNumbered), which a store removing the one and inserting
// the other relies on. Across every snapshot the loader publishes, a
// number and its generation (GenAt) name one file, and a file keeps
// both: what keeps a number beyond a snapshot (a store's Entries) tells
// files apart so. The randomized tests of the loader call it, so that
// every path a reload takes is checked.
func followNumbers[T any](t *testing.T, l *Loader[T]) {
	type id struct{ num, gen uint32 }
	var (
		prev     *Snapshot[T]
		prevNums map[uint32]heldID
		prevGens map[uint32]uint32
		named    = map[id]heldID{} // every snapshot's, since the first
		idOf     = map[heldID]id{}
	)
	l.cfg.OnReload = func(next *Snapshot[T]) {
		nums, numOf, gens := map[uint32]heldID{}, map[heldID]uint32{}, map[uint32]uint32{}
		for num, f := range next.AllNumbered {
			h := heldAt(&next.numbers, num)
			if num == 0 || !readsAlike(next.FileAt(num), f) {
				t.Errorf("generation %d: %s numbered %d, which gives back %v", next.Generation, f.Path(), num, next.FileAt(num))
			}
			if _, dup := nums[num]; dup {
				t.Errorf("generation %d: %s and another file both numbered %d", next.Generation, f.Path(), num)
			}
			nums[num], numOf[h] = h, num
			is := id{num, next.GenAt(num)}
			gens[num] = is.gen
			if g, ok := named[is]; ok && g != h {
				t.Errorf("generation %d: %s numbered %d of generation %d, as another file was: the number was given again without its generation counted up", next.Generation, f.Path(), is.num, is.gen)
			}
			if was, ok := idOf[h]; ok && was != is {
				t.Errorf("generation %d: %s, unchanged, is number %d of generation %d where it was %d of %d", next.Generation, f.Path(), is.num, is.gen, was.num, was.gen)
			}
			named[is], idOf[h] = h, is
		}
		if prev != nil {
			for num, h := range prevNums {
				if heldAt(&prev.numbers, num) != h || prev.GenAt(num) != prevGens[num] {
					t.Errorf("generation %d: the snapshot before (%d) now gives %v of generation %d for number %d, not what it gave, of %d", next.Generation, prev.Generation, prev.FileAt(num), prev.GenAt(num), num, prevGens[num])
				}
				if now, ok := numOf[h]; ok && now != num {
					t.Errorf("generation %d: %s, unchanged, numbered %d where it was %d", next.Generation, prev.FileAt(num).Path(), now, num)
				}
			}
			gone, came := DiffNumbered(prev, next)
			wentNums := map[uint32]bool{}
			for _, g := range gone {
				if prevNums[g.Num] == (heldID{}) || !readsAlike(prev.FileAt(g.Num), g.File) || prev.GenAt(g.Num) != g.Gen {
					t.Errorf("generation %d: %s went numbered %d of generation %d, which was not its number", next.Generation, g.File.Path(), g.Num, g.Gen)
				}
				wentNums[g.Num] = true
			}
			for _, c := range came {
				if nums[c.Num] == (heldID{}) || !readsAlike(next.FileAt(c.Num), c.File) || next.GenAt(c.Num) != c.Gen {
					t.Errorf("generation %d: %s came numbered %d of generation %d, which is not its number", next.Generation, c.File.Path(), c.Num, c.Gen)
				}
				if wentNums[c.Num] {
					t.Errorf("generation %d: number %d is both a file's that went and %s's, which came", next.Generation, c.Num, c.File.Path())
				}
			}
		}
		// A file known by its mapped part's contents alone is the same
		// file only while it stays: one read anew with the same name and
		// item later is another, as its number and generation say.
		for h := range idOf {
			if h.h == nil && numOf[h] == 0 {
				delete(idOf, h)
			}
		}
		prev, prevNums, prevGens = next, nums, gens
	}
}

// heldAt is what names file num in ns (zero: none): the heap part of
// its number — its File, or the packed name of a file of one key kept
// without one whose name is too long for its mapped part —, each file
// the loader reads given its own, kept while the file is: what tells an
// unchanged file from one read anew, where comparing Files would not
// (FileAt makes one at each call for a file without). A file whose name
// is in its mapped part has no heap part (numbers.pages): the contents
// of its mapped part (name, item, source) name it, which tell it from
// another file, not from itself read anew.
func heldAt[T any](ns *numbers[T], num uint32) heldID {
	h, src := ns.entry(num)
	if src == 0 || h != nil {
		return heldID{h: h}
	}
	one := ns.ones[(num-1)>>pageBits].Get(int((num - 1) & (pageLen - 1)))
	return heldID{one: string(unsafe.Slice((*byte)(unsafe.Pointer(&one)), unsafe.Sizeof(one)))}
}

// heldID is heldAt's: a heap part, or a mapped part's contents.
type heldID struct {
	h   unsafe.Pointer
	one string
}

// readsAlike reports whether a and b read alike: path, source, items and
// their rare parts.
func readsAlike[T any](a, b *File[T]) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Path() != b.Path() || a.Source() != b.Source() || len(a.Items()) != len(b.Items()) {
		return false
	}
	for i := range a.Items() {
		if !reflect.DeepEqual(a.Items()[i], b.Items()[i]) || a.RareAt(i) != b.RareAt(i) {
			return false
		}
	}
	return true
}

// checkNumbered checks that the loader numbers the file of each of its
// rows and nothing else: a number kept for a file no row holds would keep
// the file's memory. And against its snapshot, that each number keeps its
// generation while it names the same file, and has a higher one once it
// names another, free or not (a free number keeps its generation, to
// count it up when the number is given again).
func checkNumbered[T any](t *testing.T, l *Loader[T]) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	rows, seen := 0, map[uint32]bool{}
	for i := range l.states {
		for _, ch := range l.states[i].files.chunks {
			for k := range ch.len() {
				if num := ch.data(k).num; num != 0 {
					if !l.numbers.has(num) {
						t.Fatalf("a row numbered %d, which the loader's numbers give no file", num)
					}
					if seen[num] {
						t.Fatalf("two rows numbered %d", num)
					}
					seen[num] = true
					rows++
				}
			}
		}
	}
	held := 0
	for num := uint32(1); num <= l.numbers.n; num++ {
		if l.numbers.has(num) {
			held++
		}
	}
	if held != rows {
		t.Fatalf("%d numbers hold a file, for %d rows with one", held, rows)
	}
	snap := l.snap.Load()
	for num := range snap.AllNumbered {
		was, now := snap.GenAt(num), l.numbers.genAt(num)
		switch same := heldAt(&l.numbers, num) == heldAt(&snap.numbers, num); {
		case same && now != was:
			t.Fatalf("number %d names the file it named in the snapshot, of generation %d there and %d now", num, was, now)
		case now < was:
			t.Fatalf("number %d, of generation %d in the snapshot, is of generation %d now", num, was, now)
		case l.numbers.has(num) && !same && now == was:
			t.Fatalf("number %d names another file than in the snapshot, with the same generation %d", num, now)
		}
	}
}
