package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/jwk"
)

// watched starts a keytool server over a watched store: the directory of
// n single-key files (the fixture keyDir(n)) with the stable client's key
// added to it as stable.json — in the very directory whose reloads are
// measured, so that every reload rebuilds or edits the index that holds
// it — and clients that do handshakes with that key in the background
// until stop is called, which also takes stable.json out again.
type watched struct {
	store   *authkeys.Store
	srv     *server
	dir     string // the 100k-key authorized_keys.d, where trials add files
	ok, bad atomic.Int64
	lastBad atomic.Value
	stop    func()
}

func startWatched(b *testing.B, n int, debounce time.Duration, clients int) *watched {
	t := jwk.EC256
	dir := keyDir(b, n)
	stable := filepath.Join(dir, "stable.json")
	// The fixture directory is shared by the whole run: whatever is added
	// to it is taken out again, even when the benchmark fails.
	b.Cleanup(func() { os.Remove(stable) })
	if err := jwk.WritePublicKeyFile(stable, clientKey(b, t), jwk.JWK, jwk.Overwrite); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	store := authkeys.Open(ctx, authkeys.Options{Dirs: []string{dir}, Debounce: debounce})
	if got := len(store.Entries()); got != n+1 {
		b.Fatalf("%d keys, want %d", got, n+1)
	}
	srvCfg, cli := keytoolPair(b, t, store)
	w := &watched{store: store, srv: serve(b, srvCfg), dir: dir}
	cfg := cli(w.srv.addr())
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				if _, err := handshake(w.srv.addr(), cfg); err != nil {
					w.bad.Add(1)
					w.lastBad.Store(err.Error())
				} else {
					w.ok.Add(1)
				}
			}
		}()
	}
	w.stop = func() {
		close(done)
		wg.Wait()
		w.srv.close()
		store.Close()
		cancel()
	}
	return w
}

