package keydir

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/keytool/keytool/internal/fewset"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// TestEachRecordOnceATermAFile: a rebuild's records, made a file at a
// time from the snapshot, hold each (term, file) once — here every item
// also has a term all share, so a file of several keys repeats it — in a
// file of one key, of a few (its terms kept in a list), and of many (past
// fewset.Max terms, in a map).
func TestEachRecordOnceATermAFile(t *testing.T) {
	src := filepath.Join(t.TempDir(), "authorized_keys.d")
	keydirtest.Write(t, filepath.Join(src, "one.json"), keydirtest.JWK(t, key(t, 1)))
	keydirtest.Write(t, filepath.Join(src, "few.json"), keydirtest.JWK(t, key(t, 2), key(t, 3), key(t, 4)))
	var many []*jwk.Key
	for n := range fewset.Max + 4 {
		many = append(many, key(t, 100+n))
	}
	keydirtest.Write(t, filepath.Join(src, "many.json"), keydirtest.JWK(t, many...))
	every := StringTerm("every", "item")
	l := New(Config[string]{Sources: []Source{{Path: src, Dir: true}}, Convert: fpConvert,
		Terms: func(f *File[string], i int) []Term {
			return []Term{KeyTerm(sha256.Sum256([]byte(f.Items()[i]))), every}
		}})
	snap := l.Reload()
	if len(snap.Problems) != 0 {
		t.Fatal(snap.Problems)
	}
	fl := &focusedLoad[string]{l: l}
	seen := map[indexRecord]bool{}
	got := map[string]int{}
	for r := range fl.eachRecord(0, snap.All) {
		if seen[r] {
			t.Errorf("%s: a term recorded twice", r.name)
		}
		seen[r] = true
		got[r.name]++
	}
	for name, want := range map[string]int{"one.json": 2, "few.json": 4, "many.json": fewset.Max + 5} {
		if got[name] != want {
			t.Errorf("%s: %d records, want %d (its keys' and the shared term once)", name, got[name], want)
		}
	}
}

// TestRebuildShardsHoldTheirRecords: a rebuild keeps each record as its
// shard's bytes by the term's first 16 bits and joins those runs into
// shards once it has counted them; every term then reads back with each
// of its files, whatever the number of shards (few records, and enough
// for many shards), and terms sharing a shard but not a run keep apart.
func TestRebuildShardsHoldTheirRecords(t *testing.T) {
	for _, n := range []int{3, 5000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			x := openLogTestIndex(t, t.TempDir())
			var recs []indexRecord
			for i := range n {
				var term Term
				binary.BigEndian.PutUint32(term[:], uint32(i)*2654435761) // spread over the runs
				recs = append(recs, indexRecord{term, fmt.Sprintf("f%d.json", i)}, indexRecord{term, fmt.Sprintf("g%d.json", i)})
			}
			if err := x.rebuild(slices.Values(recs)); err != nil {
				t.Fatal(err)
			}
			if want := shardBits(len(recs)); x.bits != want {
				t.Errorf("%d records: %d shard bits, want %d", len(recs), x.bits, want)
			}
			for i := 0; i < len(recs); i += 2 {
				want := []string{recs[i].name, recs[i+1].name}
				slices.Sort(want)
				if got := lookupNames(t, x, recs[i].term); !slices.Equal(got, want) {
					t.Fatalf("term %x: %v, want %v", recs[i].term[:4], got, want)
				}
			}
		})
	}
}

// BenchmarkEachRecordManyTerms: the records of a file of one item with
// 40,000 terms (a host key pinned for 40,000 addresses: knownhosts gives
// a term an address), each checked against the file's terms so far. A
// list searched for each term made this quadratic (found by review:
// 1.8 s, where a map takes 0.03).
func BenchmarkEachRecordManyTerms(b *testing.B) {
	const n = 40_000
	src := filepath.Join(b.TempDir(), "trusted_hosts.d")
	keydirtest.Write(b, filepath.Join(src, "wide.json"), keydirtest.JWK(b, key(b, 1)))
	terms := make([]Term, n)
	for i := range terms {
		terms[i] = StringTerm("address", fmt.Sprintf("h%d.example|443", i))
	}
	l := New(Config[string]{Sources: []Source{{Path: src, Dir: true}}, Convert: fpConvert,
		Terms: func(*File[string], int) []Term { return terms }})
	snap := l.Reload()
	fl := &focusedLoad[string]{l: l}
	b.ResetTimer()
	for b.Loop() {
		got := 0
		for range fl.eachRecord(0, snap.All) {
			got++
		}
		if got != n {
			b.Fatalf("%d records, want %d", got, n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/term")
}
