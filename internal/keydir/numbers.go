package keydir

import (
	"runtime"
	"slices"
	"unsafe"

	"github.com/keytool/keytool/internal/offheap"
)

// numbers gives each file a loader's rows hold a number, which its row
// keeps (rowData.num) while the row stands for the same file, and maps
// the numbers back to the files: a store's index holds a file's number
// and an item's position, 8 bytes and no pointer, and reads the file
// through the snapshot it was built from (Snapshot.RefAt, ItemAt). The
// numbers are the loader's, not each store's, so that one pointer a file
// is kept for every store of the loader (docs/design.md, "Memory of a
// loaded store", step 5). A file of one key is kept in them whole, with
// no File of its own where T holds no pointer (oneItem, parsed): its
// File, when a caller asks for one, is made (at).
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
// by the generation, not by the *File, which a file of one key does not
// have of its own (docs/design.md, "Memory of a loaded store", step 5).
type numbers[T any] struct {
	// pages are each number's heap part, by number - 1 in pages of
	// pageLen: its file's *File[T], or, for a file of one item kept
	// without one (its mapped part's src is not 0), the file's packed
	// name (packName). nil: a number free for reuse.
	pages [][]unsafe.Pointer
	// ones are each number's mapped part, page by page beside pages and
	// of their lengths: a file of one item kept without a File keeps the
	// item and its source there. nil where T holds a pointer (lean): the
	// collector does not read mapped memory, so such a T stays in a File.
	ones []*offheap.Array[oneItem[T]]
	// lean are, by source index, what the files of a source share
	// (fileSource), for the sources whose files of one item are kept
	// without a File (keepsLean); nil for the others, and lean is nil
	// where T holds a pointer (checked once, by New) or for numbers made
	// without a loader (SnapshotOf): every file keeps its File there.
	lean []*fileSource
	n    uint32   // numbers given out so far
	free []uint32 // the numbers free for reuse
	// gens are the numbers' generations, by number - 1 in pages of
	// pageLen, as pages; a page past the end or nil: all 0. A page is
	// made when a number of it is first given again, so that a load that
	// frees no number keeps none; it holds no pointer, and is mapped
	// outside the heap (internal/offheap) as the rows' mapped parts are.
	gens []*offheap.Array[uint32]
	// own: the pages these numbers may write in place (a bit per page,
	// for the page, its mapped part and its generations), those made or
	// copied since clone; freeOwned: free is their own.
	own       []uint64
	freeOwned bool
}

// oneItem is a number's mapped part: for a file of one item kept without
// a File, the item and its source's index plus one; src 0: the number's
// heap part is a *File[T] (or nothing). At 100,000 single-key files the
// File's 48 heap bytes a key were resident some 2.9 times over, the item
// here once (docs/design.md, "Memory of a loaded store", step 5).
type oneItem[T any] struct {
	item T
	src  uint32
}

// pageBits sets the size of a page of numbers: 1,024 pointers (8 KiB),
// and 1,024 oneItems in its mapped part (36 KiB for authkeys' items, nine
// pages of memory, above offheap.MinMapped). A reload that writes a
// number copies its page, mapped part and generations on first write;
// pages of 4,096 made that a 144 KiB mapping faulted in anew, a reload of
// one changed file of 100,000 single-key files about twice the CPU it took
// before step 5 (c) (docs/design.md, "Memory of a loaded store", step 6).
// A page's generations (4 KiB) are below MinMapped, on the heap: made only
// where a number of the page was given again.
const (
	pageBits = 10
	pageLen  = 1 << pageBits
)

// leanNumbers returns numbers that keep a file of one item of the
// sources srcs gives without a File, where T holds no pointer: a
// revocation source's files keep theirs, since the revocation set holds
// a File for each of its entries anyway (Found).
func leanNumbers[T any](srcs []*fileSource) numbers[T] {
	if !offheap.PointerFree[T]() {
		return numbers[T]{}
	}
	lean := make([]*fileSource, len(srcs))
	for i, s := range srcs {
		if !s.revocation {
			lean[i] = s
		}
	}
	return numbers[T]{lean: lean}
}

// clone returns numbers with the same contents, sharing every page with
// ns until it writes to it.
func (ns *numbers[T]) clone() numbers[T] {
	return numbers[T]{pages: slices.Clone(ns.pages), ones: slices.Clone(ns.ones), lean: ns.lean, n: ns.n, free: ns.free, gens: slices.Clone(ns.gens), own: make([]uint64, len(ns.own))}
}

// entry returns number num's heap part (nil: no file) and its mapped
// part's src (0: the heap part is a *File[T]).
func (ns *numbers[T]) entry(num uint32) (h unsafe.Pointer, src uint32) {
	p, q := int((num-1)>>pageBits), int((num-1)&(pageLen-1))
	if num == 0 || p >= len(ns.pages) || q >= len(ns.pages[p]) {
		return nil, 0
	}
	if h = ns.pages[p][q]; h == nil || ns.ones == nil {
		return h, 0
	}
	page := ns.ones[p]
	src = page.View()[q].src
	runtime.KeepAlive(page)
	return h, src
}

