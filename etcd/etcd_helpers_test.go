package etcd

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/etcd/internal/etcdtest"
	"github.com/keytool/keytool/internal/freeport"
	"github.com/keytool/keytool/jwk"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// member is one embedded etcd server, on loopback ports of its own, with
// its data in a test's temporary directory.
type member struct {
	cfg *embed.Config
	e   *embed.Etcd
}

func loopback(tb testing.TB) url.URL {
	u, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", freeport.Port(tb)))
	return *u
}

// startCluster starts n members forming one cluster and waits until it
// serves; the members stop at the end of the test. A port taken between
// freeport's check and etcd's bind (by a test of another package running
// beside this one) costs another try with other ports, not the test.
func startCluster(tb testing.TB, n int) []*member {
	tb.Helper()
	for try := 1; ; try++ {
		ms, err := tryCluster(tb, n)
		if err == nil {
			tb.Cleanup(func() {
				for _, m := range ms {
					m.stop()
				}
			})
			return ms
		}
		for _, m := range ms {
			m.stop()
		}
		if !errors.Is(err, syscall.EADDRINUSE) || try == 5 {
			tb.Fatal(err)
		}
	}
}

// testBcryptCost is the cost of the passwords the tests' members hash
// (bcrypt.MinCost): a login is a bcrypt check on the member, in this
// process, and under the race detector one at etcd's default cost (10)
// took 2–4 s, so that a test's own deadline ran out on a loaded machine
// (TestCurrentUnderARoleOnThePrefix). What the tests check of logins is
// counted, never timed; a benchmark keeps etcd's default, whose cost a
// real member's login has.
const testBcryptCost = 4

// tryCluster starts n members on ports of their own; on error it returns
// the members, for the caller to stop those that started.
func tryCluster(tb testing.TB, n int) ([]*member, error) {
	dir := tb.TempDir()
	ms := make([]*member, n)
	var initial []string
	for i := range ms {
		cfg := embed.NewConfig()
		cfg.Name = fmt.Sprintf("m%d", i)
		cfg.Dir = filepath.Join(dir, cfg.Name)
		c, p := loopback(tb), loopback(tb)
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{c}, []url.URL{c}
		cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{p}, []url.URL{p}
		cfg.LogLevel = "error"
		cfg.LogOutputs = []string{filepath.Join(dir, cfg.Name+".log")}
		cfg.InitialClusterToken = "keytool-test"
		if _, bench := tb.(*testing.B); !bench {
			cfg.BcryptCost = testBcryptCost
		}
		ms[i] = &member{cfg: cfg}
		initial = append(initial, cfg.Name+"="+p.String())
	}
	for _, m := range ms {
		m.cfg.InitialCluster = strings.Join(initial, ",")
	}
	// Members of a new cluster wait for each other: start them together.
	errs := make(chan error, n)
	for _, m := range ms {
		go func() { errs <- m.start() }()
	}
	var first error
	for range ms {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return ms, first
}

func (m *member) start() error {
	e, err := embed.StartEtcd(m.cfg)
	if err != nil {
		return err
	}
	select {
	case <-e.Server.ReadyNotify():
		m.e = e
		return nil
	case <-time.After(30 * time.Second):
		e.Close()
		return fmt.Errorf("member %s not ready after 30 s", m.cfg.Name)
	}
}

func (m *member) stop() {
	if m.e != nil {
		m.e.Close()
		m.e = nil
	}
}

func (m *member) endpoint() string { return m.cfg.ListenClientUrls[0].String() }

func endpoints(ms []*member) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.endpoint())
	}
	return out
}

// client returns an etcd client of the given members, closed at the end
// of the test.
func client(tb testing.TB, eps ...string) *clientv3.Client {
	tb.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// put writes key=val, failing the test on error.
func put(tb testing.TB, c *clientv3.Client, key string, val []byte) int64 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := c.Put(ctx, key, string(val))
	if err != nil {
		tb.Fatal(err)
	}
	return r.Header.Revision
}

// putIdempotent is put, tried again (up to three times) when etcd
// answers that the request timed out on its side: the put may or may not
// have been applied, and writing the same value again is the same. A
// large value under the race detector on a loaded machine took longer
// than etcd's own request timeout (CI, 2026-12-05).
func putIdempotent(tb testing.TB, c *clientv3.Client, key string, val []byte) int64 {
	tb.Helper()
	for try := 1; ; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		r, err := c.Put(ctx, key, string(val))
		cancel()
		if err == nil {
			return r.Header.Revision
		}
		if try == 3 || !errors.Is(err, rpctypes.ErrTimeout) {
			tb.Fatal(err)
		}
		tb.Logf("put %s: %v; again", key, err)
	}
}

func del(tb testing.TB, c *clientv3.Client, key string) int64 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := c.Delete(ctx, key)
	if err != nil {
		tb.Fatal(err)
	}
	return r.Header.Revision
}

// open starts a Source and waits for its first list.
func open(tb testing.TB, opts Options) *Source {
	tb.Helper()
	s, err := Open(context.Background(), opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	select {
	case <-s.Ready():
	case <-time.After(20 * time.Second):
		tb.Fatal("the source did not list the prefix in 20 s")
	}
	return s
}

// eventually polls cond until it holds, or fails after d.
func eventually(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	etcdtest.Eventually(tb, d, what, cond)
}

// refusedStale waits, within d, until the store refuses k because the
// view is stale, and fails the test with what if it does not. A stale
// view is a problem of each kind's feed, and the store reads the feeds
// as they notify it: for a moment the authorized feed may be stale (no
// keys: k Unknown) before the revocation feed is, whose staleness refuses
// every key as Revoked by the StaleError. That is the answer waited for;
// the moment before it is no less closed, and its "not authorized" names
// the StaleError too (authkeys.NotAuthorizedError.First), or the test
// fails. (The first refusal taken as the answer failed the gRPC proxy's
// test under -race in CI, 2026-12-06.)
func refusedStale(tb testing.TB, s *authkeys.Store, k *jwk.Key, d time.Duration, what string) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for {
		dec := s.Decide(k.SPKIHash(), netip.Addr{})
		var se *StaleError
		stale := errors.As(dec.Err, &se)
		if dec.Verdict == authkeys.Revoked && stale {
			return
		}
		if dec.Verdict == authkeys.Unknown && !stale {
			tb.Fatalf("%s: refused as %v by %v, which does not name the stale view", what, dec.Verdict, dec.Err)
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after %s: %s (last %v by %v, want Revoked by a StaleError)", d, what, dec.Verdict, dec.Err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
