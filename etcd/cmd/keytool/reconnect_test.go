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
	st := openTestStore(t, relay.Addr(), "--etcd-dial-timeout", "2s", "--etcd-cache", filepath.Join(t.TempDir(), "cache.json"))
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
// byte forwarded) is left once keepalive finds it: a request that meets
// it within keepAliveTime + keepAliveTimeout of its last answer still
// waits out its time and fails, one after is sent elsewhere (or retried
// there, the connection ended under it), where without keepalive gRPC's
// round robin sent the frozen member one request in three for as long as
// the freeze lasted, each failing after its time. Requests go back to
// back from the freeze on, each bounded as etcd.Source bounds its own
// (5 s).
func TestAFrozenMemberIsLeft(t *testing.T) {
	if testing.Short() {
		t.Skip("a member frozen for 25 s; run without -short")
	}
	var relays []*etcdtest.Relay
	var hosts []string
	for _, addr := range startCluster(t, 3) {
		r := etcdtest.NewRelay(t, addr)
		relays = append(relays, r)
		hosts = append(hosts, r.Addr())
	}
	st := openTestStore(t, strings.Join(hosts, ","), "--etcd-dial-timeout", "2s")
	get := func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		_, err := st.c.Get(ctx, "/kt/x")
		return err
	}
	for range 6 { // a connection to each member, each answering now
		if err := get(); err != nil {
			t.Fatal(err)
		}
	}
	relays[1].SetHung(true)
	frozen := time.Now()
	window := keepAliveTime + keepAliveTimeout // from the member's last answer, before the freeze
	failed := 0
	for time.Since(frozen) < window+12*time.Second {
		start := time.Since(frozen)
		err := get()
		took := time.Since(frozen) - start
		switch {
		case err != nil && start >= window:
			t.Fatalf("a request %v after a member froze failed after %v: %v; keepalive (%v, then %v) should have left the member by then", start.Round(time.Millisecond), took.Round(time.Millisecond), err, keepAliveTime, keepAliveTimeout)
		case err != nil:
			failed++
		case took > time.Second:
			t.Logf("a request %v after the freeze took %v: retried on another member once keepalive ended the connection", start.Round(time.Millisecond), took.Round(time.Millisecond))
		}
	}
	t.Logf("%d requests failed in the first %v of the freeze, none after", failed, window)
}
