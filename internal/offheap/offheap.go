// Package offheap keeps arrays of pointer-free values in memory the Go
// heap does not hold: memory mapped from the system, freed once nothing
// refers to it any more.
//
// Why: a server holding a million trust entries pays for what it keeps
// twice over when the Go heap keeps it. The collector lets the heap grow
// to twice what is live before it collects (GOGC=100), so every live heap
// byte costs about two resident bytes, and the handshakes' garbage fills
// the space between; and each collection marks the live heap. Memory
// mapped outside the heap is resident once, and the collector neither
// reads it nor counts it towards its goal (docs/design.md, "Memory of a
// loaded store").
//
// How data flows: New maps an array of n values of E and returns a
// *Array, a small heap object that owns it. A finalizer
// (runtime.SetFinalizer) gives the memory back once the *Array is
// unreachable (kept for the next array of its size, or unmapped: below),
// so its lifetime is the garbage collector's to decide, as for any heap
// object — with one rule the collector cannot check: nothing may keep a
// pointer or a slice into the array past its last use of the *Array.
// Such a slice would read and write the values of whichever array is
// given the memory next, or fault once it is unmapped. Get and Set copy
// values in and out and keep the *Array alive until they are done; View
// hands out the slice itself, for bulk reads and writes that end before
// the caller's last use of the *Array (then runtime.KeepAlive).
//
// The collector does not count mapped memory towards its goal, so it
// would not collect sooner for mapped garbage: arrays replaced by copies
// (a reload's copy-on-write pages) could pile up unmapped-not-yet until
// the heap's own garbage or the two-minute forced collection runs one.
// New therefore keeps its own pace: once the arrays it handed out since
// the last collection pass a quarter of what was mapped at that
// collection (and 16 MiB), it runs a collection itself (runtime.GC), so
// mapped garbage stays within about a quarter of what is live.
//
// The memory of an array that is gone is kept a while for the next array
// of its size, and unmapped if two collections pass without one asking
// for it. A reload replaces the same few pages each time, and memory
// fresh from the system is dear: a fault on each page's first write, and
// the unmapping. An array of 144 KiB written whole and dropped costs
// 370–430 µs mapped anew each time on this project's virtual machines,
// 37–40 µs kept (BenchmarkNewDropped). What is kept is what a collection
// found gone, which the pace bounds: where the next arrays are of its
// sizes (a reload's pages) it holds the resident set at its peak between
// collections; memory of a size no array asks for stays beside the
// arrays mapped since until it is unmapped, so the resident set may be
// above that peak by what the last one or two collections found gone. A
// load, which outgrows whole arrays no reload asks for, gives its
// garbage back at once (Release).
//
// E must hold no pointer (New panics otherwise): the collector does not
// read mapped memory, so a pointer kept there would not keep its target
// alive. Arrays smaller than MinMapped bytes, every array on systems
// without mmap, and every array of a build with the race detector (which
// does not see mapped memory) live on the Go heap instead; the API is the
// same.
//
// Mapped memory is outside GOMEMLIMIT as well as outside GOGC: a process
// that sets a memory limit close to its container's must leave room for
// what its stores map (about 141 bytes a key of a directory of single-key
// files, 20 of JWK Sets; docs/design.md, "Memory outside the heap").
package offheap

import (
	"fmt"
	"math"
	"reflect"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"unsafe"
)

// MinMapped is the smallest array, in bytes, that New maps outside the
// heap: below it, the page that mapping rounds up to, and a system call to
// map and another to unmap, cost more than the heap's copy.
const MinMapped = 16 << 10

// Array is an array of values of E in memory outside the Go heap (or on
// it, when small). It is not safe for concurrent writes; concurrent reads
// are, as for a slice.
//
// It is two words on the heap (16 bytes, where a slice and a size took
// 32), which the collector marks at every collection while the array is
// live, and, where mapped, does not read (mappedOwner): a store of a
// million single-key files holds some 1,000 arrays (docs/design.md,
// "Memory of a loaded store"), and what they make the collector read
// shortens its cycle, its goal being at the runtime's 4 MB floor
// (docs/benchmarks.md, "The collector at a million single-key files").
type Array[E any] struct {
	p *E     // the first value
	n uint32 // values
	// esize is the bytes of a value where the values are mapped (the
	// mapping is n*esize bytes from p); 0: they are on the heap.
	esize uint32
}

