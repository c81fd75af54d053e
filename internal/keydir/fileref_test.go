package keydir

import (
	"fmt"
	"testing"
)

// TestRefsReadAsFiles: the walk of FileRefs yields the files of
// AllNumbered, in its order, each reading as its File does — number,
// generation, items, name, path, source, rare parts — and makes nothing
// on the heap for a file: it is what a store walks at each rebuild,
// where a File made a file would be garbage (docs/design.md, "Memory of
// a loaded store", step 5).
func TestRefsReadAsFiles(t *testing.T) {
	var files []*File[string]
	for i := range 1500 {
		items, rare := []string{fmt.Sprint(i)}, []any(nil)
		switch i % 3 {
		case 1:
			items = append(items, "second")
		case 2:
			rare = []any{"rare"}
		}
		files = append(files, NewDirFile("/keys", fmt.Sprintf("k%04d.json", i), i%2, items, rare))
	}
	snap := SnapshotOf(files...)
	var refs []FileRef[string]
	for r := range snap.Refs {
		refs = append(refs, r)
	}
	k := 0
	for num, f := range snap.AllNumbered {
		if k >= len(refs) {
			t.Fatalf("Refs yields %d files, fewer than AllNumbered", len(refs))
		}
		r := refs[k]
		k++
		if r.Num() != num || r.Gen() != snap.GenAt(num) || r.File() != f {
			t.Fatalf("file %d: FileRef %d/%d of %p, want %d/%d of %p", k, r.Num(), r.Gen(), r.File(), num, snap.GenAt(num), f)
		}
		if r.Name() != f.Name() || r.Path() != f.Path() || r.Source() != f.Source() || r.InDir() != f.InDir() || r.Len() != len(f.Items()) {
			t.Fatalf("%s: the FileRef reads %s %s %d %v %d", f.Path(), r.Name(), r.Path(), r.Source(), r.InDir(), r.Len())
		}
		for pos := range f.Items() {
			if r.Item(pos) != f.Items()[pos] || r.RareAt(pos) != f.RareOf(&f.Items()[pos]) {
				t.Fatalf("%s, item %d: %q, rare %v", f.Path(), pos, r.Item(pos), r.RareAt(pos))
			}
		}
		if at, ok := snap.RefAt(num); !ok || at != r {
			t.Fatalf("RefAt(%d) = %v, %v", num, at, ok)
		}
	}
	if k != len(refs) {
		t.Fatalf("Refs yields %d files, AllNumbered %d", len(refs), k)
	}
	if _, ok := snap.RefAt(uint32(len(files) + 1)); ok {
		t.Fatal("RefAt gives a file for a number none has")
	}
	n := 0
	allocs := testing.AllocsPerRun(10, func() {
		for r := range snap.Refs {
			n += r.Len() + len(r.Name())
		}
	})
	if allocs > 4 {
		t.Fatalf("a walk of %d files allocates %.0f times", len(files), allocs)
	}
}