// item returns a copy of the item of file num, kept without a File
// (entry's src not 0). It and entry read the mapped part's fields
// through View, not a copy of the whole (offheap.Array.Get): a value of
// 36 bytes copied from copy to copy made the compiler's overlapping
// moves stall, a lookup's probe 60 ns where reading a File's item was 11
// (BenchmarkItemAt).
func (ns *numbers[T]) item(num uint32) T {
	p, q := int((num-1)>>pageBits), int((num-1)&(pageLen-1))
	page := ns.ones[p]
	it := page.View()[q].item
	runtime.KeepAlive(page)
	return it
}

// has reports whether num is a file's.
func (ns *numbers[T]) has(num uint32) bool {
	h, _ := ns.entry(num)
	return h != nil
}

// at returns the file numbered num (nil: none): its File, or, for a file
// of one item kept without one, a File made now, whose item is its own
// copy — never a pointer into mapped memory, which lives only as long as
// the numbers that read it.
func (ns *numbers[T]) at(num uint32) *File[T] {
	h, src := ns.entry(num)
	switch {
	case h == nil:
		return nil
	case src == 0:
		return (*File[T])(h)
	}
	return &File[T]{src: ns.lean[src-1], name: (*byte)(h), one: ns.item(num)}
}

// name returns the name of file num, which must be one (File.Name).
func (ns *numbers[T]) name(num uint32) string {
	h, src := ns.entry(num)
	if src == 0 {
		return (*File[T])(h).Name()
	}
	return unpackName((*byte)(h))
}

// path returns the path of file num, which must be one (File.Path).
func (ns *numbers[T]) path(num uint32) string {
	h, src := ns.entry(num)
	if src == 0 {
		return (*File[T])(h).Path()
	}
	return ns.lean[src-1].prefix + unpackName((*byte)(h))
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

// set gives number num the heap part h and the mapped part one (nil and
// zero: frees the place), adding or growing a page, or copying one ns
// does not own, as needed. (The first page grows from 8 to pageLen, so
// that a store of a few keys keeps a small one; a page past it is made
// whole: grown by doubling, each smaller mapped part stayed mapped until
// the collector ran its cleanup — up to 32 bytes a key at the end of a
// cold load, where its peak is: docs/design.md, "Memory of a loaded
// store", step 6.)
func (ns *numbers[T]) set(num uint32, h unsafe.Pointer, one oneItem[T]) {
	p, q := ns.writable(num)
	if page := ns.pages[p]; q >= len(page) {
		size := pageLen
		if p == 0 {
			size = min(pageLen, max(8, 2*len(page), q+1))
		}
		grown := make([]unsafe.Pointer, size)
		copy(grown, page)
		ns.pages[p] = grown
		if ns.ones != nil {
			ones := offheap.New[oneItem[T]](len(grown))
			if old := ns.ones[p]; old != nil {
				copy(ones.View(), old.View())
				runtime.KeepAlive(old)
			}
			ns.ones[p] = ones
		}
	}
	ns.pages[p][q] = h
	if ns.ones != nil {
		ns.ones[p].Set(q, one)
	}
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
// if need be and copying the page, its mapped part and its generations if
// ns does not own them (each published snapshot's numbers are never
// written again).
func (ns *numbers[T]) writable(num uint32) (p, q int) {
	p, q = int((num-1)>>pageBits), int((num-1)&(pageLen-1))
	if p == len(ns.pages) {
		ns.pages = append(ns.pages, nil)
		if ns.lean != nil {
			ns.ones = append(ns.ones, nil)
		}
		if p/64 == len(ns.own) {
			ns.own = append(ns.own, 0)
		}
	}
	if ns.own[p/64]&(1<<(p%64)) == 0 {
		ns.pages[p] = slices.Clone(ns.pages[p])
		if ns.ones != nil && ns.ones[p] != nil {
			ns.ones[p] = ns.ones[p].Clone()
		}
		if p < len(ns.gens) && ns.gens[p] != nil {
			ns.gens[p] = ns.gens[p].Clone()
		}
		ns.own[p/64] |= 1 << (p % 64)
	}
	return p, q
}

// add gives the file p a number and returns it (never 0): its File, or,
// for a file of one item the parse made none for (Loader.parsedOne), its
// packed name in the heap part and its item and source in the mapped
// part.
func (ns *numbers[T]) add(p parsed[T]) uint32 {
	var num uint32
	if k := len(ns.free); k > 0 {
		num, ns.free = ns.free[k-1], ns.free[:k-1] // no write: free may be shared (release)
		ns.nextGen(num)
	} else {
		num = ns.n + 1
		ns.n = num
	}
	if p.file != nil {
		ns.set(num, unsafe.Pointer(p.file), oneItem[T]{})
	} else {
		ns.set(num, unsafe.Pointer(p.name), p.one)
	}
	return num
}

// keepsLean reports whether a file of one item with no rare part whose
// source part is src is kept without a File: src is the part its
// source's files share (not a copy of its own), of a source ns keeps so
// (lean).
func (ns *numbers[T]) keepsLean(src *fileSource) bool {
	i := src.index
	return i >= 0 && i < len(ns.lean) && ns.lean[i] != nil && src == ns.lean[i]
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
		ns.set(num, nil, oneItem[T]{})
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
		if used[num/64]&(1<<(num%64)) == 0 && ns.has(num) {
			out = append(out, num)
		}
	}
	return out
}
