package bench

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/docker/libtrust"
	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/bench/internal/fixturekeys"
	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/jwk"
)

// BenchmarkStore loads the same P-256 keys three ways, interleaved over
// BENCH_ROUNDS rounds (at most 3):
//
//	impl=floor       os.ReadDir + os.ReadFile of every file: the bare cost of the bytes,
//	                 read with the loader's parallelism (readFloor)
//	impl=keytool     authkeys.Load
//	impl=jwk.Parse   (JWK Set only) os.ReadFile + jwk.Parse: the parser alone
//	impl=libtrust    libtrust's loaders: NewClientKeyManager over the directory
//	                 (LoadPublicKeyFile per file) or LoadKeySetFile per JWK Set
//
// and, once per size (it is slow), impl=libtrust-pool: GenerateCACertPool
// of the loaded keys, which libtrust needs before a single handshake.
//
//	layout=dir     BENCH_DIR_KEYS (100,000) single-key JWK files in one directory
//	layout=set     one JWK Set of BENCH_DIR_KEYS keys
//	layout=sets    N keys as JWK Sets of at most 50,000 keys in a directory,
//	               N = 1, 1,000, 10,000, 100,000, BENCH_BIG (1,000,000) (the plot)
//
// Memory per key (B/key) is the live heap the loaded store keeps,
// measured after a GC. Incremental reload: see BenchmarkReload.
//
//	go test -run '^$' -bench Store -benchtime 500ms -timeout 30m
func BenchmarkStore(b *testing.B) {
	rounds := min(envInt("BENCH_ROUNDS", 5), 3)
	n := envInt("BENCH_DIR_KEYS", 100_000)
	big := envInt("BENCH_BIG", 1_000_000)
	poolMax := envInt("BENCH_LIBTRUST_POOL_MAX", 100_000)
	srvKey := libtrustKey(b, serverKey(b, jwk.EC256))

	type layout struct {
		kind  string // dir, set, sets
		name  string
		n     int
		dir   string   // a directory to load, or
		files []string // files to load
	}
	var layouts []layout
	layouts = append(layouts, layout{kind: "dir", name: fmt.Sprintf("layout=dir/keys=%d", n), n: n, dir: keyDir(b, n)})
	layouts = append(layouts, layout{kind: "set", name: fmt.Sprintf("layout=set/keys=%d", n), n: n, files: []string{keySetFile(b, n)}})
	for _, m := range []int{1, 1_000, 10_000, 100_000, big} {
		d := setsDir(b, m)
		layouts = append(layouts, layout{kind: "sets", name: fmt.Sprintf("layout=sets/keys=%d", m), n: m, dir: d})
	}
	filesOf := func(l layout) []string {
		if l.dir == "" {
			return l.files
		}
		ents, err := os.ReadDir(l.dir)
		if err != nil {
			b.Fatal(err)
		}
		var out []string
		for _, e := range ents {
			out = append(out, filepath.Join(l.dir, e.Name()))
		}
		return out
	}
	floor := func(b *testing.B, l layout) { readFloor(b, filesOf(l)) }
	keytool := func(l layout) *authkeys.Store {
		opts := authkeys.Options{Files: l.files}
		if l.dir != "" {
			opts.Dirs = []string{l.dir}
		}
		s := authkeys.Load(opts)
		if got := len(s.Entries()); got != l.n {
			b.Fatalf("%s: %d keys (%v)", l.name, got, s.Problems())
		}
		return s
	}
	// libtrustKeys loads JWK Sets with LoadKeySetFile.
	libtrustKeys := func(l layout) []libtrust.PublicKey {
		var keys []libtrust.PublicKey
		for _, f := range filesOf(l) {
			ks, err := libtrust.LoadKeySetFile(f)
			if err != nil {
				b.Fatal(err)
			}
			keys = append(keys, ks...)
		}
		if len(keys) != l.n {
			b.Fatalf("%s: libtrust loaded %d keys", l.name, len(keys))
		}
		return keys
	}
	// libtrustLoad loads a directory of single-key files as Docker's
	// daemon would, with NewClientKeyManager (LoadPublicKeyFile per file;
	// any bad file fails it), and JWK Sets with LoadKeySetFile.
	libtrustLoad := func(l layout) any {
		if l.kind != "dir" {
			return libtrustKeys(l)
		}
		m, err := libtrust.NewClientKeyManager(srvKey, "", l.dir)
		if err != nil {
			b.Fatal(err)
		}
		return m
	}
	// libtrust at BENCH_BIG keys is left out above 100,000 keys unless
	// asked for: its JSON decoding through map[string]interface{} and the
	// pool make it minutes.
	libtrustOK := func(l layout) bool { return l.n <= max(poolMax, n) && l.n <= fixturekeys.P256Max() }

	for r := range rounds {
		for _, l := range layouts {
			if l.n > n && r >= 2 {
				continue // the largest size: 2 rounds (it takes seconds)
			}
			b.Run(l.name+"/impl=floor", func(b *testing.B) {
				for b.Loop() {
					floor(b, l)
				}
			})
			b.Run(l.name+"/impl=keytool", func(b *testing.B) {
				for b.Loop() {
					keytool(l)
				}
			})
			if l.kind == "set" {
				// What the JWK Set costs to parse, without the store.
				b.Run(l.name+"/impl=jwk.Parse", func(b *testing.B) {
					for b.Loop() {
						data, err := os.ReadFile(l.files[0])
						if err != nil {
							b.Fatal(err)
						}
						if _, err := jwk.Parse(data); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
			if libtrustOK(l) && (r == 0 || l.n <= n) {
				b.Run(l.name+"/impl=libtrust", func(b *testing.B) {
					for b.Loop() {
						libtrustLoad(l)
					}
				})
			}
		}
	}
	// Once per size: the pool libtrust builds, and memory.
	for _, l := range layouts {
		if l.n <= poolMax && l.kind == "sets" {
			keys := libtrustKeys(l)
			b.Run(l.name+"/impl=libtrust-pool", func(b *testing.B) {
				var pool *x509.CertPool
				for b.Loop() {
					var err error
					if pool, err = libtrust.GenerateCACertPool(srvKey, keys); err != nil {
						b.Fatal(err)
					}
				}
				subj := pool.Subjects() //nolint:staticcheck // the CertificateRequest's names
				b.ReportMetric(float64(subjectBytes(subj)), "B-cert-request-names")
			})
		}
	}
	for _, l := range layouts {
		if l.kind == "sets" && l.n < 10_000 {
			continue
		}
		b.Run(l.name+"/impl=keytool/mem", func(b *testing.B) {
			var perKey float64
			for b.Loop() {
				perKey = heapPerKey(l.n, func() any { return keytool(l) })
			}
			b.ReportMetric(perKey, "B/key")
		})
		if l.n <= poolMax {
			b.Run(l.name+"/impl=libtrust/mem", func(b *testing.B) {
				var perKey float64
				for b.Loop() {
					perKey = heapPerKey(l.n, func() any { return libtrustLoad(l) })
				}
				b.ReportMetric(perKey, "B/key")
			})
		}
		if l.n <= poolMax && l.kind == "sets" && l.n == 10_000 { // per key, the pool's size does not depend on n
			b.Run(l.name+"/impl=libtrust-pool/mem", func(b *testing.B) {
				var perKey float64
				for b.Loop() {
					perKey = heapPerKey(l.n, func() any {
						keys := libtrustKeys(l)
						p, err := libtrust.GenerateCACertPool(srvKey, keys)
						if err != nil {
							b.Fatal(err)
						}
						return []any{keys, p}
					})
				}
				b.ReportMetric(perKey, "B/key")
			})
		}
	}
}

// readFloor reads files with the parallelism the loader reads and parses
// them with (keydir.ForEach, which the loader uses too): it is the floor a
// load is measured against, the same bytes read the same way, nothing
// parsed.
func readFloor(b *testing.B, files []string) {
	forEachFile(b, files, func(path string) error {
		_, err := os.ReadFile(path)
		return err
	})
}

// forEachFile calls read for every file with the loader's parallelism
// and work split (keydir.ForEach), failing b with the first error.
func forEachFile(b *testing.B, files []string, read func(path string) error) {
	var failed atomic.Pointer[error]
	keydir.ForEach(len(files), func(i int) {
		if err := read(files[i]); err != nil {
			failed.CompareAndSwap(nil, &err)
		}
	})
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
}

// heapPerKey returns the live heap kept by what load returns, per key.
func heapPerKey(n int, load func() any) float64 {
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	v := load()
	runtime.GC()
	runtime.ReadMemStats(&m1)
	runtime.KeepAlive(v)
	return float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc)) / float64(n)
}
