// Command peakprobe loads a directory of authorized keys as BenchmarkRSS's
// child does and samples, every millisecond while it loads, the resident
// set, the heap's classes (runtime/metrics) and the bytes mapped outside
// the heap (offheap.Mapped): where the load's peak (BenchmarkRSS's
// peak-B/key) comes from, heap or mapped, and when (docs/design.md,
// "Memory of a loaded store", step 6):
//
//	cd bench && go run ./cmd/peakprobe -make 100000 -dir /tmp/keys.d   # writes the files once
//	cd bench && go run ./cmd/peakprobe -dir /tmp/keys.d -warm /tmp/one.d -every 20
//	cd bench && go run ./cmd/peakprobe -dir /tmp/keys.d -memprofile allocs.prof
//
// It prints the sample at the peak resident set, the one right after the
// load and one after a collection; -every N prints every Nth sample too,
// and -memprofile writes the load's allocations (go tool pprof
// -sample_index=alloc_space).
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/bench/internal/fixturekeys"
	"github.com/keytool/keytool/bench/internal/procstatus"
	"github.com/keytool/keytool/internal/offheap"
)

var names = []string{
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/released:bytes",
	"/memory/classes/heap/stacks:bytes",
	"/memory/classes/total:bytes",
	"/gc/heap/goal:bytes",
	"/gc/cycles/total:gc-cycles",
}

type sample struct {
	t      time.Duration
	rss    int64
	mapped int64
	m      [8]uint64
}

func (s sample) String() string {
	return fmt.Sprintf("t=%v rss=%.1fMB mapped=%.1fMB objects=%.1fMB unused=%.1fMB free=%.1fMB released=%.1fMB goal=%.1fMB gcs=%d",
		s.t.Round(time.Millisecond), mb(s.rss), mb(s.mapped), mb(int64(s.m[0])), mb(int64(s.m[1])), mb(int64(s.m[2])), mb(int64(s.m[3])), mb(int64(s.m[6])), s.m[7])
}

func mb(v int64) float64 { return float64(v) / 1e6 }

func take(start time.Time, ms []metrics.Sample) sample {
	metrics.Read(ms)
	s := sample{t: time.Since(start), rss: procstatus.Bytes("VmRSS"), mapped: offheap.Mapped()}
	for i := range ms {
		s.m[i] = ms[i].Value.Uint64()
	}
	return s
}

func main() {
	dir := flag.String("dir", "", "directory of key files")
	every := flag.Int("every", 0, "print every Nth sample too (0: none)")
	warmDir := flag.String("warm", "", "directory of one key loaded first, as BenchmarkRSS's child does")
	memprof := flag.String("memprofile", "", "write the allocations' profile here")
	makeN := flag.Int("make", 0, "write this many single-key files into -dir, BenchmarkRSS's fixture (P-256 JWKs up to BENCH_P256, 100,000, Ed25519 beyond), and exit")
	flag.Parse()
	if *makeN > 0 {
		if err := writeKeys(*dir, *makeN); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if *memprof != "" {
		runtime.MemProfileRate = 1024
	}
	ms := make([]metrics.Sample, len(names))
	for i := range ms {
		ms[i].Name = names[i]
	}
	runtime.GC()
	before := procstatus.Bytes("VmRSS")
	var warm *authkeys.Store
	if *warmDir != "" {
		warm = authkeys.Load(authkeys.Options{Dirs: []string{*warmDir}, Rescan: -1})
		runtime.GC()
	}
	start := time.Now()
	var (
		mu    sync.Mutex
		peak  sample
		all   []sample
		done  = make(chan struct{})
		ended = make(chan struct{})
	)
	go func() {
		defer close(ended)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for n := 0; ; n++ {
			select {
			case <-done:
				return
			case <-t.C:
			}
			s := take(start, ms)
			mu.Lock()
			if s.rss > peak.rss {
				peak = s
			}
			if *every > 0 && n%*every == 0 {
				all = append(all, s)
			}
			mu.Unlock()
		}
	}()
	st := authkeys.Load(authkeys.Options{Dirs: []string{*dir}, Rescan: -1})
	after := take(start, ms)
	close(done)
	<-ended
	keys := st.Status().Keys
	runtime.GC()
	gcd := take(start, ms)
	hwm := procstatus.Bytes("VmHWM")
	per := func(v int64) float64 { return float64(v) / float64(keys) }
	for _, s := range all {
		fmt.Println("  ", s)
	}
	fmt.Printf("keys %d before %.1fMB hwm %.1fMB (peak-B/key %.0f)\n", keys, mb(before), mb(hwm), per(hwm-before))
	fmt.Println("peak  ", peak, fmt.Sprintf("(rss-before %.0f B/key)", per(peak.rss-before)))
	fmt.Println("after ", after)
	fmt.Println("gc'd  ", gcd)
	if *memprof != "" {
		f, _ := os.Create(*memprof)
		pprof.Lookup("allocs").WriteTo(f, 0)
		f.Close()
	}
	runtime.KeepAlive(st)
	runtime.KeepAlive(warm)
}

// writeKeys writes n single-key JWK files into dir: BenchmarkRSS's
// fixture (fixturekeys).
func writeKeys(dir string, n int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return fixturekeys.WriteFiles(dir, n, func(int) os.FileMode { return 0o644 })
}
