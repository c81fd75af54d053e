package authkeys

import (
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"testing"
	"unsafe"

	"github.com/keytool/keytool/internal/keydir"
)

func TestIndex(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 100, 5000} {
		var b [8]byte
		sum := func(i int) [32]byte {
			binary.BigEndian.PutUint64(b[:], uint64(i))
			s := sha256.Sum256(b[:])
			s[0] = byte(i % 3) // crowd a few slots: probing must still find every key
			return s
		}
		files := make([]*keydir.File[item], 2*n) // each key's file, then a second file of it: numbered 1 + their place
		for i := range n {
			files[i], files[n+i] = fileOf(sum(i)), fileOf(sum(i))
		}
		x := newIndex(keydir.SnapshotOf(files...), n)
		for i := range n {
			if !x.insertFile(uint32(i+1), len(files[i].Items()), nil) {
				t.Fatalf("n=%d: %d reported as a duplicate", n, i)
			}
		}
		for i := range n {
			s := sum(i)
			if f, pos, ok := x.get(&s); !ok || f.Item(pos).sum != s {
				t.Fatalf("n=%d: %d not found", n, i)
			}
			if x.insertFile(uint32(n+i+1), len(files[n+i].Items()), nil) {
				t.Fatalf("n=%d: duplicate %d inserted", n, i)
			}
		}
		for i := n; i < n+100; i++ {
			if s := sum(i); func() bool { _, _, ok := x.get(&s); return ok }() {
				t.Fatalf("n=%d: absent %d found", n, i)
			}
		}
		if x.size() < 2*n {
			t.Fatalf("n=%d: %d slots, more than half full", n, x.size())
		}
	}
}

// TestIndexRemove removes and re-inserts entries in random order in a
// crowded table and checks every lookup against a map after each step:
// the backward shift must never strand an entry behind a hole.
func TestIndexRemove(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 150
	entries := make([]*keydir.File[item], n)
	num := map[*keydir.File[item]]uint32{}
	for i := range entries {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(i))
		s := sha256.Sum256(b[:])
		s[0] = byte(0xfb + i%5) // with the 0xff below: long probe runs from the last slots, wrapping around
		s[1], s[2], s[3], s[4], s[5], s[6], s[7] = 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
		entries[i] = fileOf(s)
		num[entries[i]] = uint32(i + 1)
	}
	x := newIndex(keydir.SnapshotOf(entries...), n)
	in := map[*keydir.File[item]]bool{}
	for step := range 1500 {
		e := entries[rng.IntN(n)]
		if in[e] {
			if !x.removeFile(num[e], 1) {
				t.Fatalf("step %d: present entry not removed", step)
			}
			delete(in, e)
		} else {
			if x.removeFile(num[e], 1) {
				t.Fatalf("step %d: absent entry removed", step)
			}
			if !x.insertFile(num[e], len(e.Items()), nil) {
				t.Fatalf("step %d: insert refused", step)
			}
			in[e] = true
		}
		if x.n != len(in) {
			t.Fatalf("step %d: n=%d, want %d", step, x.n, len(in))
		}
		for _, e := range entries {
			f, pos, ok := x.get(&e.Items()[0].sum)
			if in[e] != (ok && f.Num() == num[e] && pos == 0) || !in[e] && ok {
				t.Fatalf("step %d: get = %d/%d, %v, want present=%v", step, f.Num(), pos, ok, in[e])
			}
		}
	}
	// A removal from a clone leaves the original as it was.
	for e := range in {
		y := x.clone()
		y.removeFile(num[e], 1)
		if !x.holds(ref{num[e], 0}) || y.holds(ref{num[e], 0}) {
			t.Fatal("clone shares its table with the original")
		}
		break
	}
}

// flat returns a copy of the table's slots, page after page.
func (x *index) flat() []ref {
	var slots []ref
	for _, p := range x.slots {
		slots = append(slots, p.View()...)
		runtime.KeepAlive(p)
	}
	return slots
}

// fileOf returns a file holding one item, of key sum.
func fileOf(sum [32]byte) *keydir.File[item] {
	return keydir.NewFile("/keys/k.json", 0, []item{{sum: sum}})
}

