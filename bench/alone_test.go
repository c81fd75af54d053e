package bench

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/jwk"
)

// aloneKeysEnv, set, makes BenchmarkHandshakeAlone the child that runs
// the handshakes with that many authorized keys.
const aloneKeysEnv = "BENCH_ALONE_KEYS"

// aloneDirEnv is the directory of keys (JWK Sets, or single-key files)
// the child loads beside its client's key when it has more than one key.
const aloneDirEnv = "BENCH_ALONE_DIR"

// BenchmarkHandshakeAlone measures full P-256 mutual-TLS handshakes
// (sequential, as BenchmarkHandshake's mode=seq) with 1 and BENCH_BIG
// (1,000,000) authorized keys, each in a process of its own that holds
// nothing but that store: the garbage collector then works on that
// store's heap alone, and its work is counted where it falls. (In
// BenchmarkHandshake every store shares one heap, so a collection marks
// all of them whichever case runs, and a run of a second may see none.)
// Each child runs BENCH_ALONE_TIME (default 20s) of handshakes, long
// enough for several collections at a million keys, after one forced
// collection; the cases alternate over BENCH_ROUNDS rounds (default 2).
// The keys are in JWK Sets of at most 50,000 keys; with
// BENCH_ALONE_LAYOUT=dir, in single-key files of one directory, whose
// keys are read from the snapshot's mapped pages where a File held them
// in the heap (docs/design.md, "Memory of a loaded store", step 5 (c)).
//
//	cpu-ns/op      the process's CPU time per handshake, client and server,
//	               garbage collection included
//	gc-cpu-ns/op   the garbage collector's share of it, as runtime/metrics
//	               estimates it (see gcCPU)
//	gc-cycles      collections during the timed handshakes
//	gc-cycle-cpu-ns
//	               the CPU time of one collection of the child's heap, measured
//	               (the best of 3 forced ones after the handshakes)
//	gc-cycles-cpu-ns/op
//	               gc-cycle-cpu-ns × gc-cycles ÷ handshakes: the collector's
//	               share per handshake in measured CPU time
//	live-B, scan-B the heap the last of those forced collections found live,
//	               and the part of it the collector reads (runtime/metrics
//	               /gc/heap/live and /gc/scan/heap); objects, how many live
//	               objects: how often the collector runs follows the room the
//	               live heap leaves the handshakes under the 4 MB goal, and
//	               what a collection reads
//
//	go test -run '^$' -bench HandshakeAlone -benchtime 1x -timeout 30m
//	BENCH_ALONE_LAYOUT=dir go test -run '^$' -bench HandshakeAlone -benchtime 1x -timeout 60m
func BenchmarkHandshakeAlone(b *testing.B) {
	if n, err := strconv.Atoi(os.Getenv(aloneKeysEnv)); err == nil {
		aloneChild(b, n)
		return
	}
	rounds := envInt("BENCH_ROUNDS", 2)
	big := envInt("BENCH_BIG", 1_000_000)
	benchtime := os.Getenv("BENCH_ALONE_TIME")
	if benchtime == "" {
		benchtime = "20s"
	}
	// Written once, here, for the children to read.
	dir, layout := setsDir, ""
	if os.Getenv("BENCH_ALONE_LAYOUT") == "dir" {
		dir, layout = keyDir, "layout=dir/"
	}
	keys := dir(b, big)
	for range rounds {
		for _, n := range []int{1, big} {
			b.Run(fmt.Sprintf("%stype=ec256/keys=%d/mode=seq", layout, n), func(b *testing.B) {
				var m map[string]float64
				for b.Loop() {
					m = runAloneChild(b, n, keys, benchtime)
				}
				for _, unit := range []string{"cpu-ns/op", "gc-cpu-ns/op", "gc-cycles", "gc-cycle-cpu-ns", "gc-cycles-cpu-ns/op", "wall-ns/op", "live-B", "scan-B", "objects"} {
					b.ReportMetric(m[unit], unit)
				}
			})
		}
	}
}

// runAloneChild runs this binary as BenchmarkHandshakeAlone's child with
// n keys and returns the metrics of its result line by unit.
func runAloneChild(b *testing.B, n int, dir, benchtime string) map[string]float64 {
	cmd := exec.Command(os.Args[0], "-test.run", "^$", "-test.bench", "^BenchmarkHandshakeAlone$", "-test.benchtime", benchtime)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", aloneKeysEnv, n), aloneDirEnv+"="+dir, "BENCH_TMP="+scratch)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("child: %v\n%s%s", err, out, stderr.Bytes())
	}
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, "BenchmarkHandshakeAlone") {
			continue
		}
		f := strings.Fields(line)
		m := map[string]float64{}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				b.Fatalf("child said %q", line)
			}
			m[f[i+1]] = v
		}
		m["wall-ns/op"] = m["ns/op"]
		return m
	}
	b.Fatalf("no result from the child:\n%s", out)
	return nil
}

// aloneChild is the child: a store of n keys (its client's, and the
// parent's fixture beyond), a keytool server and client, and handshakes
// for as long as -benchtime says. It generates no fixture keys, which
// would stay in its heap.
func aloneChild(b *testing.B, n int) {
	st, _ := keytoolStore(b, 1, jwk.EC256)
	if n > 1 {
		clients := fixture(b, fmt.Sprintf("clients-%v", []jwk.Type{jwk.EC256}), nil)
		st = authkeys.Load(authkeys.Options{Dirs: []string{clients, os.Getenv(aloneDirEnv)}})
		if got := st.Status().Keys; got != n+1 {
			b.Fatalf("store holds %d keys, want %d (problems: %v)", got, n+1, st.Problems())
		}
	}
	srv, cli := keytoolPair(b, jwk.EC256, st)
	s := serve(b, srv)
	defer s.close()
	cfg := cli(s.addr())
	if _, err := handshake(s.addr(), cfg); err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	cycles := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(cycles)
	before := cycles[0].Value.Uint64()
	runHandshakes(b, s.addr(), cfg, false)
	metrics.Read(cycles)
	ran := cycles[0].Value.Uint64() - before
	b.ReportMetric(float64(ran), "gc-cycles")
	// What one collection of this heap costs, in the process's own CPU
	// time (the best of three forced ones, nothing else running in it),
	// spread over the handshakes as the collections fell: a measure of
	// the collector's share that the estimates of runtime/metrics, which
	// count a P's time whether or not the system ran it, cannot give on a
	// busy machine.
	cycle := int64(math.MaxInt64)
	for range 3 {
		start := cpuTime()
		runtime.GC()
		cycle = min(cycle, cpuTime()-start)
	}
	b.ReportMetric(float64(cycle), "gc-cycle-cpu-ns")
	b.ReportMetric(float64(cycle)*float64(ran)/float64(b.N), "gc-cycles-cpu-ns/op")
	heap := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/heap:bytes"}, {Name: "/gc/heap/objects:objects"}}
	metrics.Read(heap)
	for i, unit := range []string{"live-B", "scan-B", "objects"} {
		b.ReportMetric(float64(heap[i].Value.Uint64()), unit)
	}
}
