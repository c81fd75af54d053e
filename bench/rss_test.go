package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/bench/internal/fixturekeys"
	"github.com/keytool/keytool/bench/internal/procstatus"
)

// rssChildEnv names the directories (separated by the path list separator)
// that BenchmarkRSS's child process loads; TestMain runs rssChild when it
// is set.
const rssChildEnv = "BENCH_RSS_CHILD_DIRS"

// rssWarmEnv names a directory of one key that the child loads (and
// keeps) before the store it measures, for the Warm resident set.
const rssWarmEnv = "BENCH_RSS_WARM_DIR"

// rssReport is what the child prints: resident set sizes in bytes (from
// /proc/self/status) before the load, right after it, and in the steady
// state; the peak; and the live heap the store keeps.
type rssReport struct {
	Keys                         int
	Before, Loaded, Steady, Peak int64
	Heap                         int64
	// Warm is the resident set once a store of one key is loaded, before
	// the one measured: what loading costs a process whatever the number
	// of keys (the code it runs paged in, the runtime's own structures)
	// is counted in Before's differences and not in Warm's.
	Warm int64
}

// BenchmarkRSS measures the memory a loaded store costs the process, per
// key: not the live heap (BenchmarkStore's B/key) but the resident set,
// which is what an operator sees and pays for. Each case runs in a child
// process of its own (this test binary again), so that nothing another
// case allocated is counted:
//
//	rss-B/key        resident set after the load and then allocation churn
//	                 worth 4× the live heap (what handshakes do: the heap
//	                 grows to its GC goal), minus the resident set before
//	loaded-B/key     the same, right after the load (its garbage included)
//	peak-B/key       the peak resident set (VmHWM) minus the one before
//	heap-B/key       the live heap after a GC, minus the one before
//	rss-over-1key-B/key  rss-B/key counted from the resident set of the
//	                 same process once it has loaded a store of one key
//	                 (Warm): memory a key costs, without what loading
//	                 any store costs once
//
//	layout=dir/keys=BENCH_DIR_KEYS    single-key JWK files in one directory (100,000)
//	layout=sets/keys=N                JWK Sets of at most 50,000 keys, N = BENCH_DIR_KEYS
//	                                  and BENCH_BIG (1,000,000)
//
//	go test -run '^$' -bench RSS -benchtime 1x -timeout 30m
func BenchmarkRSS(b *testing.B) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		b.Skip("no /proc/self/status on this system: resident set sizes are read from it")
	}
	n := envInt("BENCH_DIR_KEYS", 100_000)
	big := envInt("BENCH_BIG", 1_000_000)
	// Each case writes its fixture when it runs, so that -bench
	// 'RSS/layout=dir/' with BENCH_DIR_KEYS=1000000 writes a million
	// files, not three million more keys for the cases it leaves out.
	cases := []struct {
		name string
		dir  func(testing.TB, int) string
		n    int
	}{
		{fmt.Sprintf("layout=dir/keys=%d", n), keyDir, n},
		{fmt.Sprintf("layout=dir-two-modes/keys=%d", n), twoModesDir, n},
		{fmt.Sprintf("layout=sets/keys=%d", n), setsDir, n},
		{fmt.Sprintf("layout=sets/keys=%d", big), setsDir, big},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			dir := c.dir(b, c.n)
			var r rssReport
			for b.Loop() {
				r = runRSSChild(b, dir)
			}
			if r.Keys != c.n {
				b.Fatalf("the child loaded %d keys, want %d", r.Keys, c.n)
			}
			per := func(v int64) float64 { return float64(v) / float64(r.Keys) }
			b.ReportMetric(per(r.Steady-r.Before), "rss-B/key")
			b.ReportMetric(per(r.Loaded-r.Before), "loaded-B/key")
			b.ReportMetric(per(r.Peak-r.Before), "peak-B/key")
			b.ReportMetric(per(r.Heap), "heap-B/key")
			b.ReportMetric(per(r.Steady-r.Warm), "rss-over-1key-B/key")
		})
	}
}

// twoModesDir is keyDir's layout with every other file mode 0600 and
// the rest 0644: files written by keytool beside files written by
// another tool, whose stamps' shared part (mode) is not the directory's
// commonest one.
func twoModesDir(tb testing.TB, n int) string {
	return fixture(tb, fmt.Sprintf("dir-two-modes-%d", n), func(d string) error {
		return fixturekeys.WriteFiles(d, n, func(i int) os.FileMode {
			if i%2 == 1 {
				return 0o600
			}
			return 0o644
		})
	})
}

// runRSSChild runs this test binary as rssChild over dirs.
func runRSSChild(b *testing.B, dirs ...string) rssReport {
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), rssChildEnv+"="+strings.Join(dirs, string(os.PathListSeparator)), rssWarmEnv+"="+keyDir(b, 1))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("child: %v\n%s", err, stderr.Bytes())
	}
	var r rssReport
	if err := json.Unmarshal(out, &r); err != nil {
		b.Fatalf("child said %q: %v", out, err)
	}
	return r
}

// rssChild loads the authorized keys of dirs, churns the heap as
// handshakes would, prints an rssReport and returns the exit code.
func rssChild(dirs string) int {
	var r rssReport
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	r.Before = procstatus.Bytes("VmRSS")
	warm := authkeys.Load(authkeys.Options{Dirs: []string{os.Getenv(rssWarmEnv)}, Rescan: -1})
	runtime.GC()
	r.Warm = procstatus.Bytes("VmRSS")
	runtime.ReadMemStats(&m0) // the heap of the store measured, not the warm one's
	s := authkeys.Load(authkeys.Options{Dirs: strings.Split(dirs, string(os.PathListSeparator)), Rescan: -1})
	r.Loaded = procstatus.Bytes("VmRSS")
	r.Keys = s.Status().Keys // not Entries, which would make every Entry
	runtime.GC()
	runtime.ReadMemStats(&m1)
	r.Heap = int64(m1.HeapAlloc) - int64(m0.HeapAlloc)
	// Churn: short-lived allocations of handshake-like sizes, 4× the live
	// heap in all, a few kept at a time.
	var ring [64][]byte
	for i, total := 0, int64(0); total < 4*int64(m1.HeapAlloc); i++ {
		size := 512 << (i % 6) // 512 B … 16 KiB
		ring[i%len(ring)] = make([]byte, size)
		total += int64(size)
	}
	r.Steady = procstatus.Bytes("VmRSS")
	r.Peak = procstatus.Bytes("VmHWM")
	runtime.KeepAlive(s)
	runtime.KeepAlive(warm)
	runtime.KeepAlive(&ring)
	if len(s.Problems()) > 0 {
		fmt.Fprintln(os.Stderr, s.Problems())
		return 1
	}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		return 1
	}
	return 0
}
