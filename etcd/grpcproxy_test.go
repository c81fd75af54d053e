package etcd

import (
	"net"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/server/v3/proxy/grpcproxy"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// Behind etcd's gRPC proxy, which answers no progress request
// (etcd-io/etcd#19710: "not supported request type by gRPC proxy"), a
// Source's view is confirmed by its read alone, which says nothing once
// anything outside the prefix is written: etcd's revision is then past the
// view's, and only a progress notification could confirm it. The view
// turns stale and every key is refused (docs/fleet.md, "The gRPC proxy").
// This test says so, measured; it fails the day the proxy answers.
func TestBehindTheGRPCProxyAQuietPrefixTurnsStale(t *testing.T) {
	ms := startCluster(t, 1)
	behind := client(t, ms[0].endpoint())
	kv, _ := grpcproxy.NewKvProxy(behind)
	watch, _ := grpcproxy.NewWatchProxy(t.Context(), zap.NewNop(), behind)
	srv := grpc.NewServer()
	pb.RegisterKVServer(srv, kv)
	pb.RegisterWatchServer(srv, watch)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(srv.Stop)

	alice := keydirtest.Key(t, 1)
	put(t, behind, Key(prefix, Authorized, "alice"), keyJSON(t, alice))
	const maxStaleness = 2 * time.Second
	src := open(t, Options{Client: client(t, "http://"+l.Addr().String()), Prefix: prefix, MaxStaleness: maxStaleness, Progress: 200 * time.Millisecond})
	store := authkeys.Open(t.Context(), src.AuthorizedOptions())
	defer store.Close()
	eventually(t, 20*time.Second, "alice not admitted through the gRPC proxy", func() bool { return verdict(store, alice) == authkeys.Authorized })
	time.Sleep(2 * maxStaleness)
	if v := verdict(store, alice); v != authkeys.Authorized {
		t.Fatalf("with nothing written, alice %v through the gRPC proxy: the read alone confirms a quiet cluster", v)
	}

	put(t, behind, "/elsewhere", []byte("x"))
	refusedStale(t, store, alice, 20*time.Second, "the view still confirmed behind the gRPC proxy with etcd past it: does the proxy answer progress requests now? (docs/fleet.md)")
}
