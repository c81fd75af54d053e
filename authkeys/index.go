package authkeys

import (
	"encoding/binary"
	"math/bits"
	"slices"

	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/offheap"
)

// index maps SPKI hashes to items: an open-addressing table with linear
// probing, at most half full. An SPKI hash is already a uniformly
// distributed SHA-256 output, so its first eight bytes are the slot: no
// hashing, no allocation, and the same few instructions at one key or at a
// million (a Go map hashes the 32-byte key again and walks a directory of
// tables that grows with the map). Only admins choose which keys are in
// the table, so nobody can crowd a slot on purpose.
//
// A slot holds no pointer: it is a file's number in files and the item's
// position in that file's Items, so that the garbage collector, which
// reads every pointer of the heap at each collection, never reads the
// table (docs/design.md, "Memory of a loaded store"). A full page of the
// table is mapped outside the Go heap (internal/offheap), where it is
// resident once instead of twice and the collector does not count it.
// files holds one pointer per file, not per key.
//
// A published index is never written again. The table and the files are
// kept in pages of pageLen, and a reload that changes a few files clones
// only the lists of pages (clone), then copies each page the first time
// it writes to it (copy on write): a one-file change costs a few pages,
// not a copy of the whole table, and leaves the garbage collector next to
// nothing to collect (docs/design.md, "From a file change to a handshake
// decision").
type index struct {
	slots  []*offheap.Array[ref]  // pages of the table; one shorter page when it is smaller than pageLen
	files  [][]*keydir.File[item] // pages of the files by number; nil: a number free for reuse
	nfiles uint32                 // numbers given out so far
	free   []uint32               // the free numbers of files
	mask   uint64
	n      int
	// The pages this index may write in place (a bit per page): those it
	// made or copied itself since clone. freeOwned: free is its own.
	ownSlots, ownFiles []uint64
	freeOwned          bool
}

// pageBits sets the size of a page: 4,096 slots (32 KiB) or file
// pointers. A million keys make 1,024 pages of slots, whose list is what
// a reload copies whole.
const (
	pageBits = 12
	pageLen  = 1 << pageBits
)

// ref is an item of the index: 1 + its file's number (0: an empty slot),
// and its position in the file's Items.
type ref struct{ file, pos uint32 }

func newIndex(n int) index {
	size := uint64(8)
	if n > 2 {
		size = max(size, 1<<bits.Len64(uint64(2*n-1)))
	}
	pages := make([]*offheap.Array[ref], (size+pageLen-1)/pageLen)
	for p := range pages {
		pages[p] = offheap.New[ref](int(min(size, pageLen)))
	}
	x := index{slots: pages, mask: size - 1, ownSlots: make([]uint64, (len(pages)+63)/64), freeOwned: true}
	for p := range pages {
		x.ownSlots[p/64] |= 1 << (p % 64)
	}
	return x
}

// clone returns an index with the same contents that shares every page
// with x until it writes to it.
func (x *index) clone() index {
	return index{
		slots: slices.Clone(x.slots), files: slices.Clone(x.files), nfiles: x.nfiles,
		free: x.free, mask: x.mask, n: x.n,
		ownSlots: make([]uint64, len(x.ownSlots)), ownFiles: make([]uint64, len(x.ownFiles)),
	}
}

// size is the number of slots of the table.
func (x *index) size() int { return int(x.mask + 1) }

// oversized reports whether the table has more than 8 slots per entry
// (and is big enough for that to matter): after many removals, a rebuild
// gives a smaller table.
func (x *index) oversized() bool { return x.size() > 4096 && x.size() > 8*x.n }

// roomFor reports whether k more entries keep the table at most half full.
func (x *index) roomFor(k int) bool { return 2*(x.n+k) <= x.size() }

func slotOf(sum *[32]byte, mask uint64) uint64 {
	return binary.LittleEndian.Uint64(sum[:8]) & mask
}

// slot returns the table's slot i.
func (x *index) slot(i uint64) ref { return x.slots[i>>pageBits].Get(int(i & (pageLen - 1))) }

// setSlot writes slot i, copying its page first unless x owns it.
func (x *index) setSlot(i uint64, r ref) {
	p := i >> pageBits
	if !owns(x.ownSlots, int(p)) {
		x.slots[p] = x.slots[p].Clone()
		x.ownSlots[p/64] |= 1 << (p % 64)
	}
	x.slots[p].Set(int(i&(pageLen-1)), r)
}

// owns reports whether bit p of own is set.
func owns(own []uint64, p int) bool { return own[p/64]&(1<<(p%64)) != 0 }

// file returns the file numbered num (a ref's file - 1).
func (x *index) file(num uint32) *keydir.File[item] {
	return x.files[num>>pageBits][num&(pageLen-1)]
}

// numbers reports whether x numbers f num (a ref's file - 1): whether an
// Entry made for f under num may be kept (madeEntries.numbered).
func (x *index) numbers(num uint32, f *keydir.File[item]) bool {
	p, q := int(num>>pageBits), int(num&(pageLen-1))
	return p < len(x.files) && q < len(x.files[p]) && x.files[p][q] == f
}

