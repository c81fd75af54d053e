package keydir

import (
	"cmp"
	"runtime"
	"slices"
	"strings"
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
// no File of its own where T holds no pointer (oneItem, parsed), and,
// where its name is short enough, nothing on the heap at all (pages):
// its File, when a caller asks for one, is made (at).
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
	// without one (its mapped part's src is not 0) whose name is too long
	// for its mapped part (nameCap), the file's packed name (packName);
	// else nil. A number is a file's where its heap part is not nil or
	// its mapped part's src is not 0 (entry).
	//
	// Where ones is not nil a page's heap part is made only once a
	// number of the page needs one, and is then as long as its mapped
	// part: a page of files of one item with short names keeps none. The
	// collector marks every pointer of every page at each collection, a
	// heap object per file behind them: at 1,000,000 such files 8 MB of
	// pointers and a million packed names made one collection 20–23 ms of
	// CPU where a store of one key took 1.3–1.8 (docs/design.md, "Memory
	// of a loaded store", step 6).
	//
	// A page's heap part is behind a pointer (8 bytes a page in the
	// list, where a slice's header took 24), and where ones is not nil
	// the list ends at the last page that has one (a page past it has
	// none): the list is on the heap twice, the loader's and its
	// snapshot's, some 500 pages at a million files, and every live heap
	// byte is one the handshakes' garbage may not fill before the
	// collector runs (docs/benchmarks.md, "The collector at a million
	// single-key files"). heap reads it; count says how many pages
	// there are.
	pages []*[]unsafe.Pointer
	// ones are each number's mapped part, page by page beside pages: a
	// file of one item kept without a File keeps the item, its source and
	// (if it fits) its name there. nil where T holds a pointer (lean): the
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
	// listsShared: pages, ones and gens are the slices of the numbers
	// these were cloned from (a published snapshot's), copied on the
	// first write (writable). Cloned at every publish and kept by the
	// loader until its next reload, a copy made then was a second list
	// of every page for the collector to read at each collection: 491
	// pointers at a million single-key files.
	listsShared bool
}

// oneItem is a number's mapped part: for a file of one item kept without
// a File, the item, its source's index plus one, and its name when it
// fits (nameLen not 0: the name's first nameLen bytes; 0: the name is
// packed in the number's heap part); src 0: the number's heap part is a
// *File[T] (or nothing). At 100,000 single-key files the File's 48 heap
// bytes a key were resident some 2.9 times over, the item here once
// (docs/design.md, "Memory of a loaded store", step 5); the name, where
// it was a heap object of its own and a pointer to it (24 heap bytes),
// costs the collector nothing here (step 6).
type oneItem[T any] struct {
	item    T
	src     uint32
	nameLen uint8
	name    [nameCap]byte
}

// nameCap is the longest name a number's mapped part holds: with the
// length byte and the source, 32 bytes beside the item, so that
// authkeys' oneItem (an item of 32 bytes) is 64 bytes, aligned as the
// item is. A longer name is packed on the heap (packName), as every
// name was before.
const nameCap = 27

