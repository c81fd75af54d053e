package keydir

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// changed, the one rule by which the index's update and its log apply
// a change to a shard, removes what went and adds what came, each once
// and only in its shard — as the searches of the lists it replaced did
// (the reference below), on random changes that share records, repeat
// them and cross shards.
func TestChangedAppliesAsTheListsDid(t *testing.T) {
	reference := func(x *sourceIndex, b int, recs, gone, came []indexRecord) []indexRecord {
		recs = slices.DeleteFunc(recs, func(r indexRecord) bool { return slices.Contains(gone, r) })
		for _, r := range came {
			if x.shardOf(r.term[:]) == b && !slices.Contains(recs, r) {
				recs = append(recs, r)
			}
		}
		return recs
	}
	x := &sourceIndex{bits: 2}
	rng := rand.New(rand.NewPCG(1, 2))
	pool := make([]indexRecord, 40)
	for i := range pool {
		var term Term
		term[0] = byte(rng.IntN(4) << 6) // one of the four shards
		if i%5 == 0 {
			term = problemTerm // many files, one term: the case that was slow
		}
		pool[i] = indexRecord{term, fmt.Sprintf("f%d.json", rng.IntN(12))}
	}
	pick := func(n int) []indexRecord {
		var out []indexRecord
		for range n {
			out = append(out, pool[rng.IntN(len(pool))])
		}
		return out
	}
	for trial := range 2000 {
		b := rng.IntN(4)
		var recs []indexRecord
		for _, r := range pick(rng.IntN(20)) {
			if x.shardOf(r.term[:]) == b && !slices.Contains(recs, r) {
				recs = append(recs, r) // a shard's records: its own, each once
			}
		}
		gone, came := pick(rng.IntN(10)), pick(rng.IntN(10))
		want := reference(x, b, slices.Clone(recs), gone, came)
		if got := x.changed(b, slices.Clone(recs), gone, came); !slices.Equal(got, want) {
			t.Fatalf("trial %d, shard %d, %v - %v + %v:\ngot  %v\nwant %v", trial, b, recs, gone, came, got, want)
		}
	}
}

// BenchmarkChangedManySkipped applies a change of n skipped files'
// records (one term, one shard) to a shard that holds n more: linear in
// n since changed keeps sets (30,000 took minutes when it searched the
// lists). Compare n=3000 and n=30000: about 10×, not 100×.
func BenchmarkChangedManySkipped(b *testing.B) {
	for _, n := range []int{3000, 30000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			x := &sourceIndex{bits: 6}
			shard := x.shardOf(problemTerm[:])
			have, came := make([]indexRecord, n), make([]indexRecord, n)
			for i := range n {
				have[i] = indexRecord{problemTerm, fmt.Sprintf("old%d.json", i)}
				came[i] = indexRecord{problemTerm, fmt.Sprintf("new%d.json", i)}
			}
			gone := have[:n/2]
			for b.Loop() {
				x.changed(shard, slices.Clone(have), gone, came)
			}
		})
	}
}
