package offheap

import (
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"unsafe"
)

type slot struct{ file, pos uint32 }

func TestValuesKeptSmallAndMapped(t *testing.T) {
	for _, n := range []int{0, 1, 100, MinMapped / 8, 1 << 20} {
		a := New[slot](n)
		if a.Len() != n {
			t.Fatalf("New(%d).Len() = %d", n, a.Len())
		}
		if want := n*8 >= MinMapped && canMap(); a.esize != 0 != want {
			t.Errorf("New(%d): mapped %v, want %v", n, a.esize != 0, want)
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

// TestArraySize keeps an Array at two words: a store of a million
// single-key files keeps some 1,000 on the heap, which the collector
// marks at every collection (docs/benchmarks.md, "The collector at a
// million single-key files"); and its finalizer reads it as a
// mappedArray, which must be its layout.
func TestArraySize(t *testing.T) {
	if n, want := unsafe.Sizeof(Array[slot]{}), unsafe.Sizeof(uintptr(0))+8; n != want {
		t.Fatalf("an Array is %d bytes, want %d (an address and two 32-bit counts)", n, want)
	}
	if unsafe.Sizeof(mappedArray{}) != unsafe.Sizeof(Array[slot]{}) || unsafe.Offsetof(mappedArray{}.n) != unsafe.Offsetof(Array[slot]{}.n) || unsafe.Offsetof(mappedArray{}.esize) != unsafe.Offsetof(Array[slot]{}.esize) {
		t.Fatal("mappedArray is not an Array's layout")
	}
	if unsafe.Sizeof(mappedOwner{}) != unsafe.Sizeof(Array[slot]{}) || unsafe.Offsetof(mappedOwner{}.n) != unsafe.Offsetof(Array[slot]{}.n) || unsafe.Offsetof(mappedOwner{}.esize) != unsafe.Offsetof(Array[slot]{}.esize) {
		t.Fatal("mappedOwner is not an Array's layout")
	}
}

// TestIndexOutOfRange: Get and Set past the end, or below 0, panic as
// a slice would, never read or write beside the array.
func TestIndexOutOfRange(t *testing.T) {
	for _, n := range []int{0, 3, MinMapped} {
		a := New[slot](n)
		for _, i := range []int{-1, n, n + 1, math.MaxInt} {
			for what, f := range map[string]func(){"Get": func() { a.Get(i) }, "Set": func() { a.Set(i, slot{}) }} {
				func() {
					defer func() {
						if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "index out of range") {
							t.Errorf("New(%d).%s(%d): panic %v, want index out of range", n, what, i, r)
						}
					}()
					f()
				}()
			}
		}
	}
}

// TestHeapArraysNotPaced: where New maps nothing (a race build, a system
// without mmap), its arrays are the heap's, which the collector paces
// itself: New runs no collection for them. (A regression of c1d456a:
// New counted them towards its pace, and ran a collection every 16 MiB
// of them.)
func TestHeapArraysNotPaced(t *testing.T) {
	if canMap() {
		t.Skip("New maps here: TestGarbagePaced")
	}
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // no collection but New's
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.NumGC
	arrays := make([]*Array[byte], 24) // 24 MiB, past New's 16
	for i := range arrays {
		arrays[i] = New[byte](1 << 20)
	}
	runtime.ReadMemStats(&ms)
	if n := ms.NumGC - before; n != 0 {
		t.Errorf("New ran %d collections for %d MiB of heap arrays", n, len(arrays))
	}
	runtime.KeepAlive(arrays)
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

// TestPointerFreeAsNewTells: PointerFree answers what New would do, for
// a caller that picks where to keep values of a type parameter (keydir's
// numbers keep a file's one item mapped only if it holds no pointer).
func TestPointerFreeAsNewTells(t *testing.T) {
	if PointerFree[*int]() || PointerFree[string]() || PointerFree[struct {
		a [32]byte
		p *int
	}]() {
		t.Error("PointerFree of a type holding a pointer")
	}
	if !PointerFree[[32]byte]() || !PointerFree[struct {
		a [32]byte
		b uint32
	}]() {
		t.Error("not PointerFree of a type holding none")
	}
}

func TestSizeOverflowRefused(t *testing.T) {
	for _, n := range []int{-1, math.MaxInt / 4} {
		func() {
			defer func() {
				if s, _ := recover().(string); !strings.HasPrefix(s, "offheap: ") {
					t.Errorf("New[uint64](%d): panic %q, want offheap's", n, s)
				}
			}()
			New[uint64](n)
		}()
	}
}
