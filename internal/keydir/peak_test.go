package keydir

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// TestNumbersPageMadeWhole: a page of numbers past the first is made
// whole, its mapped part pageLen long from its first number (and no heap
// part: its files are of one key, with short names — numbers.pages — so
// the list of heap parts stays empty),
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
		return ns.add(parsed[[32]byte]{item: [32]byte{byte(i)}, src: 1}, fmt.Sprintf("k%05d.json", i))
	}
	give(0)
	if ns.heap(0) != nil || ns.ones[0].Len() != 8 {
		t.Fatalf("the first page after one number: %d heap places, %d mapped, want none and 8", len(ns.heap(0)), ns.ones[0].Len())
	}
	for i := 1; i <= pageLen; i++ {
		give(i)
	}
	if ns.count() != 2 || ns.heap(1) != nil || ns.ones[1].Len() != pageLen {
		t.Fatalf("after %d numbers the second page has %d heap places, %d mapped, want none and %d", pageLen+1, len(ns.heap(1)), ns.ones[1].Len(), pageLen)
	}
	if len(ns.pages) != 0 {
		t.Fatalf("the list of heap parts is %d pages long, where no page has one", len(ns.pages))
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

// TestColdLoadDiffIsTheList: the change of a cold load (from a snapshot
// of no file) is every file of the new snapshot, given as the one list
// Refs makes, not a copy of it — one allocation, where there were two:
// at 100,000 files of one key the copy was 2.4 MB, made twice at the end
// of the load (Change and authkeys' update), where its peak is
// (docs/design.md, "Memory of a loaded store", step 6).
func TestColdLoadDiffIsTheList(t *testing.T) {
	home := t.TempDir()
	empty, dir := filepath.Join(home, "empty.d"), filepath.Join(home, "keys.d")
	keydirtest.Write(t, filepath.Join(empty, "README"), nil)
	const n = 40
	for i := range n {
		keydirtest.Write(t, filepath.Join(dir, fmt.Sprintf("k%02d.json", i)), keydirtest.JWK(t, key(t, 10+i)))
	}
	keydirtest.Write(t, filepath.Join(dir, "two.json"), keydirtest.JWK(t, key(t, 1), key(t, 2)))
	load := func(d string) *Snapshot[[32]byte] {
		return New(Config[[32]byte]{
			Sources: []Source{{Path: d, Dir: true}},
			Home:    home,
			Convert: func(_ SourceRef, _ string, k *jwk.Key) ([32]byte, error) { return k.SPKIHash(), nil },
		}).Reload()
	}
	prev, next := load(empty), load(dir)
	if prev.numFiles() != 0 || next.numFiles() != n+1 {
		t.Fatalf("%d and %d files, want 0 and %d", prev.numFiles(), next.numFiles(), n+1)
	}
	gone, came := DiffRefs(prev, next)
	if gone != nil || len(came) != n+1 {
		t.Fatalf("%d gone and %d came, want 0 and %d", len(gone), len(came), n+1)
	}
	i := 0
	for r := range next.Refs {
		if came[i].Num() != r.Num() || came[i].Name() != r.Name() {
			t.Fatalf("came[%d] is %s (%d), want %s (%d): the snapshot's order", i, came[i].Name(), came[i].Num(), r.Name(), r.Num())
		}
		i++
	}
	if allocs := testing.AllocsPerRun(10, func() { DiffRefs(prev, next) }); allocs != 1 {
		t.Errorf("a cold load's DiffRefs allocates %.0f times, want 1 (the list of its files)", allocs)
	}
	// The other way (every file gone) and from a snapshot to itself
	// still go through the comparison.
	if gone, came := DiffRefs(next, prev); len(gone) != n+1 || came != nil {
		t.Errorf("to a snapshot of no file: %d gone and %d came, want %d and 0", len(gone), len(came), n+1)
	}
	if gone, came := DiffRefs(next, next); gone != nil || came != nil {
		t.Errorf("from a snapshot to itself: %d gone and %d came, want none", len(gone), len(came))
	}
	// The loader's Change of a cold load counts every file from the
	// snapshot itself, making no list of them (at a million files, 24 MB
	// at the end of the load, where its peak is).
	ld := New(Config[[32]byte]{
		Sources: []Source{{Path: dir, Dir: true}},
		Home:    home,
		KeyOf:   func(k *[32]byte) [32]byte { return *k },
	})
	if c := ld.change(prev, next, 0); c.Added != n+2 || c.Removed != 0 {
		t.Errorf("a cold load's change: %d added and %d removed, want %d and 0", c.Added, c.Removed, n+2)
	}
	if allocs := testing.AllocsPerRun(10, func() { ld.change(prev, next, 0) }); allocs != 0 {
		t.Errorf("a cold load's change allocates %.0f times, want none", allocs)
	}
}

// TestColdLoadReadsNewFilesAFewAtATime: a listing reads its new files
// newFilesRead at a time and folds each lot into its rows (scanDir,
// newFiles), where it queued every one for the reload's reads: a cold
// load held the state of every file at once, 240 bytes a file with its
// path, and its peak resident set was twice that (docs/design.md,
// "Memory of a loaded store", step 6). So when a lot is read, the lots
// before it have their numbers, and when the last is read the heap holds
// far less than a state a file; the few files past the last whole lot go
// with the reload's reads. A file gone before its read and one that does
// not parse, in lots of their own, leave the list and make a problem as
// when all were read at once.
func TestColdLoadReadsNewFilesAFewAtATime(t *testing.T) {
	home := t.TempDir()
	dir := filepath.Join(home, "keys.d")
	const n = 4*newFilesRead + 5
	name := func(i int) string { return fmt.Sprintf("k%05d.json", i) }
	data := keydirtest.JWK(t, key(t, 1))
	for i := range n {
		keydirtest.Write(t, filepath.Join(dir, name(i)), data)
	}
	gone, bad := newFilesRead+7, 2*newFilesRead+3
	keydirtest.Write(t, filepath.Join(dir, name(bad)), []byte("{"))
	l := newLeanLoader(Source{Path: dir, Dir: true})
	var (
		mu       sync.Mutex
		numbered = map[int]uint32{} // by lot: the numbers given when its first file was read
		live     uint64
	)
	before := liveHeap()
	l.beforeRead = func(path string) {
		i := fileIndex(t, path)
		mu.Lock()
		defer mu.Unlock()
		if _, ok := numbered[i/newFilesRead]; !ok {
			numbered[i/newFilesRead] = l.numbers.n // no fold runs while a lot is read
		}
		switch i {
		case gone:
			must(t, os.Remove(path))
		case n - 1:
			live = liveHeap()
		}
	}
	s := l.Reload()
	if got := s.numFiles(); got != n-2 {
		t.Fatalf("%d files loaded, want %d: all but the one gone and the one that does not parse", got, n-2)
	}
	if len(s.Problems) != 1 || filepath.Base(s.Problems[0].Path) != name(bad) {
		t.Fatalf("problems %v, want one, of %s", s.Problems, name(bad))
	}
	// The file gone before its read leaves no row (a zero row left in
	// the list would be taken for a file by every later name search).
	if got := l.states[0].files.n; got != n-1 {
		t.Fatalf("%d rows, want %d: every file but the one gone", got, n-1)
	}
	l.beforeRead = nil
	l.reload(hints{paths: map[string]struct{}{filepath.Join(dir, name(gone)): {}, filepath.Join(dir, name(gone+1)): {}}})
	i := 0
	for r := range s.Refs {
		if i == gone || i == bad {
			i++
		}
		if r.Name() != name(i) {
			t.Fatalf("file %d is %s, want %s: the listing's order", i, r.Name(), name(i))
		}
		i++
	}
	for lot := range (n + newFilesRead - 1) / newFilesRead {
		if min, got := uint32(lot*newFilesRead-2), numbered[lot]; lot > 0 && got < min {
			t.Errorf("when the lot of files %d to %d was read, %d files had numbers, want the %d or more of the lots before it folded", lot*newFilesRead, (lot+1)*newFilesRead-1, got, min)
		}
	}
	// Without the lots some 350 bytes a file: every state and its path
	// (240) beside the rows (56) and the listing (some 40); with them
	// some 170, a lot's states shared by all.
	if perFile := float64(live-before) / n; !raceEnabled && perFile > 260 {
		t.Errorf("the heap held %.0f bytes a file as the last file was read, want 260 or less: the states of files read before are live", perFile)
	}
}

// fileIndex is i of a file named k%05d.json (at path).
func fileIndex(t *testing.T, path string) int {
	i, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(path), "k"), ".json"))
	must(t, err)
	return i
}

