package offheap

import (
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

type slot struct{ file, pos uint32 }

func TestValuesKeptSmallAndMapped(t *testing.T) {
	for _, n := range []int{0, 1, 100, MinMapped / 8, 1 << 20} {
		a := New[slot](n)
		if a.Len() != n {
			t.Fatalf("New(%d).Len() = %d", n, a.Len())
		}
		if want := n*8 >= MinMapped && canMap(); a.mapped != want {
			t.Errorf("New(%d): mapped %v, want %v", n, a.mapped, want)
		}
		for i := range n {
			if a.Get(i) != (slot{}) {
				t.Fatalf("New(%d): value %d not zero", n, i)
			}
			a.Set(i, slot{uint32(i), uint32(n)})
		}
		c := a.Clone()
		if n > 0 {
			a.Set(n-1, slot{}) // the clone has its own memory
		}
		for i := range n {
			if c.Get(i) != (slot{uint32(i), uint32(n)}) {
				t.Fatalf("New(%d).Clone(): value %d is %v", n, i, c.Get(i))
			}
		}
	}
}

func canMap() bool {
	mem, err := mapMemory(MinMapped)
	if err != nil {
		return false
	}
	unmapMemory(mem)
	return true
}

func TestPointersRefused(t *testing.T) {
	for name, f := range map[string]func(){
		"pointer":   func() { New[*int](1) },
		"string":    func() { New[string](1) },
		"slice":     func() { New[[]byte](1) },
		"map":       func() { New[map[int]int](1) },
		"interface": func() { New[any](1) },
		"func":      func() { New[func()](1) },
		"struct of one": func() {
			New[struct {
				a, b uint64
				p    *int
			}](1)
		},
		"array of string": func() { New[[2]string](1) },
	} {
		func() {
			defer func() {
				r := recover()
				if s, _ := r.(string); !strings.HasPrefix(s, "offheap: ") {
					t.Errorf("New of a %s: panic %v, want offheap's", name, r)
				}
			}()
			f()
		}()
	}
	New[struct {
		a [32]byte
		b uint32
		c [0]*int // no room for a pointer: allowed
	}](1)
}

// TestUnmappedOnceUnreachable: the memory goes back to the system once the
// Array is garbage, not before.
func TestUnmappedOnceUnreachable(t *testing.T) {
	if !canMap() {
		t.Skip("no anonymous mappings on this system")
	}
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
	if !canMap() {
		t.Skip("no anonymous mappings on this system")
	}
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

// TestReadersAndCollections reads arrays while others are dropped and
// collected, under -race: a read never meets unmapped memory.
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
	if !canMap() {
		t.Skip("no anonymous mappings on this system")
	}
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
