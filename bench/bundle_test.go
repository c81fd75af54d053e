package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkBundle times `keytool bundle authorized -o FILE` as a real
// process (built from this tree) in a home with BENCH_BUNDLE_KEYS
// (100,000) authorized keys, one file each (the admin benchmark's home),
// and, as its floor in the same rounds, `cat` of the same files into
// /dev/null (find -exec cat {} +): reading the input and nothing else.
// BENCH_BUNDLE_ROUNDS rounds (default 5) alternate the two; the metrics
// are medians of wall time (and of the bundle's CPU time, user and system,
// which the machine's other load changes less), the peak RSS of each process (the child's
// ru_maxrss), the bundle's size, and the ratio of the bundle's median to
// the floor's.
//
//	go test -run '^$' -bench Bundle -benchtime 1x -timeout 30m
func BenchmarkBundle(b *testing.B) {
	rounds := envInt("BENCH_BUNDLE_ROUNDS", 5)
	n := envInt("BENCH_BUNDLE_KEYS", 100_000)
	bin := buildKeytool(b)
	home := adminHome(b, bin, n)
	out := filepath.Join(scratch, "bundle.pem")
	bundle := func() *exec.Cmd {
		return exec.Command(bin, "-H", home, "bundle", "authorized", "-o", out)
	}
	floor := func() *exec.Cmd {
		return exec.Command("sh", "-c", `find "$1" -name '*.json' -exec cat {} + >/dev/null`, "floor", filepath.Join(home, "authorized_keys.d"))
	}
	var bundleTimes, floorTimes, bundleCPU []time.Duration
	var bundleRSS, floorRSS int64
	for range rounds {
		t, cpu, rss := runMeasured(b, bundle())
		bundleTimes, bundleCPU, bundleRSS = append(bundleTimes, t), append(bundleCPU, cpu), max(bundleRSS, rss)
		t, _, rss = runMeasured(b, floor())
		floorTimes, floorRSS = append(floorTimes, t), max(floorRSS, rss)
	}
	fi, err := os.Stat(out)
	if err != nil {
		b.Fatal(err)
	}
	var load [3]float64
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Sscan(string(data), &load[0], &load[1], &load[2])
	}
	b.Logf("%d keys, %d rounds, load average %.1f %.1f %.1f at the end", n, rounds, load[0], load[1], load[2])
	b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
		one, base := median(bundleTimes), median(floorTimes)
		b.ReportMetric(ms(one), "ms-bundle")
		b.ReportMetric(ms(base), "ms-cat-floor")
		b.ReportMetric(ms(median(bundleCPU)), "ms-cpu-bundle")
		b.ReportMetric(float64(one)/float64(base), "ratio")
		b.ReportMetric(float64(bundleRSS)/1024, "MiB-rss-bundle")
		b.ReportMetric(float64(floorRSS)/1024, "MiB-rss-floor")
		b.ReportMetric(float64(fi.Size())/(1<<20), "MiB-bundle-file")
	})
}

// runMeasured runs cmd, failing the benchmark if it fails, and returns its
// wall time, its CPU time (user and system) and its peak RSS in KiB (the
// kernel's ru_maxrss of the child). Its output is kept for the failure's
// message, but for a standard output the caller set (a file: a listing
// this process need not hold).
func runMeasured(b *testing.B, cmd *exec.Cmd) (wall, cpu time.Duration, rss int64) {
	b.Helper()
	var out strings.Builder
	if cmd.Stdout == nil {
		cmd.Stdout = &out
	}
	cmd.Stderr = &out
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		b.Fatalf("%v: %v\n%s", cmd.Args, err, out.String())
	}
	ps := cmd.ProcessState
	return took, ps.UserTime() + ps.SystemTime(), ps.SysUsage().(*syscall.Rusage).Maxrss
}
