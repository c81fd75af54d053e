package keydir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/keytool/keytool/internal/trustfile"
)

// The log follows its head: its entries apply in order while each starts
// from the stamp the last one reached; an entry from another stamp ends
// it; a head written without it (a keytool that has no log, rewriting
// the head) makes the whole log another head's, not read, and the next
// change folds it away instead of appending.
func TestIndexLogFollowsItsHead(t *testing.T) {
	top := t.TempDir()
	open := func() *sourceIndex { return openLogTestIndex(t, top) }
	var t1, t2 Term
	t1[0], t2[0] = 0x10, 0x20
	names := func(x *sourceIndex, term Term) []string { return lookupNames(t, x, term) }
	x := open()
	if err := x.rebuild(slices.Values([]indexRecord{{t1, "a.json"}})); err != nil {
		t.Fatal(err)
	}
	if err := x.writeHead([]byte("s0")); err != nil {
		t.Fatal(err)
	}
	x = open()
	if string(x.head()) != "s0" {
		t.Fatal("the head does not read back")
	}
	if err := x.record([]byte("s0"), []byte("s1"), []indexRecord{{t1, "a.json"}}, []indexRecord{{t2, "b.json"}}); err != nil {
		t.Fatal(err)
	}
	x = open()
	if err := x.record(x.head(), []byte("s2"), nil, []indexRecord{{t1, "c.json"}}); err != nil {
		t.Fatal(err)
	}
	x = open()
	if h := string(x.head()); h != "s2" || !slices.Equal(names(x, t1), []string{"c.json"}) || !slices.Equal(names(x, t2), []string{"b.json"}) {
		t.Fatalf("after two entries: stamp %q, %v and %v; want s2, [c.json] and [b.json]", h, names(x, t1), names(x, t2))
	}
	// An entry from another stamp ends the log.
	log := filepath.Join(x.dir, "log")
	f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(appendLogEntry(nil, []byte("s9"), []byte("s10"), nil, []indexRecord{{t2, "z.json"}}))
	f.Close()
	x = open()
	if h := string(x.head()); h != "s2" || slices.Contains(names(x, t2), "z.json") || !x.logBad {
		t.Fatalf("an entry from another stamp: stamp %q, %v; want s2 without z.json, the log's end marked", h, names(x, t2))
	}
	// The head written anew without the log (as by a keytool without
	// one): the log is another head's.
	x.bits = shardBits(1)
	body := append([]byte("/src"), 0, byte(x.bits), byte(x.sbits))
	if err := x.write("head", indexMagic, append(body, "s5"...)); err != nil {
		t.Fatal(err)
	}
	x = open()
	if h := string(x.head()); h != "s5" || len(x.pending) != 0 || !x.logBad {
		t.Fatalf("a log after its head was rewritten: stamp %q, %d entries; want s5, none", h, len(x.pending))
	}
	if err := x.record([]byte("s5"), []byte("s6"), nil, []indexRecord{{t2, "d.json"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(log); !os.IsNotExist(err) {
		t.Errorf("a change after another head's log: the log is still there (%v), want it folded away", err)
	}
	x = open()
	if h := string(x.head()); h != "s6" || !slices.Contains(names(x, t2), "d.json") {
		t.Fatalf("after the fold: stamp %q, %v; want s6 with d.json", h, names(x, t2))
	}
}

// A rebuild removes the head and its log before it writes a shard: a
// crash or a failed write before the new head leaves no index (stale),
// never the old head, whose log a later read would apply over the new
// shards, hiding a copy they hold (found by review).
func TestRebuildRemovesTheHeadFirst(t *testing.T) {
	top := t.TempDir()
	x := newSourceIndex(top, "/src", trustfile.Rule{Off: true})
	t.Cleanup(x.close)
	var term Term
	term[0] = 0x10
	if err := x.rebuild(slices.Values([]indexRecord{{term, "a.json"}})); err != nil {
		t.Fatal(err)
	}
	if err := x.writeHead([]byte("stamp 1")); err != nil {
		t.Fatal(err)
	}
	x.record([]byte("stamp 1"), []byte("stamp 2"), []indexRecord{{term, "a.json"}}, nil)
	for _, name := range []string{"head", "log"} {
		if _, err := os.Stat(filepath.Join(x.dir, name)); err != nil {
			t.Fatalf("setup: %v", err)
		}
	}
	// The rebuild's shards written, its head not yet: as after a crash.
	if err := x.rebuild(slices.Values([]indexRecord{{term, "a.json"}, {term, "b.json"}})); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"head", "log"} {
		if _, err := os.Stat(filepath.Join(x.dir, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is still there while the rebuild's shards are written (err %v)", name, err)
		}
	}
	y := newSourceIndex(top, "/src", trustfile.Rule{Off: true})
	t.Cleanup(y.close)
	if y.head() != nil {
		t.Error("a read finds a head over the rebuild's shards before the rebuild wrote one")
	}
}

// After a crash, ext4 (delayed allocation) and others may leave a file at
// its new size with NUL bytes where the last write's data never reached
// the disk: an appended entry all NULs, NULs past the end, or, for a log
// written without fsync, the whole file. A NUL region is a torn end like
// any other: the entries before it apply, nothing at or after it does —
// not even a well-formed entry from the right stamp behind the NULs — and
// the next change folds the log away and writes a new head, with no
// error: a command is never blocked by the crash, and the index is stale
// (older than the directory) for what the lost entry held, never wrong.
func TestIndexLogNULTail(t *testing.T) {
	var t1, t2 Term
	t1[0], t2[0] = 0x10, 0x20
	after := appendLogEntry(nil, []byte("s1"), []byte("s9"), []indexRecord{{t2, "b.json"}}, []indexRecord{{t1, "z.json"}})
	for _, tc := range []struct {
		name     string
		spoil    func(data []byte, last int) []byte // last: where the last entry starts
		wantHead string                             // the index's stamp read back
	}{
		{"last entry zeroed", func(d []byte, last int) []byte { clear(d[last:]); return d }, "s1"},
		{"NULs past the end", func(d []byte, _ int) []byte { return append(d, make([]byte, 4096)...) }, "s2"},
		{"NULs then an entry", func(d []byte, last int) []byte { clear(d[last:]); return append(d, after...) }, "s1"},
		{"the whole log", func(d []byte, _ int) []byte { clear(d); return d }, "s0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			top := t.TempDir()
			open := func() *sourceIndex { return openLogTestIndex(t, top) }
			names := func(x *sourceIndex, term Term) []string { return lookupNames(t, x, term) }
			x := open()
			if err := x.rebuild(slices.Values([]indexRecord{{t1, "a.json"}})); err != nil {
				t.Fatal(err)
			}
			if err := x.writeHead([]byte("s0")); err != nil {
				t.Fatal(err)
			}
			x = open()
			x.head()
			if err := x.record([]byte("s0"), []byte("s1"), nil, []indexRecord{{t2, "b.json"}}); err != nil {
				t.Fatal(err)
			}
			log := filepath.Join(x.dir, "log")
			fi, err := os.Stat(log)
			if err != nil {
				t.Fatal(err)
			}
			last := int(fi.Size())
			x = open()
			x.head()
			if err := x.record([]byte("s1"), []byte("s2"), nil, []indexRecord{{t1, "c.json"}}); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(log)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(log, tc.spoil(data, last), 0o600); err != nil {
				t.Fatal(err)
			}

			x = open()
			want := map[string][]string{"s0": {"a.json"}, "s1": {"a.json"}, "s2": {"a.json", "c.json"}}[tc.wantHead]
			if h := string(x.head()); h != tc.wantHead || !slices.Equal(names(x, t1), want) || !x.logBad {
				t.Fatalf("read back: stamp %q, %v, torn end marked %v; want %s, %v, marked", h, names(x, t1), x.logBad, tc.wantHead, want)
			}
			if got, wantB := names(x, t2), tc.wantHead != "s0"; slices.Contains(got, "b.json") != wantB {
				t.Fatalf("read back: %v for the first entry's term; want b.json there: %v", got, wantB)
			}
			// The next command's change: no error, the log folded away.
			if err := x.record(x.head(), []byte("s3"), nil, []indexRecord{{t1, "d.json"}}); err != nil {
				t.Fatalf("a change after the crash: %v", err)
			}
			if _, err := os.Stat(log); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a change after the crash: the log is still there (%v), want it folded away", err)
			}
			x = open()
			if h, got := string(x.head()), names(x, t1); h != "s3" || !slices.Equal(got, append(slices.Clone(want), "d.json")) {
				t.Fatalf("after the fold: stamp %q, %v; want s3, %v and d.json", h, got, want)
			}
		})
	}
}

// openLogTestIndex opens the index of source "/src" under top, closed
// when the test ends.
func openLogTestIndex(t *testing.T, top string) *sourceIndex {
	x := newSourceIndex(top, "/src", trustfile.Rule{Off: true})
	t.Cleanup(x.close)
	return x
}

// lookupNames is what x's shards say of term.
func lookupNames(t *testing.T, x *sourceIndex, term Term) []string {
	t.Helper()
	got, ok := x.lookup(Query{Terms: []Term{term}})
	if !ok {
		t.Fatal("lookup: a shard does not read back")
	}
	return got
}