// pageBits sets the size of a page of numbers: 2,048 pointers (16 KiB)
// where it has a heap part, and 2,048 oneItems in its mapped part (128
// KiB for authkeys' items, above offheap.MinMapped). A reload that writes
// a number copies its page, mapped part and generations on first write;
// a page's owner (*offheap.Array) and its place in the lists of pages
// are on the heap, which the collector marks at every collection. Pages
// of 1,024 kept twice the owners (at a million single-key files, with the
// index's pages of 4,096 slots and chunks of 2,048, collections a
// handshake 1.05–1.06× those at one key, 1.03× with the larger three);
// pages of 4,096 cost a reload of one changed file of 100,000 1.35–1.8×
// the CPU (docs/benchmarks.md, "The collector at a million single-key
// files"). A page's generations (8 KiB) are below MinMapped, on the
// heap: made only where a number of the page was given again.
const (
	pageBits = 11
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

// clone returns numbers with the same contents, sharing every page, and
// the lists of them (listsShared), with ns until it writes to them.
func (ns *numbers[T]) clone() numbers[T] {
	return numbers[T]{pages: ns.pages, ones: ns.ones, lean: ns.lean, n: ns.n, free: ns.free, gens: ns.gens, own: make([]uint64, len(ns.own)), listsShared: true}
}

// entry returns number num's heap part and its mapped part's src: src
// 0, its *File[T] (nil: no file); else a file kept without a File, its
// heap part its packed name or, where its name is in its mapped part,
// nil.
func (ns *numbers[T]) entry(num uint32) (h unsafe.Pointer, src uint32) {
	p, q := int((num-1)>>pageBits), int((num-1)&(pageLen-1))
	if num == 0 {
		return nil, 0
	}
	if ns.ones == nil {
		if hp := ns.heap(p); q < len(hp) {
			return hp[q], 0
		}
		return nil, 0
	}
	// pageLen, spelled out: this is every lookup's probe (ItemAt).
	if p >= len(ns.ones) {
		return nil, 0
	}
	page := ns.ones[p]
	if page == nil || q >= page.Len() {
		return nil, 0
	}
	if p < len(ns.pages) {
		if hp := ns.pages[p]; hp != nil {
			h = (*hp)[q]
		}
	}
	src = page.View()[q].src
	runtime.KeepAlive(page)
	return h, src
}

// heap returns page p's heap part (nil: none).
func (ns *numbers[T]) heap(p int) []unsafe.Pointer {
	if p < len(ns.pages) {
		if hp := ns.pages[p]; hp != nil {
			return *hp
		}
	}
	return nil
}

// setHeap makes hp page p's heap part, the list of them growing to
// hold it where it ends before p.
func (ns *numbers[T]) setHeap(p int, hp []unsafe.Pointer) {
	for p >= len(ns.pages) {
		ns.pages = append(ns.pages, nil)
	}
	ns.pages[p] = &hp
}

// count returns the number of pages: of mapped parts where there are
// (ones; the heap parts' list may end before), else of heap parts.
func (ns *numbers[T]) count() int {
	if ns.lean != nil {
		return len(ns.ones)
	}
	return len(ns.pages)
}

// pageLen returns the number of places page p has: its mapped part's
// where it has one (its heap part may be nil), else its heap part's.
func (ns *numbers[T]) pageLen(p int) int {
	if ns.ones == nil {
		return len(ns.heap(p))
	}
	if page := ns.ones[p]; page != nil {
		return page.Len()
	}
	return 0
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
	h, src := ns.entry(num)
	return h != nil || src != 0
}

// at returns the file numbered num (nil: none): its File, or, for a file
// of one item kept without one, a File made now, whose item and name are
// its own copies — never a pointer into mapped memory, which lives only
// as long as the numbers that read it.
func (ns *numbers[T]) at(num uint32) *File[T] {
	h, src := ns.entry(num)
	switch {
	case src == 0:
		return (*File[T])(h) // nil: none
	case h != nil:
		return &File[T]{src: ns.lean[src-1], name: (*byte)(h), one: ns.item(num)}
	}
	v, page := ns.nameView(num)
	f := &File[T]{src: ns.lean[src-1], name: packName(v), one: ns.item(num)}
	runtime.KeepAlive(page)
	return f
}

// name returns the name of file num, which must be one (File.Name): a
// copy of its own where the name is in the number's mapped part, which
// the values of another array may fill once these numbers are gone
// (offheap keeps the memory of an array that is gone for the next). A
// caller that only compares the name uses compareName, which copies
// nothing.
func (ns *numbers[T]) name(num uint32) string {
	v, page := ns.nameView(num)
	if page == nil {
		return v
	}
	name := strings.Clone(v)
	runtime.KeepAlive(page)
	return name
}

// compareName compares the name of file num, which must be one, with
// name (cmp.Compare), reading a name in the number's mapped part where
// it is: the name searches of every reload compare names at each step,
// where a copy a step would be garbage.
func (ns *numbers[T]) compareName(num uint32, name string) int {
	v, page := ns.nameView(num)
	c := cmp.Compare(v, name)
	runtime.KeepAlive(page)
	return c
}

// path returns the path of file num, which must be one (File.Path).
func (ns *numbers[T]) path(num uint32) string {
	h, src := ns.entry(num)
	if src == 0 {
		return (*File[T])(h).Path()
	}
	prefix := ns.lean[src-1].prefix
	if prefix == "" { // a single-file source's: the name is the path (a concatenation with "" would be the view itself)
		return ns.name(num)
	}
	v, page := ns.nameView(num)
	path := prefix + v
	runtime.KeepAlive(page)
	return path
}

// nameView returns the name of file num, which must be one, and the
// mapped part it is read from: nil, or the page whose memory the name
// is a view of, valid only until the caller's last use of the page
// (runtime.KeepAlive; offheap's rule) — a view to compare or copy,
// never to keep.
func (ns *numbers[T]) nameView(num uint32) (name string, page *offheap.Array[oneItem[T]]) {
	h, src := ns.entry(num)
	switch {
	case src == 0:
		return (*File[T])(h).Name(), nil
	case h != nil:
		return unpackName((*byte)(h)), nil
	}
	p, q := int((num-1)>>pageBits), int((num-1)&(pageLen-1))
	page = ns.ones[p]
	one := &page.View()[q]
	return unsafe.String(&one.name[0], int(one.nameLen)), page
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
// does not own, as needed. A page's heap part is made only for an h not
// nil, where ones is not nil (pages). (The first page grows from 8 to
// pageLen, so that a store of a few keys keeps a small one; a page past
// it is made whole: grown by doubling, each smaller mapped part stayed
// mapped until the collector ran its cleanup — up to 32 bytes a key at
// the end of a cold load, where its peak is: docs/design.md, "Memory of
// a loaded store", step 6.)
func (ns *numbers[T]) set(num uint32, h unsafe.Pointer, one oneItem[T]) {
	p, q := ns.writable(num)
	if n := ns.pageLen(p); q >= n {
		ns.grow(p, n, q)
	}
	if h != nil && ns.heap(p) == nil {
		ns.setHeap(p, make([]unsafe.Pointer, ns.pageLen(p)))
	}
	if hp := ns.heap(p); hp != nil {
		hp[q] = h
	}
	if ns.ones != nil {
		ns.ones[p].Set(q, one)
	}
}

// grow makes page p, of n places, hold place q: the heap part, where
// there is one, and the mapped part.
func (ns *numbers[T]) grow(p, n, q int) {
	size := pageLen
	if p == 0 {
		size = min(pageLen, max(8, 2*n, q+1))
	}
	if ns.ones == nil || ns.heap(p) != nil {
		grown := make([]unsafe.Pointer, size)
		copy(grown, ns.heap(p))
		ns.setHeap(p, grown)
	}
	if ns.ones != nil {
		ones := offheap.New[oneItem[T]](size)
		if old := ns.ones[p]; old != nil {
			copy(ones.View(), old.View())
			runtime.KeepAlive(old)
		}
		ns.ones[p] = ones
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
	if ns.listsShared {
		ns.pages, ns.ones, ns.gens = slices.Clone(ns.pages), slices.Clone(ns.ones), slices.Clone(ns.gens)
		ns.listsShared = false
	}
	p, q = int((num-1)>>pageBits), int((num-1)&(pageLen-1))
	if p == ns.count() {
		if ns.lean != nil {
			ns.ones = append(ns.ones, nil)
		} else {
			ns.pages = append(ns.pages, nil)
		}
		if p/64 == len(ns.own) {
			ns.own = append(ns.own, 0)
		}
	}
	if ns.own[p/64]&(1<<(p%64)) == 0 {
		if hp := ns.heap(p); hp != nil {
			ns.setHeap(p, slices.Clone(hp))
		}
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
// item, source and name in the mapped part — a name longer than nameCap
// packed in the heap part. (name is only read for such a file.)
func (ns *numbers[T]) add(p parsed[T], name string) uint32 {
	var num uint32
	if k := len(ns.free); k > 0 {
		num, ns.free = ns.free[k-1], ns.free[:k-1] // no write: free may be shared (release)
		ns.nextGen(num)
	} else {
		num = ns.n + 1
		ns.n = num
	}
	switch one := (oneItem[T]{item: p.item, src: p.src}); {
	case p.file != nil:
		ns.set(num, unsafe.Pointer(p.file), oneItem[T]{})
	case len(name) <= nameCap && name != "":
		one.nameLen = uint8(copy(one.name[:], name))
		ns.set(num, nil, one)
	default:
		ns.set(num, unsafe.Pointer(packName(name)), one)
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