// mappedArray is an Array's layout, its values' type left out: what
// its finalizer reads (keepMapped).
type mappedArray struct {
	p        unsafe.Pointer
	n, esize uint32
}

// mappedOwner is the same layout with the first value's address as a
// number: the type a mapped array's *Array is allocated as. It holds no
// pointer, so the collector puts it with the objects it marks but never
// reads (a noscan span), where an *Array holding p would be read at every
// collection, and read again for its finalizer (the runtime scans an
// object with a finalizer as a root, to keep what it points to) — 32
// bytes of the collector's work an array, some 1,000 arrays at a million
// single-key files. That is sound only because p points outside the Go
// heap, which the collector ignores wherever it finds it; a heap array's
// *Array is allocated as itself, its p a pointer that keeps the values
// alive.
type mappedOwner struct {
	p        uintptr
	n, esize uint32
}

// mapped counts the bytes mapped by New and not unmapped yet.
var mapped atomic.Int64

// Mapped returns the bytes this process holds mapped now: in arrays, and
// kept for arrays to come.
func Mapped() int64 { return mapped.Load() }

// New returns an array of n zero values of E. It panics if E holds a
// pointer.
func New[E any](n int) *Array[E] { return newArray[E](n, true) }

// newArray returns an array of n values of E, zero if zeroed is set;
// otherwise its values are whatever the memory held (an array whose
// memory is kept: another's values), for a caller that writes them all.
func newArray[E any](n int, zeroed bool) *Array[E] {
	mustBePointerFree(reflect.TypeFor[E]())
	var zero E
	if n < 0 || uint64(n) > math.MaxUint32 || unsafe.Sizeof(zero) > 0 && uintptr(n) > math.MaxInt/unsafe.Sizeof(zero) {
		panic(fmt.Sprintf("offheap: an array of %d values of %d bytes", n, unsafe.Sizeof(zero)))
	}
	size := int(unsafe.Sizeof(zero)) * n
	var mem []byte
	if size >= MinMapped {
		mem = take(size, zeroed)
	}
	if mem == nil {
		return &Array[E]{p: unsafe.SliceData(make([]E, n)), n: uint32(n)}
	}
	o := newMappedOwner()
	*o = mappedOwner{p: uintptr(unsafe.Pointer(unsafe.SliceData(mem))), n: uint32(n), esize: uint32(unsafe.Sizeof(zero))}
	// A finalizer, not runtime.AddCleanup: a cleanup allocates its
	// argument and a closure on the heap, 40 bytes an array more for
	// the collector to mark at every collection, where a finalizer of a
	// function that is not generic allocates nothing there (a generic
	// one, one for every E, would be a closure). The finalizer runs after
	// the collection that finds the array gone, as a cleanup would; the
	// *Array itself, resurrected for it, is freed at the next one. It
	// points at nothing on the heap, so it holds nothing else alive.
	runtime.SetFinalizer(o, keepMapped)
	return (*Array[E])(unsafe.Pointer(o))
}

// newMappedOwner allocates a mapped array's owner. Where a word is 4
// bytes (386, arm, mips), a mappedOwner is 12: an object with no pointer
// under 16 bytes goes to the tiny allocator, which packs it with other
// small objects in one block, freed — and the owner's finalizer run —
// only once every one of them is unreachable, so that any live neighbour
// would keep a dropped array's memory mapped (found by review). There it
// is allocated padded to 16 bytes; the owner is at the object's start,
// as SetFinalizer requires.
func newMappedOwner() *mappedOwner {
	if unsafe.Sizeof(mappedOwner{}) < 16 {
		return &new(struct {
			o mappedOwner
			_ [16 - unsafe.Sizeof(mappedOwner{})]byte
		}).o
	}
	return new(mappedOwner)
}

