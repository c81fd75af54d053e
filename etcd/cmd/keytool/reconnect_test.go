package main

import (
	"context"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/etcd/internal/etcdtest"
	"github.com/keytool/keytool/internal/cli"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// An attempt to connect to etcd gives up after --etcd-dial-timeout, not
// gRPC's 20 s: while the network drops etcd's packets every attempt
// waits out its time (a connection never answered), and the one under
// way when the network heals holds the view back until it gives up —
// 8 s measured, 20 s at worst, with gRPC's. Counted, not timed: in 10 s
// of dropped packets, attempts every --etcd-dial-timeout (2 s here) and
// gRPC's pace between them, where gRPC's 20 s allowed one. Then a key
// authorized meanwhile is admitted.
func TestConnectAttemptsGiveUpAfterTheDialTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("10 s of dropped packets; run without -short")
	}
	addr := startEtcd(t, nil)
	relay := etcdtest.NewRelay(t, addr)
	st := openTestStore(t, strings.TrimPrefix(relay.Endpoint(), "http://"), "--etcd-dial-timeout", "2s", "--etcd-cache", filepath.Join(t.TempDir(), "cache.json"))
	f, err := st.Follow(t.Context(), cli.FollowOptions{Home: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	store := authkeys.Open(t.Context(), authkeys.Options{Feeds: []authkeys.Feed{f.Feed(cli.StoreAuthorized)}, RevokedFeeds: []authkeys.Feed{f.Feed(cli.StoreRevoked)}})
	defer store.Close()
	admitted := func(n int) func() bool {
		return func() bool {
			return store.Decide(keydirtest.Key(t, n).SPKIHash(), netip.Addr{}).Verdict == authkeys.Authorized
		}
	}
	writer := etcdClient(t, addr)
	put := func(name string, n int) {
		t.Helper()
		if _, err := writer.Put(t.Context(), "/kt/authorized_keys/"+name, string(keydirtest.JWK(t, keydirtest.Key(t, n)))); err != nil {
			t.Fatal(err)
		}
	}
	put("alice", 1)
	etcdtest.Eventually(t, 30*time.Second, "alice not admitted", admitted(1))

	const outage = 10 * time.Second
	down := time.Now()
	relay.SetDropped(true)
	put("bob", 2)
	time.Sleep(outage)
	relay.SetDropped(false)
	back := time.Now()
	if n := relay.FailedSince(down); n < 3 {
		t.Errorf("%d connection attempts in %v of dropped packets, want one every --etcd-dial-timeout (2 s) and gRPC's wait: each waited gRPC's 20 s", n, outage)
	}
	etcdtest.Eventually(t, 30*time.Second, "bob, authorized during the outage, not admitted once the network healed", admitted(2))
	t.Logf("%d attempts during the outage; bob admitted %v after the network healed", relay.FailedSince(down), time.Since(back).Round(time.Millisecond))
}

// A member that stops answering (relay hung: its connections kept, no
// byte forwarded) is left at the first request that meets it, which
// clientv3 retries on another member, where without keepalive gRPC's
// round robin sent it one request in three for as long as the freeze
// lasted, each failing after its time. Requests are bounded as
// etcd.Source bounds its own (5 s).
func TestAFrozenMemberIsLeft(t *testing.T) {
	if testing.Short() {
		t.Skip("a member frozen for 10 s; run without -short")
	}
	defer func(d time.Duration) { keepAliveTime = d }(keepAliveTime)
	keepAliveTime = 10 * time.Second // gRPC's least; 30 s here would make the test 20 s longer
	var relays []*etcdtest.Relay
	var hosts []string
	for _, addr := range startCluster(t, 3) {
		r := etcdtest.NewRelay(t, addr)
		relays = append(relays, r)
		hosts = append(hosts, strings.TrimPrefix(r.Endpoint(), "http://"))
	}
	st := openTestStore(t, strings.Join(hosts, ","), "--etcd-dial-timeout", "2s")
	get := func() (time.Duration, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		start := time.Now()
		_, err := st.c.Get(ctx, "/kt/x")
		return time.Since(start), err
	}
	for range 6 { // a connection to each member
		if _, err := get(); err != nil {
			t.Fatal(err)
		}
	}
	relays[1].SetHung(true)
	time.Sleep(keepAliveTime + time.Second) // silent that long: the next request on it pings
	for i := range 6 {
		took, err := get()
		if err != nil {
			t.Fatalf("request %d of 6 after a member froze: %v (%v): the frozen member was not left", i+1, err, took.Round(time.Millisecond))
		}
		t.Logf("request %d: %v", i+1, took.Round(time.Millisecond))
	}
}