// liveHeap is the live heap after a collection.
func liveHeap() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestListingHoldsNewFile: a new file a listing reads half written, in a
// lot of its own, in a reload caused by events, is held back as when all
// were read at once (no row, no problem) and returned as held
// (Loader.scanHeld), so that the watcher reads it again once events are
// quiet.
func TestListingHoldsNewFile(t *testing.T) {
	home := t.TempDir()
	dir := filepath.Join(home, "keys.d")
	keydirtest.Write(t, filepath.Join(dir, "a.json"), keydirtest.JWK(t, key(t, 1)))
	l := newLeanLoader(Source{Path: dir, Dir: true})
	l.Reload()
	data := keydirtest.JWK(t, key(t, 2))
	for i := range newFilesRead - 1 {
		keydirtest.Write(t, filepath.Join(dir, fmt.Sprintf("b%05d.json", i)), data)
	}
	half := filepath.Join(dir, "b-half.json") // in the lot: "-" sorts before the digits
	keydirtest.Write(t, half, []byte("{"))
	held := l.reloadHolding(hints{all: true})
	if len(held) != 1 || held[0] != half {
		t.Fatalf("held %q, want [%s]", held, half)
	}
	if s := l.Snapshot(); len(s.Problems) != 0 || l.states[0].files.n != newFilesRead {
		t.Fatalf("problems %v, %d rows, want none and %d: the held file should leave neither", s.Problems, l.states[0].files.n, newFilesRead)
	}
	if len(l.scanHeld) != 0 {
		t.Fatalf("scanHeld %q after the reload, want none", l.scanHeld)
	}
}

