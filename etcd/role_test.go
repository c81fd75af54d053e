package etcd

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/etcd/internal/etcdtest"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// TestCurrentUnderARoleOnThePrefix: a host whose etcd role may only read
// PREFIX/ (docs/fleet.md, "Security": etcdctl role grant-permission
// keytool-host read PREFIX/ --prefix) confirms that its view is current.
// (Found by review: the confirmation read the key PREFIX itself, which
// that role does not cover; refused, it confirmed nothing, and every
// host so set up refused every key once MaxStaleness had passed.)
func TestCurrentUnderARoleOnThePrefix(t *testing.T) {
	ms := startCluster(t, 1)
	root := client(t, ms[0].endpoint())
	ctx := context.Background()
	alice := keydirtest.Key(t, 1)
	put(t, root, Key(prefix, Authorized, "alice"), keyJSON(t, alice))
	cfg := readerOnPrefix(t, root, ms[0].endpoint())
	host, err := clientv3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close() })
	src := open(t, Options{Client: host, Prefix: prefix})
	if v := verdict(authkeys.Load(src.AuthorizedOptions()), alice); v != authkeys.Authorized {
		t.Fatalf("alice %v under the host's role", v)
	}
	if r := src.check(ctx, src.opts.Client); !r.current || r.gone != nil {
		t.Fatalf("with nothing written since the list, the check under a role on %s/ found %+v, want the view current", prefix, r)
	}
}

// readerOnPrefix enables authentication on the member at endpoint, root
// its root's client (then user root, password rootpw), with a user host
// (password hostpw) whose role, keytool-host, may only read PREFIX/, and
// returns the configuration of a client that logs in as host.
func readerOnPrefix(t *testing.T, root *clientv3.Client, endpoint string) clientv3.Config {
	t.Helper()
	etcdtest.UserOnPrefix(t, root, "host", "hostpw", "keytool-host", prefix+"/", clientv3.PermissionType(clientv3.PermRead))
	return clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(), Username: "host", Password: "hostpw"}
}

// TestCurrentPastACompactedWitness: etcd compacting the revision of the
// view's last write (auto-compaction, while the view follows it) leaves
// the check to the revision alone: the view is still confirmed, not
// turned stale on every host.
func TestCurrentPastACompactedWitness(t *testing.T) {
	ms := startCluster(t, 1)
	cli := client(t, ms[0].endpoint())
	put(t, cli, Key(prefix, Authorized, "alice"), keyJSON(t, keydirtest.Key(t, 1)))
	src := open(t, Options{Client: client(t, ms[0].endpoint()), Prefix: prefix})
	var rev int64
	for range 3 {
		rev = put(t, cli, "/elsewhere", []byte("x"))
	}
	if _, err := cli.Compact(t.Context(), rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the check never confirmed the view past the compaction", func() bool {
		r := src.check(t.Context(), src.opts.Client)
		if r.gone != nil {
			t.Fatalf("a compacted witness taken for another history: %v", r.gone)
		}
		if !r.current {
			src.progressed(rev, time.Now()) // as the progress notification the check asked for would
		}
		return src.check(t.Context(), src.opts.Client).current
	})
}
