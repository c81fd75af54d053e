package etcd

import (
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// After an outage the Source is back on etcd at its own pace, not gRPC's.
// Between connection attempts gRPC waits 1 s, growing 1.6 times (±20%)
// up to 120 s: in the last 9 s of an outage of 19 s it tries once or
// twice, and its next attempt is 2 s or more after the outage ends (45 s
// in, it was 25 s: measured before Source.reconnect). The outage is a
// cutProxy closing every connection at once (a failed attempt, as a
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
	p := newCutProxy(t, strings.TrimPrefix(ms[0].endpoint(), "http://"))
	alice := keydirtest.Key(t, 1)
	put(t, client(t, ms[0].endpoint()), Key(prefix, Authorized, "alice"), keyJSON(t, alice))
	src := open(t, Options{Client: client(t, p.endpoint()), Prefix: prefix, MaxStaleness: 2 * time.Second, Progress: 200 * time.Millisecond})
	store := authkeys.Open(t.Context(), src.AuthorizedOptions())
	defer store.Close()
	eventually(t, time.Minute, "alice not admitted", func() bool { return verdict(store, alice) == authkeys.Authorized })

	const outage = 19 * time.Second
	down := time.Now()
	p.setCut(true)
	eventually(t, time.Minute, "alice not refused once the view is stale", func() bool { return verdict(store, alice) != authkeys.Authorized })
	time.Sleep(time.Until(down.Add(outage)))
	p.setCut(false)
	back := time.Now()
	late := p.refusedSince(down.Add(outage - 9*time.Second))
	if late < 5 {
		t.Errorf("%d connection attempts in the last 9 s of the outage (%d in all), want one a second at least (reconnectEvery): at gRPC's pace, not the Source's", late, p.refusedSince(down))
	}
	eventually(t, time.Minute, "alice not admitted once etcd answered again", func() bool { return verdict(store, alice) == authkeys.Authorized })
	t.Logf("%d connection attempts during the outage, %d in its last 9 s; admitted again %s after etcd answered", p.refusedSince(down), late, time.Since(back))
}