// TestItemSize keeps an item at 32 bytes and a slot of the table at 8,
// neither holding a pointer: a store of a million keys holds a million of
// each, and the garbage collector reads none of them (docs/design.md,
// "Memory of a loaded store").
func TestItemSize(t *testing.T) {
	if n := unsafe.Sizeof(item{}); n > 32 {
		t.Fatalf("item is %d bytes, more than 32", n)
	}
	if n := unsafe.Sizeof(ref{}); n > 8 {
		t.Fatalf("a slot is %d bytes, more than 8", n)
	}
	for _, typ := range []reflect.Type{reflect.TypeFor[item](), reflect.TypeFor[ref]()} {
		if p := pointerIn(typ); p != "" {
			t.Errorf("%v holds a pointer (%s): the collector would read every one", typ, p)
		}
	}
}

// pointerIn names a field of t that is or holds a pointer ("" if none).
func pointerIn(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Array:
		if t.Len() > 0 {
			return pointerIn(t.Elem())
		}
	case reflect.Struct:
		for i := range t.NumField() {
			if p := pointerIn(t.Field(i).Type); p != "" {
				return t.Field(i).Name + " " + p
			}
		}
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
	default:
		return t.Kind().String()
	}
	return ""
}

// TestIndexCopyOnWrite edits clones of a table of several pages, as
// reloads do, and checks after each edit that the index it was cloned
// from (which lookups may still be reading) is unchanged, that the clone
// holds exactly what it should, and that it shares the pages it did not
// write: a small change copies pages, not the table.
func TestIndexCopyOnWrite(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const n = 20_000 // 65,536 slots: 8 pages
	entries := make([]*keydir.File[item], n+500)
	num := map[*keydir.File[item]]uint32{}
	for i := range entries {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(i))
		entries[i] = fileOf(sha256.Sum256(b[:]))
		num[entries[i]] = uint32(i + 1)
	}
	x := newIndex(keydir.SnapshotOf(entries...), n)
	in := map[*keydir.File[item]]bool{}
	for _, e := range entries[:n] {
		x.insertFile(num[e], len(e.Items()), nil)
		in[e] = true
	}
	if len(x.slots) < 4 {
		t.Fatalf("%d pages of slots: want several", len(x.slots))
	}
	for step := range 300 {
		slots := x.flat()
		y := x.clone()
		edits := 1 + rng.IntN(4)
		for range edits {
			e := entries[rng.IntN(len(entries))]
			if in[e] {
				if !y.removeFile(num[e], 1) {
					t.Fatalf("step %d: present entry not removed", step)
				}
			} else if !y.insertFile(num[e], len(e.Items()), nil) {
				t.Fatalf("step %d: insert refused", step)
			}
			in[e] = !in[e]
		}
		if !slices.Equal(x.flat(), slots) {
			t.Fatalf("step %d: editing the clone changed the original", step)
		}
		copied := 0
		for p := range y.slots {
			if y.slots[p] != x.slots[p] {
				copied++
			}
		}
		if copied > 2*edits { // a removal's probe run may cross into the next page
			t.Fatalf("step %d: %d edits copied %d of %d pages", step, edits, copied, len(y.slots))
		}
		for _, e := range entries {
			if f, pos, ok := y.get(&e.Items()[0].sum); in[e] != (ok && f.Num() == num[e] && pos == 0) || !in[e] && ok {
				t.Fatalf("step %d: get = %d/%d, %v, want present=%v", step, f.Num(), pos, ok, in[e])
			}
		}
		if y.n != countTrue(in) {
			t.Fatalf("step %d: n=%d, want %d", step, y.n, countTrue(in))
		}
		x = y
	}
}

func countTrue(m map[*keydir.File[item]]bool) int {
	n := 0
	for _, v := range m {
		if v {
			n++
		}
	}
	return n
}

// An entry is named by its file's number and its position there (ref): in a
// file holding one key twice, the first entry is the one in effect, and
// the second is neither held nor removed in its place.
func TestIndexTellsEntriesOfOneFileApart(t *testing.T) {
	a, b := item{sum: [32]byte{1}}, item{sum: [32]byte{2}}
	f := keydir.NewFile("/set.json", 0, []item{a, b, a})
	x := newIndex(keydir.SnapshotOf(f), 3)
	if x.insertFile(1, len(f.Items()), nil) {
		t.Fatal("a file holding one key twice inserted without a duplicate")
	}
	for pos, want := range []bool{true, true, false} {
		if got := x.holds(ref{1, uint32(pos)}); got != want {
			t.Errorf("holds(set.json, %d) = %v, want %v", pos, got, want)
		}
	}
	if x.remove(ref{1, 2}) {
		t.Error("the second entry of the key was removed: it was never in the table")
	}
	if !x.holds(ref{1, 0}) {
		t.Error("removing the second entry of the key took the first's slot")
	}
}
