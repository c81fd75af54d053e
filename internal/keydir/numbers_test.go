package keydir

import (
	"testing"
)

// followNumbers checks, at each snapshot l publishes, the files' numbers
// (numbers) against the snapshot published before it: each file of the
// new one is numbered once, by a number FileAt gives back; a file of both
// keeps its number; the snapshot before still reads as it did (its
// numbers are never written again: a store's index built from it may
// still be read); and no number is both a file's that went and one's
// that came (DiffNumbered), which a store removing the one and inserting
// the other relies on. The randomized tests of the loader call it, so
// that every path a reload takes is checked.
func followNumbers(t *testing.T, l *Loader[string]) {
	var (
		prev     *Snapshot[string]
		prevNums map[uint32]*File[string]
	)
	l.cfg.OnReload = func(next *Snapshot[string]) {
		nums, numOf := map[uint32]*File[string]{}, map[*File[string]]uint32{}
		for num, f := range next.AllNumbered {
			if num == 0 || next.FileAt(num) != f {
				t.Errorf("generation %d: %s numbered %d, which gives back %v", next.Generation, f.Path(), num, next.FileAt(num))
			}
			if g, dup := nums[num]; dup {
				t.Errorf("generation %d: %s and %s both numbered %d", next.Generation, g.Path(), f.Path(), num)
			}
			nums[num], numOf[f] = f, num
		}
		if prev != nil {
			for num, f := range prevNums {
				if prev.FileAt(num) != f {
					t.Errorf("generation %d: the snapshot before (%d) now gives %v for number %d, not %s", next.Generation, prev.Generation, prev.FileAt(num), num, f.Path())
				}
				if now, ok := numOf[f]; ok && now != num {
					t.Errorf("generation %d: %s, unchanged, numbered %d where it was %d", next.Generation, f.Path(), now, num)
				}
			}
			gone, came := DiffNumbered(prev, next)
			wentNums := map[uint32]bool{}
			for _, g := range gone {
				if prevNums[g.Num] != g.File {
					t.Errorf("generation %d: %s went numbered %d, which was not its number", next.Generation, g.File.Path(), g.Num)
				}
				wentNums[g.Num] = true
			}
			for _, c := range came {
				if nums[c.Num] != c.File {
					t.Errorf("generation %d: %s came numbered %d, which is not its number", next.Generation, c.File.Path(), c.Num)
				}
				if wentNums[c.Num] {
					t.Errorf("generation %d: number %d is both a file's that went and %s's, which came", next.Generation, c.Num, c.File.Path())
				}
			}
		}
		prev, prevNums = next, nums
	}
}

// checkNumbered checks that the loader numbers the File of each of its
// rows and nothing else: a number kept for a file no row holds would keep
// the file's memory.
func checkNumbered(t *testing.T, l *Loader[string]) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	rows, seen := 0, map[uint32]bool{}
	for i := range l.states {
		for _, ch := range l.states[i].files.chunks {
			for k := range ch.len() {
				if num := ch.data(k).num; num != 0 {
					if l.numbers.at(num) == nil {
						t.Fatalf("a row numbered %d, which the loader's numbers give no File", num)
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
		if l.numbers.at(num) != nil {
			held++
		}
	}
	if held != rows {
		t.Fatalf("%d numbers hold a File, for %d rows with one", held, rows)
	}
}
