package etcd

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// fanoutStores is how many watching stores one revocation must reach.
const fanoutStores = 100

// BenchmarkRevocationFanout measures the time from one revocation write
// until each of 100 watching stores refuses the key: through etcd (one
// Put; 100 Sources, each with its own client and connection, as 100 hosts
// would have) and, as the baseline in the same run, through a watched
// directory (one file written atomically; 100 stores watching it with
// fsnotify and their default 50 ms debounce). Each iteration revokes one
// key and then lifts the revocation (not timed); the metrics are the
// median and 99th percentile over every store of every iteration.
//
//	cd etcd && go test -run '^$' -bench RevocationFanout -benchtime 20x
func BenchmarkRevocationFanout(b *testing.B) {
	k := keydirtest.Key(b, 1)
	revocation := keyJSON(b, k)
	b.Run("etcd", func(b *testing.B) {
		ms := startCluster(b, 1)
		admin := client(b, ms[0].endpoint())
		put(b, admin, Key(prefix, Authorized, "alice"), keyJSON(b, k))
		var stores []*authkeys.Store
		for range fanoutStores {
			src := open(b, Options{Client: client(b, ms[0].endpoint()), Prefix: prefix})
			s := authkeys.Open(context.Background(), src.AuthorizedOptions())
			b.Cleanup(func() { s.Close() })
			stores = append(stores, s)
		}
		fanout(b, stores,
			func() { put(b, admin, Key(prefix, Revoked, "alice"), revocation) },
			func() { del(b, admin, Key(prefix, Revoked, "alice")) })
	})
	b.Run("dir", func(b *testing.B) {
		dir := b.TempDir()
		auth, revoked := filepath.Join(dir, "authorized_keys.d"), filepath.Join(dir, "revoked_keys.d")
		keydirtest.Write(b, filepath.Join(auth, "alice.json"), keyJSON(b, k))
		if err := os.MkdirAll(revoked, 0o700); err != nil {
			b.Fatal(err)
		}
		var stores []*authkeys.Store
		var unwatched atomic.Int64 // stores left to the periodic rescan
		log := slog.New(countWarnings{&unwatched})
		for range fanoutStores {
			s := authkeys.Open(context.Background(), authkeys.Options{Dirs: []string{auth}, RevokedDirs: []string{revoked}, Home: dir, Logger: log})
			b.Cleanup(func() { s.Close() })
			stores = append(stores, s)
		}
		if n := unwatched.Load(); n > 0 {
			b.Fatalf("%d of %d stores cannot watch (each needs an inotify instance: raise fs.inotify.max_user_instances)", n, fanoutStores)
		}
		path := filepath.Join(revoked, "alice.json")
		fanout(b, stores,
			func() { keydirtest.Replace(b, path, revocation) },
			func() {
				if err := os.Remove(path); err != nil {
					b.Fatal(err)
				}
			})
	})
}

