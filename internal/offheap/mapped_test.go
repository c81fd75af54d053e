//go:build (linux || darwin || dragonfly || freebsd || illumos || netbsd || openbsd) && !race

package offheap

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// The tests of mapped memory itself: built where New maps (map_unix.go),
// which a race build does not.

// TestUnmappedOnceUnreachable: the memory goes back to the system once the
// Array is garbage, not before.
func TestUnmappedOnceUnreachable(t *testing.T) {
	before := settle()
	a := New[slot](1 << 20)
	if got := Mapped() - before; got != 8<<20 {
		t.Fatalf("Mapped grew by %d, want %d", got, 8<<20)
	}
	runtime.GC()
	runtime.GC()
	time.Sleep(10 * time.Millisecond)
	if got := Mapped() - before; got != 8<<20 {
		t.Fatalf("an array still in use was unmapped (Mapped %+d)", got)
	}
	a.Set(5, slot{1, 2})
	runtime.KeepAlive(a)
	a = nil
	collectUntilUnmapped(t, before, "an unreachable array is still mapped")
}

// collectUntilUnmapped runs collections until Mapped is back at base, or
// fails with what, after 10 s.
func collectUntilUnmapped(t *testing.T, base int64, what string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); Mapped() != base; {
		if time.Now().After(deadline) {
			t.Fatalf("%s (Mapped %+d)", what, Mapped()-base)
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
}

// settle returns Mapped once the arrays earlier tests dropped are
// unmapped: it collects until the figure stays the same a while.
func settle() int64 {
	last, same := Mapped(), 0
	for same < 5 {
		runtime.GC()
		time.Sleep(2 * time.Millisecond)
		if m := Mapped(); m == last {
			same++
		} else {
			last, same = m, 0
		}
	}
	return last
}

// TestNotOnTheHeap: a mapped array is not in the collector's heap.
func TestNotOnTheHeap(t *testing.T) {
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	a := New[slot](8 << 20) // 64 MiB
	runtime.ReadMemStats(&ms1)
	if grown := int64(ms1.HeapAlloc) - int64(ms0.HeapAlloc); grown > 1<<20 {
		t.Errorf("the heap grew by %d bytes for a 64 MiB mapped array", grown)
	}
	runtime.KeepAlive(a)
}

// TestReadersAndCollections reads mapped arrays while others are dropped
// and collected: a read never meets unmapped memory. (Not under -race,
// whose builds map nothing: race_test.go.)
func TestReadersAndCollections(t *testing.T) {
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				runtime.GC()
			}
		}
	}()
	for range 50 {
		a := New[slot](MinMapped)
		for i := range a.Len() {
			a.Set(i, slot{uint32(i), 1})
		}
		for i := range a.Len() {
			if a.Get(i).file != uint32(i) {
				t.Fatalf("value %d lost", i)
			}
		}
	}
	close(stop)
	wg.Wait()
}

// TestGarbagePaced: arrays mapped and dropped without any heap garbage
// to make the collector run are still unmapped, every few MiB — mapped
// memory does not count towards the collector's goal, so New paces
// collections itself.
func TestGarbagePaced(t *testing.T) {
	base := settle()
	peak := int64(0)
	for range 400 { // 400 MiB mapped in all
		a := New[byte](1 << 20)
		a.Set(0, 1)
		peak = max(peak, Mapped()-base)
	}
	// The finalizers that keep the memory and the cleanups that unmap it
	// run after each collection, on goroutines of their own: allow for
	// some not done yet.
	if peak > 64<<20 {
		t.Errorf("up to %d MiB mapped at once for arrays of 1 MiB dropped at once", peak>>20)
	}
}

// TestMemoryKeptForTheNextArray: the memory of an array that is gone
// is kept, and serves the next array of its size, zeroed, where mapping
// it anew would cost a fault on every page (see BenchmarkNewDropped);
// and it is unmapped once collections pass with no array asking for it.
func TestMemoryKeptForTheNextArray(t *testing.T) {
	base := settle()
	const n = 1 << 16 // 512 KiB, a size no other test uses
	a := New[slot](n)
	for i := range n {
		a.Set(i, slot{uint32(i), 7})
	}
	runtime.KeepAlive(a)
	a = nil
	was := waitKept(t, n*8)
	b := New[slot](n)
	if unsafe.SliceData(b.View()) != (*slot)(unsafe.Pointer(was)) {
		t.Fatal("the next array of the size was not given the memory kept")
	}
	if got := Mapped() - base; got != n*8 {
		t.Errorf("Mapped grew by %d for one array of %d bytes", got, n*8)
	}
	for i := range n {
		if b.Get(i) != (slot{}) {
			t.Fatalf("kept memory handed out unzeroed: value %d is %v", i, b.Get(i))
		}
	}
	runtime.KeepAlive(b)
	b = nil
	collectUntilUnmapped(t, base, "memory kept with no array asking for it is still mapped")
}

