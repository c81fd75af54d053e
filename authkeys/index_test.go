package authkeys

import (
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/keytool/keytool/internal/keydir"
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
			if !x.insertFile(fileOf(sum(i)), nil) {
				t.Fatalf("n=%d: %d reported as a duplicate", n, i)
			}
		}
		for i := range n {
			s := sum(i)
			if e, _ := x.get(&s); e == nil || e.sum != s {
				t.Fatalf("n=%d: %d not found", n, i)
			}
			if x.insertFile(fileOf(s), nil) {
				t.Fatalf("n=%d: duplicate %d inserted", n, i)
			}
		}
		for i := n; i < n+100; i++ {
			if s := sum(i); x.has(&item{sum: s}) {
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
	entries := make([]*keydir.File[item], n)
	for i := range entries {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(i))
		s := sha256.Sum256(b[:])
		s[0] = byte(0xfb + i%5) // with the 0xff below: long probe runs from the last slots, wrapping around
		s[1], s[2], s[3], s[4], s[5], s[6], s[7] = 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
		entries[i] = fileOf(s)
	}
	in := map[*keydir.File[item]]bool{}
	for step := range 1500 {
		e := entries[rng.IntN(n)]
		if in[e] {
			if !x.removeFile(e) {
				t.Fatalf("step %d: present entry not removed", step)
			}
			delete(in, e)
		} else {
			if x.removeFile(e) {
				t.Fatalf("step %d: absent entry removed", step)
			}
			if !x.insertFile(e, nil) {
				t.Fatalf("step %d: insert refused", step)
			}
			in[e] = true
		}
		if x.n != len(in) {
			t.Fatalf("step %d: n=%d, want %d", step, x.n, len(in))
		}
		if live := len(x.files) - len(x.free); live != len(in) {
			t.Fatalf("step %d: %d files numbered, want %d", step, live, len(in))
		}
		for _, e := range entries {
			got, f := x.get(&e.Items[0].sum)
			if in[e] && (got != &e.Items[0] || f != e) || !in[e] && got != nil {
				t.Fatalf("step %d: get = %p, want present=%v", step, got, in[e])
			}
		}
	}
	// A removal from a clone leaves the original as it was.
	for e := range in {
		y := x.clone()
		y.removeFile(e)
		if !x.has(&e.Items[0]) || y.has(&e.Items[0]) {
			t.Fatal("clone shares its table with the original")
		}
		break
	}
}

// fileOf returns a file holding one item, of key sum.
func fileOf(sum [32]byte) *keydir.File[item] {
	return &keydir.File[item]{Path: "/keys/k.json", Items: []item{{sum: sum}}}
}

// TestItemSize keeps an item at 48 bytes, and a slot of the table at 8
// with no pointer: a store of a million keys holds a million of each
// (docs/design.md, "Memory of a loaded store").
func TestItemSize(t *testing.T) {
	if n := unsafe.Sizeof(item{}); n > 48 {
		t.Fatalf("item is %d bytes, more than 48", n)
	}
	if n := unsafe.Sizeof(ref{}); n > 8 {
		t.Fatalf("a slot is %d bytes, more than 8", n)
	}
}
