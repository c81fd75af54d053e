package etcd

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/keytool/keytool/etcd/internal/etcdtest"
)

// listAll reads the prefix's authorized entries as etcd has them.
func listAll(tb testing.TB, c *clientv3.Client) (map[string][]byte, int64) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, Key(prefix, Authorized, ""), clientv3.WithPrefix())
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string][]byte{}
	for _, kv := range resp.Kvs {
		out[string(kv.Key[len(Key(prefix, Authorized, "")):])] = kv.Value
	}
	return out, resp.Header.Revision
}

func sameEntries(a, b map[string][]byte) bool {
	return maps.EqualFunc(a, b, func(x, y []byte) bool { return string(x) == string(y) })
}

// A watcher cut off while the prefix changes and the history is
// compacted relists when it is back, and ends exactly at etcd's state.
func TestCompactionWhileDisconnected(t *testing.T) {
	ms := startCluster(t, 1)
	cli := client(t, ms[0].endpoint())
	proxy := etcdtest.NewRelay(t, ms[0].cfg.ListenClientUrls[0].Host)
	for i := range 20 {
		put(t, cli, Key(prefix, Authorized, fmt.Sprint("k", i)), keyJSON(t, keyN(t, i)))
	}
	src := open(t, Options{Client: client(t, proxy.Endpoint()), Prefix: prefix, Progress: 100 * time.Millisecond})
	before := src.Relists()
	proxy.SetCut(true)
	// While it is away: deletes, new keys, rewrites, then a compaction
	// of all of it.
	for i := range 10 {
		del(t, cli, Key(prefix, Authorized, fmt.Sprint("k", i)))
	}
	for i := 20; i < 30; i++ {
		put(t, cli, Key(prefix, Authorized, fmt.Sprint("k", i)), keyJSON(t, keyN(t, i)))
	}
	rev := put(t, cli, Key(prefix, Authorized, "k15"), keyJSON(t, keyN(t, 99)))
	if _, err := cli.Compact(t.Context(), rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	proxy.SetCut(false)
	want, _ := listAll(t, cli)
	eventually(t, 30*time.Second, "the watcher did not catch up after the compaction", func() bool {
		return src.Revision() >= rev && sameEntries(src.Entries(Authorized), want)
	})
	if src.Relists() <= before {
		t.Errorf("no relist after the compaction (relists %d)", src.Relists())
	}
	if !sameEntries(src.Entries(Authorized), want) {
		t.Errorf("entries differ from etcd's")
	}
}

// Three members; the client's member, the leader and the third stop, one
// after the other, while a writer changes the prefix. The watcher follows from the
// right revision through it all: at the end its entries are exactly the
// writer's model, and every write it saw came in revision order.
func TestClusterMembersStopDuringWrites(t *testing.T) {
	ms := startCluster(t, 3)
	writer := client(t, endpoints(ms)...)
	// The watcher's client knows every member and starts on the first.
	src := open(t, Options{Client: client(t, endpoints(ms)...), Prefix: prefix, Progress: 100 * time.Millisecond})

	var seen []int64 // the view's revision at each change, in order
	var seenMu sync.Mutex
	ch, stop := src.Feed(Authorized).Subscribe()
	defer stop()
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ch:
				seenMu.Lock()
				seen = append(seen, src.Revision())
				seenMu.Unlock()
			case <-done:
				return
			}
		}
	}()

	model := map[string][]byte{}
	var lastRev int64
	writes := make(chan struct{})
	go func() {
		defer close(writes)
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range 300 {
			name := fmt.Sprint("k", rng.IntN(40))
			key := Key(prefix, Authorized, name)
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				var (
					rev int64
					err error
				)
				if rng.IntN(4) == 0 {
					var r *clientv3.DeleteResponse
					if r, err = writer.Delete(ctx, key); err == nil {
						rev = r.Header.Revision
						delete(model, name)
					}
				} else {
					val := keyJSON(t, keyN(t, i))
					var r *clientv3.PutResponse
					if r, err = writer.Put(ctx, key, string(val)); err == nil {
						rev = r.Header.Revision
						model[name] = val
					}
				}
				cancel()
				if err == nil {
					lastRev = max(lastRev, rev)
					break
				}
				time.Sleep(50 * time.Millisecond) // a member is down: retry the same write
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()

	leader := func() int {
		for i, m := range ms {
			if m.e != nil && m.e.Server.Leader() == m.e.Server.MemberID() {
				return i
			}
		}
		return -1
	}
	stopped := map[int]bool{}
	restart := func(i int) {
		stopped[i] = true
		t.Logf("stopping member %d (leader: %d)", i, leader())
		ms[i].stop()
		time.Sleep(500 * time.Millisecond)
		if err := ms[i].start(); err != nil {
			t.Error(err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	restart(0) // the member the watcher's client started on
	time.Sleep(200 * time.Millisecond)
	eventually(t, 20*time.Second, "no leader after the restart", func() bool { return leader() >= 0 })
	restart(leader())
	// And the third: whichever member the watch's stream was on has now
	// been stopped.
	eventually(t, 20*time.Second, "no leader after the restart", func() bool { return leader() >= 0 })
	for i := range ms {
		if i != 0 && !stopped[i] {
			restart(i)
		}
	}
	<-writes
	eventually(t, 30*time.Second, fmt.Sprintf("the watcher did not reach revision %d", lastRev), func() bool {
		return src.Revision() >= lastRev
	})
	close(done)
	if got := src.Entries(Authorized); !sameEntries(got, model) {
		t.Fatalf("the watcher's %d entries differ from the model's %d", len(got), len(model))
	}
	if got, _ := listAll(t, writer); !sameEntries(got, model) {
		t.Fatalf("etcd's entries differ from the model")
	}
	seenMu.Lock()
	defer seenMu.Unlock()
	for i := 1; i < len(seen); i++ {
		if seen[i] < seen[i-1] {
			t.Fatalf("the view went back from revision %d to %d", seen[i-1], seen[i])
		}
	}
	t.Logf("%d changes seen, last revision %d, relists %d", len(seen), src.Revision(), src.Relists())
}
