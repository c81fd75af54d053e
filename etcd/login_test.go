package etcd

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/metadata"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// TestKeepLogin: a library caller's client made with KeepLogin, as a
// host whose role may only read PREFIX/, logs in once, when it dials: a
// Source follows the prefix on it, and watches on streams of their own
// (as a Source's watch made anew after one ended is) reuse that login,
// where clientv3 logged in again for every stream. Once its token is
// revoked (root set host's password anew, to the same: etcd drops the
// user's tokens), the next watch logs in again, once, and is made.
func TestKeepLogin(t *testing.T) {
	ms := startCluster(t, 1)
	root := client(t, ms[0].endpoint())
	alice := keydirtest.Key(t, 1)
	put(t, root, Key(prefix, Authorized, "alice"), keyJSON(t, alice))
	cfg := readerOnPrefix(t, root, ms[0].endpoint())
	cfg.DialTimeout = time.Hour // a login under the race detector takes seconds
	login := KeepLogin(&cfg, prefix)
	host, err := clientv3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close() })
	src := open(t, Options{Client: host, Prefix: prefix})
	if v := verdict(authkeys.Load(src.AuthorizedOptions()), alice); v != authkeys.Authorized {
		t.Fatalf("alice %v on a client that keeps its login", v)
	}
	streams := 0
	watch := func() {
		t.Helper()
		streams++
		ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), "stream", fmt.Sprint(streams)))
		defer cancel()
		if resp := <-host.Watch(ctx, prefix+"/", clientv3.WithPrefix(), clientv3.WithCreatedNotify()); !resp.Created || resp.Err() != nil {
			t.Fatalf("watch %d: %+v, %v", streams, resp, resp.Err())
		}
	}
	for range 3 {
		watch()
	}
	if n := login.Logins(); n != 1 {
		t.Fatalf("after the dial, the Source's watch and 3 watches more, %d logins sent, want 1 (a login per watch?)", n)
	}
	rootAuth, err := clientv3.New(clientv3.Config{Endpoints: []string{ms[0].endpoint()}, Username: "root", Password: "rootpw", DialTimeout: time.Hour, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer rootAuth.Close()
	if _, err := rootAuth.UserChangePassword(context.Background(), "host", "hostpw"); err != nil {
		t.Fatal(err)
	}
	watch()
	watch()
	if n := login.Logins(); n != 2 {
		t.Fatalf("after the login was revoked and 2 watches, %d logins sent in all, want 2", n)
	}
}