// fanout times revoke until every store refuses the key, b.N times,
// lifting the revocation in between, and reports p50 and p99 in ms.
func fanout(b *testing.B, stores []*authkeys.Store, revoke, lift func()) {
	k := keydirtest.Key(b, 1)
	var (
		mu      sync.Mutex
		lat     []time.Duration
		start   atomic.Int64
		pending sync.WaitGroup
	)
	for _, s := range stores {
		var done atomic.Bool
		stop := s.OnChange(func(c authkeys.Change) {
			if c.Revoked > 0 && done.CompareAndSwap(false, true) {
				d := time.Duration(time.Now().UnixNano() - start.Load())
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
				pending.Done()
			}
			if c.Unrevoked > 0 {
				done.Store(false)
			}
		})
		b.Cleanup(stop)
	}
	allAre := func(want authkeys.Verdict) {
		deadline := time.Now().Add(30 * time.Second)
		for _, s := range stores {
			for verdict(s, k) != want {
				if time.Now().After(deadline) {
					b.Fatalf("a store still says %v, want %v", verdict(s, k), want)
				}
				time.Sleep(time.Millisecond)
			}
		}
	}
	allAre(authkeys.Authorized)
	b.ResetTimer()
	for range b.N {
		pending.Add(len(stores))
		start.Store(time.Now().UnixNano())
		revoke()
		pending.Wait()
		b.StopTimer()
		allAre(authkeys.Revoked)
		lift()
		allAre(authkeys.Authorized)
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[(len(lat)*99)/100]), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d stores × %d revocations: p50 %s, p99 %s, max %s", len(stores), b.N, lat[len(lat)/2], lat[(len(lat)*99)/100], lat[len(lat)-1])
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// coldKeys is how many authorized keys BenchmarkColdStart loads.
const coldKeys = 100_000

// BenchmarkColdStart measures a cold start at 100,000 authorized keys:
// from etcd (a new client, the Source's paged list, and a store's first
// load of its feed) against the same entries as the files of a .d
// directory (a store's first load), in the same run; and the heap each
// holds per key once loaded (the Source's view and the store for etcd,
// the store for the directory).
//
//	cd etcd && go test -run '^$' -bench ColdStart -benchtime 5x
func BenchmarkColdStart(b *testing.B) {
	ms := startCluster(b, 1)
	admin := client(b, ms[0].endpoint())
	dir := filepath.Join(b.TempDir(), "authorized_keys.d")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	var ops []clientv3.Op
	flush := func() {
		if len(ops) == 0 {
			return
		}
		if _, err := admin.Txn(context.Background()).Then(ops...).Commit(); err != nil {
			b.Fatal(err)
		}
		ops = ops[:0]
	}
	for i := range coldKeys {
		name := fmt.Sprintf("k%06d", i)
		val := keyJSON(b, keydirtest.Key(b, i))
		ops = append(ops, clientv3.OpPut(Key(prefix, Authorized, name), string(val)))
		if len(ops) == 128 { // etcd's default --max-txn-ops
			flush()
		}
		if err := os.WriteFile(filepath.Join(dir, name+".json"), val, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	flush()
	probe := keydirtest.Key(b, coldKeys-1)

	b.Run("etcd", func(b *testing.B) {
		var perKey float64
		for range b.N {
			b.StopTimer()
			before := heap()
			b.StartTimer()
			start := time.Now()
			cli := client(b, ms[0].endpoint())
			src, err := Open(context.Background(), Options{Client: cli, Prefix: prefix})
			if err != nil {
				b.Fatal(err)
			}
			<-src.Ready()
			listed := time.Since(start)
			s := authkeys.Load(src.AuthorizedOptions())
			if verdict(s, probe) != authkeys.Authorized {
				b.Fatal("the last key is not authorized")
			}
			b.StopTimer()
			b.Logf("listed in %s, loaded in %s", listed, time.Since(start))
			perKey = float64(heap()-before) / coldKeys
			runtime.KeepAlive(s)
			src.Close()
			cli.Close()
			b.StartTimer()
		}
		b.ReportMetric(perKey, "heap-B/key")
	})
	b.Run("dir", func(b *testing.B) {
		var perKey float64
		for range b.N {
			b.StopTimer()
			before := heap()
			b.StartTimer()
			s := authkeys.Load(authkeys.Options{Dirs: []string{dir}})
			if verdict(s, probe) != authkeys.Authorized {
				b.Fatal("the last key is not authorized")
			}
			b.StopTimer()
			perKey = float64(heap()-before) / coldKeys
			runtime.KeepAlive(s)
			b.StartTimer()
		}
		b.ReportMetric(perKey, "heap-B/key")
	})
}

// heap is the live heap after a collection.
func heap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// countWarnings is a slog handler that counts the warnings it is given.
type countWarnings struct{ n *atomic.Int64 }

func (h countWarnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h countWarnings) Handle(context.Context, slog.Record) error {
	h.n.Add(1)
	return nil
}
func (h countWarnings) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countWarnings) WithGroup(string) slog.Handler      { return h }

// BenchmarkPutToStore measures the time from one etcd Put (an authorized
// entry rewritten with a new key) until a watching store authorizes the
// new key, in a prefix of 1,000 authorized entries (the baseline) and of
// 100,000, in the same run: the Source applies the event to its sets and
// the store re-reads only the entry it touched, so that both take about
// as long.
//
//	cd etcd && go test -run '^$' -bench PutToStore -benchtime 100x
func BenchmarkPutToStore(b *testing.B) {
	ms := startCluster(b, 1)
	admin := client(b, ms[0].endpoint())
	for _, n := range []int{1000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			pre := fmt.Sprintf("%s/put%d", prefix, n)
			var ops []clientv3.Op
			for i := range n {
				ops = append(ops, clientv3.OpPut(Key(pre, Authorized, fmt.Sprintf("k%06d", i)), string(keyJSON(b, keydirtest.Key(b, i)))))
				if len(ops) == 128 || i == n-1 { // etcd's default --max-txn-ops
					if _, err := admin.Txn(context.Background()).Then(ops...).Commit(); err != nil {
						b.Fatal(err)
					}
					ops = ops[:0]
				}
			}
			src := open(b, Options{Client: client(b, ms[0].endpoint()), Prefix: pre})
			s := authkeys.Open(context.Background(), src.AuthorizedOptions())
			b.Cleanup(func() { s.Close() })
			changed, stop := s.Subscribe()
			defer stop()
			alt := [2]*jwk.Key{keydirtest.Key(b, n+1), keydirtest.Key(b, 7)}
			vals := [2][]byte{keyJSON(b, alt[0]), keyJSON(b, alt[1])}
			b.ResetTimer()
			for i := range b.N {
				put(b, admin, Key(pre, Authorized, "k000007"), vals[i%2])
				for verdict(s, alt[i%2]) != authkeys.Authorized {
					select {
					case <-changed:
					case <-time.After(30 * time.Second):
						b.Fatal("the store did not take the Put in 30 s")
					}
				}
			}
		})
	}
}
