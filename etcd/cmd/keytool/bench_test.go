package main

import (
	"context"
	"crypto/tls"

	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/tlsbridge"
)

// fanoutProxies is how many keytool proxy processes one revocation must
// reach.
const fanoutProxies = 10

// BenchmarkProxyRevocationFanout measures, through real keytool proxy
// processes, the time from one revocation write until each of 10 proxies
// refuses a handshake by the revoked key: through etcd (one Put under
// PREFIX/revoked_keys/; 10 keytool proxy --store etcd://… processes) and,
// as the baseline in the same run, through a watched directory (one file
// written atomically into revoked_keys.d of the home that 10 keytool
// proxy processes read). For each proxy a goroutine of this process
// dials it again and again with the client key, and the latency is the
// end of the first handshake refused; so it includes up to one
// handshake's time of polling. Each iteration revokes, waits for all 10,
// then lifts the revocation (untimed); p50 and p99 are over every proxy of
// every iteration.
//
//	cd etcd && go test ./cmd/keytool -run '^$' -bench ProxyRevocationFanout -benchtime 20x
func BenchmarkProxyRevocationFanout(b *testing.B) {
	bin := keytoolBinary(b)
	addr := startEtcd(b, nil)
	admin := etcdClient(b, addr)
	dir := b.TempDir()
	srvHome, cliHome := filepath.Join(dir, "server"), filepath.Join(dir, "client")
	run(b, bin, "-H", srvHome, "gen")
	run(b, bin, "-H", cliHome, "gen")
	id, err := tlsbridge.LoadHomeIdentity(cliHome, tlsbridge.CertOptions{})
	if err != nil {
		b.Fatal(err)
	}
	pub := filepath.Join(cliHome, "pub_key.json")
	revocation := revocationOf(b, bin, pub)
	target := echoTarget(b)

	b.Run("etcd", func(b *testing.B) {
		store := "etcd://" + addr + "/bench"
		run(b, bin, "authorize", "--store", store, "--name", "client", pub)
		var addrs []string
		for i := range fanoutProxies {
			addrs = append(addrs, startProxy(b, bin, srvHome, target, "--store", store, "--etcd-cache", filepath.Join(dir, fmt.Sprintf("cache%d.json", i))))
		}
		ctx := context.Background()
		key := "/bench/revoked_keys/client.json"
		proxyFanout(b, addrs, id.Certificate,
			func() {
				if _, err := admin.Put(ctx, key, string(revocation)); err != nil {
					b.Fatal(err)
				}
			},
			func() {
				if _, err := admin.Delete(ctx, key); err != nil {
					b.Fatal(err)
				}
			})
	})
	b.Run("dir", func(b *testing.B) {
		run(b, bin, "-H", srvHome, "authorize", "--name", "client", pub)
		if err := os.MkdirAll(filepath.Join(srvHome, "revoked_keys.d"), 0o755); err != nil {
			b.Fatal(err)
		}
		var addrs []string
		for range fanoutProxies {
			addrs = append(addrs, startProxy(b, bin, srvHome, target))
		}
		path := filepath.Join(srvHome, "revoked_keys.d", "client.json")
		proxyFanout(b, addrs, id.Certificate,
			func() {
				// Atomically, as keytool revoke writes: a temporary file renamed.
				tmp := filepath.Join(filepath.Dir(path), ".client.json.tmp")
				if err := os.WriteFile(tmp, revocation, 0o644); err != nil {
					b.Fatal(err)
				}
				if err := os.Rename(tmp, path); err != nil {
					b.Fatal(err)
				}
			},
			func() {
				if err := os.Remove(path); err != nil {
					b.Fatal(err)
				}
			})
	})
}

// proxyFanout times revoke until every proxy refuses the key, b.N times,
// lifting the revocation in between, and reports p50 and p99 in ms.
func proxyFanout(b *testing.B, addrs []string, cert tls.Certificate, revoke, lift func()) {
	allAre := func(want bool) {
		deadline := time.Now().Add(60 * time.Second)
		for _, a := range addrs {
			for {
				ok, err := admitted(a, cert)
				if err == nil && ok == want {
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("proxy %s: admitted %v (%v), want %v", a, ok, err, want)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	allAre(true)
	var lat []time.Duration
	b.ResetTimer()
	for range b.N {
		var (
			wg sync.WaitGroup
			mu sync.Mutex
		)
		start := time.Now()
		for _, a := range addrs {
			wg.Go(func() {
				for time.Since(start) < time.Minute {
					if ok, err := admitted(a, cert); err == nil && !ok {
						mu.Lock()
						lat = append(lat, time.Since(start))
						mu.Unlock()
						return
					}
				}
				b.Errorf("proxy %s still admits the key a minute after the revocation", a)
			})
		}
		revoke()
		wg.Wait()
		b.StopTimer()
		allAre(false)
		lift()
		allAre(true)
		b.StartTimer()
	}
	b.StopTimer()
	if len(lat) == 0 {
		b.Fatal("no latency measured")
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2])/1e6, "p50-ms")
	b.ReportMetric(float64(lat[(len(lat)*99)/100])/1e6, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1])/1e6, "max-ms")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d proxies × %d revocations: p50 %s, p99 %s, max %s", len(addrs), b.N, lat[len(lat)/2], lat[(len(lat)*99)/100], lat[len(lat)-1])
}

