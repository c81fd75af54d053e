package main

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"

	"github.com/keytool/keytool/internal/cli"
)

// TestWatchesKeepTheLogin: with --etcd-user, the store's client logs in
// once, when it dials; the watches of ChangesSince, each on a stream of
// its own, reuse that login, where clientv3 logged in again for every
// stream (a bcrypt check on the member: seconds under the race
// detector). Once its token is revoked (root set adm's password anew, to
// the same: etcd drops the user's tokens), the next request logs in
// again, once, and the watches after it reuse that login.
func TestWatchesKeepTheLogin(t *testing.T) {
	m := startTLSEtcd(t) // --etcd-user only over TLS
	pw := adminOnPrefix(t, m.client(t, false))
	ctx := context.Background()
	s := m.openStore(t, "--etcd-user", "adm", "--etcd-password-file", pw, "--etcd-dial-timeout", "1h")
	watchAll(s, true)
	if n := s.login.Logins(); n != 1 {
		t.Fatalf("the dial sent %d Authenticate requests, want 1", n)
	}
	watch := func(name string) {
		t.Helper()
		l, err := s.ListRevisions(ctx)
		if err != nil {
			t.Fatalf("ListRevisions: %v", err)
		}
		if _, err := s.Apply(ctx, []cli.StoreChange{{Kind: "authorized_keys", Name: name, Value: []byte("a")}}); err != nil {
			t.Fatal(err)
		}
		watched := s.watched
		d, err := s.ChangesSince(ctx, markOf(l))
		if err != nil || len(d.Put) != 1 || d.Put[0].Name != name || s.watched != watched+1 {
			t.Fatalf("changes since %d: %+v, %v, %d by a watch (want %d)", l.Revision, d, err, s.watched, watched+1)
		}
	}
	for i := range 3 {
		watch(fmt.Sprintf("a%d.json", i))
	}
	if n := s.login.Logins(); n != 1 {
		t.Fatalf("after the dial and 3 watches, %d Authenticate requests sent, want 1 (a login per watch?)", n)
	}

	root := m.client(t, true)
	if _, err := root.UserChangePassword(ctx, "adm", "admpw"); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		watch(fmt.Sprintf("b%d.json", i))
	}
	if n := s.login.Logins(); n != 2 {
		t.Fatalf("after the login was revoked and 2 watches, %d Authenticate requests sent in all, want 2", n)
	}
	// Revoked again, and a watch first: its stream's login is the one
	// that finds the token gone, and logs in.
	if _, err := root.UserChangePassword(ctx, "adm", "admpw"); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if resp := <-s.c.Watch(wctx, "/kt/", clientv3.WithPrefix(), clientv3.WithCreatedNotify()); !resp.Created || resp.Err() != nil {
		t.Fatalf("a watch once the token was revoked: %+v, %v", resp, resp.Err())
	}
	if n := s.login.Logins(); n != 3 {
		t.Fatalf("after the login was revoked again and a watch, %d Authenticate requests sent in all, want 3", n)
	}
}

// BenchmarkWatchLogin measures what opening a watch costs with
// --etcd-user (the time until etcd says it is made): on a store's client,
// which keeps its login (etcd.KeepLogin), and, as the baseline in the same
// run, on a client as clientv3 makes it from the same flags, which logs in
// for every stream. Each watch gets a stream of its own (a new context
// metadata), as a command's catch-up watch and a Source's watch resumed
// after an end do. The member is in this process: its bcrypt check of
// the password is in the figure, as on a real member.
//
//	cd etcd && go test -run '^$' -bench WatchLogin -benchtime 20x ./cmd/keytool
func BenchmarkWatchLogin(b *testing.B) {
	m := startTLSEtcd(b) // --etcd-user only over TLS
	pw := adminOnPrefix(b, m.client(b, false))
	kept := m.openStore(b, "--etcd-user", "adm", "--etcd-password-file", pw).c
	f := &connFlags{cacert: m.flags[1], user: "adm", passwordFile: pw, dialTimeout: 10 * time.Second}
	cfg, _, err := f.config(&url.URL{Scheme: "etcds", Host: m.addr, Path: "/kt"})
	if err != nil {
		b.Fatal(err)
	}
	each, err := clientv3.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { each.Close() })
	for _, c := range []struct {
		name string
		c    *clientv3.Client
	}{{"clientv3", each}, {"kept", kept}} {
		b.Run(c.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				i++
				ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), "stream", fmt.Sprint(i)))
				resp := <-c.c.Watch(ctx, "/kt/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
				cancel()
				if !resp.Created {
					b.Fatalf("watch not made: %v", resp.Err())
				}
			}
		})
	}
}
