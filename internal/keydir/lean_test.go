package keydir

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"unsafe"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// isLean reports whether s keeps file num without a File of its own.
func isLean[T any](s *Snapshot[T], num uint32) bool {
	_, src := s.numbers.entry(num)
	return src != 0
}

// TestFileOfOneKeyWithoutFile: where entries hold no pointer, a file of
// one key of a directory is kept without a File of its own — its name
// (short enough: TestShortNamesInTheMappedPart), item and source in the
// numbers' mapped part —, and a file of several keys, one with a rare part, and a revocation
// source's file keep their Files (docs/design.md, "Memory of a loaded
// store", step 5). Such a file reads the same through RefAt, Refs,
// ItemAt, FileAt, All and Diff, in the snapshot that numbered it, after
// later reloads have removed it, given its number to another file and
// copied the numbers' pages, and after collections; a File made of it
// holds its own copy of the item, never a pointer into the snapshot's
// mapped pages (which live only as long as the snapshot: offheap's
// rule), nor one another made File shares, and nor does the name Name
// gives; a walk of Refs makes nothing on the heap for it.
func TestFileOfOneKeyWithoutFile(t *testing.T) {
	home := t.TempDir()
	dir, revoked := filepath.Join(home, "keys.d"), filepath.Join(home, "revoked.d")
	keydirtest.Write(t, filepath.Join(dir, "a.json"), keydirtest.JWK(t, key(t, 1)))
	keydirtest.Write(t, filepath.Join(dir, "b.json"), keydirtest.JWK(t, key(t, 2), key(t, 3)))
	keydirtest.Write(t, filepath.Join(dir, "c.json"), keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 4), "comment", "four")))
	keydirtest.Write(t, filepath.Join(revoked, "r.json"), keydirtest.JWK(t, key(t, 5)))
	for i := range pageLen + 10 { // more than a page of numbers, all of one key
		keydirtest.Write(t, filepath.Join(dir, fmt.Sprintf("k%04d.json", i)), keydirtest.JWK(t, key(t, 100+i)))
	}
	l := New(Config[[32]byte]{
		Sources: []Source{{Path: dir, Dir: true}, {Path: revoked, Dir: true, Revocation: true}},
		Home:    home,
		Convert: func(_ SourceRef, _ string, k *jwk.Key) ([32]byte, error) { return k.SPKIHash(), nil },
		Rare:    commentRare,
	})
	snap1 := l.Reload()
	if len(snap1.Problems) > 0 {
		t.Fatal(snap1.Problems)
	}
	byName := map[string]FileRef[[32]byte]{}
	for r := range snap1.Refs {
		byName[r.Name()] = r
	}
	for name, lean := range map[string]bool{"a.json": true, "k0000.json": true, "b.json": false, "c.json": false, "r.json": false} {
		if r, ok := byName[name]; !ok || isLean(snap1, r.Num()) != lean {
			t.Fatalf("%s: kept without a File %v, want %v", name, isLean(snap1, r.Num()), lean)
		}
	}
	a := byName["a.json"]
	num, gen := a.Num(), a.Gen()
	sum := key(t, 1).SPKIHash()
	checkA := func(s *Snapshot[[32]byte], when string) {
		t.Helper()
		r, ok := s.RefAt(num)
		if !ok || s.GenAt(num) != gen || r.Name() != "a.json" || r.Path() != filepath.Join(dir, "a.json") || r.Source() != 0 || !r.InDir() ||
			r.Len() != 1 || r.Item(0) != sum || r.Items()[0] != sum || r.RareAt(0) != nil || s.ItemAt(num, 0) != sum {
			t.Fatalf("%s: number %d reads %v %q %q %d %v %d", when, num, ok, r.Name(), r.Path(), r.Source(), r.InDir(), r.Len())
		}
		f := s.FileAt(num)
		if f.Name() != "a.json" || f.Path() != filepath.Join(dir, "a.json") || len(f.Items()) != 1 || f.Items()[0] != sum || f.RareOf(&f.Items()[0]) != nil {
			t.Fatalf("%s: the File made of number %d reads %q %v", when, num, f.Path(), f.Items())
		}
		// The made File's item is its own: in the File's allocation, not
		// in the snapshot's pages, and not another made File's.
		if it := unsafe.Pointer(&f.Items()[0]); it != unsafe.Pointer(&f.one) || it == unsafe.Pointer(&s.FileAt(num).Items()[0]) {
			t.Fatalf("%s: the File made of number %d holds its item at %p, not its own", when, num, it)
		}
		f.Items()[0][0]++ // a caller writing its copy changes nothing the snapshot reads
		if s.ItemAt(num, 0) != sum || r.Item(0) != sum {
			t.Fatalf("%s: writing a made File's item wrote the snapshot's", when)
		}
		found := false
		for g := range s.All {
			found = found || g.Name() == "a.json" && g.Items()[0] == sum
		}
		if !found {
			t.Fatalf("%s: All does not yield a.json", when)
		}
	}
	checkA(snap1, "as loaded")

	// a.json goes: its number is freed once that snapshot is published,
	// and given, with its generation counted up, to the next file that
	// comes; the pages of both are copied, never written.
	must(t, os.Remove(filepath.Join(dir, "a.json")))
	snap2 := l.Reload()
	gone, came := DiffNumbered(snap1, snap2)
	if len(gone) != 1 || len(came) != 0 || gone[0].Num != num || gone[0].Gen != gen || gone[0].File.Items()[0] != sum || gone[0].File.Name() != "a.json" {
		t.Fatalf("a.json removed: gone %v, came %v", gone, came)
	}
	keydirtest.Write(t, filepath.Join(dir, "d.json"), keydirtest.JWK(t, key(t, 6)))
	snap3 := l.Reload()
	d, ok := snap3.RefAt(num)
	if !ok || d.Name() != "d.json" || d.Item(0) != key(t, 6).SPKIHash() || d.Gen() != gen+1 || !isLean(snap3, num) {
		t.Fatalf("d.json came as number %d (%v) of generation %d: %q", num, ok, d.Gen(), d.Name())
	}
	goneR, cameR := DiffRefs(snap1, snap3)
	if len(goneR) != 1 || len(cameR) != 1 || goneR[0].Num() != num || cameR[0].Num() != num || goneR[0].Gen() == cameR[0].Gen() ||
		goneR[0].Item(0) != sum || cameR[0].Name() != "d.json" {
		t.Fatalf("from a.json's snapshot to d.json's: gone %v, came %v", goneR, cameR)
	}
	// Many reloads later, the pages copied again and again and the old
	// ones left to the collector, the first snapshot still reads a.json.
	for i := range 20 {
		keydirtest.Replace(t, filepath.Join(dir, fmt.Sprintf("k%04d.json", i)), keydirtest.JWK(t, key(t, 10_000+i)))
		l.Reload()
		runtime.GC()
	}
	checkA(snap1, "after reloads and collections")
	if _, ok := l.Snapshot().RefAt(num); !ok || l.Snapshot().FileAt(num).Name() != "d.json" {
		t.Fatalf("number %d no longer d.json's", num)
	}

	n := 0
	allocs := testing.AllocsPerRun(10, func() {
		for r := range snap1.Refs {
			n += r.Len() + int(r.Item(0)[0])
		}
	})
	if allocs > 4 {
		t.Fatalf("a walk of %d files allocates %.0f times", pageLen+14, allocs)
	}
	// A name kept in the mapped part is copied out, once a call: a
	// string of the caller's own, not a view of memory that another
	// array may be given once the snapshot is gone.
	k0, _ := snap1.RefAt(byName["k0000.json"].Num())
	if allocs := testing.AllocsPerRun(10, func() { n += len(k0.Name()) }); allocs != 1 {
		t.Fatalf("Name of a file kept without a File allocates %.0f times, want 1 (its copy)", allocs)
	}
}

