package etcd

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// overtakingWatcher is the watch of a member older than etcd 3.5.8
// (3.4.25): its progress notification, at the member's revision, can
// overtake the events of that revision queued before it on the stream
// (etcd issue 15220, which the keytool store's own watch guards against:
// docs/fleet.md). Here the first answer with events is preceded by a
// notification at that answer's revision.
type overtakingWatcher struct{ clientv3.Watcher }

func (w overtakingWatcher) Watch(ctx context.Context, key string, opts ...clientv3.OpOption) clientv3.WatchChan {
	in := w.Watcher.Watch(ctx, key, opts...)
	out := make(chan clientv3.WatchResponse)
	go func() {
		defer close(out)
		overtaken := false
		for r := range in {
			if len(r.Events) > 0 && !overtaken {
				overtaken = true
				progress := clientv3.WatchResponse{Header: r.Header}
				progress.Header.Revision = r.Events[len(r.Events)-1].Kv.ModRevision
				select {
				case out <- progress:
				case <-ctx.Done():
					return
				}
			}
			select {
			case out <- r:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// A progress notification that overtakes the events it covers (a member
// older than etcd 3.5.8) must not make the Source drop them: they come
// right after it, and bob's revocation among them is enforced. Before,
// the notification moved the view to its revision and the events at or
// below it were skipped as already applied: the revocation never was,
// bob admitted for as long as the Source ran.
func TestOvertakenEventsApplied(t *testing.T) {
	ms := startCluster(t, 1)
	cli := client(t, ms[0].endpoint())
	bob := keydirtest.Key(t, 2)
	put(t, cli, Key(prefix, Authorized, "bob"), keyJSON(t, bob))
	c := client(t, ms[0].endpoint())
	c.Watcher = overtakingWatcher{c.Watcher}
	src := open(t, Options{Client: c, Prefix: prefix})
	store := authkeys.Open(t.Context(), src.AuthorizedOptions())
	defer store.Close()
	if v := verdict(store, bob); v != authkeys.Authorized {
		t.Fatalf("bob before: %v", v)
	}
	put(t, cli, Key(prefix, Revoked, "bob"), keyJSON(t, bob))
	// A later write: once it is applied, so was every event before it.
	put(t, cli, Key(prefix, Authorized, "carol"), keyJSON(t, keydirtest.Key(t, 3)))
	eventually(t, 20*time.Second, "the later write not applied", func() bool {
		_, ok := src.Entries(Authorized)["carol"]
		return ok
	})
	if _, ok := src.Entries(Revoked)["bob"]; !ok {
		t.Fatalf("bob's revocation dropped: revoked entries %v", src.Entries(Revoked))
	}
	eventually(t, 20*time.Second, "bob's revocation not enforced", func() bool { return verdict(store, bob) == authkeys.Revoked })
}