// setFile numbers f num, adding or growing a page, or copying one x
// does not own, as needed. (A page of files grows from 8 to pageLen, so
// that a store of a few keys keeps a small one.)
func (x *index) setFile(num uint32, f *keydir.File[item]) {
	p, q := int(num>>pageBits), int(num&(pageLen-1))
	if p == len(x.files) {
		x.files = append(x.files, nil)
		if p/64 == len(x.ownFiles) {
			x.ownFiles = append(x.ownFiles, 0)
		}
	}
	switch page := x.files[p]; {
	case q >= len(page):
		grown := make([]*keydir.File[item], min(pageLen, max(8, 2*len(page), q+1)))
		copy(grown, page)
		x.files[p] = grown
	case !owns(x.ownFiles, p):
		x.files[p] = slices.Clone(page)
	}
	x.ownFiles[p/64] |= 1 << (p % 64)
	x.files[p][q] = f
}

// at returns the item and the file a full slot names.
func (x *index) at(r ref) (*item, *keydir.File[item]) {
	f := x.file(r.file - 1)
	return &f.Items()[r.pos], f
}

// addFile gives f a number and returns it (as a ref's file: 1 + it).
func (x *index) addFile(f *keydir.File[item]) uint32 {
	num := x.nfiles
	if k := len(x.free); k > 0 {
		num, x.free = x.free[k-1], x.free[:k-1] // no write: free may be shared (freeFile)
	} else {
		x.nfiles++
	}
	x.setFile(num, f)
	return num + 1
}

// freeFile makes file number num (a ref's file - 1) free for reuse.
func (x *index) freeFile(num uint32) {
	x.setFile(num, nil)
	if !x.freeOwned { // shared with the index x was cloned from: append must copy
		x.free, x.freeOwned = slices.Clip(x.free), true
	}
	x.free = append(x.free, num)
}

// insertFile adds the items of f whose keys are not present yet, calls
// dup with each one whose key is, and reports whether there was none. The
// table must have been sized for every insert.
func (x *index) insertFile(f *keydir.File[item], dup func(f *keydir.File[item], pos int)) bool {
	if len(f.Items()) == 0 {
		return true
	}
	num, added, all := x.addFile(f), false, true
	for pos := range f.Items() {
		if x.insert(ref{num, uint32(pos)}) {
			added = true
			continue
		}
		all = false
		if dup != nil {
			dup(f, pos)
		}
	}
	if !added {
		x.freeFile(num - 1)
	}
	return all
}

// insert adds r unless its key is already present; it reports whether it
// did.
func (x *index) insert(r ref) bool {
	it, _ := x.at(r)
	i := slotOf(&it.sum, x.mask)
	for {
		s := x.slot(i)
		if s.file == 0 {
			x.setSlot(i, r)
			x.n++
			return true
		}
		if o, _ := x.at(s); o.sum == it.sum {
			return false
		}
		i = (i + 1) & x.mask
	}
}

// removeFile deletes the items of f from the table and frees its number,
// which it returns (as a ref's file: 1 + it; 0 if f had none); it
// reports false if one of the items was not there (its key is held by an
// entry of another file).
func (x *index) removeFile(f *keydir.File[item]) (uint32, bool) {
	var num uint32
	for pos := range f.Items() {
		n, ok := x.remove(f, pos)
		if !ok {
			return 0, false
		}
		num = n
	}
	if num != 0 {
		x.freeFile(num - 1)
	}
	return num, true
}

// remove deletes the item at pos of f itself (not another entry with its
// key: entryAt) and reports whether it was there, with f's number. The
// entries after it in its probe run move back, so that no lookup ever
// needs a tombstone (Knuth's algorithm R).
func (x *index) remove(f *keydir.File[item], pos int) (uint32, bool) {
	i := slotOf(&f.Items()[pos].sum, x.mask)
	for {
		s := x.slot(i)
		if s.file == 0 {
			return 0, false
		}
		if x.names(s, f, pos) {
			break
		}
		i = (i + 1) & x.mask
	}
	num := x.slot(i).file
	for j := i; ; {
		j = (j + 1) & x.mask
		s := x.slot(j)
		if s.file == 0 {
			break
		}
		// s may fill the hole at i only if its home slot is not
		// cyclically within (i, j]: otherwise a lookup for it would stop
		// at the hole.
		it, _ := x.at(s)
		h := slotOf(&it.sum, x.mask)
		if (j-h)&x.mask >= (j-i)&x.mask {
			x.setSlot(i, s)
			i = j
		}
	}
	x.setSlot(i, ref{})
	x.n--
	return num, true
}

// holds reports whether the entry at pos of f is the one the table holds
// for its key (the entry in effect).
func (x *index) holds(f *keydir.File[item], pos int) bool {
	_, _, r := x.lookup(&f.Items()[pos].sum)
	return r.file != 0 && x.names(r, f, pos)
}

// names reports whether the full slot r is the entry at pos of f: the
// same file and position (entryAt), not an item at the same address.
func (x *index) names(r ref, f *keydir.File[item], pos int) bool {
	return x.file(r.file-1) == f && int(r.pos) == pos
}

// get returns the item for sum and its file, or nil.
func (x *index) get(sum *[32]byte) (*item, *keydir.File[item]) {
	it, f, _ := x.lookup(sum)
	return it, f
}

// lookup is get, with the item's ref.
func (x *index) lookup(sum *[32]byte) (*item, *keydir.File[item], ref) {
	if x.n == 0 {
		return nil, nil, ref{}
	}
	i := slotOf(sum, x.mask)
	for {
		s := x.slot(i)
		if s.file == 0 {
			return nil, nil, ref{}
		}
		if it, f := x.at(s); it.sum == *sum {
			return it, f, s
		}
		i = (i + 1) & x.mask
	}
}
