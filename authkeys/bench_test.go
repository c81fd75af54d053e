package authkeys

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// storeOf builds a store whose snapshot holds n synthetic entries (SPKI
// hashes are uniformly distributed, so hashes of counters stand in for
// real keys), without writing any file.
func storeOf(n int) (*Store, [][32]byte) {
	s := newStore(Options{})
	f := keydir.NewFile("/keys/authorized_keys.json", 0, make([]item, n))
	files := keydir.SnapshotOf(f)
	sn := &snapshot{files: files, keys: newIndex(files, n)}
	sums := make([][32]byte, 0, min(n, 1<<16))
	var b [8]byte
	for i := range n {
		binary.BigEndian.PutUint64(b[:], uint64(i))
		sum := sha256.Sum256(b[:])
		f.Items()[i] = item{sum: sum}
		if len(sums) < cap(sums) {
			sums = append(sums, sum)
		}
	}
	sn.keys.insertFile(1, n, nil)
	s.snap.Store(sn)
	return s, sums
}

// BenchmarkLookup measures Lookup at 1, 10k and 1M keys: "same" asks for
// one key (hot in cache), "spread" cycles through up to 65,536 different
// keys, so that at 1M keys most lookups miss the CPU caches.
func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{1, 10_000, 1_000_000} {
		s, sums := storeOf(n)
		b.Run(fmt.Sprintf("keys=%d/same", n), func(b *testing.B) { lookups(b, s, sums[:1]) })
		b.Run(fmt.Sprintf("keys=%d/spread", n), func(b *testing.B) { lookups(b, s, sums) })
		runtime.KeepAlive(s)
	}
}

// lookups looks up the keys sums in turn, and reports the process's CPU
// time an operation beside the wall time: on a machine shared with other
// jobs the wall time is the scheduler's as much as the lookup's.
func lookups(b *testing.B, s *Store, sums [][32]byte) {
	remote := netip.MustParseAddr("10.0.0.1")
	b.ReportAllocs()
	cpu := keydirtest.CPUTime(b)
	i := 0
	for b.Loop() {
		if _, err := s.Lookup(sums[i%len(sums)], remote); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(keydirtest.CPUTime(b)-cpu)/float64(b.N), "cpu-ns/op")
}

// BenchmarkLookupInDir is BenchmarkLookup of a store loaded from a
// directory of 10,000 single-key files, where BenchmarkLookup's is one
// file of many keys: since step 5 (c) such a file has no File of its
// own, and a probe copies its item out of the snapshot's mapped pages
// (docs/design.md, "Memory of a loaded store"), which this measures.
func BenchmarkLookupInDir(b *testing.B) {
	const n = 10_000
	dir := filepath.Join(b.TempDir(), "authorized_keys.d")
	os.MkdirAll(dir, 0o755)
	sums := make([][32]byte, n)
	for i := range n {
		k := keydirtest.Key(b, i)
		sums[i] = k.SPKIHash()
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("k%06d.json", i)), keydirtest.JWK(b, k), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	s := Load(Options{Dirs: []string{dir}, Rescan: -1})
	b.Run("same", func(b *testing.B) { lookups(b, s, sums[:1]) })
	b.Run("spread", func(b *testing.B) { lookups(b, s, sums) })
}

// benchKeys is the size of the load benchmarks' fixtures (100,000 unless
// KEYTOOL_BENCH_KEYS says otherwise).
func benchKeys() int {
	if n, err := strconv.Atoi(os.Getenv("KEYTOOL_BENCH_KEYS")); err == nil && n > 0 {
		return n
	}
	return 100_000
}

// readFloor reads files with the parallelism the loader reads and parses
// them with (keydir.ForEach, which the loader uses too): it is the floor a
// load is measured against, the same bytes read the same way, nothing
// parsed.
func readFloor(b *testing.B, files []string) {
	var failed atomic.Pointer[error]
	keydir.ForEach(len(files), func(i int) {
		if _, err := os.ReadFile(files[i]); err != nil {
			failed.CompareAndSwap(nil, &err)
		}
	})
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
}