// TestOwnersNotScanned: a mapped array's *Array is in the heap the
// collector marks but does not read (mappedOwner): the scannable heap
// grows by the slice of pointers holding the arrays, not by the arrays'
// owners, which would add as much again.
func TestOwnersNotScanned(t *testing.T) {
	scannable := func() int64 {
		runtime.GC()
		s := []metrics.Sample{{Name: "/gc/scan/heap:bytes"}}
		metrics.Read(s)
		return int64(s[0].Value.Uint64())
	}
	const n = 4096
	settle()
	before := scannable()
	heldArrays = make([]*Array[slot], n) // n*8 bytes on the heap, scannable
	for i := range heldArrays {
		heldArrays[i] = New[slot](MinMapped / 8)
	}
	grew := scannable() - before
	heldArrays = nil
	// Scanned, the owners would add n*16 bytes, and n*16 more for their
	// finalizers (131,672 bytes in all when tried); allow the slice and
	// as much again for whatever else the runtime holds meanwhile.
	if grew >= n*8+n*8 {
		t.Errorf("the scannable heap grew by %d bytes for %d mapped arrays held by a slice of %d bytes: their owners are scanned", grew, n, n*8)
	}
	if grew < n*8/2 {
		t.Errorf("the scannable heap grew by %d bytes, not even half the slice of %d bytes holding the arrays: the measure does not see it", grew, n*8)
	}
}

// heldArrays holds TestOwnersNotScanned's arrays on the heap (a local
// slice could be on the stack, whose scan is counted apart).
var heldArrays []*Array[slot]

// TestKeptUntilTheSecondTrim: memory kept when its array goes survives
// the trim after the next collection — a reload soon after a collection
// still finds it — and the trim after the one after that unmaps it, if
// no array took it meanwhile. trim is called here as the cleanup keep
// arms would call it, with the collector off so that no other trim runs
// between.
func TestKeptUntilTheSecondTrim(t *testing.T) {
	settle() // nothing kept, and past the cycle of any Release (keep unmaps at once in it)
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	const size = 11 << 12 // 44 KiB, a size no other test uses
	// keptHere reports whether mem is kept. (Not Mapped: a finalizer of
	// an earlier test's array may still run meanwhile, and these trims
	// unmap what it keeps too.)
	keptHere := func(mem []byte) bool {
		keeps.Lock()
		defer keeps.Unlock()
		for _, m := range keeps.bySize[size] {
			if unsafe.SliceData(m.mem) == unsafe.SliceData(mem) {
				return true
			}
		}
		return false
	}
	mem := take(size, true)
	keep(mem)
	trim(0)
	if !keptHere(mem) {
		t.Fatal("the first trim after memory was kept gave it back")
	}
	again := reuse(size)
	if unsafe.SliceData(again) != unsafe.SliceData(mem) {
		t.Fatal("memory kept through one trim was not handed out again")
	}
	keep(again) // its array gone again: kept anew, for two trims more
	trim(0)
	if !keptHere(mem) {
		t.Fatal("memory kept again was given back by the first trim after")
	}
	unmapped := mapped.Load()
	trim(0)
	if keptHere(mem) {
		t.Fatal("memory kept through two trims with no array asking for it is still kept")
	}
	if got := unmapped - mapped.Load(); got < size {
		t.Fatalf("the second trim unmapped %d bytes, want at least the %d kept", got, size)
	}
}

// waitKept collects until memory of size bytes is kept, and returns
// where the newest such memory starts.
func waitKept(t *testing.T, size int) *byte {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if time.Now().After(deadline) {
			t.Fatal("the memory of an array that is gone was not kept")
		}
		runtime.GC()
		time.Sleep(time.Millisecond) // the finalizer that keeps it (keepMapped)
		keeps.Lock()
		ks := keeps.bySize[size]
		keeps.Unlock()
		if len(ks) > 0 {
			return unsafe.SliceData(ks[len(ks)-1].mem)
		}
	}
}

