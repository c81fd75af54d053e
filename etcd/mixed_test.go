package etcd

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// heldFeed is a feed whose change notifications never come: the loader
// reads it only when it reloads for another reason. It is what the
// scheduler may make of a store reading a Source: each feed's reload runs
// on a goroutine of its own (keydir's followFeeds), so that one kind's can
// run, and a handshake be decided, before the other's.
type heldFeed struct{ keydir.Feed }

func (heldFeed) Subscribe() (<-chan struct{}, func()) { return make(chan struct{}), func() {} }

func txn(tb testing.TB, c *clientv3.Client, ops ...clientv3.Op) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Txn(ctx).Then(ops...).Commit(); err != nil {
		tb.Fatal(err)
	}
}

// One transaction changes an authorization and a revocation together;
// the store reading the Source must never decide with the one from
// before it and the other from after: each of the two states refuses
// bob's key, the mix of them admits it. Both orders: the revocation feed
// reloaded first (bob's authorization and revocation deleted together:
// the revocation gone, the authorization still there) and the
// authorizations first (a set holding bob's key authorized with bob's
// revocation: the authorization there, the revocation not yet).
func TestFeedsOfOneTransactionNeverMixed(t *testing.T) {
	ms := startCluster(t, 1)
	cli := client(t, ms[0].endpoint())
	src := open(t, Options{Client: client(t, ms[0].endpoint()), Prefix: prefix})
	bob, carol := keydirtest.Key(t, 2), keydirtest.Key(t, 3)

	t.Run("revocations first", func(t *testing.T) {
		put(t, cli, Key(prefix, Authorized, "bob"), keyJSON(t, bob))
		rev := put(t, cli, Key(prefix, Revoked, "bob"), keyJSON(t, bob))
		eventually(t, 20*time.Second, "the source did not see the writes", func() bool { return src.Revision() >= rev })
		store := authkeys.Open(t.Context(), authkeys.Options{
			Feeds:        []authkeys.Feed{heldFeed{src.Feed(Authorized)}},
			RevokedFeeds: []authkeys.Feed{src.Feed(Revoked)},
		})
		defer store.Close()
		if v := verdict(store, bob); v != authkeys.Revoked {
			t.Fatalf("bob authorized and revoked: %v, want revoked", v)
		}
		txn(t, cli, clientv3.OpDelete(Key(prefix, Authorized, "bob")), clientv3.OpDelete(Key(prefix, Revoked, "bob")))
		eventually(t, 20*time.Second, "the revocation's removal not read", func() bool { return verdict(store, bob) != authkeys.Revoked })
		if v := verdict(store, bob); v != authkeys.Unknown {
			t.Errorf("bob's authorization and revocation removed in one transaction: %v, want unknown (the old authorization decided with the new revocations)", v)
		}
	})

	t.Run("authorizations first", func(t *testing.T) {
		put(t, cli, Key(prefix, Authorized, "alice"), keyJSON(t, keydirtest.Key(t, 1)))
		store := authkeys.Open(t.Context(), authkeys.Options{
			Feeds:        []authkeys.Feed{src.Feed(Authorized)},
			RevokedFeeds: []authkeys.Feed{heldFeed{src.Feed(Revoked)}},
		})
		defer store.Close()
		eventually(t, 20*time.Second, "alice not read", func() bool { return verdict(store, keydirtest.Key(t, 1)) == authkeys.Authorized })
		if v := verdict(store, carol); v != authkeys.Unknown {
			t.Fatalf("carol before: %v, want unknown", v)
		}
		txn(t, cli, clientv3.OpPut(Key(prefix, Authorized, "team"), string(keyJSON(t, carol))), clientv3.OpPut(Key(prefix, Revoked, "carol"), string(keyJSON(t, carol))))
		eventually(t, 20*time.Second, "the team's authorization not read", func() bool { return verdict(store, carol) != authkeys.Unknown })
		if v := verdict(store, carol); v != authkeys.Revoked {
			t.Errorf("carol authorized and revoked in one transaction: %v, want revoked (the new authorization decided with the old revocations)", v)
		}
	})
}
