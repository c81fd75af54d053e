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
// A slot holds no pointer: it is a file's number in the loader's snapshot
// (keydir.Snapshot.FileAt) and the item's position in that file's Items,
// so that the garbage collector, which reads every pointer of the heap at
// each collection, never reads the table (docs/design.md, "Memory of a
// loaded store"). A full page of the table is mapped outside the Go heap
// (internal/offheap), where it is resident once instead of twice and the
// collector does not count it. The numbers are the loader's: the index
// keeps no pointer per file of its own.
//
// A published index is never written again. The table is kept in pages
// of pageLen, and a reload that changes a few files clones only the list
// of pages (clone), then copies each page the first time it writes to it
// (copy on write): a one-file change costs a few pages, not a copy of the
// whole table, and leaves the garbage collector next to nothing to
// collect (docs/design.md, "From a file change to a handshake decision").
type index struct {
	slots []*offheap.Array[ref] // pages of the table; one shorter page when it is smaller than pageLen
	// files is the loader's snapshot whose numbers the slots hold: the
	// snapshot the index was built from, but while update removes the
	// files gone, the one before it.
	files *keydir.Snapshot[item]
	mask  uint64
	n     int
	// The pages this index may write in place (a bit per page): those it
	// made or copied itself since clone.
	ownSlots []uint64
}

// pageBits sets the size of a page: 8,192 slots (64 KiB). A million keys
// make a table of 2,097,152 slots, 256 pages, whose list is what a
// reload copies whole. Each page keeps an owner (*offheap.Array) on the
// heap, which the collector marks at every collection, and every byte
// the store keeps there is one the handshakes' garbage may not fill
// before it runs; a reload copies each page it writes. Pages of 4,096
// kept twice the owners; pages of 8,192 with the numbers' pages of 2,048
// and chunks of 4,096 took collections a handshake at a million
// single-key files from 1.05–1.06× those at one key to 1.03×, and a
// reload of one changed file of 100,000 1.35–1.5× the time
// (docs/benchmarks.md, "The collector at a million single-key files").
const (
	pageBits = 13
	pageLen  = 1 << pageBits
)

// ref is an item of the index: its file's number (0: an empty slot),
// and its position in the file's Items. It names an entry by where it is
// in the snapshot whose numbers it holds: the index, and what asks
// whether an entry is in effect, compare entries so, never by a *File or
// the address of an item — a file of one key has no File of its own,
// one is made when asked for (docs/design.md, "Memory of a loaded store",
// step 5), and two makings of it are one file, as two entries of one key
// in one file are two entries.
type ref struct{ file, pos uint32 }

func newIndex(files *keydir.Snapshot[item], n int) index {
	size := uint64(8)
	if n > 2 {
		size = max(size, 1<<bits.Len64(uint64(2*n-1)))
	}
	pages := make([]*offheap.Array[ref], (size+pageLen-1)/pageLen)
	for p := range pages {
		pages[p] = offheap.New[ref](int(min(size, pageLen)))
	}
	x := index{slots: pages, files: files, mask: size - 1, ownSlots: make([]uint64, (len(pages)+63)/64)}
	for p := range pages {
		x.ownSlots[p/64] |= 1 << (p % 64)
	}
	return x
}

// clone returns an index with the same contents that shares every page
// with x until it writes to it.
func (x *index) clone() index {
	return index{slots: slices.Clone(x.slots), files: x.files, mask: x.mask, n: x.n, ownSlots: make([]uint64, len(x.ownSlots))}
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

// itemAt returns a copy of the item a full slot names, read out of
// x.files (keydir.Snapshot.ItemAt): a lookup keeps no pointer into a
// file's items, which a file of one key keeps in the snapshot's mapped
// memory (docs/design.md, "Memory of a loaded store", step 5).
func (x *index) itemAt(r ref) item { return x.files.ItemAt(r.file, int(r.pos)) }

// insertFile adds the n items of the file numbered num in x.files whose
// keys are not present yet, calls dup with each one whose key is, and
// reports whether there was none. The table must have been sized for
// every insert.
func (x *index) insertFile(num uint32, n int, dup func(at ref, sum [32]byte)) bool {
	all := true
	for pos := range n {
		r := ref{num, uint32(pos)}
		if x.insert(r) {
			continue
		}
		all = false
		if dup != nil {
			dup(r, x.itemAt(r).sum)
		}
	}
	return all
}

// insert adds r unless its key is already present; it reports whether it
// did.
func (x *index) insert(r ref) bool {
	sum := x.itemAt(r).sum
	i := slotOf(&sum, x.mask)
	for {
		s := x.slot(i)
		if s.file == 0 {
			x.setSlot(i, r)
			x.n++
			return true
		}
		if x.itemAt(s).sum == sum {
			return false
		}
		i = (i + 1) & x.mask
	}
}

// removeFile deletes the n items of the file numbered num in x.files
// from the table; it reports false if one of the items was not there
// (its key is held by an entry of another file).
func (x *index) removeFile(num uint32, n int) bool {
	for pos := range n {
		if !x.remove(ref{num, uint32(pos)}) {
			return false
		}
	}
	return true
}

// remove deletes the entry r, of a file x.files numbers, itself (not
// another entry with its key: ref) and reports whether it was there. The
// entries after it in its probe run move back, so that no lookup ever
// needs a tombstone (Knuth's algorithm R).
func (x *index) remove(r ref) bool {
	sum := x.itemAt(r).sum
	i := slotOf(&sum, x.mask)
	for {
		s := x.slot(i)
		if s.file == 0 {
			return false
		}
		if s == r {
			break
		}
		i = (i + 1) & x.mask
	}
	for j := i; ; {
		j = (j + 1) & x.mask
		s := x.slot(j)
		if s.file == 0 {
			break
		}
		// s may fill the hole at i only if its home slot is not
		// cyclically within (i, j]: otherwise a lookup for it would stop
		// at the hole.
		sum := x.itemAt(s).sum
		h := slotOf(&sum, x.mask)
		if (j-h)&x.mask >= (j-i)&x.mask {
			x.setSlot(i, s)
			i = j
		}
	}
	x.setSlot(i, ref{})
	x.n--
	return true
}

// holds reports whether the entry r, of a file x.files numbers, is the
// one the table holds for its key (the entry in effect).
func (x *index) holds(r ref) bool {
	sum := x.itemAt(r).sum
	return x.lookup(&sum) == r
}

// get returns the file of the entry in effect for sum, and its
// position there; ok false if there is none.
func (x *index) get(sum *[32]byte) (f keydir.FileRef[item], pos int, ok bool) {
	r := x.lookup(sum)
	if r.file == 0 {
		return f, 0, false
	}
	f, _ = x.files.RefAt(r.file)
	return f, int(r.pos), true
}

// lookup returns where the entry in effect for sum is (a file of 0:
// none). Each probe copies its slot's item out (keydir.Snapshot.ItemAt:
// from the snapshot's mapped pages for a file of one key).
func (x *index) lookup(sum *[32]byte) ref {
	if x.n == 0 {
		return ref{}
	}
	i := slotOf(sum, x.mask)
	for {
		s := x.slot(i)
		if s.file == 0 || x.files.ItemAt(s.file, int(s.pos)).sum == *sum {
			return s
		}
		i = (i + 1) & x.mask
	}
}