// TestListingDropsManyNewFiles: half the files of a listing's lot gone
// before their reads leave the list in one pass (withoutPending, many),
// the others in order, and no row pending after the reload.
func TestListingDropsManyNewFiles(t *testing.T) {
	home := t.TempDir()
	dir := filepath.Join(home, "keys.d")
	const n = newFilesRead + 5
	name := func(i int) string { return fmt.Sprintf("k%05d.json", i) }
	data := keydirtest.JWK(t, key(t, 1))
	for i := range n {
		keydirtest.Write(t, filepath.Join(dir, name(i)), data)
	}
	l := newLeanLoader(Source{Path: dir, Dir: true})
	l.beforeRead = func(path string) {
		i := fileIndex(t, path)
		if i%2 == 1 {
			must(t, os.Remove(path))
		}
	}
	s := l.Reload()
	want := (n + 1) / 2
	if got := s.numFiles(); got != want || l.states[0].files.n != want {
		t.Fatalf("%d files loaded, %d rows, want %d of each", got, l.states[0].files.n, want)
	}
	for _, ch := range l.states[0].files.chunks {
		for k := range ch.hs() {
			if (*ch.h)[k].pending() != nil {
				t.Fatalf("a row pending after the reload")
			}
		}
	}
	i := 0
	for r := range s.Refs {
		if r.Name() != name(i) {
			t.Fatalf("file %d is %s, want %s", i/2, r.Name(), name(i))
		}
		i += 2
	}
}
