package authkeys

import (
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"unsafe"
)

func TestIndex(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 100, 5000} {
		x := newIndex(n)
		var b [8]byte
		sum := func(i int) [32]byte {
			binary.BigEndian.PutUint64(b[:], uint64(i))
			s := sha256.Sum256(b[:])
			s[0] = byte(i % 3) // crowd a few slots: probing must still find every key
			return s
		}
		for i := range n {
			if !x.insert(&item{sum: sum(i)}) {
				t.Fatalf("n=%d: %d reported as a duplicate", n, i)
			}
		}
		for i := range n {
			s := sum(i)
			if e := x.get(&s); e == nil || e.sum != s {
				t.Fatalf("n=%d: %d not found", n, i)
			}
			if x.insert(&item{sum: s}) {
				t.Fatalf("n=%d: duplicate %d inserted", n, i)
			}
		}
		for i := n; i < n+100; i++ {
			if s := sum(i); x.get(&s) != nil {
				t.Fatalf("n=%d: absent %d found", n, i)
			}
		}
		if len(x.slots) < 2*n {
			t.Fatalf("n=%d: %d slots, more than half full", n, len(x.slots))
		}
	}
}

// TestIndexRemove removes and re-inserts entries in random order in a
// crowded table and checks every lookup against a map after each step:
// the backward shift must never strand an entry behind a hole.
func TestIndexRemove(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 150
	x := newIndex(n)
	entries := make([]*item, n)
	for i := range entries {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(i))
		s := sha256.Sum256(b[:])
		s[0] = byte(0xfb + i%5) // with the 0xff below: long probe runs from the last slots, wrapping around
		s[1], s[2], s[3], s[4], s[5], s[6], s[7] = 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
		entries[i] = &item{sum: s}
	}
	in := map[*item]bool{}
	for step := range 1500 {
		e := entries[rng.IntN(n)]
		if in[e] {
			if !x.remove(e) {
				t.Fatalf("step %d: present entry not removed", step)
			}
			delete(in, e)
		} else {
			if x.remove(e) {
				t.Fatalf("step %d: absent entry removed", step)
			}
			if !x.insert(e) {
				t.Fatalf("step %d: insert refused", step)
			}
			in[e] = true
		}
		if x.n != len(in) {
			t.Fatalf("step %d: n=%d, want %d", step, x.n, len(in))
		}
		for _, e := range entries {
			got := x.get(&e.sum)
			if in[e] && got != e || !in[e] && got != nil {
				t.Fatalf("step %d: get = %p, want present=%v", step, got, in[e])
			}
		}
	}
	// A removal from a clone leaves the original as it was.
	for e := range in {
		y := x.clone()
		y.remove(e)
		if x.get(&e.sum) != e || y.get(&e.sum) != nil {
			t.Fatal("clone shares its table with the original")
		}
		break
	}
}

// TestItemSize keeps an item in its 64-byte allocation class: a store of a
// million keys holds a million of them (docs/design.md, "Memory of a
// loaded store").
func TestItemSize(t *testing.T) {
	if n := unsafe.Sizeof(item{}); n > 64 {
		t.Fatalf("item is %d bytes, more than 64", n)
	}
}
