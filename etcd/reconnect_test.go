package etcd

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/connectivity"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/etcd/internal/etcdtest"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/internal/testlog"
)

// After an outage the Source is back on etcd at its own pace, not gRPC's.
// Between connection attempts gRPC waits 1 s, growing 1.6 times (±20%)
// up to 120 s: in the last 9 s of an outage of 19 s it tries once or
// twice, and its next attempt is 2 s or more after the outage ends (45 s
// in, it was 25 s: measured before Source.reconnect). The outage is a
// etcdtest.Relay closing every connection at once (a failed attempt, as a
// refused one is), then forwarding to etcd again; the view turns stale
// meanwhile, every key refused. The connection must be tried about
// every reconnectEvery (1 s) to the end — counted, which the machine's
// load does not change as it would a time — and alice admitted again
// soon after etcd answers.
func TestReconnectsAtTheSourcesPace(t *testing.T) {
	if testing.Short() {
		t.Skip("a 19-second outage; run without -short")
	}
	ms := startCluster(t, 1)
	p := etcdtest.NewRelay(t, strings.TrimPrefix(ms[0].endpoint(), "http://"))
	alice := keydirtest.Key(t, 1)
	put(t, client(t, ms[0].endpoint()), Key(prefix, Authorized, "alice"), keyJSON(t, alice))
	src := open(t, Options{Client: client(t, p.Endpoint()), Prefix: prefix, MaxStaleness: 2 * time.Second, Progress: 200 * time.Millisecond})
	store := authkeys.Open(t.Context(), src.AuthorizedOptions())
	defer store.Close()
	eventually(t, time.Minute, "alice not admitted", func() bool { return verdict(store, alice) == authkeys.Authorized })

	const outage = 19 * time.Second
	down := time.Now()
	p.SetCut(true)
	eventually(t, time.Minute, "alice not refused once the view is stale", func() bool { return verdict(store, alice) != authkeys.Authorized })
	time.Sleep(time.Until(down.Add(outage)))
	p.SetCut(false)
	back := time.Now()
	late := p.FailedSince(down.Add(outage - 9*time.Second))
	if late < 5 {
		t.Errorf("%d connection attempts in the last 9 s of the outage (%d in all), want one a second at least (reconnectEvery): at gRPC's pace, not the Source's", late, p.FailedSince(down))
	}
	eventually(t, time.Minute, "alice not admitted once etcd answered again", func() bool { return verdict(store, alice) == authkeys.Authorized })
	t.Logf("%d connection attempts during the outage, %d in its last 9 s; admitted again %s after etcd answered", p.FailedSince(down), late, time.Since(back))
}

// A watch whose member freezes (a stopped process, a paused machine, a
// firewall dropping its packets) neither ends nor sends, and gRPC keeps
// its connection while nothing says it is dead: before, the view stayed
// behind for good — a write a minute old unseen (measured), revocations
// with it — though two members of three answered, until it turned stale
// and every key was refused. Each member is frozen in turn (an etcdtest.Relay
// that forwards nothing and keeps every connection), so that one of them
// is the watch's; a write made meanwhile through the others must reach
// the view within a few checks and requestTimeout (the silence that
// leaves the watch), every time.
func TestWatchLeavesAFrozenMember(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out requestTimeout (5 s) with a member frozen; run without -short")
	}
	ms := startCluster(t, 3)
	var ps []*etcdtest.Relay
	var eps []string
	for _, m := range ms {
		p := etcdtest.NewRelay(t, strings.TrimPrefix(m.endpoint(), "http://"))
		ps, eps = append(ps, p), append(eps, p.Endpoint())
	}
	writer := client(t, endpoints(ms)...)
	var logs testlog.Buffer
	src := open(t, Options{Client: client(t, eps...), Prefix: prefix, Progress: 200 * time.Millisecond, Logger: logs.Logger()})
	for i, p := range ps {
		p.SetHung(true)
		rev := put(t, writer, Key(prefix, Authorized, fmt.Sprint("k", i)), keyJSON(t, keyN(t, i)))
		start := time.Now()
		eventually(t, 30*time.Second, fmt.Sprintf("member %d frozen: the view not at the write (revision %d) in 30 s", i, rev), func() bool {
			return src.Revision() >= rev
		})
		t.Logf("member %d frozen: the view reached the write after %v", i, time.Since(start).Round(time.Millisecond))
		p.SetHung(false)
	}
	// Whichever member served the watch was frozen in its turn, and the
	// view reached that turn's write by leaving its watch.
	if n := strings.Count(logs.String(), "does not answer"); n == 0 {
		t.Errorf("no watch left as its member's (every member was frozen in turn):\n%s", logs.String())
	}
}

// stuckWatcher's watches are never said made: a member that does not
// answer (clientv3's Watch waits for its word).
type stuckWatcher struct{ clientv3.Watcher }

func (stuckWatcher) Watch(ctx context.Context, _ string, _ ...clientv3.OpOption) clientv3.WatchChan {
	<-ctx.Done()
	ch := make(chan clientv3.WatchResponse)
	close(ch)
	return ch
}

// A watch its member does not say is made is given up requestTimeout
// after, where the client has a connection — else a frozen member held
// the Source for good —, and waited for as long as it has none: Watch
// goes on the moment there is one, where giving up and making it again
// every few seconds had the Source 4 s late after an outage (seen).
func TestWatchNotMadeGivenUpOnlyWhenConnected(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out requestTimeout (5 s) three times; run without -short")
	}
	ms := startCluster(t, 1)
	p := etcdtest.NewRelay(t, strings.TrimPrefix(ms[0].endpoint(), "http://"))
	src := open(t, Options{Client: client(t, p.Endpoint()), Prefix: prefix})
	p.SetCut(true)
	eventually(t, 10*time.Second, "the client still connected with its member cut off", func() bool {
		return src.opts.Client.ActiveConnection().GetState() != connectivity.Ready
	})
	wctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	type result struct {
		made bool
		at   time.Time
	}
	res := make(chan result, 1)
	go func() {
		_, made := src.startWatch(wctx, cancel, stuckWatcher{})
		res <- result{made, time.Now()}
	}()
	select {
	case r := <-res:
		t.Fatalf("the watch was given up (made %v) with no member reachable, where Watch waits for the connection", r.made)
	case <-time.After(2*requestTimeout + time.Second):
	}
	p.SetCut(false)
	eventually(t, 30*time.Second, "the client not connected again", func() bool {
		return src.opts.Client.ActiveConnection().GetState() == connectivity.Ready
	})
	connected := time.Now()
	select {
	case r := <-res:
		if r.made || wctx.Err() == nil {
			t.Fatalf("made %v, the watch's context %v: want given up, cancelled", r.made, wctx.Err())
		}
		t.Logf("given up %v after the client was connected again", r.at.Sub(connected).Round(time.Millisecond))
	case <-time.After(2*requestTimeout + time.Second):
		t.Fatal("a watch not made with the client connected was not given up")
	}
}