// BenchmarkLoad compares loading N keys with the floor of merely reading
// the same bytes, in the same run: a directory of N single-key files, one
// JWK Set of N keys, and the reload after one file of the directory
// changed (a full rescan, as the periodic safety net does, and a targeted
// one, as a file event triggers). The floor reads the directory's files
// in parallel, with as many goroutines as the loader uses and the same
// split of the work (readFloor), so that a load is not compared with a
// serial read it could beat only by its parallelism; the JWK Set is one
// file, read by one goroutine in both.
func BenchmarkLoad(b *testing.B) {
	n := benchKeys()
	home := b.TempDir()
	dir := filepath.Join(home, "authorized_keys.d")
	os.MkdirAll(dir, 0o755)
	keys := make([]*jwk.Key, n)
	for i := range keys {
		keys[i] = keydirtest.Key(b, i)
		data := keydirtest.JWK(b, keys[i])
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("k%06d.json", i)), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	setFile := filepath.Join(home, "set", "authorized_keys.json")
	keydirtest.Write(b, setFile, keydirtest.JWK(b, keys...))
	dirOpts := Options{Dirs: []string{dir}, Rescan: -1}
	setOpts := Options{Files: []string{setFile}}

	b.Run("dir/floor-readfile", func(b *testing.B) {
		for b.Loop() {
			ents, err := os.ReadDir(dir)
			if err != nil {
				b.Fatal(err)
			}
			files := make([]string, len(ents))
			for i, e := range ents {
				files[i] = filepath.Join(dir, e.Name())
			}
			readFloor(b, files)
		}
	})
	b.Run("dir/cold-load", func(b *testing.B) {
		for b.Loop() {
			s := Load(dirOpts)
			if len(s.Entries()) != n {
				b.Fatalf("%d entries", len(s.Entries()))
			}
		}
	})
	s := Load(dirOpts)
	changed := filepath.Join(dir, "k000007.json")
	alt := [2][]byte{keydirtest.JWK(b, keydirtest.Key(b, n+1)), keydirtest.JWK(b, keys[7])}
	b.Run("dir/one-changed-full-rescan", func(b *testing.B) {
		i := 0
		for b.Loop() {
			b.StopTimer()
			keydirtest.Replace(b, changed, alt[i%2])
			i++
			b.StartTimer()
			s.Reload()
		}
	})
	// The reload a file event causes (keydirtest.BenchReplaced says what
	// it reports).
	b.Run("dir/one-changed-event", func(b *testing.B) {
		keydirtest.BenchReplaced(b, changed, alt, func(p string) { s.Loader().Reload(p) })
	})
	b.Run("dir/unchanged-full-rescan", func(b *testing.B) {
		for b.Loop() {
			s.Reload()
		}
	})
	b.Run("set/floor-readfile", func(b *testing.B) {
		for b.Loop() {
			readFloor(b, []string{setFile})
		}
	})
	b.Run("set/cold-load", func(b *testing.B) {
		for b.Loop() {
			s := Load(setOpts)
			if len(s.Entries()) != n {
				b.Fatalf("%d entries", len(s.Entries()))
			}
		}
	})
	b.Run("set/floor-jwk.Parse", func(b *testing.B) {
		for b.Loop() {
			data, _ := os.ReadFile(setFile)
			if _, err := jwk.Parse(data); err != nil {
				b.Fatal(err)
			}
		}
	})

	// Memory per key: the heap a loaded store keeps, divided by its keys.
	for _, c := range []struct {
		name string
		opts Options
	}{{"dir", dirOpts}, {"set", setOpts}} {
		b.Run(c.name+"/memory", func(b *testing.B) {
			var perKey float64
			for b.Loop() {
				var m0, m1 runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&m0)
				s := Load(c.opts)
				runtime.GC()
				runtime.ReadMemStats(&m1)
				perKey = float64(m1.HeapAlloc-m0.HeapAlloc) / float64(len(s.Entries()))
				runtime.KeepAlive(s)
			}
			b.ReportMetric(perKey, "B/key")
		})
	}
}
