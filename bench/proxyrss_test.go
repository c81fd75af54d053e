package bench

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keytool/keytool/bench/internal/procstatus"
)

// BenchmarkProxyRSS measures the resident set of keytool proxy itself,
// the server an operator runs and watches in top: BenchmarkRSS measures a
// store loaded by a test program, which misses what the command does
// around it (a count of the keys for its log line once made every Entry,
// a million of them at a million keys, held in the resident set until the
// runtime gave them back minutes later). Each home (adminHome: an identity
// and one file a key) is served twice, each time by a proxy of its own
// that is stopped once measured:
//
//	first   no admin index: the full load, then the index written for the
//	        next start (docs/design.md, "Early decisions")
//	next    with that index: the first handshakes decided from it while
//	        the full load runs
//
// Each is measured BENCH_PROXY_SETTLE_MS (2,000 ms) after the proxy logs
// its "identity" line (every file read) and, at the first start, has
// written its index, against a home of one key served the same way:
//
//	rss-B/key   resident set (VmRSS) then, over one key's, a key
//	peak-B/key  the peak resident set (VmHWM) over one key's, a key
//	ms-loaded   from the start of the process to the identity line
//
// BENCH_PROXY_KEYS sets the number of keys (100,000).
func BenchmarkProxyRSS(b *testing.B) {
	n := envInt("BENCH_PROXY_KEYS", 100_000)
	settle := time.Duration(envInt("BENCH_PROXY_SETTLE_MS", 2000)) * time.Millisecond
	bin := buildKeytool(b)
	one, many := adminHome(b, bin, 1), adminHome(b, bin, n)
	for _, start := range []string{"first", "next"} {
		if start == "first" {
			for _, h := range []string{one, many} {
				if err := os.RemoveAll(filepath.Join(h, ".index")); err != nil {
					b.Fatal(err)
				}
			}
		}
		base := serveMeasured(b, bin, one, settle, false)
		// An index is written for a directory of 1,000 files or more
		// (keydir.IndexMinFiles).
		got := serveMeasured(b, bin, many, settle, start == "first" && n >= 1000)
		b.Run(fmt.Sprintf("start=%s/keys=%d", start, n), func(b *testing.B) {
			b.ReportMetric(float64(got.rss-base.rss)/float64(n), "rss-B/key")
			b.ReportMetric(float64(got.peak-base.peak)/float64(n), "peak-B/key")
			b.ReportMetric(float64(got.loaded.Milliseconds()), "ms-loaded")
			b.ReportMetric(float64(base.rss)/(1<<20), "MiB-rss-1key")
		})
	}
}

// proxyMeasure is what serveMeasured read of one proxy.
type proxyMeasure struct {
	rss, peak int64 // bytes
	loaded    time.Duration
}

// serveMeasured runs keytool proxy on home (listening on 127.0.0.1, its
// target a port nothing connects to), waits for its identity line, for
// the admin index of authorized_keys.d if indexed, and then settle,
// reads its resident sets and stops it.
func serveMeasured(b *testing.B, bin, home string, settle time.Duration, indexed bool) proxyMeasure {
	b.Helper()
	cmd := exec.Command(bin, "-H", home, "proxy", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:9")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	identity := make(chan time.Duration, 1)
	var log strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if log.Len() < 4096 {
				log.WriteString(line + "\n")
			}
			if strings.Contains(line, "msg=identity") {
				identity <- time.Since(start)
			}
		}
		close(identity)
	}()
	var m proxyMeasure
	select {
	case d, ok := <-identity:
		if !ok {
			b.Fatalf("keytool proxy on %s ended before its identity line:\n%s", home, log.String())
		}
		m.loaded = d
	case <-time.After(10 * time.Minute):
		b.Fatalf("keytool proxy on %s: no identity line in 10 minutes", home)
	}
	for deadline := time.Now().Add(10 * time.Minute); indexed; time.Sleep(50 * time.Millisecond) {
		// The index's head is the last of its files written.
		if heads, _ := filepath.Glob(filepath.Join(home, ".index", "*", "head")); len(heads) > 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("keytool proxy on %s wrote no admin index in 10 minutes", home)
		}
	}
	time.Sleep(settle)
	pid := cmd.Process.Pid
	m.rss, m.peak = procstatus.Of(pid, "VmRSS"), procstatus.Of(pid, "VmHWM")
	if m.rss == 0 {
		b.Fatalf("keytool proxy (pid %d): no VmRSS in /proc", pid)
	}
	return m
}