// BenchmarkItemAt reads items by number as a store's lookup probes do,
// in 10,000 files of one key each: kept without a File (lean: the item
// copied out of the numbers' mapped part) and, where the entry type
// holds a pointer, in Files (file). Both are read through numbers
// arranged as a loader's; the key is a number drawn in turn.
func BenchmarkItemAt(b *testing.B) {
	const n = 10_000
	lean, files := benchNumbers(n)
	for _, c := range []struct {
		name string
		ns   *numbers[[32]byte]
	}{{"lean", &lean}, {"file", &files}} {
		s := &Snapshot[[32]byte]{numbers: *c.ns}
		b.Run(c.name, func(b *testing.B) {
			var x byte
			num := uint32(0)
			for b.Loop() {
				num = num%n + 1
				x += s.ItemAt(num, 0)[0]
			}
			if x == 42 {
				b.Log(x)
			}
		})
	}
}

// benchNumbers returns the numbers of n files of one key each (a SHA-256
// sum), as a loader's source of a directory gives them: kept without a
// File (lean), and with a File per file (files), as where the entry type
// holds a pointer.
func benchNumbers(n int) (lean, files numbers[[32]byte]) {
	srcs := []*fileSource{{prefix: "/keys/", index: 0, dir: true}}
	lean = leanNumbers[[32]byte](srcs)
	for i := range n {
		var sum [32]byte
		sum[0], sum[1] = byte(i), byte(i>>8)
		lean.add(parsed[[32]byte]{item: sum, src: 1}, fmt.Sprint(i))
		files.add(parsed[[32]byte]{file: makeFile(srcs[0], fmt.Sprint(i), [][32]byte{sum})}, "")
	}
	return lean, files
}

// BenchmarkPageCopy is what a reload that changes one file of a store of
// 10,000 files of one key pays to write its number: the numbers cloned
// as each publish leaves them, and the one page written copied — for
// files kept without a File (lean), whose short names leave the page
// no heap part, its mapped part (oneItem: 64 KiB, where it was 36 KiB
// and a heap part of 8 KiB; in memory offheap kept from an old copy
// once a collection has found it gone — mapped anew until then, so a
// run of a few hundred copies, too few for offheap's pace to collect,
// measures fresh memory), where a File per file (file: every file
// before step 5 (c), and knownhosts' still) copies the heap part only
// (docs/design.md, "Memory of a loaded store", step 6).
func BenchmarkPageCopy(b *testing.B) {
	const n = 10_000
	lean, files := benchNumbers(n)
	for _, c := range []struct {
		name string
		ns   *numbers[[32]byte]
	}{{"lean", &lean}, {"file", &files}} {
		b.Run(c.name, func(b *testing.B) {
			num := uint32(0)
			cpu := keydirtest.CPUTime(b)
			for b.Loop() {
				num = num%n + 1
				next := c.ns.clone()
				h, _ := next.entry(num)
				var one oneItem[[32]byte]
				if next.ones != nil {
					one = next.ones[(num-1)>>pageBits].Get(int((num - 1) & (pageLen - 1)))
				}
				next.set(num, h, one) // the same file written back: the page copied
			}
			// The process's CPU time, the collector's and the cleanups'
			// included: on a machine shared with other jobs the wall
			// time is the scheduler's as much as the copy's.
			b.ReportMetric(float64(keydirtest.CPUTime(b)-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}