// TestCloneOverKeptMemory: Clone, which does not clear the memory it is
// given, is given kept memory that held another array's values, and
// holds its source's values all the same; New, given the same memory
// again, is all zero.
func TestCloneOverKeptMemory(t *testing.T) {
	base := settle()
	const n = 7 << 12 // 224 KiB, a size no other test uses
	src := New[slot](n)
	for i := range n {
		src.Set(i, slot{uint32(i), uint32(n - i)})
	}
	a := New[slot](n)
	for i := range n {
		a.Set(i, slot{7, 7})
	}
	runtime.KeepAlive(a)
	a = nil
	was := waitKept(t, n*8)
	c := src.Clone()
	if unsafe.SliceData(c.View()) != (*slot)(unsafe.Pointer(was)) {
		t.Fatal("the clone was not given the memory kept")
	}
	for i := range n {
		if c.Get(i) != src.Get(i) {
			t.Fatalf("clone's value %d is %v, its source's %v", i, c.Get(i), src.Get(i))
		}
	}
	runtime.KeepAlive(c)
	c = nil
	was = waitKept(t, n*8)
	z := New[slot](n)
	if unsafe.SliceData(z.View()) != (*slot)(unsafe.Pointer(was)) {
		t.Fatal("the new array was not given the memory kept")
	}
	for i := range n {
		if z.Get(i) != (slot{}) {
			t.Fatalf("kept memory handed out unzeroed after a clone: value %d is %v", i, z.Get(i))
		}
	}
	runtime.KeepAlive(src)
	runtime.KeepAlive(z)
	src, z = nil, nil
	collectUntilUnmapped(t, base, "the arrays' memory is still mapped")
}

// TestReleaseUnmapsAtOnce: after a load, Release unmaps what is kept and
// what the arrays its collection finds gone held, which would otherwise
// be kept for two more collections.
func TestReleaseUnmapsAtOnce(t *testing.T) {
	base := settle()
	kept, dropped := New[slot](3<<15), New[slot](5<<15) // sizes no other test uses
	kept.Set(0, slot{1, 1})
	runtime.KeepAlive(kept)
	kept = nil
	for deadline := time.Now().Add(10 * time.Second); ; {
		keeps.Lock()
		n := len(keeps.bySize[3<<18])
		keeps.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the memory of an array that is gone was not kept")
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	dropped.Set(0, slot{1, 1})
	runtime.KeepAlive(dropped)
	dropped = nil
	// On one processor the finalizers of Release's collection run after
	// it returns, as they may anywhere: it must unmap those too.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	Release()
	// No collection from here: Release's own frees what is left.
	for deadline := time.Now().Add(10 * time.Second); Mapped() != base; {
		if time.Now().After(deadline) {
			t.Fatalf("still mapped after Release: %+d bytes", Mapped()-base)
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkNewDropped is what a reload pays for each page it replaces:
// an array of 144 KiB handed out, written whole and dropped. "kept":
// New, whose memory comes back for the next array of its size; "fresh":
// the same memory mapped, written and unmapped each time, as New did
// before it kept memory (the collections' share left out: a floor).
func BenchmarkNewDropped(b *testing.B) {
	const size = 144 << 10
	src := make([]byte, size)
	for i := range src {
		src[i] = byte(i)
	}
	b.Run("kept", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			a := New[byte](size)
			copy(a.View(), src)
			runtime.KeepAlive(a)
		}
	})
	b.Run("fresh", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			mem, err := mapMemory(size)
			if err != nil {
				b.Fatal(err)
			}
			copy(mem, src)
			if err := unmapMemory(mem); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// tinyNeighbour is a small object with no pointer, allocated just after
// a mapped array's owner and kept alive (TestOwnerNotTiny).
var tinyNeighbour *[4]byte

// TestOwnerNotTiny: a dropped mapped array's memory is given back though
// a small pointer-free object allocated right after its owner is still
// live. Were the owner under 16 bytes (mappedOwner on 32-bit systems), the
// tiny allocator would put both in one block, and the owner's finalizer
// would not run while the neighbour lives (found by review).
func TestOwnerNotTiny(t *testing.T) {
	base := settle()
	runtime.LockOSThread() // both allocations from one P's cache, as far as can be
	a := New[slot](MinMapped / 8)
	tinyNeighbour = new([4]byte)
	runtime.UnlockOSThread()
	runtime.KeepAlive(a)
	a = nil
	collectUntilUnmapped(t, base, "a dropped array's memory is still mapped beside a live small object allocated after its owner")
	tinyNeighbour = nil
}
