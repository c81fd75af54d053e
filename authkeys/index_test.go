package authkeys

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"
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
			if !x.insert(&Entry{SPKIHash: sum(i)}) {
				t.Fatalf("n=%d: %d reported as a duplicate", n, i)
			}
		}
		for i := range n {
			s := sum(i)
			if e := x.get(&s); e == nil || e.SPKIHash != s {
				t.Fatalf("n=%d: %d not found", n, i)
			}
			if x.insert(&Entry{SPKIHash: s}) {
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