// BenchmarkReload measures, with BENCH_DIR_KEYS (100,000) keys in the
// watched authorized_keys.d and a background client doing handshakes all
// along (the server under load):
//
//	latency   BENCH_TRIALS (200) times: a new client's key file is renamed into
//	          the directory; the time until its first successful handshake;
//	          then the file is removed; the time until its first refused one.
//	          Default watching settings (50 ms debounce).
//	reload-cost  BENCH_RELOAD_COST (50) reloads of the 100,000-key store, one
//	          after the other (debounce 1 ms, no handshakes): the time from a
//	          file's rename to the new snapshot, the debounce included.
//	churn     with BENCH_CHURN_KEYS (as many as BENCH_DIR_KEYS) keys,
//	          BENCH_CHURN (10,000) reloads, each caused by rewriting another
//	          file (renamed over, alternating between two keys), waited for
//	          through Subscribe, while 2 clients whose key stays authorized do
//	          handshakes: every failure is counted. Debounce 1 ms, so that the
//	          reloads are not merged.
//
//	go test -run '^$' -bench Reload -benchtime 1x
func BenchmarkReload(b *testing.B) {
	// The handshake benchmarks keep their stores (up to 1,000,000 keys)
	// for the process; a server measured here holds 100,000 keys, so the
	// garbage collector must not be marking an unrelated million meanwhile.
	storeMu.Lock()
	clear(stores)
	storeMu.Unlock()
	runtime.GC()
	n := envInt("BENCH_DIR_KEYS", 100_000)
	b.Run(fmt.Sprintf("latency/keys=%d", n), func(b *testing.B) {
		trials := envInt("BENCH_TRIALS", 200)
		w := startWatched(b, n, 0, 1)
		defer w.stop()
		tmp := b.TempDir()
		// When each new snapshot came (the store's notification, read
		// on a goroutine of its own), to split a trial's time between
		// the reload and the handshakes after it.
		notes, unsub := w.store.Subscribe()
		defer unsub()
		var lastSnap atomic.Int64
		quit := make(chan struct{})
		defer close(quit)
		go func() {
			for {
				select {
				case <-notes:
					lastSnap.Store(time.Now().UnixNano())
				case <-quit:
					return
				}
			}
		}()
		snapSince := func(start time.Time) time.Duration { return time.Duration(lastSnap.Load() - start.UnixNano()) }
		var add, rm, addSnap, rmSnap []time.Duration
		timeouts := 0
		for b.Loop() {
			add, rm, addSnap, rmSnap = add[:0], rm[:0], addSnap[:0], rmSnap[:0]
			for i := range trials {
				k := mustGenerate(b, jwk.EC256)
				cfg := keytoolClient(b, k, serverKey(b, jwk.EC256), w.srv.addr())
				staged := filepath.Join(tmp, "new.json")
				if err := jwk.WritePublicKeyFile(staged, k.PublicKey(), jwk.JWK, jwk.Overwrite); err != nil {
					b.Fatal(err)
				}
				target := filepath.Join(w.dir, fmt.Sprintf("zz-trial-%d.json", i))
				start := time.Now()
				if err := os.Rename(staged, target); err != nil {
					b.Fatal(err)
				}
				d, ok := until(w.srv.addr(), cfg, true, start)
				if !ok {
					timeouts++
				}
				add, addSnap = append(add, d), append(addSnap, snapSince(start))
				start = time.Now()
				if err := os.Remove(target); err != nil {
					b.Fatal(err)
				}
				d, ok = until(w.srv.addr(), cfg, false, start)
				if !ok {
					timeouts++
				}
				rm, rmSnap = append(rm, d), append(rmSnap, snapSince(start))
			}
		}
		ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
		b.ReportMetric(ms(pct(add, 50)), "p50-add-ms")
		b.ReportMetric(ms(pct(add, 90)), "p90-add-ms")
		b.ReportMetric(ms(pct(add, 99)), "p99-add-ms")
		b.ReportMetric(ms(pct(add, 100)), "max-add-ms")
		b.ReportMetric(ms(pct(rm, 50)), "p50-remove-ms")
		b.ReportMetric(ms(pct(rm, 90)), "p90-remove-ms")
		b.ReportMetric(ms(pct(rm, 99)), "p99-remove-ms")
		b.ReportMetric(ms(pct(rm, 100)), "max-remove-ms")
		// The rename or removal to the new snapshot (the reload policy's
		// wait and the reload), of the same trials.
		b.ReportMetric(ms(pct(addSnap, 50)), "p50-add-snapshot-ms")
		b.ReportMetric(ms(pct(addSnap, 99)), "p99-add-snapshot-ms")
		b.ReportMetric(ms(pct(rmSnap, 50)), "p50-remove-snapshot-ms")
		b.ReportMetric(ms(pct(rmSnap, 99)), "p99-remove-snapshot-ms")
		b.ReportMetric(float64(len(add)), "trials")
		b.ReportMetric(float64(timeouts), "timeouts")
		b.ReportMetric(float64(w.ok.Load()), "bg-ok")
		b.ReportMetric(float64(w.bad.Load()), "bg-failed")
		if v := w.lastBad.Load(); v != nil {
			note(b, "reload/latency/bg-error", "%v", v)
		}
	})
	// What one reload costs with n keys: a few churn reloads, waited for.
	b.Run(fmt.Sprintf("reload-cost/keys=%d", n), func(b *testing.B) {
		reloads := envInt("BENCH_RELOAD_COST", 50)
		w := startWatched(b, n, time.Millisecond, 0)
		defer w.stop()
		ch, unsub := w.store.Subscribe()
		defer unsub()
		tmp := b.TempDir()
		target := filepath.Join(w.dir, "zz-cost.json")
		alt := [2][]byte{[]byte(edJWK(-101)), []byte(edJWK(-102))} // keys of their own: churn uses -1 to -32
		var took time.Duration
		for b.Loop() {
			start := time.Now()
			for i := range reloads {
				staged := filepath.Join(tmp, "cost.json")
				if err := os.WriteFile(staged, alt[i%2], 0o644); err != nil {
					b.Fatal(err)
				}
				if err := os.Rename(staged, target); err != nil {
					b.Fatal(err)
				}
				select {
				case <-ch:
				case <-time.After(5 * time.Second):
					b.Fatal("no reload")
				}
			}
			took = time.Since(start)
		}
		os.Remove(target)
		b.ReportMetric(float64(took)/1e6/float64(reloads), "ms/reload")
	})
	cn := envInt("BENCH_CHURN_KEYS", n)
	b.Run(fmt.Sprintf("churn/keys=%d", cn), func(b *testing.B) {
		n := cn
		reloads := envInt("BENCH_CHURN", 10_000)
		w := startWatched(b, n, time.Millisecond, 2)
		defer w.stop()
		ch, unsub := w.store.Subscribe()
		defer unsub()
		tmp := b.TempDir()
		// Each reload rewrites one of 16 files in turn, each between two
		// keys of its own, so the index gains and loses entries all along.
		const files = 16
		alt := func(i int) []byte { return []byte(edJWK(-1 - (i%files)*2 - (i/files)%2)) }
		target := func(i int) string { return filepath.Join(w.dir, fmt.Sprintf("zz-churn-%02d.json", i%files)) }
		b.Cleanup(func() {
			for i := range files {
				os.Remove(target(i))
			}
		})
		seen, missed := 0, 0
		var took time.Duration
		for b.Loop() {
			start := time.Now()
			for i := range reloads {
				staged := filepath.Join(tmp, "churn.json")
				if err := os.WriteFile(staged, alt(i), 0o644); err != nil {
					b.Fatal(err)
				}
				if err := os.Rename(staged, target(i)); err != nil {
					b.Fatal(err)
				}
				select {
				case <-ch:
					seen++
				case <-time.After(2 * time.Second):
					missed++
				}
			}
			took = time.Since(start)
		}
		b.ReportMetric(float64(seen), "reloads")
		b.ReportMetric(float64(missed), "missed")
		b.ReportMetric(float64(took)/1e6/float64(max(seen, 1)), "ms/reload")
		b.ReportMetric(float64(w.ok.Load()), "bg-ok")
		b.ReportMetric(float64(w.bad.Load()), "bg-failed")
		if v := w.lastBad.Load(); v != nil {
			note(b, "reload/churn/bg-error", "%v", v)
		}
	})
}

// until does handshakes with cfg until one succeeds (want true) or fails
// (want false), and returns the time since start; false after 10 s.
func until(addr string, cfg *tls.Config, want bool, start time.Time) (time.Duration, bool) {
	for time.Since(start) < 10*time.Second {
		_, err := handshake(addr, cfg)
		if (err == nil) == want {
			return time.Since(start), true
		}
	}
	return time.Since(start), false
}

// pct returns the p-th percentile (nearest rank) of ds.
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (p*len(s)+99)/100 - 1
	return s[max(0, min(i, len(s)-1))]
}
