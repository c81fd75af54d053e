//go:build (linux || darwin || dragonfly || freebsd || illumos || netbsd || openbsd) && !race

package offheap

import (
	"runtime"
	"sync"
	"testing"
	"time"
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
	for deadline := time.Now().Add(10 * time.Second); Mapped() != before; {
		if time.Now().After(deadline) {
			t.Fatalf("an unreachable array is still mapped (Mapped %+d)", Mapped()-before)
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
	// The cleanups that unmap run after each collection, on a goroutine
	// of their own: allow for some not done yet.
	if peak > 64<<20 {
		t.Errorf("up to %d MiB mapped at once for arrays of 1 MiB dropped at once", peak>>20)
	}
}
