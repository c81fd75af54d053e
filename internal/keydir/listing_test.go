package keydir

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// sortByName orders a listing as one sort of the whole would, at every
// length around the one from which it sorts two halves at once and
// merges them, and keeps each name with its type.
func TestSortByName(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, parallelSort - 1, parallelSort, parallelSort + 1, 3*parallelSort + 7} {
		ls := new(sortedListing)
		var want []dirEntry
		for i := range n {
			// Names that share long prefixes and differ in length and in
			// bytes above 0x7f, as a directory's may.
			name := fmt.Sprintf("k%0*d", rng.IntN(8)+1, rng.IntN(n+1)) + strings.Repeat("\xe9", rng.IntN(3)) + fmt.Sprint(i)
			if err := ls.add(name, typeOf(name)); err != nil {
				t.Fatal(err)
			}
			want = append(want, dirEntry{name: name, typ: typeOf(name)})
		}
		slices.SortFunc(want, func(a, b dirEntry) int { return strings.Compare(a.name, b.name) })
		sortByName(ls)
		if ls.len() != n {
			t.Fatalf("%d names: %d after the sort", n, ls.len())
		}
		for i, w := range want {
			if e := ls.entry(i); e != w {
				t.Fatalf("%d names: entry %d is %q %v, want %q %v (out of order, or its type lost)", n, i, e.name, e.typ, w.name, w.typ)
			}
		}
	}
}

// typeOf gives each name of TestSortByName a type of its own to keep:
// every type a listing may give.
func typeOf(name string) fs.FileMode {
	types := []fs.FileMode{0, fs.ModeSymlink, fs.ModeDir, fs.ModeNamedPipe, fs.ModeSocket, fs.ModeDevice | fs.ModeCharDevice, fs.ModeDevice, fs.ModeIrregular}
	return types[len(name)%len(types)]
}

// A listing packs names into blocks of 4 KiB, then 8, 16, 32 and
// listingBlock: names that fill a block to its last byte, names that do
// not fit the room left (a new block, the next size), the longest name (a
// block of its own length), and an empty name (no block) all read back as
// they were added, no block is appended past (its size would change),
// and a name of a block's length is refused, not cut.
func TestSortedListingBlocks(t *testing.T) {
	ls := new(sortedListing)
	var want []string
	add := func(name string) {
		t.Helper()
		if err := ls.add(name, 0); err != nil {
			t.Fatal(err)
		}
		want = append(want, name)
	}
	add(strings.Repeat("a", 4000))
	add(strings.Repeat("b", 96)) // to the first block's last byte
	add(strings.Repeat("c", 255))
	add(strings.Repeat("d", 8192-255-100))
	add(strings.Repeat("e", 200)) // does not fit after d: a new block
	add("")
	add(strings.Repeat("f", listingBlock-1)) // the longest: a block of its own
	add(strings.Repeat("g", 10))
	for i, w := range want {
		if e := ls.entry(i); e.name != w {
			t.Errorf("name %d: %d bytes %.8q…, want %d bytes %.8q…", i, len(e.name), e.name, len(w), w)
		}
	}
	var sizes []int
	for _, b := range ls.blocks {
		sizes = append(sizes, cap(b))
	}
	if want := []int{4 << 10, 8 << 10, 16 << 10, listingBlock - 1, listingBlock}; !slices.Equal(sizes, want) {
		t.Errorf("blocks of %v bytes, want %v", sizes, want)
	}
	if err := ls.add(strings.Repeat("h", listingBlock), 0); !errors.Is(err, errListingTooLarge) {
		t.Errorf("a name of a block's length: %v, want errListingTooLarge", err)
	}
}

// A listing's blocks past the first four are of listingBlock bytes
// however many there are: a listing of 5,000 names of 1,000 bytes fills
// some 80 blocks, past where a size of 4 KiB doubled at each block would
// have overflowed (each block then one name long: a listing of a million
// short names ran out of blocks, found by measuring one).
func TestSortedListingManyBlocks(t *testing.T) {
	ls := new(sortedListing)
	name := strings.Repeat("n", 1000)
	for range 5000 {
		if err := ls.add(name, 0); err != nil {
			t.Fatal(err)
		}
	}
	if len(ls.blocks) < 70 {
		t.Fatalf("%d blocks, want some 80", len(ls.blocks))
	}
	for i, b := range ls.blocks[4:] {
		if cap(b) != listingBlock {
			t.Fatalf("block %d of %d bytes, want %d", i+4, cap(b), listingBlock)
		}
	}
}