// admitted shakes hands with the proxy at addr presenting cert and reads
// the target's first byte: true if it comes, false if the proxy refuses
// (a TLS alert: in TLS 1.3 it arrives after the client's handshake).
func admitted(addr string, cert tls.Certificate) (bool, error) {
	d := &net.Dialer{Timeout: 10 * time.Second}
	// The proxy's key is not what is measured: it is not checked here.
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	if err != nil {
		return refusal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err != nil {
		return refusal(err)
	}
	return true, nil
}

func refusal(err error) (bool, error) {
	if strings.Contains(err.Error(), "remote error: tls:") {
		return false, nil
	}
	return false, err
}

// echoTarget is a TCP server that writes one byte to each connection.
func echoTarget(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("k"))
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// startProxy starts keytool proxy on a free loopback port and waits until
// it listens; it is stopped (SIGTERM) at the end of the benchmark.
func startProxy(b *testing.B, bin, home, target string, extra ...string) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	args := append([]string{"-H", home, "proxy", "--listen", addr, "--target", target, "--log-level", "error"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(time.Minute)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			b.Fatalf("keytool proxy not listening on %s after a minute", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// keytoolBinary is this test binary under the name keytool: TestMain runs
// it as the etcd build of keytool.
func keytoolBinary(b testing.TB) string {
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	return keytoolBinaryAt(b, self)
}

// keytoolBinaryAt is the test binary test under the name keytool.
func keytoolBinaryAt(b testing.TB, test string) string {
	bin := filepath.Join(b.TempDir(), "keytool")
	if err := os.Symlink(test, bin); err != nil {
		b.Fatal(err)
	}
	return bin
}

func run(b testing.TB, bin string, args ...string) {
	b.Helper()
	cmd := exec.Command(bin, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("keytool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// revocationOf is the revocation file keytool revoke writes for the key
// in pub.
func revocationOf(b *testing.B, bin, pub string) []byte {
	h := filepath.Join(b.TempDir(), "h")
	if err := os.Mkdir(h, 0o700); err != nil { // revoke refuses a home that is not there
		b.Fatal(err)
	}
	run(b, bin, "-H", h, "revoke", pub)
	files, _ := filepath.Glob(filepath.Join(h, "revoked_keys.d", "*.json"))
	if len(files) != 1 {
		b.Fatalf("revoke wrote %d files", len(files))
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// editKeys is how many authorized keys BenchmarkStoreEdit's store holds.
const editKeys = 100_000

// BenchmarkStoreEdit measures one keytool authorize of a new key (a real
// process) against a store of 100,000 authorized keys, through etcd
// (--store: a list of the prefix, the entries in a home, the command, one
// transaction):
//
//   - temporary: no home (-H names none), so the entries are copied to a
//     temporary home, every one, each time;
//   - mirror-first: a new home each time, so the mirror is built there
//     (every entry written, and the admin index built by the command);
//   - mirror-again: the same home each time, its mirror warm, so only
//     the entries changed since are read (here none: the previous
//     command's write was the store's last);
//   - mirror-elsewhere: the same, with another key of the cluster
//     written before each command, so that the changes since are read
//     by a watch of the prefix from the mirror's revision (and are none;
//     a prefix below watchFrom keys reads its range filtered by revision);
//   - mirror-changed: the same, with an entry of the prefix added by
//     someone else before each command, so that the mirror writes its
//     file and the admin index catches up with it;
//
// and, as the baseline in the same run, on a home whose authorized_keys.d
// holds the same 100,000 files (dir; the admin index warm), and the same
// with a file added by hand before each command (dir-changed).
//
// The paired/ sub-benchmarks are the issue's own ratio ("≤ 1.2× the same
// command with 1 entry"): each iteration runs the command on the store of
// 100,000 and then on a store of one key (in an etcd of its own; and the
// same for homes: paired/dir), so that both see the same load; they
// report both medians and their ratio (ratio). With KEYTOOL_BENCH_BASE
// (below) they also time the code before on the store of 100,000.
//
//	cd etcd && go test ./cmd/keytool -run '^$' -bench StoreEdit -benchtime 3x
//	cd etcd && go test ./cmd/keytool -run '^$' -bench 'StoreEdit/paired' -benchtime 15x
//	(in a worktree at the commit before) go test -c -o /tmp/base.test ./cmd/keytool
//	KEYTOOL_BENCH_BASE=/tmp/base.test go test ./cmd/keytool -run '^$' -bench 'StoreEdit/paired' -benchtime 9x
func BenchmarkStoreEdit(b *testing.B) {
	bin := keytoolBinary(b)
	addr := startEtcd(b, nil)
	admin := etcdClient(b, addr)
	dir := b.TempDir()
	big := newEditStore(b, bin, admin, addr, dir, "edit", editKeys)
	n := 0
	edit := func(b *testing.B, homeOf func() string) {
		var took []time.Duration
		for range b.N {
			b.StopTimer()
			n++
			f, h := big.newKey(n), homeOf()
			b.StartTimer()
			start := time.Now()
			run(b, bin, "-H", h, "authorize", "--store", big.store, "--name", fmt.Sprintf("new%d", n), f)
			took = append(took, time.Since(start))
		}
		reportMedian(b, took)
	}
	b.Run("temporary", func(b *testing.B) {
		edit(b, func() string { return filepath.Join(dir, "none") })
	})
	b.Run("mirror-first", func(b *testing.B) {
		edit(b, func() string {
			h := filepath.Join(dir, fmt.Sprintf("first%d", n))
			if err := os.Mkdir(h, 0o700); err != nil {
				b.Fatal(err)
			}
			return h
		})
	})
	b.Run("mirror-again", func(b *testing.B) {
		edit(b, func() string { return big.warm })
	})
	b.Run("mirror-elsewhere", func(b *testing.B) {
		edit(b, func() string {
			// Another key of the cluster written since: the changes since
			// the mirror's revision are read from the prefix filtered by
			// revision (none of them under the prefix).
			if _, err := admin.Put(context.Background(), "/elsewhere/x", fmt.Sprint(n)); err != nil {
				b.Fatal(err)
			}
			return big.warm
		})
	})
	b.Run("mirror-changed", func(b *testing.B) {
		edit(b, func() string {
			// An entry of the prefix added by someone else since: written
			// to the mirror, which the admin index then catches up with.
			big.addOther(b, admin, n)
			return big.warm
		})
	})
	dirEdit := func(b *testing.B, before func()) {
		var took []time.Duration
		for range b.N {
			b.StopTimer()
			n++
			f := big.newKey(n)
			before()
			b.StartTimer()
			start := time.Now()
			run(b, bin, "-H", big.home, "authorize", "--name", fmt.Sprintf("new%d", n), f)
			took = append(took, time.Since(start))
		}
		reportMedian(b, took)
	}
	b.Run("dir", func(b *testing.B) { dirEdit(b, func() {}) })
	b.Run("dir-changed", func(b *testing.B) {
		// A file added by hand since, as mirror-changed's entry.
		dirEdit(b, func() { big.addOther(b, nil, n) })
	})

	// The store of one key has an etcd of its own, so that neither
	// store's commands move the other's revision: a write to its etcd
	// would make every mirror-again a mirror-elsewhere.
	oneAddr := startEtcd(b, nil)
	oneAdmin := etcdClient(b, oneAddr)
	one := newEditStore(b, bin, oneAdmin, oneAddr, dir, "one", 1)
	admins := map[*editStore]*clientv3.Client{big: admin, one: oneAdmin}
	// KEYTOOL_BENCH_BASE names another keytool test binary (go test -c
	// of another commit): each iteration of paired/ then also runs the
	// command on the store of 100,000 with it, after this binary's, so
	// that a change is measured against the code before under the same
	// load (base-median-ms, and this binary's median over it: vs-base).
	base := os.Getenv("KEYTOOL_BENCH_BASE")
	if base != "" {
		base = keytoolBinaryAt(b, base)
	}
	paired := func(b *testing.B, args func(s *editStore) []string, before func(s *editStore)) {
		var took, tookOne, tookBase []time.Duration
		for range b.N {
			for i, s := range []*editStore{big, one, big} {
				bin, times := bin, &took
				switch {
				case i == 1:
					times = &tookOne
				case i == 2 && base == "":
					continue
				case i == 2:
					bin, times = base, &tookBase
				}
				b.StopTimer()
				n++
				a := append([]string{"-H"}, args(s)...)
				a = append(a, "--name", fmt.Sprintf("new%d", n), s.newKey(n))
				before(s)
				b.StartTimer()
				start := time.Now()
				run(b, bin, a...)
				*times = append(*times, time.Since(start))
			}
		}
		reportMedian(b, took)
		slices.Sort(tookOne)
		b.ReportMetric(float64(tookOne[len(tookOne)/2])/1e6, "one-median-ms")
		b.ReportMetric(float64(took[len(took)/2])/float64(tookOne[len(tookOne)/2]), "ratio")
		if len(tookBase) > 0 {
			slices.Sort(tookBase)
			b.ReportMetric(float64(tookBase[len(tookBase)/2])/1e6, "base-median-ms")
			b.ReportMetric(float64(took[len(took)/2])/float64(tookBase[len(tookBase)/2]), "vs-base")
		}
	}
	b.Run("paired/mirror-again", func(b *testing.B) {
		paired(b, func(s *editStore) []string { return []string{s.warm, "authorize", "--store", s.store} }, func(*editStore) {})
	})
	b.Run("paired/mirror-elsewhere", func(b *testing.B) {
		paired(b, func(s *editStore) []string { return []string{s.warm, "authorize", "--store", s.store} }, func(s *editStore) {
			if _, err := admins[s].Put(context.Background(), "/elsewhere/x", fmt.Sprint(n)); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("paired/dir", func(b *testing.B) {
		paired(b, func(s *editStore) []string { return []string{s.home, "authorize"} }, func(*editStore) {})
	})
}

// editStore is one store of BenchmarkStoreEdit: keys authorized keys under
// PREFIX/authorized_keys/ of the benchmark's etcd, the same files in a
// home's authorized_keys.d (its admin index built), and a home whose
// mirror of the prefix is warm.
type editStore struct {
	tb                                   testing.TB
	prefix, dir, home, auth, warm, store string
}

func newEditStore(b *testing.B, bin string, admin *clientv3.Client, addr, dir, prefix string, keys int) *editStore {
	s := &editStore{tb: b, prefix: prefix, dir: filepath.Join(dir, prefix), store: "etcd://" + addr + "/" + prefix}
	s.home = filepath.Join(s.dir, "home")
	s.auth = filepath.Join(s.home, "authorized_keys.d")
	s.warm = filepath.Join(s.dir, "warm")
	for _, d := range []string{s.auth, s.warm} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			b.Fatal(err)
		}
	}
	var ops []clientv3.Op
	for i := range keys {
		name := fmt.Sprintf("k%06d.json", i)
		val := keydirtest.JWK(b, keydirtest.WithAttrs(keydirtest.Key(b, i), "name", name[:7]))
		ops = append(ops, clientv3.OpPut("/"+prefix+"/authorized_keys/"+name, string(val)))
		if len(ops) == 128 || i == keys-1 { // etcd's default --max-txn-ops
			if _, err := admin.Txn(context.Background()).Then(ops...).Commit(); err != nil {
				b.Fatal(err)
			}
			ops = ops[:0]
		}
		if err := os.WriteFile(filepath.Join(s.auth, name), val, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	run(b, bin, "-H", s.home, "authorize", "--name", "warm", s.newKey(-1))                     // builds the admin index
	run(b, bin, "-H", s.warm, "authorize", "--store", s.store, "--name", "warm", s.newKey(-2)) // builds the mirror
	return s
}

// newKey writes the i-th new key of the store's commands to a file of its
// own and returns its path; its key is no other of the benchmark's.
func (s *editStore) newKey(i int) string {
	f := filepath.Join(s.dir, fmt.Sprintf("new%d.json", i))
	keydirtest.Write(s.tb, f, keydirtest.JWK(s.tb, keydirtest.Key(s.tb, editKeys+i)))
	return f
}

// addOther adds the n-th entry made by someone else: under the prefix in
// etcd (admin), or to the home's authorized_keys.d (admin nil).
func (s *editStore) addOther(b *testing.B, admin *clientv3.Client, n int) {
	val := keydirtest.JWK(b, keydirtest.Key(b, 2*editKeys+n))
	name := fmt.Sprintf("other%d.json", n)
	if admin == nil {
		keydirtest.Write(b, filepath.Join(s.auth, name), val)
		return
	}
	if _, err := admin.Put(context.Background(), "/"+s.prefix+"/authorized_keys/"+name, string(val)); err != nil {
		b.Fatal(err)
	}
}

// reportMedian reports the median of the commands' times (median-ms):
// on a machine shared with other work, one command slowed by a burst of
// load moves the mean (ns/op) of five more than the median.
func reportMedian(b *testing.B, took []time.Duration) {
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2])/1e6, "median-ms")
}