// keepMapped is a mapped array's finalizer: its memory is kept for the
// next array of its size. It reads the address through mappedArray, as a
// pointer, not by turning the number back into one.
func keepMapped(o *mappedOwner) {
	a := (*mappedArray)(unsafe.Pointer(o))
	keep(unsafe.Slice((*byte)(a.p), uint64(a.n)*uint64(a.esize)))
}

// take returns size bytes of mapped memory, kept or new, or nil if there
// is no mmap on this system or no room for it; zeroed if zero is set,
// else kept memory holds what its last array left in it. Where nothing is
// mapped (a race build, a system without mmap) it returns before pace:
// a heap array is in the collector's goal, and counting it would run a
// collection every 16 MiB of them for garbage the collector already
// paces.
func take(size int, zero bool) []byte {
	if !mapsMemory {
		return nil
	}
	pace(int64(size))
	if mem := reuse(size); mem != nil {
		if zero {
			clear(mem)
		}
		return mem
	}
	mem, err := mapMemory(size)
	if err != nil {
		return nil
	}
	mapped.Add(int64(len(mem)))
	return mem
}

// keeps holds the memory of arrays that are gone, by size, newest last,
// for arrays to come. After each collection, trim unmaps what was kept
// at the one before and has not been taken since; it runs while anything
// is kept (armed), and costs nothing otherwise.
var keeps struct {
	sync.Mutex
	bySize   map[int][]keptMem
	armed    bool
	released uint64 // the collection Release ran: what it frees is unmapped
	cycles   [1]metrics.Sample
}

type keptMem struct {
	mem []byte
	old bool // kept when the last collection's trim ran
}

// keep is what an array's finalizer does (keepMapped): its memory is
// kept for the next array of its size.
func keep(mem []byte) {
	k := &keeps
	k.Lock()
	if k.released != 0 && gcCycles(k.cycles[:]) == k.released {
		k.Unlock()
		unmap(mem)
		return
	}
	defer k.Unlock()
	if k.bySize == nil {
		k.bySize = make(map[int][]keptMem)
	}
	k.bySize[len(mem)] = append(k.bySize[len(mem)], keptMem{mem: mem})
	if !k.armed {
		k.armed = true
		armTrim()
	}
}

// Release returns to the system the memory a large load left free: the
// heap's (debug.FreeOSMemory, a collection), the memory kept for arrays
// to come, and that of the arrays the collection finds gone, which would
// otherwise be kept for two more. Kept memory serves the pages reloads
// replace, a few at a time; a load frees whole arrays it outgrew, which
// no reload asks for, and which would leave the resident set above what
// the store keeps until two more collections have run — minutes, on a
// quiet server.
func Release() {
	debug.FreeOSMemory()
	k := &keeps
	k.Lock()
	k.released = gcCycles(k.cycles[:])
	gone := dropKept(true)
	k.Unlock()
	for _, mem := range gone {
		unmap(mem)
	}
}

// gcCycles returns the number of collections completed, read into
// sample.
func gcCycles(sample []metrics.Sample) uint64 {
	sample[0].Name = "/gc/cycles/total:gc-cycles"
	metrics.Read(sample)
	return sample[0].Value.Uint64()
}

// reuse takes the newest memory kept of size bytes, or returns nil.
func reuse(size int) []byte {
	k := &keeps
	k.Lock()
	defer k.Unlock()
	ks := k.bySize[size]
	if len(ks) == 0 {
		return nil
	}
	mem := ks[len(ks)-1].mem
	ks[len(ks)-1] = keptMem{}
	k.bySize[size] = ks[:len(ks)-1]
	return mem
}

// armTrim has trim run after the next collection: the cleanup of an
// object that is garbage at once (of 16 bytes or more, which the tiny
// allocator does not batch with others).
func armTrim() {
	runtime.AddCleanup(new([2]uint64), trim, 0)
}

