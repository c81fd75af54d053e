package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// BenchmarkSyncWatch measures how long one change in etcd takes to reach
// the home that keytool sync --watch (a real process) mirrors the prefix
// into: from the Put of a new authorized key until its file holds the
// value, with 1,000 entries in the prefix (the baseline, same run) and
// with 100,000. A change should cost what changed, not what is stored:
// the ratio of the two is the figure (docs/benchmarks.md, "One change
// through keytool sync --watch").
//
//	cd etcd && go test ./cmd/keytool -run '^$' -bench SyncWatch -benchtime 200x -timeout 30m
func BenchmarkSyncWatch(b *testing.B) {
	bin := keytoolBinary(b)
	addr := startEtcd(b, nil)
	admin := etcdClient(b, addr)
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			prefix := fmt.Sprintf("/sync%d", n)
			putEntries(b, admin, prefix, n)
			home := filepath.Join(b.TempDir(), "home")
			if err := os.Mkdir(home, 0o700); err != nil {
				b.Fatal(err)
			}
			cmd := exec.Command(bin, "sync", "etcd://"+addr+prefix, "--to", home, "--watch")
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() {
				_ = cmd.Process.Signal(syscall.SIGTERM)
				_ = cmd.Wait()
			})
			dir := filepath.Join(home, "authorized_keys.d")
			waitForFile(b, filepath.Join(dir, fmt.Sprintf("k%06d.json", n-1)), nil, 10*time.Minute)
			var took []time.Duration
			for i := 0; b.Loop(); i++ {
				name := fmt.Sprintf("new%06d.json", i)
				val := keydirtest.JWK(b, keydirtest.Key(b, n+i))
				start := time.Now()
				if _, err := admin.Put(context.Background(), prefix+"/authorized_keys/"+name, string(val)); err != nil {
					b.Fatal(err)
				}
				waitForFile(b, filepath.Join(dir, name), val, time.Minute)
				took = append(took, time.Since(start))
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1e3, "p50-ms")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1e3, "p99-ms")
		})
	}
}

// putEntries puts n authorized keys k000000.json … under prefix, in
// transactions of 128 (etcd's default --max-txn-ops).
func putEntries(b *testing.B, c *clientv3.Client, prefix string, n int) {
	var ops []clientv3.Op
	for i := range n {
		name := fmt.Sprintf("k%06d.json", i)
		ops = append(ops, clientv3.OpPut(prefix+"/authorized_keys/"+name, string(keydirtest.JWK(b, keydirtest.Key(b, i)))))
		if len(ops) == 128 || i == n-1 {
			if _, err := c.Txn(context.Background()).Then(ops...).Commit(); err != nil {
				b.Fatal(err)
			}
			ops = ops[:0]
		}
	}
}

// waitForFile waits until path exists (and holds want, if want is not
// nil), polling every 100 µs.
func waitForFile(b *testing.B, path string, want []byte, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for {
		data, err := os.ReadFile(path)
		if err == nil && (want == nil || bytes.Equal(data, want)) {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s not written within %v", path, limit)
		}
		time.Sleep(100 * time.Microsecond)
	}
}
