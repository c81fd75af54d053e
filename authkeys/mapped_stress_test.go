package authkeys

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/internal/offheap"
	"github.com/keytool/keytool/jwk"
)

// TestDecideOnDroppedPages: handshakes decide every key of a store large
// enough that its table's pages and its rows' chunks are mapped outside
// the heap (internal/offheap; a race build keeps them on the heap, where
// the race detector sees a published page written), while reloads copy
// the pages they write and drop the old ones (copy on write), rebuilds
// drop every page at once, a rescan reads the rows beside them, and the
// collector runs without pause, so that a dropped page is unmapped as
// soon as no snapshot holds it. A read of a page past the last use of its
// owner would fault (the memory unmapped) or read another array mapped at
// the same address since, or given the memory kept for reuse
// (internal/offheap): a key never
// touched must always be Authorized by its own file's entry (the members
// of a JWK Set with their comments: File.RareOf's arithmetic), a key in
// no file always Unknown, and a key whose file comes and goes either, with
// its own entry. docs/security.md, "Review of the off-heap memory and
// unsafe code (2026-12-03)".
func TestDecideOnDroppedPages(t *testing.T) {
	const (
		single = pageLen * 3 / 4 // in files of one key never touched
		set    = 600             // members of a set never touched, each with a comment
		stable = single + set    // a table of 2×pageLen slots: two full pages
		churn  = 48              // in files written and removed
		absent = 48              // in no file
	)
	comment := func(i int) string { // set members have one, other keys none
		if i >= single && i < stable {
			return fmt.Sprintf("member %d", i)
		}
		return ""
	}
	opts := HomeOptions(t.TempDir())
	dir := opts.Dirs[0]
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	sums := make([][32]byte, stable+churn+absent)
	data := make([][]byte, stable+churn)
	var members []*jwk.Key
	for i := range sums {
		k := key(t, 1000+i)
		sums[i] = k.SPKIHash()
		switch {
		case i >= single && i < stable:
			members = append(members, keydirtest.WithAttrs(k, "comment", comment(i)))
		case i < len(data):
			data[i] = keydirtest.JWK(t, k)
		}
	}
	name := func(i int) string {
		if i >= single && i < stable {
			return "set.json"
		}
		return fmt.Sprintf("k%05d.json", i)
	}
	for i := range single {
		keydirtest.Write(t, filepath.Join(dir, name(i)), data[i])
	}
	keydirtest.Write(t, filepath.Join(dir, "set.json"), keydirtest.JWK(t, members...))
	// Watched, with a rescan every few milliseconds: its comparison reads
	// the rows' mapped parts without the loader's lock (compare) while
	// reloads replace their chunks.
	opts.Rescan = 5 * time.Millisecond
	s := Open(t.Context(), opts)
	defer s.Close()
	if size := s.snap.Load().keys.size(); size < 2*pageLen {
		t.Fatalf("a table of %d slots: not a full page to map", size)
	}
	if len(s.Entries()) != stable {
		t.Fatalf("%d entries loaded, want %d", len(s.Entries()), stable)
	}

	var failed atomic.Pointer[string]
	fail := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		failed.CompareAndSwap(nil, &msg)
	}
	check := func(i int, d Decision, churnWant Verdict) {
		want := Authorized
		switch {
		case i >= stable+churn:
			want = Unknown
		case i >= stable:
			want = churnWant
		}
		if d.Verdict != want {
			fail("key %d: %v, want %v", i, d.Verdict, want)
			return
		}
		if want == Authorized && (d.Entry.SPKIHash != sums[i] || filepath.Base(d.Entry.File) != name(i) || d.Entry.Comment != comment(i)) {
			fail("key %d: decided by the entry of %s (key %x, comment %q)", i, d.Entry.File, d.Entry.SPKIHash[:4], d.Entry.Comment)
		}
	}
	// Handshakes: any verdict of a churning key is one of its files' states.
	stopDecide := keydirtest.Repeat(2, func() {
		for i, sum := range sums {
			d := s.Decide(sum, netip.Addr{})
			if i >= stable && i < stable+churn && d.Verdict == Unknown {
				continue
			}
			check(i, d, Authorized)
		}
	})
	stopGC := keydirtest.Repeat(1, runtime.GC)

	present := make([]bool, churn)
	dup := filepath.Join(dir, "zz-dup.json") // after every k file: theirs stay in effect
	dupHeld := false
	rng := rand.New(rand.NewPCG(23, 12))
	mappedPeak := int64(0)
	for step := range 240 {
		var touched []string
		switch {
		case step%40 == 39:
			// A second entry of a stable key (or its removal): the store
			// cannot edit its table exactly and rebuilds it, dropping
			// every page of the one before.
			if dupHeld {
				if err := os.Remove(dup); err != nil {
					t.Fatal(err)
				}
			} else {
				keydirtest.Write(t, dup, data[rng.IntN(single)])
			}
			dupHeld = !dupHeld
			touched = append(touched, dup)
		default:
			for range 1 + rng.IntN(3) {
				c := rng.IntN(churn)
				path := filepath.Join(dir, name(stable+c))
				if present[c] {
					if err := os.Remove(path); err != nil {
						t.Fatal(err)
					}
				} else {
					keydirtest.Write(t, path, data[stable+c])
				}
				present[c] = !present[c]
				touched = append(touched, path)
			}
		}
		if rng.IntN(8) == 0 {
			s.Loader().Reload()
		} else {
			s.Loader().Reload(touched...)
		}
		mappedPeak = max(mappedPeak, offheap.Mapped())
		n := stable
		for c, in := range present {
			want := Unknown
			if in {
				want, n = Authorized, n+1
			}
			check(stable+c, s.Decide(sums[stable+c], netip.Addr{}), want)
		}
		if step%8 == 0 { // every key's entry, through the table
			if got := len(s.Entries()); got != n {
				fail("step %d: %d entries, want %d", step, got, n)
			}
		}
		if msg := failed.Load(); msg != nil {
			break
		}
	}
	stopDecide()
	stopGC()
	s.Close() // its watch ended: the counts below are read after every build
	if msg := failed.Load(); msg != nil {
		t.Fatalf("%s (updates %d, rebuilds %d)", *msg, s.updates, s.rebuilds)
	}
	if s.rebuilds < 5 || s.updates < 100 {
		t.Errorf("%d rebuilds and %d edits of the table: the test dropped too few pages", s.rebuilds, s.updates)
	}
	t.Logf("%d edits, %d rebuilds; up to %d KiB mapped", s.updates, s.rebuilds, mappedPeak>>10)
}