// trim unmaps the memory kept before the last collection and not taken
// since, and marks the rest for the next collection's trim.
func trim(int) {
	k := &keeps
	k.Lock()
	gone := dropKept(false)
	if k.armed = len(k.bySize) > 0; k.armed {
		armTrim()
	}
	k.Unlock()
	for _, mem := range gone {
		unmap(mem)
	}
}

// dropKept takes out of keeps, whose lock the caller holds, the memory
// kept before the last trim (all: all of it), for the caller to unmap
// once it has let go of the lock, and marks the rest for the next trim.
func dropKept(all bool) (gone [][]byte) {
	k := &keeps
	for size, ks := range k.bySize {
		n := 0
		for _, m := range ks {
			if all || m.old {
				gone = append(gone, m.mem)
				continue
			}
			m.old = true
			ks[n] = m
			n++
		}
		clear(ks[n:])
		if n == 0 {
			delete(k.bySize, size)
		} else {
			k.bySize[size] = ks[:n]
		}
	}
	return gone
}

// The pace of collections for mapped memory (see the package comment).
var pacer struct {
	sync.Mutex
	sample [1]metrics.Sample
	cycles uint64 // the collector's count of cycles when last looked at
	base   int64  // Mapped then
	since  int64  // bytes handed out since
}

// minPace is the least mapped garbage that calls for a collection.
const minPace = 16 << 20

// pace accounts for an array of size bytes about to be handed out and
// collects if the arrays handed out since the last collection call for
// it: each may be replacing one that is garbage now, whose memory only a
// collection frees. A collection, its own or the runtime's, starts the
// count again at the next call (the cycle count has moved).
func pace(size int64) {
	p := &pacer
	p.Lock()
	defer p.Unlock()
	if c := gcCycles(p.sample[:]); c != p.cycles {
		p.cycles, p.base, p.since = c, Mapped(), 0
	}
	p.since += size
	if p.since >= max(p.base/4, minPace) {
		runtime.GC()
	}
}

func unmap(mem []byte) {
	if err := unmapMemory(mem); err != nil {
		// The memory stays mapped: a leak, not a fault; nothing else
		// can be done from a finalizer, trim's cleanup or Release.
		return
	}
	mapped.Add(-int64(len(mem)))
}

// Clone returns a new array holding a's values. Its memory is not
// cleared first: the copy writes all of it (a reload's copy-on-write
// pages and chunks, 64 to 192 KiB each).
func (a *Array[E]) Clone() *Array[E] {
	c := newArray[E](a.Len(), false)
	copy(c.View(), a.View())
	runtime.KeepAlive(a)
	runtime.KeepAlive(c)
	return c
}

// Len returns the number of values of a.
func (a *Array[E]) Len() int { return int(a.n) }

// Get returns value i.
func (a *Array[E]) Get(i int) E {
	v := a.View()[i]
	runtime.KeepAlive(a)
	return v
}

// Set writes value i.
func (a *Array[E]) Set(i int, v E) {
	a.View()[i] = v
	runtime.KeepAlive(a)
}

// View returns the array's values as a slice, valid only until the
// caller's last use of a: keep a alive past every use of the slice
// (runtime.KeepAlive(a)), and never store the slice.
func (a *Array[E]) View() []E { return unsafe.Slice(a.p, a.n) }

// PointerFree reports whether a value of E holds no pointer: whether
// New may keep an array of E (New panics otherwise). A caller whose
// element type is a parameter of its own checks it once, to keep its
// values on the heap where it may not.
func PointerFree[E any]() bool { return pointerFree(reflect.TypeFor[E]()) }

// mustBePointerFree panics if a value of t may hold a pointer the
// collector would have to see.
func mustBePointerFree(t reflect.Type) {
	if !pointerFree(t) {
		panic(fmt.Sprintf("offheap: %v holds a pointer; mapped memory is not read by the garbage collector", t))
	}
}

func pointerFree(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return true
	case reflect.Array:
		return t.Len() == 0 || pointerFree(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if !pointerFree(t.Field(i).Type) {
				return false
			}
		}
		return true
	}
	return false
}
