package keydir

import (
	"slices"

	"github.com/keytool/keytool/internal/offheap"
)

// numbers gives each file a loader's rows hold a number, which its row
// keeps (rowData.num) while the row stands for the same File, and maps
// the numbers back to the Files: a store's index holds a file's number
// and an item's position, 8 bytes and no pointer, and reads the file
// through the snapshot it was built from (Snapshot.FileAt). The numbers
// are the loader's, not each store's, so that one pointer a file is kept
// for every store of the loader (docs/design.md, "Memory of a loaded
// store", step 5).
//
// A published snapshot's numbers are never written again: the loader
// clones them after each publish (clone) and copies a page the first
// time it writes to it. A number a reload frees goes back to use only
// after the snapshot without its file is published (release), so that
// within one reload's change (Diff) a number names one file: what went
// in the snapshot before, or what came in the new one, never both.
//
// Across snapshots a number names one file together with its
// generation (gen): how many times the number was given again. What
// keeps a file's number from one snapshot to the next (a store's Entries,
// kept by number) tells the file that had it from the one given it after
// by the generation, not by the *File, which a file of one key will not
// have of its own (docs/design.md, "Memory of a loaded store", step 5).
type numbers[T any] struct {
	pages [][]*File[T] // by number - 1, in pages of pageLen; nil: a number free for reuse
	n     uint32       // numbers given out so far
	free  []uint32     // the numbers free for reuse
	// gens are the numbers' generations, by number - 1 in pages of
	// pageLen, as pages; a page past the end or nil: all 0. A page is
	// made when a number of it is first given again, so that a load that
	// frees no number keeps none; it holds no pointer, and is mapped
	// outside the heap (internal/offheap) as the rows' mapped parts are.
	gens []*offheap.Array[uint32]
	// own: the pages these numbers may write in place (a bit per page,
	// for the page and its generations), those made or copied since
	// clone; freeOwned: free is their own.
	own       []uint64
	freeOwned bool
}

// pageBits sets the size of a page of numbers: 4,096 pointers (32 KiB).
const (
	pageBits = 12
	pageLen  = 1 << pageBits
)

// clone returns numbers with the same contents, sharing every page with
// ns until it writes to it.
func (ns *numbers[T]) clone() numbers[T] {
	return numbers[T]{pages: slices.Clone(ns.pages), n: ns.n, free: ns.free, gens: slices.Clone(ns.gens), own: make([]uint64, len(ns.own))}
}

// at returns the file numbered num (nil: none).
func (ns *numbers[T]) at(num uint32) *File[T] {
	p, q := int((num-1)>>pageBits), int((num-1)&(pageLen-1))
	if num == 0 || p >= len(ns.pages) || q >= len(ns.pages[p]) {
		return nil
	}
	return ns.pages[p][q]
}

// genAt returns the generation of number num: how many times it was
// given again (0: never, or no such number).
func (ns *numbers[T]) genAt(num uint32) uint32 {
	p, q := int((num-1)>>pageBits), int((num-1)&(pageLen-1))
	if num == 0 || p >= len(ns.gens) || ns.gens[p] == nil {
		return 0
	}
	return ns.gens[p].Get(q)
}

// set numbers f num (nil: frees the place), adding or growing a page, or
// copying one ns does not own, as needed. (A page grows from 8 to
// pageLen, so that a store of a few keys keeps a small one.)
func (ns *numbers[T]) set(num uint32, f *File[T]) {
	p, q := ns.writable(num)
	if page := ns.pages[p]; q >= len(page) {
		grown := make([]*File[T], min(pageLen, max(8, 2*len(page), q+1)))
		copy(grown, page)
		ns.pages[p] = grown
	}
	ns.pages[p][q] = f
}

// nextGen counts up the generation of num, which is being given again.
func (ns *numbers[T]) nextGen(num uint32) {
	p, q := ns.writable(num)
	for p >= len(ns.gens) {
		ns.gens = append(ns.gens, nil)
	}
	if ns.gens[p] == nil {
		ns.gens[p] = offheap.New[uint32](pageLen) // made here: ns owns it
	}
	ns.gens[p].Set(q, ns.gens[p].Get(q)+1)
}

// writable returns the page of num and num's place in it, adding the page
// if need be and copying the page and its generations if ns does not own
// them (each published snapshot's numbers are never written again).
func (ns *numbers[T]) writable(num uint32) (p, q int) {
	p, q = int((num-1)>>pageBits), int((num-1)&(pageLen-1))
	if p == len(ns.pages) {
		ns.pages = append(ns.pages, nil)
		if p/64 == len(ns.own) {
			ns.own = append(ns.own, 0)
		}
	}
	if ns.own[p/64]&(1<<(p%64)) == 0 {
		ns.pages[p] = slices.Clone(ns.pages[p])
		if p < len(ns.gens) && ns.gens[p] != nil {
			ns.gens[p] = ns.gens[p].Clone()
		}
		ns.own[p/64] |= 1 << (p % 64)
	}
	return p, q
}

// add gives f a number and returns it (never 0).
func (ns *numbers[T]) add(f *File[T]) uint32 {
	var num uint32
	if k := len(ns.free); k > 0 {
		num, ns.free = ns.free[k-1], ns.free[:k-1] // no write: free may be shared (release)
		ns.nextGen(num)
	} else {
		ns.n++
		num = ns.n
	}
	ns.set(num, f)
	return num
}

// release frees the numbers nums, whose files the snapshot about to be
// published no longer has: it is called as the snapshot is assembled,
// after every number of its reload was given (add), so that none is
// given again before the next reload.
func (ns *numbers[T]) release(nums []uint32) {
	if len(nums) == 0 {
		return
	}
	for _, num := range nums {
		ns.set(num, nil)
	}
	if !ns.freeOwned { // shared with the numbers these were cloned from: append must copy
		ns.free, ns.freeOwned = slices.Clip(ns.free), true
	}
	ns.free = append(ns.free, nums...)
}

// unused returns the numbers given to no row of rows (each source's
// list), for a snapshot assembled whole: a row a reload dropped without
// an edit saying so (a source listed or read whole) leaves its number
// to be found here. (Its parameter spells out rowList: the generic alias
// in a generic type's method made go1.26's compiler fail, an internal
// compiler error in a package importing this one: golang/go#74274.)
func (ns *numbers[T]) unused(rows []chunked[rowRefs[T], rowData]) []uint32 {
	used := make([]uint64, (ns.n+64)/64)
	for _, list := range rows {
		for _, ch := range list.chunks {
			for k := range ch.len() {
				if num := ch.d.Get(k).num; num != 0 {
					used[num/64] |= 1 << (num % 64)
				}
			}
		}
	}
	var out []uint32
	for num := uint32(1); num <= ns.n; num++ {
		if used[num/64]&(1<<(num%64)) == 0 && ns.at(num) != nil {
			out = append(out, num)
		}
	}
	return out
}
