package keydir

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// BenchmarkEventDuringRescan measures what the periodic rescan does to a
// change announced by an event, through Watch and real file events: a
// directory of N single-key files (100,000 unless KEYTOOL_BENCH_KEYS says
// otherwise) is watched with a 1 ms debounce; each iteration renames a new
// version of one file into place and waits for the snapshot that has it.
// Two sub-benchmarks, in the same run: with no rescan at all (the
// baseline), and with a rescan due every millisecond, so that one is
// always comparing (they run one at a time). The figure is ms/event, from
// the rename to the new snapshot.
func BenchmarkEventDuringRescan(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("KEYTOOL_BENCH_KEYS")); err == nil && v > 0 {
		n = v
	}
	dir := filepath.Join(b.TempDir(), "authorized_keys.d")
	os.MkdirAll(dir, 0o755)
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("k%06d.json", i)), keydirtest.JWK(b, keydirtest.Key(b, i)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	changed := filepath.Join(dir, "k000007.json")
	alt := [2][]byte{keydirtest.JWK(b, keydirtest.Key(b, n+1)), keydirtest.JWK(b, keydirtest.Key(b, 7))}
	i := 0
	for _, c := range []struct {
		name   string
		rescan time.Duration
	}{{"no-rescan", -1}, {"rescan-always-comparing", time.Millisecond}} {
		b.Run(c.name, func(b *testing.B) {
			l := New(Config[string]{Sources: []Source{{Path: dir, Dir: true}}, Convert: fpConvert, Debounce: time.Millisecond, Rescan: c.rescan})
			l.Watch(context.Background())
			defer l.Close()
			if got := len(l.Snapshot().Files()); got != n {
				b.Fatalf("%d files loaded", got)
			}
			ch, stop := l.Subscribe()
			defer stop()
			var sum time.Duration
			for b.Loop() {
				data := alt[i%2]
				i++
				start := time.Now()
				keydirtest.Replace(b, changed, data)
				for !hasFile(l.Snapshot(), changed, fpOf(b, data)) {
					select {
					case <-ch:
					case <-time.After(10 * time.Second):
						b.Fatal("the change was not loaded within 10 s")
					}
				}
				sum += time.Since(start)
			}
			b.ReportMetric(float64(sum.Microseconds())/1e3/float64(b.N), "ms/event")
		})
	}
}

// hasFile reports whether the snapshot holds path with the key fp.
func hasFile(s *Snapshot[string], path, fp string) bool {
	for _, f := range s.Files() {
		if f.Path() == path {
			return len(f.Items()) == 1 && f.Items()[0] == fp
		}
	}
	return false
}

func fpOf(tb testing.TB, data []byte) string {
	k, err := jwk.ParseOne(data)
	if err != nil {
		tb.Fatal(err)
	}
	return k.Fingerprint()
}

// BenchmarkFeedChange measures one change (an entry rewritten with a new
// key) to a feed of N entries (100,000 unless KEYTOOL_BENCH_KEYS says
// otherwise), from the feed's new view to the loader's new snapshot. Two
// sub-benchmarks in the same run: "whole", a feed handing a fresh map per
// view, which the loader reads whole (every entry hashed) — what every
// feed cost before FeedSet, the baseline; and "set", a feed handing each
// view as a FeedSet made from the last one, which the loader reads entry
// by entry.
//
//	go test ./internal/keydir -run '^$' -bench FeedChange -benchtime 200x
func BenchmarkFeedChange(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("KEYTOOL_BENCH_KEYS")); err == nil && v > 0 {
		n = v
	}
	entries := make(map[string][]byte, n)
	for i := range n {
		entries[fmt.Sprintf("k%06d", i)] = keydirtest.JWK(b, keydirtest.Key(b, i))
	}
	alt := [2][]byte{keydirtest.JWK(b, keydirtest.Key(b, n+1)), entries["k000007"]}
	b.Run("whole", func(b *testing.B) {
		f := newMemFeed("etcd:/fleet/authorized_keys")
		m := maps.Clone(entries)
		f.Set(FeedView{Entries: m})
		l := New(Config[string]{Sources: []Source{{Path: f.Name(), Dir: true, Feed: f}}, Convert: fpConvert})
		l.Reload()
		b.ResetTimer()
		for i := range b.N {
			m = maps.Clone(m) // a view is not modified once handed on
			m["k000007"] = alt[i%2]
			f.Set(FeedView{Entries: m})
			l.Reload()
		}
	})
	b.Run("set", func(b *testing.B) {
		f := newMemFeed("etcd:/fleet/authorized_keys")
		set := NewFeedSet()
		for name, data := range entries {
			set = set.Put(name, data)
		}
		f.Set(FeedView{Set: set})
		l := New(Config[string]{Sources: []Source{{Path: f.Name(), Dir: true, Feed: f}}, Convert: fpConvert})
		l.Reload()
		b.ResetTimer()
		for i := range b.N {
			set = set.Put("k000007", alt[i%2])
			f.Set(FeedView{Set: set})
			l.Reload()
		}
	})
}