// The edges of a listing's 16-bit fields: an empty name after a block
// filled to its last byte (whose offset, 65,536, would not fit), a name
// of a block's length where the last block is empty (whose length would
// read back as 0), and a name past the last block there can be.
func TestSortedListingEdges(t *testing.T) {
	ls := new(sortedListing)
	for _, name := range []string{strings.Repeat("a", listingBlock-1), "b", ""} {
		if err := ls.add(name, fs.ModeSymlink); err != nil {
			t.Fatal(err)
		}
	}
	if e := ls.entry(2); e.name != "" || e.typ != fs.ModeSymlink {
		t.Errorf("an empty name after a full block: %q %v", e.name, e.typ)
	}
	ls = new(sortedListing)
	if err := ls.add("", 0); err != nil {
		t.Fatal(err)
	}
	if err := ls.add(strings.Repeat("f", listingBlock), 0); !errors.Is(err, errListingTooLarge) {
		t.Errorf("a name of a block's length after an empty one: %v, want errListingTooLarge", err)
	}
	ls = &sortedListing{blocks: make([][]byte, 1<<16)}
	ls.blocks[len(ls.blocks)-1] = make([]byte, listingBlock)
	if err := ls.add("x", 0); !errors.Is(err, errListingTooLarge) {
		t.Errorf("a name past 65,536 full blocks: %v, want errListingTooLarge", err)
	}
}

// A listing holds its names in 8 bytes each beside their bytes, where a
// slice of dirEntry held 24 and a string of its own for each (16 bytes
// or more): 20,000 names of 13 bytes take under 32 bytes each of live
// heap, which the old form could not (24 + 16 a name, before the slice's
// room to grow).
func TestSortedListingIsCompact(t *testing.T) {
	dir := t.TempDir()
	const n = 20_000
	for i := range n {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("k%07d.json", i)))
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	// What the listing holds by its own account, which no other
	// goroutine's garbage moves.
	ls, err := listSorted(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ls.len() != n {
		t.Fatalf("%d names listed, want %d", ls.len(), n)
	}
	held := cap(ls.names) * int(unsafe.Sizeof(listedAt{}))
	for _, b := range ls.blocks {
		held += cap(b)
	}
	if perName := float64(held) / n; perName > 32 {
		t.Errorf("a listing of %d names holds %.1f bytes a name in its blocks and places, want under 32", n, perName)
	}
	// And what the heap says it holds, nothing else kept: the least of a
	// few tries, as a goroutine left by another test may allocate between
	// the two measures.
	perName := math.Inf(1)
	for range 3 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		ls, err := listSorted(dir)
		if err != nil {
			t.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(ls)
		perName = min(perName, float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/n)
		if perName <= 32 {
			break
		}
	}
	if perName > 32 {
		t.Errorf("a listing of %d names holds %.1f bytes of heap a name, want under 32", n, perName)
	}
	t.Logf("%.1f bytes of heap a name", perName)
}

// FuzzSortedListing: whatever names a directory lists (cut from the
// input at each 0 byte, which no name holds; each repeated to reach past
// a block's end now and then), the listing gives back each name and its
// type, sorted as one sort of them all would, or refuses a name of 64 KiB
// or more. Run: go test ./internal/keydir -run '^$' -fuzz FuzzSortedListing
func FuzzSortedListing(f *testing.F) {
	f.Add([]byte("b.json\x00a.json\x00\x00a b.json"), uint16(1))
	f.Add([]byte("k\x00kk\x00\xe9"), uint16(5000))
	f.Fuzz(func(t *testing.T, data []byte, times uint16) {
		ls := new(sortedListing)
		var want []dirEntry
		for name := range strings.SplitSeq(string(data), "\x00") {
			name = strings.Repeat(name, 1+int(times)%64)
			err := ls.add(name, typeOf(name))
			if len(name) >= listingBlock {
				if !errors.Is(err, errListingTooLarge) {
					t.Fatalf("a name of %d bytes: %v, want errListingTooLarge", len(name), err)
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, dirEntry{name, typeOf(name)})
		}
		slices.SortStableFunc(want, func(a, b dirEntry) int { return strings.Compare(a.name, b.name) })
		sortByName(ls)
		if ls.len() != len(want) {
			t.Fatalf("%d names, want %d", ls.len(), len(want))
		}
		for i, w := range want {
			if e := ls.entry(i); e.name != w.name || e.typ != w.typ {
				t.Fatalf("entry %d: %q %v, want %q %v", i, e.name, e.typ, w.name, w.typ)
			}
		}
	})
}
